/* Results do not depend on the thread count: training losses and parameters
 * of LeNet-like models, and the outputs and gradients of each threaded op at
 * sizes well above the kernels' thresholds for going parallel, are bitwise
 * identical with 1, 2 and 3 threads (tg_set_num_threads). */
#include "helpers.h"
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

/* The first element where two float32 buffers differ bitwise, or -1. */
static int64_t first_difference(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            return i;
    return -1;
}

#define expect_bitwise(a, b, n, ...)                                                           \
    do {                                                                                       \
        const float *a_ = (a), *b_ = (b);                                                      \
        int64_t at_ = first_difference(a_, b_, (n));                                           \
        cr_expect(at_ < 0, __VA_ARGS__);                                                       \
        if (at_ >= 0)                                                                          \
            cr_log_error("  first difference at [%lld]: %.9g vs %.9g", (long long)at_,         \
                         (double)a_[at_], (double)b_[at_]);                                   \
    } while (0)

/* ------------------------------------------------------------ training */

#define MAX_STEPS 6
#define MAX_PARAMS 600000

typedef struct run_result {
    float loss[MAX_STEPS];
    float *params; /* every parameter after the last step, concatenated */
    int64_t n_params;
} run_result;

static tg_nn_module *lenet_like(int64_t c1, int64_t c2, int64_t hidden)
{
    tg_rng r;
    tg_rng_seed(&r, 11, 0);
    tg_conv2d_args pad1 = {.padding = {1, 1}};
    tg_pool2d_args pool2 = {.kernel = {2, 2}};
    tg_nn_module *mods[] = {
        tg_nn_conv2d_new(1, c1, 3, 3, pad1, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_conv2d_new(c1, c2, 3, 3, pad1, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_flatten_new(1),
        tg_nn_linear_new(c2 * 7 * 7, hidden, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_linear_new(hidden, 10, true, TG_F32, &r),
    };
    return tg_nn_sequential_new(10, mods);
}

/* Trains a fresh model (same seed every time) for `steps` steps on a fixed
 * random data set with `threads` kernel threads. */
static run_result train(int threads, int64_t c1, int64_t c2, int64_t hidden, int64_t batch,
                        int steps, bool adam)
{
    tg_set_num_threads(threads);
    run_result res = {0};
    int64_t n = batch * steps;
    tg_nn_dataset ds = {.n = n, .c = 1, .h = 28, .w = 28, .mean = 0.5, .std = 0.25};
    ds.pixels = malloc((size_t)(n * 28 * 28) * sizeof *ds.pixels);
    ds.labels = malloc((size_t)n * sizeof *ds.labels);
    cr_assert(ds.pixels && ds.labels);
    tg_rng r;
    tg_rng_seed(&r, 5, 0);
    for (int64_t i = 0; i < n * 28 * 28; i++)
        ds.pixels[i] = (uint8_t)tg_rng_below(&r, 256);
    for (int64_t i = 0; i < n; i++)
        ds.labels[i] = (int64_t)tg_rng_below(&r, 10);
    tg_nn_module *m = lenet_like(c1, c2, hidden);
    cr_assert(m, "%s", tg_last_error());
    tg_nn_optim *o = adam ? tg_nn_adam_new(m, (tg_nn_adam_args){.lr = 1e-3})
                          : tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.05, .momentum = 0.9});
    tg_graph *g = tg_graph_new();
    tg_nn_loader *l = tg_nn_loader_new(&ds, batch, true, 3);
    cr_assert(o && g && l, "%s", tg_last_error());
    for (int s = 0; s < steps; s++) {
        const int64_t *labels;
        tg_graph_reset(g);
        tg_tensor *x = tg_nn_loader_next(l, g, &labels);
        tg_tensor *loss = tg_cross_entropy(g, tg_nn_forward(m, g, x), labels);
        tg_nn_optim_zero_grad(o);
        cr_assert(loss && tg_backward(g, loss) == TG_OK && tg_nn_optim_step(o) == TG_OK,
                  "%d threads, step %d: %s", threads, s + 1, tg_last_error());
        res.loss[s] = ((const float *)tg_tensor_data(loss))[0];
    }
    res.n_params = tg_nn_param_count(m);
    cr_assert(res.n_params <= MAX_PARAMS);
    res.params = malloc((size_t)res.n_params * sizeof *res.params);
    cr_assert(res.params);
    int64_t at = 0;
    for (int i = 0; i < tg_nn_n_entries(m); i++) {
        const tg_nn_entry *e = tg_nn_entry_at(m, i);
        if (e->kind != TG_NN_PARAM)
            continue;
        int64_t k = tg_tensor_numel(e->tensor);
        memcpy(res.params + at, tg_tensor_data(e->tensor), (size_t)k * sizeof *res.params);
        at += k;
    }
    tg_nn_loader_free(l);
    tg_graph_free(g);
    tg_nn_optim_free(o);
    tg_nn_module_free(m);
    tg_nn_dataset_free(&ds);
    return res;
}

/* Compares 1 thread with 2 .. max_threads. */
static void expect_same_training(int64_t c1, int64_t c2, int64_t hidden, int64_t batch, int steps,
                                 bool adam, int max_threads)
{
    run_result one = train(1, c1, c2, hidden, batch, steps, adam);
    for (int t = 2; t <= max_threads; t++) {
        run_result many = train(t, c1, c2, hidden, batch, steps, adam);
        for (int s = 0; s < steps; s++)
            cr_expect(memcmp(&one.loss[s], &many.loss[s], sizeof one.loss[s]) == 0,
                      "loss of step %d: %.9g with 1 thread, %.9g with %d", s + 1,
                      (double)one.loss[s], (double)many.loss[s], t);
        cr_assert_eq(one.n_params, many.n_params);
        expect_bitwise(one.params, many.params, one.n_params,
                       "parameters after %d steps differ between 1 and %d threads", steps, t);
        free(many.params);
    }
    free(one.params);
}

Test(threads, small_lenet_sgd_losses_are_bitwise_identical)
{
    expect_same_training(4, 8, 16, 8, 5, false, 3);
}

/* The main job's layer sizes and optimizer at batch 16: every GEMM of the
 * step (conv 32->64 im2col: 64 x 3136 x 288) is far above the thresholds. */
Test(threads, main_job_lenet_adam_losses_are_bitwise_identical)
{
    expect_same_training(32, 64, 128, 16, 3, true, 2);
}

/* ----------------------------------------------------------------- ops */

typedef struct op_case {
    const char *name;
    int n_inputs;
    int ndim[3];
    int64_t shape[3][4];
    tg_tensor *(*apply)(tg_graph *g, tg_tensor *const *in);
} op_case;

static const int64_t big_labels_n = 8192;

static tg_tensor *op_add_bias(tg_graph *g, tg_tensor *const *in) { return tg_add(g, in[0], in[1]); }
static tg_tensor *op_mul(tg_graph *g, tg_tensor *const *in) { return tg_mul(g, in[0], in[1]); }
static tg_tensor *op_relu(tg_graph *g, tg_tensor *const *in) { return tg_relu(g, in[0]); }
static tg_tensor *op_exp(tg_graph *g, tg_tensor *const *in) { return tg_exp(g, in[0]); }
static tg_tensor *op_tanh(tg_graph *g, tg_tensor *const *in) { return tg_tanh(g, in[0]); }
static tg_tensor *op_sum(tg_graph *g, tg_tensor *const *in) { return tg_sum(g, in[0]); }
static tg_tensor *op_mean(tg_graph *g, tg_tensor *const *in) { return tg_mean(g, in[0]); }
static tg_tensor *op_sum_axis0(tg_graph *g, tg_tensor *const *in)
{
    return tg_sum_axis(g, in[0], 0, false);
}
static tg_tensor *op_max_axis1(tg_graph *g, tg_tensor *const *in)
{
    return tg_max_axis(g, in[0], 1, false);
}
static tg_tensor *op_softmax(tg_graph *g, tg_tensor *const *in) { return tg_softmax(g, in[0], 1); }
static tg_tensor *op_log_softmax(tg_graph *g, tg_tensor *const *in)
{
    return tg_log_softmax(g, in[0], 1);
}
static tg_tensor *op_cross_entropy(tg_graph *g, tg_tensor *const *in)
{
    static int64_t labels[8192];
    for (int64_t i = 0; i < big_labels_n; i++)
        labels[i] = (i * 7) % 10;
    return tg_cross_entropy(g, in[0], labels);
}
static tg_tensor *op_matmul(tg_graph *g, tg_tensor *const *in) { return tg_matmul(g, in[0], in[1]); }
static tg_tensor *op_matmul_t(tg_graph *g, tg_tensor *const *in)
{
    return tg_matmul(g, in[0], tg_transpose(g, in[1], 0, 1));
}
static tg_tensor *op_conv(tg_graph *g, tg_tensor *const *in)
{
    return tg_conv2d(g, in[0], in[1], in[2], (tg_conv2d_args){.padding = {1, 1}});
}
static tg_tensor *op_maxpool(tg_graph *g, tg_tensor *const *in)
{
    return tg_maxpool2d(g, in[0], (tg_pool2d_args){.kernel = {2, 2}});
}
static tg_tensor *op_avgpool(tg_graph *g, tg_tensor *const *in)
{
    return tg_avgpool2d(g, in[0], (tg_pool2d_args){.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
}
static tg_tensor *op_batchnorm(tg_graph *g, tg_tensor *const *in)
{
    int64_t c = tg_tensor_shape(in[0])[1];
    tg_tensor *mean = tg_graph_tensor(g, TG_F32, 1, &c), *var = tg_graph_tensor(g, TG_F32, 1, &c);
    if (!mean || !var)
        return NULL;
    tg_tensor_fill(var, 1.0);
    return tg_batchnorm2d(g, in[0], in[1], in[2], mean, var, (tg_batchnorm2d_args){.training = true});
}
static tg_tensor *op_transpose(tg_graph *g, tg_tensor *const *in)
{
    return tg_transpose(g, in[0], 0, 1);
}

static const op_case op_cases[] = {
    {"add_bias", 2, {2, 1}, {{512, 2048}, {2048}}, op_add_bias},
    {"mul", 2, {1, 1}, {{1 << 20}, {1 << 20}}, op_mul},
    {"relu", 1, {1}, {{1 << 21}}, op_relu},
    {"exp", 1, {2}, {{1024, 1024}}, op_exp},
    {"tanh", 1, {2}, {{1024, 1024}}, op_tanh},
    {"sum", 1, {1}, {{1 << 22}}, op_sum},
    {"mean", 1, {2}, {{2048, 1024}}, op_mean},
    {"sum_axis0", 1, {2}, {{2048, 1024}}, op_sum_axis0},
    {"max_axis1", 1, {2}, {{1024, 1000}}, op_max_axis1},
    {"softmax", 1, {2}, {{2048, 1000}}, op_softmax},
    {"log_softmax", 1, {2}, {{2048, 1000}}, op_log_softmax},
    {"cross_entropy", 1, {2}, {{8192, 10}}, op_cross_entropy},
    {"matmul", 2, {2, 2}, {{384, 320}, {320, 288}}, op_matmul},
    {"matmul_bt", 2, {2, 2}, {{64, 3136}, {128, 3136}}, op_matmul_t},
    {"conv2d_c32", 3, {4, 4, 1}, {{16, 32, 14, 14}, {64, 32, 3, 3}, {64}}, op_conv},
    {"conv2d_c1", 3, {4, 4, 1}, {{64, 1, 28, 28}, {32, 1, 3, 3}, {32}}, op_conv},
    {"maxpool2d", 1, {4}, {{64, 32, 28, 28}}, op_maxpool},
    {"avgpool2d", 1, {4}, {{32, 32, 28, 28}}, op_avgpool},
    {"batchnorm2d", 3, {4, 1, 1}, {{32, 32, 28, 28}, {32}, {32}}, op_batchnorm},
    {"transpose", 1, {2}, {{1024, 1536}}, op_transpose},
};

typedef struct op_result {
    tg_tensor *out;
    tg_tensor *grad[3];
} op_result;

static op_result run_op(const op_case *c, int threads)
{
    tg_set_num_threads(threads);
    tg_tensor *in[3] = {0};
    for (int i = 0; i < c->n_inputs; i++) {
        in[i] = tgt_random(TG_F32, c->ndim[i], c->shape[i], -2, 2, 100 + (uint64_t)i);
        tg_tensor_set_requires_grad(in[i], true);
    }
    tg_graph *g = tg_graph_new();
    cr_assert(g);
    tg_tensor *y = c->apply(g, in);
    cr_assert(y, "%s: %s", c->name, tg_last_error());
    tg_tensor *dy = tgt_random(TG_F32, tg_tensor_ndim(y), tg_tensor_shape(y), -1, 1, 9);
    cr_assert_eq(tg_backward_with(g, y, dy), TG_OK, "%s: %s", c->name, tg_last_error());
    op_result r = {tg_tensor_copy(y, TG_F32), {0}};
    for (int i = 0; i < c->n_inputs; i++) {
        r.grad[i] = tg_tensor_copy(tg_tensor_grad(in[i]), TG_F32);
        tg_tensor_free(in[i]);
    }
    tg_tensor_free(dy);
    tg_graph_free(g);
    return r;
}

static void op_result_free(op_result *r)
{
    tg_tensor_free(r->out);
    for (int i = 0; i < 3; i++)
        tg_tensor_free(r->grad[i]);
}

Test(threads, threaded_op_outputs_and_gradients_are_bitwise_identical)
{
    for (size_t k = 0; k < sizeof op_cases / sizeof op_cases[0]; k++) {
        const op_case *c = &op_cases[k];
        op_result one = run_op(c, 1);
        for (int t = 2; t <= 3; t++) {
            op_result many = run_op(c, t);
            expect_bitwise(tg_tensor_data(one.out), tg_tensor_data(many.out),
                           tg_tensor_numel(one.out), "%s: forward differs between 1 and %d threads",
                           c->name, t);
            for (int i = 0; i < c->n_inputs; i++)
                expect_bitwise(tg_tensor_data(one.grad[i]), tg_tensor_data(many.grad[i]),
                               tg_tensor_numel(one.grad[i]),
                               "%s: gradient of input %d differs between 1 and %d threads", c->name,
                               i, t);
            op_result_free(&many);
        }
        op_result_free(&one);
    }
}
