/* Loss family: cross_entropy (hard int64 labels, fused log-softmax), its soft-
 * target form cross_entropy_soft, nll_loss on log-probabilities and mse_loss,
 * each with reduction mean / sum / none. Shape rules, forwards and VJPs live
 * here; the softmax loops are in ops/kernels/softmax.c. softmax and
 * log_softmax themselves are in softmax.c. */
#include "../autograd/error.h"
#include "internal.h"
#include "kernels/softmax.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Hard-label ops keep the caller's label pointer only until forward returns:
 * the shape rule validates every label and forward copies them into node
 * memory (tg_node_save), so backward never reads the caller's array. */
typedef struct label_attrs {
    const int64_t *labels;
    int reduction; /* tg_reduction, kept as int so any value can be checked */
} label_attrs;

typedef struct red_attrs {
    int reduction;
} red_attrs;

/* ---------------------------------------------------------------- shared */

static const char *red_name(int r)
{
    switch (r) {
    case TG_REDUCTION_MEAN: return "mean";
    case TG_REDUCTION_SUM: return "sum";
    case TG_REDUCTION_NONE: return "none";
    default: return "invalid";
    }
}

static bool red_ok(int r)
{
    return r == TG_REDUCTION_MEAN || r == TG_REDUCTION_SUM || r == TG_REDUCTION_NONE;
}

/* `what` describes the inputs for the message ("logits [2, 3]"). */
static int red_error(int r, const char *what)
{
    return tg_set_error(TG_ERR_ARG,
                        "reduction %d is not TG_REDUCTION_MEAN (0), TG_REDUCTION_SUM (1) or "
                        "TG_REDUCTION_NONE (2) (%s)",
                        r, what);
}

/* Output shape: [] for mean and sum, `none_ndim` / `none_dims` for none. */
static void red_shape(tg_shape *out, int r, int none_ndim, const int64_t *none_dims)
{
    out->ndim = r == TG_REDUCTION_NONE ? none_ndim : 0;
    for (int d = 0; d < out->ndim; d++)
        out->dims[d] = none_dims[d];
}

/* Writes the reduced value of `total` over `count` losses (mean of nothing is
 * NaN, as PyTorch); reduction none has already written every element. */
static void red_write(tg_tensor *out, double total, int64_t count, int r)
{
    if (r == TG_REDUCTION_NONE)
        return;
    double v = r == TG_REDUCTION_SUM ? total : count > 0 ? total / (double)count : (double)NAN;
    tg_tensor_set(out, 0, v);
}

/* Backward: the cotangent of loss i is g[i * g_stride] * scale. */
static void red_grad(int r, int64_t count, int64_t *g_stride, double *scale)
{
    *g_stride = r == TG_REDUCTION_NONE ? 1 : 0;
    *scale = r == TG_REDUCTION_MEAN ? (count > 0 ? 1.0 / (double)count : 0.0) : 1.0;
}

static void red_print(int r, char *buf, size_t size) { snprintf(buf, size, "reduction=%s", red_name(r)); }
static void label_print(const tg_node *n, char *buf, size_t size)
{
    red_print(((const label_attrs *)n->attrs)->reduction, buf, size);
}
static void red_attrs_print(const tg_node *n, char *buf, size_t size)
{
    red_print(((const red_attrs *)n->attrs)->reduction, buf, size);
}

/* The rule shared by cross_entropy and nll_loss: x [N, C] (called `what`), a
 * valid reduction, N labels each in [0, C). Output [] or [N]. */
static int label_shape(const tg_node *n, tg_shape *out, const char *what)
{
    const tg_tensor *x = n->inputs[0];
    const label_attrs *a = n->attrs;
    char desc[TG_SHAPE_STR_MAX + 32];
    snprintf(desc, sizeof desc, "%s %s", what, TG_SHP(x));
    if (tg_tensor_ndim(x) != 2)
        return tg_set_error(TG_ERR_SHAPE, "%s must be 2-D [N, C], got %s", what, TG_SHP(x));
    if (!red_ok(a->reduction))
        return red_error(a->reduction, desc);
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    if (!a->labels)
        return tg_set_error(TG_ERR_NULL, "labels are NULL (%s)", desc);
    for (int64_t i = 0; i < N; i++) {
        int64_t l = a->labels[i];
        if (l < 0 || l >= C)
            return tg_set_error(TG_ERR_ARG,
                                "label %lld at index %lld is out of range [0, %lld) for %s",
                                (long long)l, (long long)i, (long long)C, desc);
    }
    red_shape(out, a->reduction, 1, &N);
    return TG_OK;
}

