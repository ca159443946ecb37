/* The layer modules: Linear, Conv2d, ReLU, MaxPool2d, AvgPool2d, Flatten,
 * Dropout, BatchNorm2d. Each forward composes public ops; none has a VJP of
 * its own. Parameter names and initialisation follow PyTorch. */
#include "module.h"

#include <math.h>
#include <string.h>

static bool check_positive(const char *who, const char *what, int64_t v)
{
    if (v > 0)
        return true;
    tg_set_error(TG_ERR_ARG, "%s: %s must be positive, got %lld", who, what, (long long)v);
    return false;
}

static bool check_dtype(const char *who, tg_dtype dtype)
{
    if (dtype == TG_F32 || dtype == TG_F64)
        return true;
    tg_set_error(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
    return false;
}

/* ---------------------------------------------------------------- Linear */

static tg_tensor *linear_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_linear(g, x, m->entries[0].tensor, m->n_entries > 1 ? m->entries[1].tensor : NULL);
}

static void linear_describe(const tg_nn_module *m, char *buf, size_t size)
{
    snprintf(buf, size, "Linear(in_features=%lld, out_features=%lld, bias=%s)", (long long)m->in,
             (long long)m->out, m->n_entries > 1 ? "True" : "False");
}

static const tg_nn_vt linear_vt = {"Linear", linear_forward, linear_describe};

tg_nn_module *tg_nn_linear_new(int64_t in_features, int64_t out_features, bool bias,
                               tg_dtype dtype, tg_rng *rng)
{
    const char *who = "tg_nn_linear_new";
    if (!check_positive(who, "in_features", in_features) ||
        !check_positive(who, "out_features", out_features) || !check_dtype(who, dtype))
        return NULL;
    if (!rng) {
        tg_set_error(TG_ERR_NULL, "%s: rng is NULL", who);
        return NULL;
    }
    tg_nn_module *m = tg__nn_alloc(&linear_vt, bias ? 2 : 1);
    if (!m)
        return NULL;
    m->in = in_features;
    m->out = out_features;
    int64_t ws[] = {out_features, in_features};
    if (!tg__nn_add_tensor(m, 0, "weight", TG_NN_PARAM, dtype, 2, ws) ||
        (bias && !tg__nn_add_tensor(m, 1, "bias", TG_NN_PARAM, dtype, 1, &out_features))) {
        tg_nn_module_free(m);
        return NULL;
    }
    /* PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)), bias U(+-1/sqrt(fan_in)). */
    tg_nn_init_kaiming_uniform(m->entries[0].tensor, sqrt(5.0), in_features, rng);
    if (bias) {
        double b = 1.0 / sqrt((double)in_features);
        tg_nn_init_uniform(m->entries[1].tensor, -b, b, rng);
    }
    return m;
}

/* ---------------------------------------------------------------- Conv2d */

static tg_tensor *conv_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_conv2d(g, x, m->entries[0].tensor, m->n_entries > 1 ? m->entries[1].tensor : NULL,
                     m->conv);
}

static int64_t or1(int64_t v) { return v ? v : 1; }

static void conv_describe(const tg_nn_module *m, char *buf, size_t size)
{
    const tg_conv2d_args *a = &m->conv;
    int at = snprintf(buf, size, "Conv2d(%lld, %lld, kernel_size=(%lld, %lld), stride=(%lld, %lld)",
                      (long long)m->in, (long long)m->out, (long long)m->kh, (long long)m->kw,
                      (long long)or1(a->stride[0]), (long long)or1(a->stride[1]));
    if (at > 0 && (size_t)at < size && a->same)
        at += snprintf(buf + at, size - (size_t)at, ", padding=same");
    else if (at > 0 && (size_t)at < size && (a->padding[0] || a->padding[1]))
        at += snprintf(buf + at, size - (size_t)at, ", padding=(%lld, %lld)",
                       (long long)a->padding[0], (long long)a->padding[1]);
    if (at > 0 && (size_t)at < size && (or1(a->dilation[0]) != 1 || or1(a->dilation[1]) != 1))
        at += snprintf(buf + at, size - (size_t)at, ", dilation=(%lld, %lld)",
                       (long long)or1(a->dilation[0]), (long long)or1(a->dilation[1]));
    if (at > 0 && (size_t)at < size && or1(a->groups) != 1)
        at += snprintf(buf + at, size - (size_t)at, ", groups=%lld", (long long)a->groups);
    if (at > 0 && (size_t)at < size)
        snprintf(buf + at, size - (size_t)at, "%s)", m->n_entries > 1 ? "" : ", bias=False");
}

