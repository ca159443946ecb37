/* Normalisation and regularisation ops: batchnorm2d (batch statistics in
 * training with the in-place running update, running statistics in eval) and
 * dropout (inverted, its mask drawn from the caller's tg_rng). Shape rules,
 * forwards and VJPs live here; the loops are in ops/kernels/norm.c. */
#include "../autograd/error.h"
#include "internal.h"
#include "kernels/norm.h"

#include <math.h>
#include <string.h>

/* ============================================================ batchnorm2d */

/* batchnorm2d, as torch.nn.functional.batch_norm on x [N, C, H, W]:
 *   y = w[c] * (x - mu[c]) * r[c] + b[c],  r = 1 / sqrt(var + eps),
 * with mu, var the batch mean and biased variance over (N, H, W) in training
 * (M = N*H*W values per channel) and the running statistics in eval.
 * VJP (xhat = (x - mu) r, g = dy):
 *   db += sum g,  dw += sum g xhat,
 *   training: dx += w r (g - mean(g) - xhat mean(g xhat))   (mu, var depend on x)
 *   eval:     dx += w r g                                    (fixed statistics)
 * Smooth everywhere (no kinks). Training also updates the running statistics
 * in place, recorded or not: rm = (1-m) rm + m mu, rv = (1-m) rv + m var M/(M-1).
 * The op's inputs are x, then weight if given, then bias if given; the running
 * statistics travel in the attributes (they get no gradient). */

typedef struct bn_attrs {
    double eps;      /* 0: 1e-5 */
    double momentum; /* 0: 0.1 */
    bool training;
    bool has_weight; /* inputs[1] is the weight */
    bool has_bias;   /* inputs[1 + has_weight] is the bias */
    tg_tensor *running_mean; /* [C] or NULL (training only) */
    tg_tensor *running_var;  /* [C] or NULL (training only) */
} bn_attrs;

static double bn_eps(const bn_attrs *a) { return a->eps == 0.0 ? 1e-5 : a->eps; }
static double bn_momentum(const bn_attrs *a) { return a->momentum == 0.0 ? 0.1 : a->momentum; }

static const tg_tensor *bn_weight(const tg_node *n)
{
    return ((const bn_attrs *)n->attrs)->has_weight ? n->inputs[1] : NULL;
}

static const tg_tensor *bn_bias(const tg_node *n)
{
    const bn_attrs *a = n->attrs;
    return a->has_bias ? n->inputs[1 + a->has_weight] : NULL;
}

/* A per-channel vector [C] next to x: its shape, then its dtype. */
static int bn_check_vec(const char *what, const tg_tensor *v, const tg_tensor *x)
{
    int64_t C = tg_tensor_shape(x)[1];
    if (tg_tensor_ndim(v) != 1 || tg_tensor_shape(v)[0] != C)
        return tg_set_error(TG_ERR_SHAPE, "%s %s does not match x %s: expected [%lld]", what,
                            TG_SHP(v), TG_SHP(x), (long long)C);
    if (tg_tensor_dtype(v) != tg_tensor_dtype(x))
        return tg_set_error(TG_ERR_DTYPE, "%s %s %s and x %s %s differ in dtype", what,
                            tg_dtype_name(tg_tensor_dtype(v)), TG_SHP(v),
                            tg_dtype_name(tg_tensor_dtype(x)), TG_SHP(x));
    return TG_OK;
}

