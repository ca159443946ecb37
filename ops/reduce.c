/* Reductions: sum and mean over all elements, and sum / mean / max over one
 * axis. Shape rules, forward and VJP glue and the op records live here; the
 * loops are in ops/kernels/reduce.c. Softmax and the losses, which reduce
 * internally, are in their own files. */
#include "internal.h"
#include "kernels/reduce.h"

#include <stdbool.h>

/* ------------------------------------------------------------------ helpers */

typedef struct axis_attrs {
    int axis; /* as the caller gave it; negative counts from the end */
    bool keepdim;
} axis_attrs;

/* Views x as [outer, A, inner] around a normalised axis. Rank 0 is [1, 1, 1]. */
static void split_at(const tg_tensor *x, int axis, int64_t *outer, int64_t *A, int64_t *inner)
{
    const int64_t *d = tg_tensor_shape(x);
    int nd = tg_tensor_ndim(x);
    *outer = 1;
    *A = nd ? d[axis] : 1;
    *inner = 1;
    for (int i = 0; i < axis && i < nd; i++)
        *outer *= d[i];
    for (int i = axis + 1; i < nd; i++)
        *inner *= d[i];
}

/* The node's axis, normalised (the shape rule already validated it). */
static int node_axis(const tg_node *n)
{
    const axis_attrs *at = n->attrs;
    int nd = tg_tensor_ndim(n->inputs[0]);
    int lim = nd ? nd : 1;
    return at->axis < 0 ? at->axis + lim : at->axis;
}

/* Output shape of a reduction over `axis`: the dim becomes 1 (keepdim) or
 * goes. A rank-0 input stays rank 0 either way, as PyTorch. */
static int axis_shape(const tg_node *n, tg_shape *out)
{
    const axis_attrs *at = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int axis = 0;
    if (tg__norm_axis(at->axis, x, &axis) != TG_OK)
        return TG_ERR_ARG;
    int nd = tg_tensor_ndim(x);
    const int64_t *d = tg_tensor_shape(x);
    out->ndim = 0;
    for (int i = 0; i < nd; i++) {
        if (i != axis)
            out->dims[out->ndim++] = d[i];
        else if (at->keepdim)
            out->dims[out->ndim++] = 1;
    }
    return TG_OK;
}

static void axis_print(const tg_node *n, char *buf, size_t size)
{
    const axis_attrs *at = n->attrs;
    snprintf(buf, size, "axis=%d keepdim=%s", at->axis, at->keepdim ? "true" : "false");
}

/* Forward / VJP of a sum over [outer, A, inner] scaled by 1/div (div = 1 for a
 * sum, A for a mean). */
static void sum_run(tg_tensor *out, const tg_tensor *x, int64_t outer, int64_t A, int64_t inner,
                    double div)
{
    if (tg_tensor_dtype(x) == TG_F64)
        tg__sum_axis_f64(tg_tensor_data(out), tg_tensor_data(x), outer, A, inner, div);
    else
        tg__sum_axis_f32(tg_tensor_data(out), tg_tensor_data(x), outer, A, inner, div);
}

static void sum_vjp(tg_tensor *dx, const tg_tensor *dout, int64_t outer, int64_t A, int64_t inner,
                    double div)
{
    double scale = div > 0 ? 1.0 / div : 0.0; /* div == 0 only when dx is empty */
    if (tg_tensor_dtype(dx) == TG_F64)
        tg__sum_axis_backward_f64(tg_tensor_data(dx), tg_tensor_data(dout), outer, A, inner, scale);
    else
        tg__sum_axis_backward_f32(tg_tensor_data(dx), tg_tensor_data(dout), outer, A, inner, scale);
}

/* ------------------------------------------------------------ sum and mean */

/* sum: y = sum_i x_i, shape [].  VJP: dx_i += dy.
 * mean: y = (1/n) sum_i x_i.  VJP: dx_i += dy / n.
 * An empty x gives sum 0 and mean 0/0 = NaN, as PyTorch. Sums accumulate in
 * double for float32. No kinks. */
static int full_shape(const tg_node *n, tg_shape *out)
{
    (void)n;
    out->ndim = 0;
    return TG_OK;
}

static int sum_forward(tg_node *n)
{
    sum_run(n->out, n->inputs[0], 1, tg_tensor_numel(n->inputs[0]), 1, 1.0);
    return TG_OK;
}

static int sum_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (dx)
        sum_vjp(dx, dout, 1, tg_tensor_numel(dx), 1, 1.0);
    return TG_OK;
}

static int mean_forward(tg_node *n)
{
    int64_t numel = tg_tensor_numel(n->inputs[0]);
    sum_run(n->out, n->inputs[0], 1, numel, 1, (double)numel);
    return TG_OK;
}

static int mean_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (dx)
        sum_vjp(dx, dout, 1, tg_tensor_numel(dx), 1, (double)tg_tensor_numel(dx));
    return TG_OK;
}

const tg_op tg_op_sum = {.name = "sum", .n_inputs = 1, .shape = full_shape,
                         .forward = sum_forward, .backward = sum_backward};
const tg_op tg_op_mean = {.name = "mean", .n_inputs = 1, .shape = full_shape,
                          .forward = mean_forward, .backward = mean_backward};

