/* The built-in ops. Each takes the graph first and returns a tensor in that
 * graph, or NULL with tg_last_error() naming the op and the shapes. A NULL
 * input gives NULL and keeps the first error, so a chain is checked once.
 * Semantics follow PyTorch (NCHW images, OIHW conv weights, broadcasting,
 * negative axes count from the end). docs/ops.md derives every VJP.
 * Fixed names: N batch, C channels, H height, W width, K kernel, S stride. */
#ifndef TG_OPS_H
#define TG_OPS_H

#include "../autograd/op.h"
#include "../autograd/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The registry (ops/ops.def): every built-in op, one row each. ---- */
extern const tg_op *const tg_op_table[];
/* Each op's definition, tg_op_<name> (tg_op_matmul, ...). */
#define TG_OP(name) extern const tg_op tg_op_##name;
#include "ops.def"
#undef TG_OP
extern const int tg_op_count;
/* The op named `name` ("matmul"), or NULL. */
const tg_op *tg_op_find(const char *name);

/* ---- Threads ----
 * Kernels use OpenMP threads; results are bitwise identical for any count.
 * The default is TG_NUM_THREADS from the environment, else the core count.
 * tg_set_num_threads(n) sets it (n < 1 restores the default) and returns the
 * previous count. Without OpenMP the count is always 1. */
int tg_set_num_threads(int n);
int tg_num_threads(void);

/* ---- Elementwise, binary with NumPy/PyTorch broadcasting ---- */
tg_tensor *tg_add(tg_graph *g, tg_tensor *a, tg_tensor *b); /* a + b */
tg_tensor *tg_sub(tg_graph *g, tg_tensor *a, tg_tensor *b); /* a - b */
tg_tensor *tg_mul(tg_graph *g, tg_tensor *a, tg_tensor *b); /* a * b */
tg_tensor *tg_div(tg_graph *g, tg_tensor *a, tg_tensor *b); /* a / b */

/* ---- Elementwise, unary ---- */
tg_tensor *tg_neg(tg_graph *g, tg_tensor *x);     /* -x */
tg_tensor *tg_exp(tg_graph *g, tg_tensor *x);     /* e^x */
tg_tensor *tg_log(tg_graph *g, tg_tensor *x);     /* ln x (x <= 0 gives -inf / NaN, as IEEE) */
tg_tensor *tg_sqrt(tg_graph *g, tg_tensor *x);    /* sqrt(x) */
tg_tensor *tg_pow(tg_graph *g, tg_tensor *x, double p); /* x^p for a scalar p */
tg_tensor *tg_relu(tg_graph *g, tg_tensor *x);    /* max(0, x); subgradient 0 at 0 */
tg_tensor *tg_sigmoid(tg_graph *g, tg_tensor *x); /* 1 / (1 + e^-x) */
tg_tensor *tg_tanh(tg_graph *g, tg_tensor *x);    /* tanh x */
tg_tensor *tg_abs(tg_graph *g, tg_tensor *x);     /* |x|; subgradient 0 at 0 */

/* ---- Reductions ---- */
tg_tensor *tg_sum(tg_graph *g, tg_tensor *x);  /* sum of all elements, shape [] */
tg_tensor *tg_mean(tg_graph *g, tg_tensor *x); /* mean of all elements, shape [] */
/* Sum / mean / max over one axis; keepdim keeps it as size 1. */
tg_tensor *tg_sum_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim);
tg_tensor *tg_mean_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim);
/* Max values along axis; the gradient goes to the first maximum; NaN wins. */
tg_tensor *tg_max_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim);

/* ---- Shape ---- */
/* Same values, new shape; one entry may be -1 (inferred). Copies the data. */
tg_tensor *tg_reshape(tg_graph *g, tg_tensor *x, int ndim, const int64_t *shape);
/* Flattens dims start_dim..last into one (torch.flatten(x, start_dim)). */
tg_tensor *tg_flatten(tg_graph *g, tg_tensor *x, int start_dim);
/* Swaps two dims (torch.transpose); the result is contiguous. */
tg_tensor *tg_transpose(tg_graph *g, tg_tensor *x, int dim0, int dim1);
/* Joins n tensors along axis (torch.cat); all other dims must match. */
tg_tensor *tg_concat(tg_graph *g, tg_tensor *const *xs, int n, int axis);

/* ---- Linear algebra ---- */
/* torch.matmul: 1-D dot, 2-D matrix product, batched with broadcast batch dims. */
tg_tensor *tg_matmul(tg_graph *g, tg_tensor *a, tg_tensor *b);
/* y = x w^T + b (F.linear): x [..., in], w [out, in], b [out] or NULL -> [..., out] */
tg_tensor *tg_linear(tg_graph *g, tg_tensor *x, tg_tensor *w, tg_tensor *b);

