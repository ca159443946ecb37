/* Pooling ops: tg_maxpool2d and tg_avgpool2d (PyTorch's max_pool2d and
 * avg_pool2d). The shared argument check and output-size rule come first, then
 * each op's shape rule, forward and VJP. The loops are in kernels/pool.c; the
 * nn modules that wrap these ops live in nn/pool.c. */
#include "internal.h"
#include "kernels/pool.h"

#include <inttypes.h>
#include <stdio.h>

/* ------------------------------------------------- arguments and geometry */

/* "[a, b]" for a pair of attributes in messages. */
typedef struct pair_str {
    char s[48];
} pair_str;

static pair_str pair(const int64_t v[2])
{
    pair_str r;
    snprintf(r.s, sizeof r.s, "[%" PRId64 ", %" PRId64 "]", v[0], v[1]);
    return r;
}
#define PAIR(v) (pair(v).s)

/* floor(a / b) for b > 0 (C division truncates toward zero). */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* PyTorch's pooling_output_shape: floor or ceil of (H + 2P - D(K-1) - 1) / S,
 * plus 1; in ceil mode the last window must start inside the input or the left
 * padding ((out - 1) * S < H + P), else out -= 1. `eff` = D(K-1) + 1 and
 * 2P <= eff are checked by the caller, so nothing here overflows (the ceil is
 * taken from the remainder instead of adding S - 1, and the start test divides
 * instead of multiplying). */
static int64_t pool_out_size(int64_t H, int64_t eff, int64_t S, int64_t P, bool ceil_mode)
{
    int64_t num = H - (eff - 2 * P);
    int64_t q = floor_div(num, S);
    int64_t out = q + 1;
    if (ceil_mode && num - q * S != 0) {
        out++;
        /* (out - 1) * S >= H + P, i.e. out - 1 >= ceil((H + P) / S). */
        if (H + P >= 1 && out - 1 >= (H + P - 1) / S + 1)
            out--;
    }
    return out;
}

/* Validates the input and the attributes and fills the kernel geometry, the
 * number of planes (N * C) and the output shape. Errors name the input shape
 * and the offending attributes; tg_apply adds "tg_<op>: ". */