tg_tensor *tg_sum(tg_graph *g, tg_tensor *x) { return tg_apply(g, &tg_op_sum, &x, 1, NULL); }
tg_tensor *tg_mean(tg_graph *g, tg_tensor *x) { return tg_apply(g, &tg_op_mean, &x, 1, NULL); }

/* ---------------------------------------------------- sum_axis, mean_axis */

/* sum_axis: y[o, i] = sum_a x[o, a, i] over x viewed as [outer, A, inner].
 * VJP: dx[o, a, i] += dy[o, i] (dy broadcast back along the axis).
 * mean_axis: y = sum_axis / A.  VJP: dx[o, a, i] += dy[o, i] / A.
 * keepdim only changes the output's shape, not its layout. An axis of size 0
 * gives sums of 0 and means of NaN. No kinks. */
static int sum_axis_forward(tg_node *n)
{
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    sum_run(n->out, n->inputs[0], outer, A, inner, 1.0);
    return TG_OK;
}

static int sum_axis_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    sum_vjp(dx, dout, outer, A, inner, 1.0);
    return TG_OK;
}

static int mean_axis_forward(tg_node *n)
{
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    sum_run(n->out, n->inputs[0], outer, A, inner, (double)A);
    return TG_OK;
}

static int mean_axis_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    sum_vjp(dx, dout, outer, A, inner, (double)A);
    return TG_OK;
}

const tg_op tg_op_sum_axis = {.name = "sum_axis", .n_inputs = 1, .attr_size = sizeof(axis_attrs),
                              .shape = axis_shape, .forward = sum_axis_forward,
                              .backward = sum_axis_backward, .print_attrs = axis_print};
const tg_op tg_op_mean_axis = {.name = "mean_axis", .n_inputs = 1,
                               .attr_size = sizeof(axis_attrs), .shape = axis_shape,
                               .forward = mean_axis_forward, .backward = mean_axis_backward,
                               .print_attrs = axis_print};

tg_tensor *tg_sum_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim)
{
    axis_attrs at = {.axis = axis, .keepdim = keepdim};
    return tg_apply(g, &tg_op_sum_axis, &x, 1, &at);
}

tg_tensor *tg_mean_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim)
{
    axis_attrs at = {.axis = axis, .keepdim = keepdim};
    return tg_apply(g, &tg_op_mean_axis, &x, 1, &at);
}

/* ---------------------------------------------------------------- max_axis */

/* max_axis: y[o, i] = max_a x[o, a, i], k[o, i] = the first a attaining it.
 * VJP: dx[o, k[o, i], i] += dy[o, i]; every other element gets 0.
 * Kinks: on ties the whole gradient goes to the first maximum (PyTorch's
 * torch.max(x, dim) picks the same index). NaN propagates: a NaN in the slice
 * makes y NaN and the first NaN takes the gradient. An axis of size 0 is an
 * error (there is no max of nothing). Forward saves k ([outer, inner] int64)
 * only when a backward can follow. */
static int max_axis_shape(const tg_node *n, tg_shape *out)
{
    int rc = axis_shape(n, out);
    if (rc != TG_OK)
        return rc;
    const tg_tensor *x = n->inputs[0];
    int axis = node_axis(n);
    if (tg_tensor_ndim(x) > 0 && tg_tensor_shape(x)[axis] == 0)
        return tg_set_error(TG_ERR_SHAPE, "cannot take the max over axis %d of size 0 in shape %s",
                            ((const axis_attrs *)n->attrs)->axis, TG_SHP(x));
    return TG_OK;
}

static int max_axis_forward(tg_node *n)
{
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    int64_t *idx = NULL;
    if (tg_tensor_requires_grad(n->out)) {
        idx = tg_node_save(n, (size_t)(outer * inner) * sizeof *idx);
        if (!idx)
            return tg_last_status();
    }
    if (tg_tensor_dtype(n->out) == TG_F64)
        tg__max_axis_f64(tg_tensor_data(n->out), idx, tg_tensor_data(n->inputs[0]), outer, A,
                         inner);
    else
        tg__max_axis_f32(tg_tensor_data(n->out), idx, tg_tensor_data(n->inputs[0]), outer, A,
                         inner);
    return TG_OK;
}

static int max_axis_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t outer, A, inner;
    split_at(n->inputs[0], node_axis(n), &outer, &A, &inner);
    const int64_t *idx = n->saved;
    if (tg_tensor_dtype(dx) == TG_F64)
        tg__max_axis_backward_f64(tg_tensor_data(dx), tg_tensor_data(dout), idx, outer, A, inner);
    else
        tg__max_axis_backward_f32(tg_tensor_data(dx), tg_tensor_data(dout), idx, outer, A, inner);
    return TG_OK;
}

const tg_op tg_op_max_axis = {.name = "max_axis", .n_inputs = 1, .attr_size = sizeof(axis_attrs),
                              .shape = max_axis_shape, .forward = max_axis_forward,
                              .backward = max_axis_backward, .print_attrs = axis_print};

tg_tensor *tg_max_axis(tg_graph *g, tg_tensor *x, int axis, bool keepdim)
{
    axis_attrs at = {.axis = axis, .keepdim = keepdim};
    return tg_apply(g, &tg_op_max_axis, &x, 1, &at);
}
