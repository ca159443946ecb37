/* The nn layer: modules composed from the public ops (no VJP of their own),
 * PyTorch-default initialisation, optimizers and learning-rate schedules,
 * checkpoints in the safetensors layout, and the MNIST/Fashion-MNIST data
 * loader. docs/nn.md describes each part.
 *
 * Ownership: tg_nn_*_new returns a module the caller frees with
 * tg_nn_module_free; a Sequential takes ownership of its children. A module
 * owns its parameters and buffers (heap leaves). Optimizers borrow the module
 * they were made for: free the optimizer first. */
#ifndef TG_NN_H
#define TG_NN_H

#include <stdio.h>

#include "../ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_nn_module tg_nn_module;

/* ------------------------------------------------------ named state */

typedef enum tg_nn_entry_kind {
    TG_NN_PARAM = 0,  /* trainable tensor (requires grad) */
    TG_NN_BUFFER = 1, /* saved state that is not trained (running_mean) */
    TG_NN_COUNTER = 2 /* an int64 scalar buffer (BatchNorm's num_batches_tracked) */
} tg_nn_entry_kind;

#define TG_NN_NAME_MAX 128

/* One entry of a module's state dict, named as PyTorch names it ("0.weight",
 * "1.running_mean"). */
typedef struct tg_nn_entry {
    char name[TG_NN_NAME_MAX];
    tg_nn_entry_kind kind;
    tg_tensor *tensor; /* PARAM and BUFFER */
    int64_t *counter;  /* COUNTER */
} tg_nn_entry;

/* ---------------------------------------------------------- modules */

/* Linear: y = x W^T + b; W [out, in], b [out]. x [..., in]. */
tg_nn_module *tg_nn_linear_new(int64_t in_features, int64_t out_features, bool bias,
                               tg_dtype dtype, tg_rng *rng);
/* Conv2d: weight [out, in/groups, KH, KW], bias [out]; args as tg_conv2d. */
tg_nn_module *tg_nn_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kh, int64_t kw,
                               tg_conv2d_args args, bool bias, tg_dtype dtype, tg_rng *rng);
tg_nn_module *tg_nn_relu_new(void);
tg_nn_module *tg_nn_maxpool2d_new(tg_pool2d_args args);
tg_nn_module *tg_nn_avgpool2d_new(tg_pool2d_args args);
/* Flatten dims start_dim..last (nn.Flatten's default start_dim is 1). */
tg_nn_module *tg_nn_flatten_new(int start_dim);
/* Dropout with probability p; its generator is seeded with seed. */
tg_nn_module *tg_nn_dropout_new(double p, uint64_t seed);
/* BatchNorm2d over C channels: weight 1, bias 0, running_mean 0,
 * running_var 1, num_batches_tracked 0; eps 1e-5, momentum 0.1. */
tg_nn_module *tg_nn_batchnorm2d_new(int64_t channels, tg_dtype dtype);
/* A Sequential of n modules, run in order. Takes ownership of every module
 * in mods, also on failure (a NULL entry fails and frees the others), so
 * construction can be written as one expression and checked once. */
tg_nn_module *tg_nn_sequential_new(int n, tg_nn_module *const *mods);

void tg_nn_module_free(tg_nn_module *m);

/* Runs the module; NULL with tg_last_error() on failure. */
tg_tensor *tg_nn_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x);
/* Training (the default) or evaluation mode, for the module and its children. */
void tg_nn_train(tg_nn_module *m, bool training);
bool tg_nn_training(const tg_nn_module *m);
/* "Linear", "Conv2d", "Sequential", ... */
const char *tg_nn_kind(const tg_nn_module *m);
/* PyTorch's repr of one layer: "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))". */
void tg_nn_describe(const tg_nn_module *m, char *buf, size_t size);

/* The state dict: parameters, buffers and counters, in PyTorch's order. */
int tg_nn_n_entries(const tg_nn_module *m);
const tg_nn_entry *tg_nn_entry_at(const tg_nn_module *m, int i);
const tg_nn_entry *tg_nn_find(const tg_nn_module *m, const char *name);
/* Number of trainable scalars. */
int64_t tg_nn_param_count(const tg_nn_module *m);
/* Zeroes every parameter's gradient. */
void tg_nn_zero_grad(tg_nn_module *m);
/* Prints each layer, its output shape for an input of `shape` (a batch),
 * its parameter count and the total, running a no-grad forward on zeros. */
int tg_nn_summary(tg_nn_module *m, FILE *out, tg_dtype dtype, int ndim, const int64_t *shape);

/* ------------------------------------------------------------- init */

/* U(-bound, bound) with bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)):
 * kaiming_uniform_(a). PyTorch's default for Linear/Conv2d weights is a = sqrt(5). */
void tg_nn_init_kaiming_uniform(tg_tensor *t, double a, int64_t fan_in, tg_rng *rng);
/* N(0, std^2) with std = gain / sqrt(fan_in): kaiming_normal_(a) (fan_in mode). */
void tg_nn_init_kaiming_normal(tg_tensor *t, double a, int64_t fan_in, tg_rng *rng);
/* U(-b, b), b = gain sqrt(6 / (fan_in + fan_out)): xavier_uniform_. */
void tg_nn_init_xavier_uniform(tg_tensor *t, int64_t fan_in, int64_t fan_out, double gain,
                               tg_rng *rng);