/* --------------------------------------------------------- cross_entropy */

/* cross_entropy: logits x [N, C], labels y [N]; l_i = logsumexp(x_i) - x[i, y_i]
 * computed as (m_i - x[i, y_i]) + log sum_c e^(x[i, c] - m_i), m_i = max_c x[i, c]
 * (finite for any finite logits). Reduced by mean (/N), sum, or none ([N]).
 * VJP: dl_i/dx[i, c] = softmax(x_i)_c - [c == y_i], so dx[i, c] += g_i (p - onehot)
 * with g_i = dout (/N for mean) or dout_i. No kinks. Saved: the labels, and per
 * row m_i and 1 / sum_c e^(x - m_i), so p matches tg_softmax bit for bit. */
static int xent_shape(const tg_node *n, tg_shape *out) { return label_shape(n, out, "logits"); }

static int xent_forward(tg_node *n)
{
    const label_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    double *mx = NULL, *inv = NULL;
    if (tg_tensor_requires_grad(n->out)) {
        int64_t *lab = tg_node_save(n, (size_t)N * (sizeof(int64_t) + 2 * sizeof(double)));
        if (!lab)
            return tg_last_status();
        if (N > 0)
            memcpy(lab, a->labels, (size_t)N * sizeof *lab);
        mx = (double *)(lab + N);
        inv = mx + N;
    }
    bool none = a->reduction == TG_REDUCTION_NONE;
    double total;
    if (tg_tensor_dtype(x) == TG_F32)
        total = tg__xent_forward_f32(none ? tg_tensor_data(n->out) : NULL, mx, inv,
                                     tg_tensor_data(x), a->labels, N, C);
    else
        total = tg__xent_forward_f64(none ? tg_tensor_data(n->out) : NULL, mx, inv,
                                     tg_tensor_data(x), a->labels, N, C);
    red_write(n->out, total, N, a->reduction);
    return TG_OK;
}

static int xent_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    const label_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    const int64_t *lab = n->saved;
    const double *mx = (const double *)(lab + N), *inv = mx + N;
    int64_t gs;
    double scale;
    red_grad(a->reduction, N, &gs, &scale);
    if (tg_tensor_dtype(x) == TG_F32)
        tg__xent_backward_f32(tg_tensor_data(dx), tg_tensor_data(x), mx, inv, lab,
                              tg_tensor_data(dout), gs, (float)scale, N, C);
    else
        tg__xent_backward_f64(tg_tensor_data(dx), tg_tensor_data(x), mx, inv, lab,
                              tg_tensor_data(dout), gs, scale, N, C);
    return TG_OK;
}

const tg_op tg_op_cross_entropy = {.name = "cross_entropy",
                                   .n_inputs = 1,
                                   .attr_size = sizeof(label_attrs),
                                   .shape = xent_shape,
                                   .forward = xent_forward,
                                   .backward = xent_backward,
                                   .print_attrs = label_print};

tg_tensor *tg_cross_entropy_ex(tg_graph *g, tg_tensor *logits, const int64_t *labels,
                               tg_reduction red)
{
    label_attrs a = {.labels = labels, .reduction = (int)red};
    return tg_apply(g, &tg_op_cross_entropy, &logits, 1, &a);
}

tg_tensor *tg_cross_entropy(tg_graph *g, tg_tensor *logits, const int64_t *labels)
{
    return tg_cross_entropy_ex(g, logits, labels, TG_REDUCTION_MEAN);
}

/* ---------------------------------------------------- cross_entropy_soft */

