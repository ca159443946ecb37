/* Softmax family: softmax and log_softmax along any axis (negative axes count
 * from the end). Shape rules, forwards and VJPs live here; the loops are in
 * ops/kernels/softmax.c. The fused softmax cross-entropy losses are in loss.c. */
#include "../autograd/error.h"
#include "internal.h"
#include "kernels/softmax.h"

#include <stdio.h>

typedef struct axis_attrs {
    int axis;
} axis_attrs;

/* ---------------------------------------------------------------- shared */

/* Same shape as x; the axis must be in range (rank 0 takes 0 and -1). */
static int axis_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *x = n->inputs[0];
    const axis_attrs *a = n->attrs;
    int ax;
    int rc = tg__norm_axis(a->axis, x, &ax);
    if (rc != TG_OK)
        return rc;
    out->ndim = tg_tensor_ndim(x);
    for (int d = 0; d < out->ndim; d++)
        out->dims[d] = tg_tensor_shape(x)[d];
    return TG_OK;
}

/* Views x as [outer, C, inner] around the (already validated) axis. */
static void axis_split(const tg_node *n, int64_t *outer, int64_t *C, int64_t *inner)
{
    const tg_tensor *x = n->inputs[0];
    const axis_attrs *a = n->attrs;
    int nd = tg_tensor_ndim(x), ax = 0;
    const int64_t *s = tg_tensor_shape(x);
    (void)tg__norm_axis(a->axis, x, &ax);
    *outer = 1;
    *C = nd ? s[ax] : 1;
    *inner = 1;
    for (int d = 0; d < ax; d++)
        *outer *= s[d];
    for (int d = ax + 1; d < nd; d++)
        *inner *= s[d];
}

static void axis_print(const tg_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "axis=%d", ((const axis_attrs *)n->attrs)->axis);
}

/* ---------------------------------------------------------------- softmax */

/* softmax: y_c = e^(x_c - m) / sum_k e^(x_k - m), m = max_k x_k along the axis
 * (the shift changes nothing mathematically and keeps exp from overflowing).
 * VJP: dx_c += y_c (dy_c - sum_k dy_k y_k), from dy_k/dx_c = y_k ([k == c] - y_c);
 * it reads the saved output n->out. No kinks. A row of all -inf gives NaN (as
 * PyTorch: -inf - -inf is NaN). */
static int softmax_forward(tg_node *n)
{
    int64_t outer, C, inner;
    axis_split(n, &outer, &C, &inner);
    const tg_tensor *x = n->inputs[0];
    if (tg_tensor_numel(x) == 0)
        return TG_OK;
    if (tg_tensor_dtype(x) == TG_F32)
        tg__softmax_forward_f32(tg_tensor_data(n->out), tg_tensor_data(x), outer, C, inner);
    else
        tg__softmax_forward_f64(tg_tensor_data(n->out), tg_tensor_data(x), outer, C, inner);
    return TG_OK;
}

static int softmax_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t outer, C, inner;
    axis_split(n, &outer, &C, &inner);
    if (tg_tensor_dtype(dx) == TG_F32)
        tg__softmax_backward_f32(tg_tensor_data(dx), tg_tensor_data(n->out), tg_tensor_data(dout),
                                 outer, C, inner);
    else
        tg__softmax_backward_f64(tg_tensor_data(dx), tg_tensor_data(n->out), tg_tensor_data(dout),
                                 outer, C, inner);
    return TG_OK;
}

const tg_op tg_op_softmax = {.name = "softmax",
                             .n_inputs = 1,
                             .attr_size = sizeof(axis_attrs),
                             .shape = axis_shape,
                             .forward = softmax_forward,
                             .backward = softmax_backward,
                             .print_attrs = axis_print};

tg_tensor *tg_softmax(tg_graph *g, tg_tensor *x, int axis)
{
    axis_attrs a = {.axis = axis};
    return tg_apply(g, &tg_op_softmax, &x, 1, &a);
}

/* ------------------------------------------------------------ log_softmax */

/* log_softmax: y_c = (x_c - m) - log sum_k e^(x_k - m), m = max_k x_k.
 * VJP: dx_c += dy_c - e^(y_c) sum_k dy_k, from dy_k/dx_c = [k == c] - softmax_c;
 * softmax_c = e^(y_c) is recomputed from the saved output. No kinks. A row of
 * all -inf gives NaN (as PyTorch); a single -inf entry gives -inf there. */
static int log_softmax_forward(tg_node *n)
{
    int64_t outer, C, inner;
    axis_split(n, &outer, &C, &inner);
    const tg_tensor *x = n->inputs[0];
    if (tg_tensor_numel(x) == 0)
        return TG_OK;
    if (tg_tensor_dtype(x) == TG_F32)
        tg__log_softmax_forward_f32(tg_tensor_data(n->out), tg_tensor_data(x), outer, C, inner);
    else
        tg__log_softmax_forward_f64(tg_tensor_data(n->out), tg_tensor_data(x), outer, C, inner);
    return TG_OK;
}

static int log_softmax_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t outer, C, inner;
    axis_split(n, &outer, &C, &inner);
    if (tg_tensor_dtype(dx) == TG_F32)
        tg__log_softmax_backward_f32(tg_tensor_data(dx), tg_tensor_data(n->out),
                                     tg_tensor_data(dout), outer, C, inner);
    else
        tg__log_softmax_backward_f64(tg_tensor_data(dx), tg_tensor_data(n->out),
                                     tg_tensor_data(dout), outer, C, inner);
    return TG_OK;
}

const tg_op tg_op_log_softmax = {.name = "log_softmax",
                                 .n_inputs = 1,
                                 .attr_size = sizeof(axis_attrs),
                                 .shape = axis_shape,
                                 .forward = log_softmax_forward,
                                 .backward = log_softmax_backward,
                                 .print_attrs = axis_print};

tg_tensor *tg_log_softmax(tg_graph *g, tg_tensor *x, int axis)
{
    axis_attrs a = {.axis = axis};
    return tg_apply(g, &tg_op_log_softmax, &x, 1, &a);
}