static int bn_shape(const tg_node *n, tg_shape *out)
{
    const bn_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int want = 1 + (int)a->has_weight + (int)a->has_bias;
    if (n->n_inputs != want)
        return tg_set_error(TG_ERR_ARG, "takes %d inputs (x%s%s), got %d", want,
                            a->has_weight ? ", weight" : "", a->has_bias ? ", bias" : "",
                            n->n_inputs);
    if (tg_tensor_ndim(x) != 4)
        return tg_set_error(TG_ERR_SHAPE, "x must have 4 dims [N, C, H, W], got x %s", TG_SHP(x));
    int rc;
    const tg_tensor *w = bn_weight(n), *b = bn_bias(n);
    if (w && (rc = bn_check_vec("weight", w, x)) != TG_OK)
        return rc;
    if (b && (rc = bn_check_vec("bias", b, x)) != TG_OK)
        return rc;
    if (a->running_mean && (rc = bn_check_vec("running_mean", a->running_mean, x)) != TG_OK)
        return rc;
    if (a->running_var && (rc = bn_check_vec("running_var", a->running_var, x)) != TG_OK)
        return rc;
    double eps = bn_eps(a), m = bn_momentum(a);
    if (!(eps > 0.0) || isinf(eps))
        return tg_set_error(TG_ERR_ARG, "eps must be positive and finite, got %g (x %s)", eps,
                            TG_SHP(x));
    if (!(m >= 0.0 && m <= 1.0))
        return tg_set_error(TG_ERR_ARG, "momentum must be in [0, 1], got %g (x %s)", m,
                            TG_SHP(x));
    const int64_t *s = tg_tensor_shape(x);
    if (a->training && s[0] * s[2] * s[3] == 1)
        return tg_set_error(TG_ERR_SHAPE,
                            "expected more than 1 value per channel when training, got x %s "
                            "(N*H*W = 1)",
                            TG_SHP(x));
    if (!a->training && (!a->running_mean || !a->running_var))
        return tg_set_error(TG_ERR_NULL,
                            "running_mean and running_var are required in eval mode (x %s, "
                            "running_mean %s, running_var %s)",
                            TG_SHP(x), a->running_mean ? TG_SHP(a->running_mean) : "NULL",
                            a->running_var ? TG_SHP(a->running_var) : "NULL");
    out->ndim = 4;
    memcpy(out->dims, s, 4 * sizeof *s);
    return TG_OK;
}

/* rs = (1 - m) rs + m * stat[c] * f, in the running tensor's dtype, written in
 * PyTorch's order (m * stat + (1 - m) * rs) and computed in double. */
static void bn_update(tg_tensor *rs, const double *stat, double f, double m, int64_t C)
{
    if (!rs)
        return;
    if (tg_tensor_dtype(rs) == TG_F64) {
        double *r = tg_tensor_data(rs);
        for (int64_t c = 0; c < C; c++)
            r[c] = m * stat[c] * f + (1.0 - m) * r[c];
    } else {
        float *r = tg_tensor_data(rs);
        for (int64_t c = 0; c < C; c++)
            r[c] = (float)(m * stat[c] * f + (1.0 - m) * (double)r[c]);
    }
}

static void bn_read(double *dst, const tg_tensor *rs, int64_t C)
{
    for (int64_t c = 0; c < C; c++)
        dst[c] = tg_tensor_dtype(rs) == TG_F64 ? ((const double *)tg_tensor_data(rs))[c]
                                               : (double)((const float *)tg_tensor_data(rs))[c];
}

/* Saved for backward: [mean (C) | invstd (C) | var (C)] in double. */
static int bn_forward(tg_node *n)
{
    const bn_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0], *w = bn_weight(n), *b = bn_bias(n);
    const int64_t *s = tg_tensor_shape(x);
    int64_t N = s[0], C = s[1], HW = s[2] * s[3];
    double eps = bn_eps(a);
    double *mean = tg_node_save(n, (size_t)(3 * C + 1) * sizeof(double));
    if (!mean)
        return tg_last_status();
    double *invstd = mean + C, *var = mean + 2 * C;
    bool f32 = tg_tensor_dtype(x) == TG_F32;
    if (a->training) {
        if (f32)
            tg__bn2d_stats_f32(mean, var, tg_tensor_data(x), N, C, HW);
        else
            tg__bn2d_stats_f64(mean, var, tg_tensor_data(x), N, C, HW);
        int64_t M = N * HW;
        if (M > 0) { /* an empty batch leaves the running statistics alone, as PyTorch */
            double m = bn_momentum(a);
            bn_update(a->running_mean, mean, 1.0, m, C);
            bn_update(a->running_var, var, (double)M / (double)(M - 1), m, C);
        }
    } else {
        bn_read(mean, a->running_mean, C);
        bn_read(var, a->running_var, C);
    }
    for (int64_t c = 0; c < C; c++)
        invstd[c] = 1.0 / sqrt(var[c] + eps);
    if (f32)
        tg__bn2d_forward_f32(tg_tensor_data(n->out), tg_tensor_data(x), mean, invstd,
                             w ? tg_tensor_data(w) : NULL, b ? tg_tensor_data(b) : NULL, N, C,
                             HW);
    else
        tg__bn2d_forward_f64(tg_tensor_data(n->out), tg_tensor_data(x), mean, invstd,
                             w ? tg_tensor_data(w) : NULL, b ? tg_tensor_data(b) : NULL, N, C,
                             HW);
    return TG_OK;
}