/* cross_entropy_soft: logits x [N, C], target t [N, C] (probabilities, not
 * required to sum to 1); l_i = -sum_c t[i, c] log_softmax(x_i)_c
 *                           = sum_c t[i, c] ((m_i - x[i, c]) + log sum_k e^(x[i, k] - m_i)).
 * VJP: dl_i/dx[i, c] = softmax(x_i)_c * T_i - t[i, c] with T_i = sum_k t[i, k]
 * (just p - t when t sums to 1); dl_i/dt[i, c] = -log_softmax(x_i)_c. The target
 * may require grad. No kinks; t = 0 against a -inf log-probability gives NaN, as
 * PyTorch (0 * inf). Saved per row: m_i, 1 / sum e^(x - m_i), log sum e^(x - m_i). */
static int xent_soft_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *x = n->inputs[0], *t = n->inputs[1];
    const red_attrs *a = n->attrs;
    char desc[2 * TG_SHAPE_STR_MAX + 32];
    snprintf(desc, sizeof desc, "logits %s, target %s", TG_SHP(x), TG_SHP(t));
    if (tg_tensor_ndim(x) != 2)
        return tg_set_error(TG_ERR_SHAPE, "logits must be 2-D [N, C], got %s", desc);
    if (tg_tensor_ndim(t) != 2 || tg_tensor_shape(t)[0] != tg_tensor_shape(x)[0] ||
        tg_tensor_shape(t)[1] != tg_tensor_shape(x)[1])
        return tg_set_error(TG_ERR_SHAPE, "target must have the logits' shape: %s", desc);
    if (!red_ok(a->reduction))
        return red_error(a->reduction, desc);
    red_shape(out, a->reduction, 1, tg_tensor_shape(x));
    return TG_OK;
}

static int xent_soft_forward(tg_node *n)
{
    const red_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0], *t = n->inputs[1];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    double *mx = NULL, *inv = NULL, *ls = NULL;
    if (tg_tensor_requires_grad(n->out)) {
        mx = tg_node_save(n, (size_t)N * 3 * sizeof(double));
        if (!mx)
            return tg_last_status();
        inv = mx + N;
        ls = inv + N;
    }
    bool none = a->reduction == TG_REDUCTION_NONE;
    double total;
    if (tg_tensor_dtype(x) == TG_F32)
        total = tg__xent_soft_forward_f32(none ? tg_tensor_data(n->out) : NULL, mx, inv, ls,
                                          tg_tensor_data(x), tg_tensor_data(t), N, C);
    else
        total = tg__xent_soft_forward_f64(none ? tg_tensor_data(n->out) : NULL, mx, inv, ls,
                                          tg_tensor_data(x), tg_tensor_data(t), N, C);
    red_write(n->out, total, N, a->reduction);
    return TG_OK;
}

static int xent_soft_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0), *dt = tg_node_grad(n, 1);
    if (!dx && !dt)
        return TG_OK;
    const red_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0], *t = n->inputs[1];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    const double *mx = n->saved, *inv = mx + N, *ls = inv + N;
    int64_t gs;
    double scale;
    red_grad(a->reduction, N, &gs, &scale);
    if (tg_tensor_dtype(x) == TG_F32)
        tg__xent_soft_backward_f32(dx ? tg_tensor_data(dx) : NULL, dt ? tg_tensor_data(dt) : NULL,
                                   tg_tensor_data(x), tg_tensor_data(t), mx, inv, ls,
                                   tg_tensor_data(dout), gs, (float)scale, N, C);
    else
        tg__xent_soft_backward_f64(dx ? tg_tensor_data(dx) : NULL, dt ? tg_tensor_data(dt) : NULL,
                                   tg_tensor_data(x), tg_tensor_data(t), mx, inv, ls,
                                   tg_tensor_data(dout), gs, scale, N, C);
    return TG_OK;
}

const tg_op tg_op_cross_entropy_soft = {.name = "cross_entropy_soft",
                                        .n_inputs = 2,
                                        .attr_size = sizeof(red_attrs),
                                        .shape = xent_soft_shape,
                                        .forward = xent_soft_forward,
                                        .backward = xent_soft_backward,
                                        .print_attrs = red_attrs_print};