static int pool_geometry(const tg_node *n, bool is_max, tg__pool2d_geom *geo, int64_t *planes,
                         tg_shape *out)
{
    const tg_tensor *x = n->inputs[0];
    const tg_pool2d_args *a = n->attrs;
    const int nd = tg_tensor_ndim(x);
    const int64_t *xs = tg_tensor_shape(x);
    if (nd != 3 && nd != 4)
        return tg_set_error(TG_ERR_SHAPE,
                            "expected a 3-D [C, H, W] or 4-D [N, C, H, W] input, got %s (%d dims)",
                            TG_SHP(x), nd);
    for (int d = nd - 3; d < nd; d++)
        if (xs[d] == 0)
            return tg_set_error(TG_ERR_SHAPE,
                                "input %s has an empty C, H or W dimension (only the batch may "
                                "be 0)",
                                TG_SHP(x));
    if (a->kernel[0] <= 0 || a->kernel[1] <= 0)
        return tg_set_error(TG_ERR_ARG,
                            "kernel %s must be positive in both dims (kernel is required), "
                            "input %s",
                            PAIR(a->kernel), TG_SHP(x));
    if (a->stride[0] < 0 || a->stride[1] < 0)
        return tg_set_error(TG_ERR_ARG, "stride %s must be positive (0 means the kernel), input %s",
                            PAIR(a->stride), TG_SHP(x));
    if (a->padding[0] < 0 || a->padding[1] < 0)
        return tg_set_error(TG_ERR_ARG, "padding %s must be non-negative, input %s",
                            PAIR(a->padding), TG_SHP(x));
    if (a->dilation[0] < 0 || a->dilation[1] < 0)
        return tg_set_error(TG_ERR_ARG, "dilation %s must be positive (0 means 1), input %s",
                            PAIR(a->dilation), TG_SHP(x));
    if (!is_max && (a->dilation[0] > 1 || a->dilation[1] > 1))
        return tg_set_error(TG_ERR_ARG,
                            "avgpool2d has no dilation, got dilation %s (use 0 or 1), input %s",
                            PAIR(a->dilation), TG_SHP(x));

    int64_t K[2], S[2], D[2], eff[2], O[2];
    for (int i = 0; i < 2; i++) {
        K[i] = a->kernel[i];
        S[i] = a->stride[i] ? a->stride[i] : K[i];
        D[i] = a->dilation[i] ? a->dilation[i] : 1;
        if (D[i] > INT64_MAX / 4 || K[i] - 1 > (INT64_MAX / 4) / D[i])
            return tg_set_error(TG_ERR_OVERFLOW,
                                "kernel %s with dilation %s overflows the window size, input %s",
                                PAIR(a->kernel), PAIR(a->dilation), TG_SHP(x));
        eff[i] = D[i] * (K[i] - 1) + 1;
    }
    /* avgpool multiplies the window's height and width for its divisor. */
    if (!is_max && K[0] > INT64_MAX / K[1])
        return tg_set_error(TG_ERR_OVERFLOW, "kernel %s overflows the window size, input %s",
                            PAIR(a->kernel), TG_SHP(x));
    const int64_t *P = a->padding;
    if (P[0] > eff[0] / 2 || P[1] > eff[1] / 2)
        return tg_set_error(TG_ERR_ARG,
                            "pad should be at most half of effective kernel size: padding %s, "
                            "kernel %s, dilation [%" PRId64 ", %" PRId64 "], input %s",
                            PAIR(P), PAIR(a->kernel), D[0], D[1], TG_SHP(x));
    const int64_t H = xs[nd - 2], W = xs[nd - 1];
    O[0] = pool_out_size(H, eff[0], S[0], P[0], a->ceil_mode);
    O[1] = pool_out_size(W, eff[1], S[1], P[1], a->ceil_mode);
    if (O[0] < 1 || O[1] < 1)
        return tg_set_error(TG_ERR_SHAPE,
                            "output size is too small: input %s, kernel %s, stride [%" PRId64
                            ", %" PRId64 "], padding %s, dilation [%" PRId64 ", %" PRId64
                            "] give an output plane [%" PRId64 ", %" PRId64 "]",
                            TG_SHP(x), PAIR(a->kernel), S[0], S[1], PAIR(P), D[0], D[1], O[0],
                            O[1]);
    if (is_max && H > INT32_MAX / W)
        return tg_set_error(TG_ERR_OVERFLOW,
                            "input %s: a plane of more than 2^31 - 1 elements (the argmax is "
                            "stored as int32)",
                            TG_SHP(x));

    *geo = (tg__pool2d_geom){.H = H, .W = W, .OH = O[0], .OW = O[1], .KH = K[0], .KW = K[1],
                             .SH = S[0], .SW = S[1], .PH = P[0], .PW = P[1], .DH = D[0],
                             .DW = D[1]};
    *planes = nd == 4 ? xs[0] * xs[1] : xs[0];
    if (out) {
        out->ndim = nd;
        for (int d = 0; d < nd - 2; d++)
            out->dims[d] = xs[d];
        out->dims[nd - 2] = O[0];
        out->dims[nd - 1] = O[1];
    }
    return TG_OK;
}

static void pool_print_attrs(const tg_node *n, char *buf, size_t size)
{
    const tg_pool2d_args *a = n->attrs;
    snprintf(buf, size, "kernel=%s stride=%s padding=%s dilation=%s ceil_mode=%d%s",
             PAIR(a->kernel), PAIR(a->stride), PAIR(a->padding), PAIR(a->dilation),
             (int)a->ceil_mode, a->exclude_padding ? " exclude_padding=1" : "");
}

/* -------------------------------------------------------------- maxpool2d */

/* maxpool2d: y[o] = max over window o's in-input taps x[i] (padding is -inf).
 * VJP: dx[argmax(o)] += dy[o]. Kink convention (PyTorch's CPU kernel): the
 * window is scanned row-major and a tap replaces the best when it is greater or
 * NaN, so ties go to the first maximum and a NaN is the max (the last NaN if
 * there are several). The argmax (int32 per output, flat index in the input
 * plane) is saved in forward when a gradient will be needed. */
static int maxpool2d_shape(const tg_node *n, tg_shape *out)
{
    tg__pool2d_geom geo;
    int64_t planes;
    return pool_geometry(n, true, &geo, &planes, out);
}

static int maxpool2d_forward(tg_node *n)
{
    tg__pool2d_geom geo;
    int64_t planes;
    int rc = pool_geometry(n, true, &geo, &planes, NULL);
    if (rc != TG_OK)
        return rc;
    const int64_t n_out = tg_tensor_numel(n->out);
    if (n_out == 0)
        return TG_OK;
    int32_t *argmax = NULL;
    if (tg_tensor_requires_grad(n->out)) {
        argmax = tg_node_save(n, (size_t)n_out * sizeof *argmax);
        if (!argmax)
            return tg_last_status();
    }
    const tg_tensor *x = n->inputs[0];
    if (tg_tensor_dtype(x) == TG_F64)
        tg__maxpool2d_forward_f64(tg_tensor_data(n->out), argmax, tg_tensor_data(x), planes, &geo);
    else
        tg__maxpool2d_forward_f32(tg_tensor_data(n->out), argmax, tg_tensor_data(x), planes, &geo);
    return TG_OK;
}