static void bn_add_into(tg_tensor *dst, const double *src, int64_t C)
{
    if (tg_tensor_dtype(dst) == TG_F64) {
        double *d = tg_tensor_data(dst);
        for (int64_t c = 0; c < C; c++)
            d[c] += src[c];
    } else {
        float *d = tg_tensor_data(dst);
        for (int64_t c = 0; c < C; c++)
            d[c] = (float)((double)d[c] + src[c]);
    }
}

static int bn_backward(tg_node *n, const tg_tensor *dout)
{
    const bn_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0], *w = bn_weight(n);
    const int64_t *s = tg_tensor_shape(x);
    int64_t N = s[0], C = s[1], HW = s[2] * s[3];
    const double *mean = n->saved, *invstd = mean + C;
    tg_tensor *dx = tg_node_grad(n, 0);
    tg_tensor *dw = a->has_weight ? tg_node_grad(n, 1) : NULL;
    tg_tensor *db = a->has_bias ? tg_node_grad(n, 1 + a->has_weight) : NULL;
    bool f32 = tg_tensor_dtype(x) == TG_F32;
    double *sum_dy = NULL, *sum_dy_xhat = NULL;
    if (dw || db || (dx && a->training)) {
        sum_dy = tg_graph_alloc(n->graph, (size_t)(2 * C + 1) * sizeof(double));
        if (!sum_dy)
            return tg_last_status();
        sum_dy_xhat = sum_dy + C;
        if (f32)
            tg__bn2d_sums_f32(sum_dy, sum_dy_xhat, tg_tensor_data(dout), tg_tensor_data(x), mean,
                              invstd, N, C, HW);
        else
            tg__bn2d_sums_f64(sum_dy, sum_dy_xhat, tg_tensor_data(dout), tg_tensor_data(x), mean,
                              invstd, N, C, HW);
    }
    if (dw)
        bn_add_into(dw, sum_dy_xhat, C);
    if (db)
        bn_add_into(db, sum_dy, C);
    if (dx) {
        if (f32)
            tg__bn2d_backward_x_f32(tg_tensor_data(dx), tg_tensor_data(dout), tg_tensor_data(x),
                                    mean, invstd, w ? tg_tensor_data(w) : NULL, sum_dy,
                                    sum_dy_xhat, a->training, N, C, HW);
        else
            tg__bn2d_backward_x_f64(tg_tensor_data(dx), tg_tensor_data(dout), tg_tensor_data(x),
                                    mean, invstd, w ? tg_tensor_data(w) : NULL, sum_dy,
                                    sum_dy_xhat, a->training, N, C, HW);
    }
    return TG_OK;
}

static void bn_print_attrs(const tg_node *n, char *buf, size_t size)
{
    const bn_attrs *a = n->attrs;
    snprintf(buf, size, "eps=%g momentum=%g training=%d weight=%d bias=%d running=%d", bn_eps(a),
             bn_momentum(a), (int)a->training, (int)a->has_weight, (int)a->has_bias,
             a->running_mean || a->running_var);
}

const tg_op tg_op_batchnorm2d = {.name = "batchnorm2d",
                                 .n_inputs = TG_VARIADIC,
                                 .attr_size = sizeof(bn_attrs),
                                 .shape = bn_shape,
                                 .forward = bn_forward,
                                 .backward = bn_backward,
                                 .print_attrs = bn_print_attrs};

tg_tensor *tg_batchnorm2d(tg_graph *g, tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                          tg_tensor *running_mean, tg_tensor *running_var, tg_batchnorm2d_args args)
{
    bn_attrs a = {.eps = args.eps,
                  .momentum = args.momentum,
                  .training = args.training,
                  .has_weight = weight != NULL,
                  .has_bias = bias != NULL,
                  .running_mean = running_mean,
                  .running_var = running_var};
    tg_tensor *in[3] = {x, NULL, NULL};
    int k = 1;
    if (weight)
        in[k++] = weight;
    if (bias)
        in[k++] = bias;
    return tg_apply(g, &tg_op_batchnorm2d, in, k, &a);
}

/* ================================================================ dropout */

/* dropout (inverted): training with 0 < p < 1 draws one tg_rng_u32 per element
 * in flat order and keeps the element when the draw is >= p * 2^32 (keep
 * probability 1 - p to within 2^-32): y = keep ? x / (1 - p) : 0, and
 * VJP dx += keep ? dy / (1 - p) : 0, from the byte mask saved by forward.
 * p == 1 gives zeros (gradient 0); not training or p == 0 gives a copy of x
 * (VJP dx += dy). Neither of those draws from the rng. No kinks. The output is
 * always a new tensor and node, where PyTorch returns the input itself for the
 * identity case; the values are the same. Dropped elements are exactly 0 even
 * when x is inf or NaN (PyTorch multiplies by the mask and gives NaN). */