tg_tensor *tg_cross_entropy_soft(tg_graph *g, tg_tensor *logits, tg_tensor *target,
                                 tg_reduction red)
{
    red_attrs a = {.reduction = (int)red};
    tg_tensor *in[2] = {logits, target};
    return tg_apply(g, &tg_op_cross_entropy_soft, in, 2, &a);
}

/* -------------------------------------------------------------- nll_loss */

/* nll_loss: log-probabilities x [N, C], labels y [N]; l_i = -x[i, y_i], reduced.
 * VJP: dx[i, y_i] -= g_i (every other element gets nothing). Linear, no kinks.
 * Saved: the labels. */
#define NLL_LOOPS(SUF, T)                                                                      \
    static double nll_forward_##SUF(T *loss, const T *x, const int64_t *lab, int64_t N,        \
                                    int64_t C)                                                 \
    {                                                                                          \
        double total = 0.0;                                                                    \
        for (int64_t i = 0; i < N; i++) {                                                      \
            T v = -x[i * C + lab[i]];                                                          \
            if (loss)                                                                          \
                loss[i] = v;                                                                   \
            total += (double)v;                                                                \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void nll_backward_##SUF(T *dx, const int64_t *lab, const T *g, int64_t gs, T scale, \
                                   int64_t N, int64_t C)                                       \
    {                                                                                          \
        for (int64_t i = 0; i < N; i++)                                                        \
            dx[i * C + lab[i]] -= g[i * gs] * scale;                                           \
    }

NLL_LOOPS(f32, float)
NLL_LOOPS(f64, double)

static int nll_shape(const tg_node *n, tg_shape *out) { return label_shape(n, out, "logp"); }

static int nll_forward(tg_node *n)
{
    const label_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    if (tg_tensor_requires_grad(n->out)) {
        int64_t *lab = tg_node_save(n, (size_t)N * sizeof(int64_t));
        if (!lab)
            return tg_last_status();
        if (N > 0)
            memcpy(lab, a->labels, (size_t)N * sizeof *lab);
    }
    bool none = a->reduction == TG_REDUCTION_NONE;
    double total;
    if (tg_tensor_dtype(x) == TG_F32)
        total = nll_forward_f32(none ? tg_tensor_data(n->out) : NULL, tg_tensor_data(x),
                                a->labels, N, C);
    else
        total = nll_forward_f64(none ? tg_tensor_data(n->out) : NULL, tg_tensor_data(x),
                                a->labels, N, C);
    red_write(n->out, total, N, a->reduction);
    return TG_OK;
}

static int nll_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    const label_attrs *a = n->attrs;
    const tg_tensor *x = n->inputs[0];
    const int64_t N = tg_tensor_shape(x)[0], C = tg_tensor_shape(x)[1];
    int64_t gs;
    double scale;
    red_grad(a->reduction, N, &gs, &scale);
    if (tg_tensor_dtype(x) == TG_F32)
        nll_backward_f32(tg_tensor_data(dx), n->saved, tg_tensor_data(dout), gs, (float)scale, N,
                         C);
    else
        nll_backward_f64(tg_tensor_data(dx), n->saved, tg_tensor_data(dout), gs, scale, N, C);
    return TG_OK;
}

const tg_op tg_op_nll_loss = {.name = "nll_loss",
                              .n_inputs = 1,
                              .attr_size = sizeof(label_attrs),
                              .shape = nll_shape,
                              .forward = nll_forward,
                              .backward = nll_backward,
                              .print_attrs = label_print};

tg_tensor *tg_nll_loss(tg_graph *g, tg_tensor *logp, const int64_t *labels, tg_reduction red)
{
    label_attrs a = {.labels = labels, .reduction = (int)red};
    return tg_apply(g, &tg_op_nll_loss, &logp, 1, &a);
}

/* -------------------------------------------------------------- mse_loss */

/* mse_loss: a, b of equal shape (any rank, no broadcasting); l_k = (a_k - b_k)^2,
 * reduced by mean over all elements (as PyTorch), sum, or none (a's shape).
 * VJP: da_k += 2 (a_k - b_k) g_k, db_k -= 2 (a_k - b_k) g_k. No kinks. */