static const tg_nn_vt conv_vt = {"Conv2d", conv_forward, conv_describe};

tg_nn_module *tg_nn_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kh, int64_t kw,
                               tg_conv2d_args args, bool bias, tg_dtype dtype, tg_rng *rng)
{
    const char *who = "tg_nn_conv2d_new";
    int64_t groups = or1(args.groups);
    if (!check_positive(who, "in_channels", in_channels) ||
        !check_positive(who, "out_channels", out_channels) ||
        !check_positive(who, "kernel height", kh) || !check_positive(who, "kernel width", kw) ||
        !check_positive(who, "groups", groups) || !check_dtype(who, dtype))
        return NULL;
    if (in_channels % groups || out_channels % groups) {
        tg_set_error(TG_ERR_ARG, "%s: groups %lld must divide in_channels %lld and out_channels %lld",
                     who, (long long)groups, (long long)in_channels, (long long)out_channels);
        return NULL;
    }
    if (!rng) {
        tg_set_error(TG_ERR_NULL, "%s: rng is NULL", who);
        return NULL;
    }
    tg_nn_module *m = tg__nn_alloc(&conv_vt, bias ? 2 : 1);
    if (!m)
        return NULL;
    m->in = in_channels;
    m->out = out_channels;
    m->kh = kh;
    m->kw = kw;
    m->conv = args;
    int64_t ws[] = {out_channels, in_channels / groups, kh, kw};
    if (!tg__nn_add_tensor(m, 0, "weight", TG_NN_PARAM, dtype, 4, ws) ||
        (bias && !tg__nn_add_tensor(m, 1, "bias", TG_NN_PARAM, dtype, 1, &out_channels))) {
        tg_nn_module_free(m);
        return NULL;
    }
    int64_t fan_in = in_channels / groups * kh * kw;
    tg_nn_init_kaiming_uniform(m->entries[0].tensor, sqrt(5.0), fan_in, rng);
    if (bias) {
        double b = 1.0 / sqrt((double)fan_in);
        tg_nn_init_uniform(m->entries[1].tensor, -b, b, rng);
    }
    return m;
}

/* ------------------------------------------------------------------ ReLU */

static tg_tensor *relu_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    (void)m;
    return tg_relu(g, x);
}

static const tg_nn_vt relu_vt = {"ReLU", relu_forward, NULL};

tg_nn_module *tg_nn_relu_new(void) { return tg__nn_alloc(&relu_vt, 0); }

/* --------------------------------------------------------------- Pooling */

static tg_tensor *maxpool_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_maxpool2d(g, x, m->pool);
}

static tg_tensor *avgpool_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_avgpool2d(g, x, m->pool);
}

static void pool_describe(const tg_nn_module *m, char *buf, size_t size)
{
    const tg_pool2d_args *a = &m->pool;
    int64_t sh = a->stride[0] ? a->stride[0] : a->kernel[0];
    int64_t sw = a->stride[1] ? a->stride[1] : a->kernel[1];
    snprintf(buf, size, "%s(kernel_size=(%lld, %lld), stride=(%lld, %lld), padding=(%lld, %lld)%s)",
             m->vt->kind, (long long)a->kernel[0], (long long)a->kernel[1], (long long)sh,
             (long long)sw, (long long)a->padding[0], (long long)a->padding[1],
             a->ceil_mode ? ", ceil_mode=True" : "");
}

static const tg_nn_vt maxpool_vt = {"MaxPool2d", maxpool_forward, pool_describe};
static const tg_nn_vt avgpool_vt = {"AvgPool2d", avgpool_forward, pool_describe};

static tg_nn_module *pool_new(const tg_nn_vt *vt, tg_pool2d_args args, const char *who)
{
    if (args.kernel[0] <= 0 || args.kernel[1] <= 0) {
        tg_set_error(TG_ERR_ARG, "%s: kernel (%lld, %lld) must be positive", who,
                     (long long)args.kernel[0], (long long)args.kernel[1]);
        return NULL;
    }
    tg_nn_module *m = tg__nn_alloc(vt, 0);
    if (m)
        m->pool = args;
    return m;
}