typedef struct dropout_attrs {
    double p;
    bool training;
    tg_rng *rng; /* read only in forward */
} dropout_attrs;

static bool dropout_identity(const dropout_attrs *a) { return !a->training || a->p == 0.0; }

static int dropout_shape(const tg_node *n, tg_shape *out)
{
    const dropout_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    if (!(a->p >= 0.0 && a->p <= 1.0))
        return tg_set_error(TG_ERR_ARG, "p must be in [0, 1], got %g (x %s)", a->p, TG_SHP(x));
    if (a->training && !a->rng)
        return tg_set_error(TG_ERR_NULL, "rng is NULL in training mode (x %s, p %g)", TG_SHP(x),
                            a->p);
    out->ndim = tg_tensor_ndim(x);
    if (out->ndim > 0)
        memcpy(out->dims, tg_tensor_shape(x), (size_t)out->ndim * sizeof out->dims[0]);
    return TG_OK;
}

static int dropout_forward(tg_node *n)
{
    const dropout_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int64_t numel = tg_tensor_numel(x);
    size_t bytes = (size_t)numel * tg_dtype_size(tg_tensor_dtype(x));
    if (dropout_identity(a)) {
        if (bytes)
            memcpy(tg_tensor_data(n->out), tg_tensor_data(x), bytes);
        return TG_OK;
    }
    if (a->p == 1.0) {
        if (bytes)
            memset(tg_tensor_data(n->out), 0, bytes);
        return TG_OK;
    }
    uint8_t *mask = tg_node_save(n, (size_t)numel + 1);
    if (!mask)
        return tg_last_status();
    uint64_t thr = (uint64_t)(a->p * 4294967296.0); /* exact scaling; floor */
    tg_rng *rng = a->rng;
    for (int64_t i = 0; i < numel; i++)
        mask[i] = (uint64_t)tg_rng_u32(rng) >= thr;
    if (tg_tensor_dtype(x) == TG_F32)
        tg__dropout_forward_f32(tg_tensor_data(n->out), tg_tensor_data(x), mask,
                                (float)(1.0 - a->p), numel);
    else
        tg__dropout_forward_f64(tg_tensor_data(n->out), tg_tensor_data(x), mask, 1.0 - a->p,
                                numel);
    return TG_OK;
}

static int dropout_backward(tg_node *n, const tg_tensor *dout)
{
    const dropout_attrs *a = n->attrs;
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx || (!dropout_identity(a) && a->p == 1.0))
        return TG_OK; /* p == 1: the gradient is 0 */
    int64_t numel = tg_tensor_numel(dx);
    bool f32 = tg_tensor_dtype(dx) == TG_F32;
    if (dropout_identity(a)) {
        if (f32) {
            float *d = tg_tensor_data(dx);
            const float *g = tg_tensor_data(dout);
            for (int64_t i = 0; i < numel; i++)
                d[i] += g[i];
        } else {
            double *d = tg_tensor_data(dx);
            const double *g = tg_tensor_data(dout);
            for (int64_t i = 0; i < numel; i++)
                d[i] += g[i];
        }
        return TG_OK;
    }
    if (f32)
        tg__dropout_backward_f32(tg_tensor_data(dx), tg_tensor_data(dout), n->saved,
                                 (float)(1.0 - a->p), numel);
    else
        tg__dropout_backward_f64(tg_tensor_data(dx), tg_tensor_data(dout), n->saved, 1.0 - a->p,
                                 numel);
    return TG_OK;
}

static void dropout_print_attrs(const tg_node *n, char *buf, size_t size)
{
    const dropout_attrs *a = n->attrs;
    snprintf(buf, size, "p=%g training=%d", a->p, (int)a->training);
}

const tg_op tg_op_dropout = {.name = "dropout",
                             .n_inputs = 1,
                             .attr_size = sizeof(dropout_attrs),
                             .shape = dropout_shape,
                             .forward = dropout_forward,
                             .backward = dropout_backward,
                             .print_attrs = dropout_print_attrs};

tg_tensor *tg_dropout(tg_graph *g, tg_tensor *x, double p, bool training, tg_rng *rng)
{
    dropout_attrs a = {.p = p, .training = training, .rng = rng};
    return tg_apply(g, &tg_op_dropout, &x, 1, &a);
}