#define MSE_LOOPS(SUF, T)                                                                      \
    static double mse_forward_##SUF(T *loss, const T *a, const T *b, int64_t n)                \
    {                                                                                          \
        double total = 0.0;                                                                    \
        for (int64_t k = 0; k < n; k++) {                                                      \
            T d = a[k] - b[k];                                                                 \
            if (loss)                                                                          \
                loss[k] = d * d;                                                               \
            total += (double)d * (double)d;                                                    \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void mse_backward_##SUF(T *da, T *db, const T *a, const T *b, const T *g,           \
                                   int64_t gs, T scale2, int64_t n)                            \
    {                                                                                          \
        for (int64_t k = 0; k < n; k++) {                                                      \
            T v = g[k * gs] * scale2 * (a[k] - b[k]);                                          \
            if (da)                                                                            \
                da[k] += v;                                                                    \
            if (db)                                                                            \
                db[k] -= v;                                                                    \
        }                                                                                      \
    }

MSE_LOOPS(f32, float)
MSE_LOOPS(f64, double)

static int mse_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    const red_attrs *at = n->attrs;
    char desc[2 * TG_SHAPE_STR_MAX + 16];
    snprintf(desc, sizeof desc, "a %s, b %s", TG_SHP(a), TG_SHP(b));
    int nd = tg_tensor_ndim(a);
    bool same = nd == tg_tensor_ndim(b);
    for (int d = 0; same && d < nd; d++)
        same = tg_tensor_shape(a)[d] == tg_tensor_shape(b)[d];
    if (!same)
        return tg_set_error(TG_ERR_SHAPE, "shapes differ: %s", desc);
    if (!red_ok(at->reduction))
        return red_error(at->reduction, desc);
    red_shape(out, at->reduction, nd, tg_tensor_shape(a));
    return TG_OK;
}

static int mse_forward(tg_node *n)
{
    const red_attrs *at = n->attrs;
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    int64_t cnt = tg_tensor_numel(a);
    bool none = at->reduction == TG_REDUCTION_NONE;
    double total;
    if (tg_tensor_dtype(a) == TG_F32)
        total = mse_forward_f32(none ? tg_tensor_data(n->out) : NULL, tg_tensor_data(a),
                                tg_tensor_data(b), cnt);
    else
        total = mse_forward_f64(none ? tg_tensor_data(n->out) : NULL, tg_tensor_data(a),
                                tg_tensor_data(b), cnt);
    red_write(n->out, total, cnt, at->reduction);
    return TG_OK;
}

static int mse_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *da = tg_node_grad(n, 0), *db = tg_node_grad(n, 1);
    if (!da && !db)
        return TG_OK;
    const red_attrs *at = n->attrs;
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    int64_t cnt = tg_tensor_numel(a), gs;
    double scale;
    red_grad(at->reduction, cnt, &gs, &scale);
    if (tg_tensor_dtype(a) == TG_F32)
        mse_backward_f32(da ? tg_tensor_data(da) : NULL, db ? tg_tensor_data(db) : NULL,
                         tg_tensor_data(a), tg_tensor_data(b), tg_tensor_data(dout), gs,
                         (float)(2.0 * scale), cnt);
    else
        mse_backward_f64(da ? tg_tensor_data(da) : NULL, db ? tg_tensor_data(db) : NULL,
                         tg_tensor_data(a), tg_tensor_data(b), tg_tensor_data(dout), gs,
                         2.0 * scale, cnt);
    return TG_OK;
}

const tg_op tg_op_mse_loss = {.name = "mse_loss",
                              .n_inputs = 2,
                              .attr_size = sizeof(red_attrs),
                              .shape = mse_shape,
                              .forward = mse_forward,
                              .backward = mse_backward,
                              .print_attrs = red_attrs_print};

tg_tensor *tg_mse_loss(tg_graph *g, tg_tensor *a, tg_tensor *b, tg_reduction red)
{
    red_attrs at = {.reduction = (int)red};
    tg_tensor *in[2] = {a, b};
    return tg_apply(g, &tg_op_mse_loss, in, 2, &at);
}