tg_nn_module *tg_nn_maxpool2d_new(tg_pool2d_args args)
{
    return pool_new(&maxpool_vt, args, "tg_nn_maxpool2d_new");
}

tg_nn_module *tg_nn_avgpool2d_new(tg_pool2d_args args)
{
    return pool_new(&avgpool_vt, args, "tg_nn_avgpool2d_new");
}

/* --------------------------------------------------------------- Flatten */

static tg_tensor *flatten_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_flatten(g, x, m->start_dim);
}

static void flatten_describe(const tg_nn_module *m, char *buf, size_t size)
{
    snprintf(buf, size, "Flatten(start_dim=%d, end_dim=-1)", m->start_dim);
}

static const tg_nn_vt flatten_vt = {"Flatten", flatten_forward, flatten_describe};

tg_nn_module *tg_nn_flatten_new(int start_dim)
{
    tg_nn_module *m = tg__nn_alloc(&flatten_vt, 0);
    if (m)
        m->start_dim = start_dim;
    return m;
}

/* --------------------------------------------------------------- Dropout */

static tg_tensor *dropout_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    return tg_dropout(g, x, m->p, m->training, &m->rng);
}

static void dropout_describe(const tg_nn_module *m, char *buf, size_t size)
{
    snprintf(buf, size, "Dropout(p=%g, inplace=False)", m->p);
}

static const tg_nn_vt dropout_vt = {"Dropout", dropout_forward, dropout_describe};

tg_nn_module *tg_nn_dropout_new(double p, uint64_t seed)
{
    if (!(p >= 0.0 && p <= 1.0)) {
        tg_set_error(TG_ERR_ARG, "tg_nn_dropout_new: p = %g is outside [0, 1]", p);
        return NULL;
    }
    tg_nn_module *m = tg__nn_alloc(&dropout_vt, 0);
    if (!m)
        return NULL;
    m->p = p;
    tg_rng_seed(&m->rng, seed, 0x64726f70);
    return m;
}

/* ----------------------------------------------------------- BatchNorm2d */

static tg_tensor *batchnorm_forward(tg_nn_module *m, tg_graph *g, tg_tensor *x)
{
    tg_batchnorm2d_args a = {.training = m->training};
    tg_tensor *y = tg_batchnorm2d(g, x, m->entries[0].tensor, m->entries[1].tensor,
                                  m->entries[2].tensor, m->entries[3].tensor, a);
    if (y && m->training)
        m->num_batches_tracked++;
    return y;
}

static void batchnorm_describe(const tg_nn_module *m, char *buf, size_t size)
{
    snprintf(buf, size,
             "BatchNorm2d(%lld, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
             (long long)m->in);
}

static const tg_nn_vt batchnorm_vt = {"BatchNorm2d", batchnorm_forward, batchnorm_describe};

tg_nn_module *tg_nn_batchnorm2d_new(int64_t channels, tg_dtype dtype)
{
    const char *who = "tg_nn_batchnorm2d_new";
    if (!check_positive(who, "channels", channels) || !check_dtype(who, dtype))
        return NULL;
    tg_nn_module *m = tg__nn_alloc(&batchnorm_vt, 5);
    if (!m)
        return NULL;
    m->in = channels;
    if (!tg__nn_add_tensor(m, 0, "weight", TG_NN_PARAM, dtype, 1, &channels) ||
        !tg__nn_add_tensor(m, 1, "bias", TG_NN_PARAM, dtype, 1, &channels) ||
        !tg__nn_add_tensor(m, 2, "running_mean", TG_NN_BUFFER, dtype, 1, &channels) ||
        !tg__nn_add_tensor(m, 3, "running_var", TG_NN_BUFFER, dtype, 1, &channels)) {
        tg_nn_module_free(m);
        return NULL;
    }
    tg_tensor_fill(m->entries[0].tensor, 1.0);
    tg_tensor_fill(m->entries[3].tensor, 1.0);
    tg_nn_entry *e = &m->entries[4];
    snprintf(e->name, sizeof e->name, "num_batches_tracked");
    e->kind = TG_NN_COUNTER;
    e->counter = &m->num_batches_tracked;
    m->n_entries = 5;
    return m;
}