/* N(0, std^2), std = gain sqrt(2 / (fan_in + fan_out)): xavier_normal_. */
void tg_nn_init_xavier_normal(tg_tensor *t, int64_t fan_in, int64_t fan_out, double gain,
                              tg_rng *rng);
/* U(lo, hi). */
void tg_nn_init_uniform(tg_tensor *t, double lo, double hi, tg_rng *rng);

/* ------------------------------------------------------- optimizers */

typedef struct tg_nn_optim tg_nn_optim;

/* torch.optim.SGD: lr is required (> 0); the others default to 0 / false. */
typedef struct tg_nn_sgd_args {
    double lr;
    double momentum;
    double dampening;
    double weight_decay;
    bool nesterov;
} tg_nn_sgd_args;

/* torch.optim.Adam / AdamW. Zero fields mean PyTorch's defaults: lr 1e-3,
 * beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0 (Adam) or 1e-2 (AdamW). */
typedef struct tg_nn_adam_args {
    double lr;
    double beta1;
    double beta2;
    double eps;
    double weight_decay;
    bool amsgrad;
} tg_nn_adam_args;

tg_nn_optim *tg_nn_sgd_new(tg_nn_module *m, tg_nn_sgd_args args);
tg_nn_optim *tg_nn_adam_new(tg_nn_module *m, tg_nn_adam_args args);
tg_nn_optim *tg_nn_adamw_new(tg_nn_module *m, tg_nn_adam_args args);
void tg_nn_optim_free(tg_nn_optim *o);
/* One update of every parameter that has a gradient. */
int tg_nn_optim_step(tg_nn_optim *o);
void tg_nn_optim_zero_grad(tg_nn_optim *o);
double tg_nn_optim_lr(const tg_nn_optim *o);
void tg_nn_optim_set_lr(tg_nn_optim *o, double lr);
/* Steps taken so far. */
int64_t tg_nn_optim_steps(const tg_nn_optim *o);
/* Optimizer state (step count, lr, momentum / moment buffers) in the
 * safetensors layout, written atomically; load checks it fits the optimizer. */
int tg_nn_optim_save(const tg_nn_optim *o, const char *path);
int tg_nn_optim_load(tg_nn_optim *o, const char *path);

/* StepLR: base * gamma^(epoch / step_size). */
double tg_nn_lr_step(double base, int64_t epoch, int64_t step_size, double gamma);
/* CosineAnnealingLR (closed form): eta_min + (base - eta_min)(1 + cos(pi t / t_max)) / 2. */
double tg_nn_lr_cosine(double base, double eta_min, int64_t t, int64_t t_max);
/* clip_grad_norm_: scales every gradient so the total L2 norm is at most
 * max_norm; returns the norm before clipping. */
double tg_nn_clip_grad_norm(tg_nn_module *m, double max_norm);

/* ------------------------------------------------------ checkpoints */

enum tg_nn_load_flags {
    TG_NN_LOAD_NO_CRC = 1 /* accept a file without tgrad's CRC (written by PyTorch) */
};
/* Saves every entry of the state dict (safetensors layout PyTorch reads; a
 * CRC32 in __metadata__; written atomically). */
int tg_nn_save(const tg_nn_module *m, const char *path);
/* Loads a file tg_nn_save wrote. Every name, dtype and shape must match the
 * module; on any failure the module is left unchanged. */
int tg_nn_load(tg_nn_module *m, const char *path);
int tg_nn_load_ex(tg_nn_module *m, const char *path, unsigned flags);

/* ------------------------------------------------------------- data */

/* Images kept as their raw bytes [N, C, H, W] (a quarter of the memory of
 * float32), normalised to float32 (x / 255 - mean) / std as each batch is
 * made, and int64 labels. */
typedef struct tg_nn_dataset {
    int64_t n, c, h, w;
    uint8_t *pixels;
    int64_t *labels;
    double mean, std;
} tg_nn_dataset;

/* Reads an IDX image file (N x H x W bytes) and an IDX label file (N bytes,
 * values < n_classes), raw as gunzip leaves them. */
int tg_nn_mnist_load(tg_nn_dataset *ds, const char *images_path, const char *labels_path,
                     double mean, double std);
void tg_nn_dataset_free(tg_nn_dataset *ds);

/* Mini-batches over a dataset, reshuffled each epoch from a seeded generator
 * (or in order); the last partial batch is kept. */
typedef struct tg_nn_loader tg_nn_loader;
tg_nn_loader *tg_nn_loader_new(const tg_nn_dataset *ds, int64_t batch, bool shuffle, uint64_t seed);
void tg_nn_loader_free(tg_nn_loader *l);
/* Starts an epoch (a new permutation when shuffling). */
void tg_nn_loader_reset(tg_nn_loader *l);
int64_t tg_nn_loader_n_batches(const tg_nn_loader *l);
/* The next batch as a float32 tensor [b, C, H, W] in g's arena, its labels
 * (valid until the next call) in *labels; NULL at the end of the epoch. */
tg_tensor *tg_nn_loader_next(tg_nn_loader *l, tg_graph *g, const int64_t **labels);

#ifdef __cplusplus
}
#endif
#endif