static int maxpool2d_backward(tg_node *n, const tg_tensor *dout)
{
    if (!tg_node_needs_grad(n, 0))
        return TG_OK;
    tg__pool2d_geom geo;
    int64_t planes;
    int rc = pool_geometry(n, true, &geo, &planes, NULL);
    if (rc != TG_OK)
        return rc;
    const int32_t *argmax = n->saved;
    if (!argmax && tg_tensor_numel(dout) > 0)
        return tg_set_error(TG_ERR_GRAD, "no argmax was saved in forward for output %s",
                            TG_SHP(n->out));
    /* dx last (nothing can fail after it): a first contribution is written,
     * not added. An empty output sends nothing back: dx is then zero-filled. */
    bool fresh = false, empty = tg_tensor_numel(dout) == 0;
    tg_tensor *dx = empty ? tg_node_grad(n, 0) : tg_node_grad_fresh(n, 0, &fresh);
    if (!dx || empty)
        return TG_OK;
    if (tg_tensor_dtype(dx) == TG_F64)
        tg__maxpool2d_backward_f64(tg_tensor_data(dx), tg_tensor_data(dout), argmax, planes, &geo,
                                   !fresh);
    else
        tg__maxpool2d_backward_f32(tg_tensor_data(dx), tg_tensor_data(dout), argmax, planes, &geo,
                                   !fresh);
    return TG_OK;
}

const tg_op tg_op_maxpool2d = {.name = "maxpool2d",
                               .n_inputs = 1,
                               .attr_size = sizeof(tg_pool2d_args),
                               .shape = maxpool2d_shape,
                               .forward = maxpool2d_forward,
                               .backward = maxpool2d_backward,
                               .print_attrs = pool_print_attrs};

tg_tensor *tg_maxpool2d(tg_graph *g, tg_tensor *x, tg_pool2d_args args)
{
    return tg_apply(g, &tg_op_maxpool2d, &x, 1, &args);
}

/* -------------------------------------------------------------- avgpool2d */

/* avgpool2d: y[o] = sum over window o's in-input taps x[i] / div(o), where
 * div(o) is the window clipped to the padded input (count_include_pad, the
 * default; ceil-mode overhang past the padding is not counted) or the number
 * of in-input taps (exclude_padding). VJP: dx[i] += dy[o] / div(o) for every
 * in-input tap i of window o. Linear: no kinks. */
static int avgpool2d_shape(const tg_node *n, tg_shape *out)
{
    tg__pool2d_geom geo;
    int64_t planes;
    return pool_geometry(n, false, &geo, &planes, out);
}

static int avgpool2d_forward(tg_node *n)
{
    tg__pool2d_geom geo;
    int64_t planes;
    int rc = pool_geometry(n, false, &geo, &planes, NULL);
    if (rc != TG_OK)
        return rc;
    const tg_tensor *x = n->inputs[0];
    const bool excl = ((const tg_pool2d_args *)n->attrs)->exclude_padding;
    if (tg_tensor_dtype(x) == TG_F64)
        tg__avgpool2d_forward_f64(tg_tensor_data(n->out), tg_tensor_data(x), planes, &geo, excl);
    else
        tg__avgpool2d_forward_f32(tg_tensor_data(n->out), tg_tensor_data(x), planes, &geo, excl);
    return TG_OK;
}

static int avgpool2d_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    tg__pool2d_geom geo;
    int64_t planes;
    int rc = pool_geometry(n, false, &geo, &planes, NULL);
    if (rc != TG_OK)
        return rc;
    const bool excl = ((const tg_pool2d_args *)n->attrs)->exclude_padding;
    if (tg_tensor_dtype(dx) == TG_F64)
        tg__avgpool2d_backward_f64(tg_tensor_data(dx), tg_tensor_data(dout), planes, &geo, excl);
    else
        tg__avgpool2d_backward_f32(tg_tensor_data(dx), tg_tensor_data(dout), planes, &geo, excl);
    return TG_OK;
}

const tg_op tg_op_avgpool2d = {.name = "avgpool2d",
                               .n_inputs = 1,
                               .attr_size = sizeof(tg_pool2d_args),
                               .shape = avgpool2d_shape,
                               .forward = avgpool2d_forward,
                               .backward = avgpool2d_backward,
                               .print_attrs = pool_print_attrs};

tg_tensor *tg_avgpool2d(tg_graph *g, tg_tensor *x, tg_pool2d_args args)
{
    return tg_apply(g, &tg_op_avgpool2d, &x, 1, &args);
}