/* ---- Convolution (issue 3) ----
 * x [N, C, H, W], w [O, C/groups, KH, KW], bias [O] or NULL. Cross-correlation
 * (no kernel flip), as torch.nn.functional.conv2d. A zero field means the
 * default: stride 1, padding 0, dilation 1, groups 1. same = padding 'same'
 * (stride 1 only; an odd total pads one more at the bottom/right, as PyTorch). */
typedef struct tg_conv2d_args {
    int64_t stride[2];
    int64_t padding[2];
    int64_t dilation[2];
    int64_t groups;
    bool same;
} tg_conv2d_args;
tg_tensor *tg_conv2d(tg_graph *g, tg_tensor *x, tg_tensor *w, tg_tensor *bias, tg_conv2d_args args);

/* ---- Pooling (issue 3) ----
 * x [N, C, H, W] or [C, H, W]. kernel is required; a zero stride means the
 * kernel; dilation 0 means 1 (maxpool only). Output size as PyTorch:
 * floor or ceil of (H + 2P - D(K-1) - 1) / S + 1, and with ceil_mode the last
 * window must start inside the input or the left padding.
 * exclude_padding: avgpool divides by the window's in-image count
 * (count_include_pad=False); false divides by the window clipped to the
 * padded input (PyTorch's default). */
typedef struct tg_pool2d_args {
    int64_t kernel[2];
    int64_t stride[2];
    int64_t padding[2];
    int64_t dilation[2];
    bool ceil_mode;
    bool exclude_padding;
} tg_pool2d_args;
/* Max over each window; ties: the first max gets the gradient; NaN wins (the
 * last NaN of a window gets the gradient, as PyTorch's CPU kernel). */
tg_tensor *tg_maxpool2d(tg_graph *g, tg_tensor *x, tg_pool2d_args args);
tg_tensor *tg_avgpool2d(tg_graph *g, tg_tensor *x, tg_pool2d_args args);

/* ---- Softmax family and losses (issue 3) ---- */
tg_tensor *tg_softmax(tg_graph *g, tg_tensor *x, int axis);     /* e^x / sum e^x, max-subtracted */
tg_tensor *tg_log_softmax(tg_graph *g, tg_tensor *x, int axis); /* x - logsumexp(x) */

typedef enum tg_reduction {
    TG_REDUCTION_MEAN = 0, /* mean over the batch (the default) */
    TG_REDUCTION_SUM = 1,
    TG_REDUCTION_NONE = 2  /* no reduction: [N] for the class losses, the input's shape for mse */
} tg_reduction;
/* logits [N, C], labels: N class indices in [0, C). Fused logsumexp - logit[label];
 * mean over the batch. VJP: softmax - onehot. The labels are copied: the array
 * only needs to live for the duration of the call. */
tg_tensor *tg_cross_entropy(tg_graph *g, tg_tensor *logits, const int64_t *labels);
tg_tensor *tg_cross_entropy_ex(tg_graph *g, tg_tensor *logits, const int64_t *labels, tg_reduction red);
/* Soft targets: target [N, C] probabilities; loss = -sum_c t log softmax(logits). */
tg_tensor *tg_cross_entropy_soft(tg_graph *g, tg_tensor *logits, tg_tensor *target, tg_reduction red);
/* logp [N, C] log-probabilities; loss = -logp[i, label_i]. */
tg_tensor *tg_nll_loss(tg_graph *g, tg_tensor *logp, const int64_t *labels, tg_reduction red);
/* (a - b)^2, same shapes, reduced. */
tg_tensor *tg_mse_loss(tg_graph *g, tg_tensor *a, tg_tensor *b, tg_reduction red);

/* ---- Normalisation and regularisation (issue 3) ----
 * batchnorm2d: x [N, C, H, W]; weight, bias [C] or NULL (no affine);
 * running_mean, running_var [C] leaves, read in eval mode and updated in place
 * in training mode (momentum, unbiased variance). Zero eps / momentum mean
 * PyTorch's defaults 1e-5 / 0.1. */
typedef struct tg_batchnorm2d_args {
    double eps;
    double momentum;
    bool training;
} tg_batchnorm2d_args;
tg_tensor *tg_batchnorm2d(tg_graph *g, tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                          tg_tensor *running_mean, tg_tensor *running_var, tg_batchnorm2d_args args);
/* Training: zero each element with probability p, scale the rest by 1/(1-p),
 * drawing from rng. Not training (or p == 0): the identity. */
tg_tensor *tg_dropout(tg_graph *g, tg_tensor *x, double p, bool training, tg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
