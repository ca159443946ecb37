/* Shape ops: reshape, flatten, transpose and concat. Every output is a new
 * contiguous tensor (tensors have no strides), so each op copies its data.
 * Shape rules, forward and VJP glue live here; the copy loops are in
 * ops/kernels/shape.c. */
#include "internal.h"
#include "kernels/shape.h"

#include <limits.h>
#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

/* As tg__norm_axis, with the argument's own name in the message
 * ("start_dim 3 is out of range for shape [2, 3] (2 dims)"). */
static int norm_dim(const char *what, int dim, const tg_tensor *x, int *out)
{
    int nd = tg_tensor_ndim(x);
    int lim = nd ? nd : 1;
    if (dim < -lim || dim >= lim)
        return tg_set_error(TG_ERR_ARG, "%s %d is out of range for shape %s (%d dims)", what, dim,
                            TG_SHP(x), nd);
    *out = dim < 0 ? dim + lim : dim;
    return TG_OK;
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= d[i];
    return p;
}

/* dst = src over rows of len (dst rows dst_stride apart, src rows src_stride). */
static void copy_rows(tg_tensor *dst, int64_t dst_off, int64_t dst_stride, const tg_tensor *src,
                      int64_t src_off, int64_t src_stride, int64_t rows, int64_t len)
{
    if (tg_tensor_dtype(dst) == TG_F64)
        tg__copy_rows_f64((double *)tg_tensor_data(dst) + dst_off, dst_stride,
                          (const double *)tg_tensor_data(src) + src_off, src_stride, rows, len);
    else
        tg__copy_rows_f32((float *)tg_tensor_data(dst) + dst_off, dst_stride,
                          (const float *)tg_tensor_data(src) + src_off, src_stride, rows, len);
}

/* dst += src, same row layout as copy_rows. */
static void add_rows(tg_tensor *dst, int64_t dst_off, int64_t dst_stride, const tg_tensor *src,
                     int64_t src_off, int64_t src_stride, int64_t rows, int64_t len)
{
    if (tg_tensor_dtype(dst) == TG_F64)
        tg__add_rows_f64((double *)tg_tensor_data(dst) + dst_off, dst_stride,
                         (const double *)tg_tensor_data(src) + src_off, src_stride, rows, len);
    else
        tg__add_rows_f32((float *)tg_tensor_data(dst) + dst_off, dst_stride,
                         (const float *)tg_tensor_data(src) + src_off, src_stride, rows, len);
}

/* Reshape and flatten share the data path: the output holds x's elements in
 * the same row-major order, so forward copies and the VJP adds dy flat. */
static int same_order_forward(tg_node *n)
{
    int64_t numel = tg_tensor_numel(n->out);
    copy_rows(n->out, 0, numel, n->inputs[0], 0, numel, 1, numel);
    return TG_OK;
}

static int same_order_backward(tg_node *n, const tg_tensor *dout)
{
    bool fresh;
    tg_tensor *dx = tg_node_grad_fresh(n, 0, &fresh);
    if (dx) {
        int64_t numel = tg_tensor_numel(dx);
        if (fresh) /* the first contribution: a copy, no zero-fill */
            copy_rows(dx, 0, numel, dout, 0, numel, 1, numel);
        else
            add_rows(dx, 0, numel, dout, 0, numel, 1, numel);
    }
    return TG_OK;
}

/* ------------------------------------------------------------------ reshape */

/* reshape: y = x with a new shape of the same element count, row-major order
 * kept. One entry may be -1: it becomes numel / (product of the others).
 * VJP: dx += dy read in x's shape (the same flat order). No kinks.
 * Errors: numel mismatch, two -1s, other negative entries, a -1 next to a 0
 * (ambiguous, as PyTorch), ndim outside 0..8. */
typedef struct reshape_attrs {
    int ndim;
    bool shape_null;
    int64_t shape[TG_MAX_DIMS]; /* the first min(ndim, TG_MAX_DIMS) entries as given */
} reshape_attrs;

static int reshape_shape(const tg_node *n, tg_shape *out)
{
    const reshape_attrs *at = n->attrs;
    const tg_tensor *x = n->inputs[0];
    long long numel = (long long)tg_tensor_numel(x);
    if (at->ndim < 0 || at->ndim > TG_MAX_DIMS)
        return tg_set_error(TG_ERR_ARG, "cannot reshape %s to %d dims (ndim must be 0..%d)",
                            TG_SHP(x), at->ndim, TG_MAX_DIMS);
    if (at->ndim > 0 && at->shape_null)
        return tg_set_error(TG_ERR_NULL, "cannot reshape %s: shape is NULL for ndim %d",
                            TG_SHP(x), at->ndim);
    char want[TG_SHAPE_STR_MAX];
    tg_shape_format(want, sizeof want, at->ndim, at->shape);
    int infer = -1;
    bool has_zero = false;
    for (int i = 0; i < at->ndim; i++) {
        int64_t d = at->shape[i];
        if (d == -1) {
            if (infer >= 0)
                return tg_set_error(TG_ERR_SHAPE,
                                    "cannot reshape %s to %s: only one dimension can be -1 "
                                    "(dims %d and %d are)",
                                    TG_SHP(x), want, infer, i);
            infer = i;
        } else if (d < 0) {
            return tg_set_error(TG_ERR_SHAPE,
                                "cannot reshape %s to %s: dimension %d is %lld (only -1 may be "
                                "negative)",
                                TG_SHP(x), want, i, (long long)d);
        } else if (d == 0) {
            has_zero = true;
        }
    }
    /* The product of the given dims (without the -1); one too big for int64
     * cannot match any tensor. */
    long long known = 1;
    bool overflow = false;
    for (int i = 0; i < at->ndim; i++) {
        long long d = (long long)at->shape[i];
        if (i == infer)
            continue;
        if (d != 0 && known > LLONG_MAX / d)
            overflow = true;
        else
            known *= d;
    }
    if (has_zero) {
        known = 0;
        overflow = false;
    }
    if (overflow)
        return tg_set_error(TG_ERR_SHAPE,
                            "cannot reshape %s (%lld elements) to %s: its element count overflows",
                            TG_SHP(x), numel, want);
    for (int i = 0; i < at->ndim; i++)
        out->dims[i] = at->shape[i];
    out->ndim = at->ndim;
    if (infer >= 0) {
        if (known == 0)
            return tg_set_error(TG_ERR_SHAPE,
                                "cannot reshape %s (%lld elements) to %s: the -1 is ambiguous "
                                "next to a dimension of 0",
                                TG_SHP(x), numel, want);
        if (numel % known != 0)
            return tg_set_error(TG_ERR_SHAPE,
                                "cannot reshape %s (%lld elements) to %s: %lld is not a multiple "
                                "of %lld",
                                TG_SHP(x), numel, want, numel, known);
        out->dims[infer] = numel / known;
    } else if (known != numel) {
        return tg_set_error(TG_ERR_SHAPE,
                            "cannot reshape %s (%lld element%s) to %s (%lld element%s)", TG_SHP(x),
                            numel, numel == 1 ? "" : "s", want, known, known == 1 ? "" : "s");
    }
    return TG_OK;
}

static void reshape_print(const tg_node *n, char *buf, size_t size)
{
    const reshape_attrs *at = n->attrs;
    char s[TG_SHAPE_STR_MAX];
    snprintf(buf, size, "shape=%s", tg_shape_format(s, sizeof s, at->ndim, at->shape));
}

const tg_op tg_op_reshape = {.name = "reshape", .n_inputs = 1, .attr_size = sizeof(reshape_attrs),
                             .shape = reshape_shape, .forward = same_order_forward,
                             .backward = same_order_backward, .print_attrs = reshape_print};

tg_tensor *tg_reshape(tg_graph *g, tg_tensor *x, int ndim, const int64_t *shape)
{
    reshape_attrs at = {.ndim = ndim, .shape_null = shape == NULL};
    for (int i = 0; shape && i < ndim && i < TG_MAX_DIMS; i++)
        at.shape[i] = shape[i];
    return tg_apply(g, &tg_op_reshape, &x, 1, &at);
}

/* ------------------------------------------------------------------ flatten */

/* flatten: torch.flatten(x, start_dim) with end_dim -1: dims start_dim..last
 * become one dim of their product; rank 0 gives [1]. A reshape, so the VJP is
 * dx += dy read in x's shape. No kinks. */
typedef struct flatten_attrs {
    int start_dim;
} flatten_attrs;

static int flatten_shape(const tg_node *n, tg_shape *out)
{
    const flatten_attrs *at = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int s = 0;
    if (norm_dim("start_dim", at->start_dim, x, &s) != TG_OK)
        return TG_ERR_ARG;
    int nd = tg_tensor_ndim(x);
    const int64_t *d = tg_tensor_shape(x);
    if (nd == 0) {
        out->ndim = 1;
        out->dims[0] = 1;
        return TG_OK;
    }
    for (int i = 0; i < s; i++)
        out->dims[i] = d[i];
    out->dims[s] = prod(d, s, nd);
    out->ndim = s + 1;
    return TG_OK;
}

static void flatten_print(const tg_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "start_dim=%d", ((const flatten_attrs *)n->attrs)->start_dim);
}

const tg_op tg_op_flatten = {.name = "flatten", .n_inputs = 1, .attr_size = sizeof(flatten_attrs),
                             .shape = flatten_shape, .forward = same_order_forward,
                             .backward = same_order_backward, .print_attrs = flatten_print};

tg_tensor *tg_flatten(tg_graph *g, tg_tensor *x, int start_dim)
{
    flatten_attrs at = {.start_dim = start_dim};
    return tg_apply(g, &tg_op_flatten, &x, 1, &at);
}

/* ---------------------------------------------------------------- transpose */

/* transpose: y = x with dims dim0 and dim1 swapped, stored contiguously.
 * With d0 < d1 and x viewed as [A, P, B, Q, C] (P = dim d0, Q = dim d1):
 * y[a, q, b, p, c] = x[a, p, b, q, c].  VJP: the inverse permutation, which is
 * the same swap: dx[a, p, b, q, c] += dy[a, q, b, p, c]. dim0 == dim1 (and
 * rank 0) is a copy. No kinks. */
typedef struct transpose_attrs {
    int dim0, dim1;
} transpose_attrs;

static int transpose_shape(const tg_node *n, tg_shape *out)
{
    const transpose_attrs *at = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int d0 = 0, d1 = 0;
    if (norm_dim("dim0", at->dim0, x, &d0) != TG_OK || norm_dim("dim1", at->dim1, x, &d1) != TG_OK)
        return TG_ERR_ARG;
    int nd = tg_tensor_ndim(x);
    const int64_t *d = tg_tensor_shape(x);
    out->ndim = nd;
    for (int i = 0; i < nd; i++)
        out->dims[i] = d[i];
    if (nd > 0) {
        out->dims[d0] = d[d1];
        out->dims[d1] = d[d0];
    }
    return TG_OK;
}

/* The [A, P, B, Q, C] view of x; false when the swap moves nothing. */
static bool transpose_view(const tg_node *n, int64_t v[5])
{
    const transpose_attrs *at = n->attrs;
    const tg_tensor *x = n->inputs[0];
    int nd = tg_tensor_ndim(x);
    if (nd == 0)
        return false;
    int d0 = at->dim0 < 0 ? at->dim0 + nd : at->dim0;
    int d1 = at->dim1 < 0 ? at->dim1 + nd : at->dim1;
    if (d0 > d1) {
        int t = d0;
        d0 = d1;
        d1 = t;
    }
    if (d0 == d1)
        return false;
    const int64_t *d = tg_tensor_shape(x);
    v[0] = prod(d, 0, d0);
    v[1] = d[d0];
    v[2] = prod(d, d0 + 1, d1);
    v[3] = d[d1];
    v[4] = prod(d, d1 + 1, nd);
    return true;
}

static int transpose_forward(tg_node *n)
{
    int64_t v[5];
    const tg_tensor *x = n->inputs[0];
    if (!transpose_view(n, v)) {
        int64_t numel = tg_tensor_numel(x);
        copy_rows(n->out, 0, numel, x, 0, numel, 1, numel);
    } else if (tg_tensor_dtype(x) == TG_F64) {
        tg__transpose_f64(tg_tensor_data(n->out), tg_tensor_data(x), v[0], v[1], v[2], v[3], v[4]);
    } else {
        tg__transpose_f32(tg_tensor_data(n->out), tg_tensor_data(x), v[0], v[1], v[2], v[3], v[4]);
    }
    return TG_OK;
}

static int transpose_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    int64_t v[5];
    /* dout is [A, Q, B, P, C]; swapping back gives dx's [A, P, B, Q, C]. */
    if (!transpose_view(n, v)) {
        int64_t numel = tg_tensor_numel(dx);
        add_rows(dx, 0, numel, dout, 0, numel, 1, numel);
    } else if (tg_tensor_dtype(dx) == TG_F64) {
        tg__transpose_add_f64(tg_tensor_data(dx), tg_tensor_data(dout), v[0], v[3], v[2], v[1],
                              v[4]);
    } else {
        tg__transpose_add_f32(tg_tensor_data(dx), tg_tensor_data(dout), v[0], v[3], v[2], v[1],
                              v[4]);
    }
    return TG_OK;
}

static void transpose_print(const tg_node *n, char *buf, size_t size)
{
    const transpose_attrs *at = n->attrs;
    snprintf(buf, size, "dim0=%d dim1=%d", at->dim0, at->dim1);
}

const tg_op tg_op_transpose = {.name = "transpose", .n_inputs = 1,
                               .attr_size = sizeof(transpose_attrs), .shape = transpose_shape,
                               .forward = transpose_forward, .backward = transpose_backward,
                               .print_attrs = transpose_print};

tg_tensor *tg_transpose(tg_graph *g, tg_tensor *x, int dim0, int dim1)
{
    transpose_attrs at = {.dim0 = dim0, .dim1 = dim1};
    return tg_apply(g, &tg_op_transpose, &x, 1, &at);
}

/* ------------------------------------------------------------------- concat */

/* concat: torch.cat(xs, axis). With every input viewed as [outer, A_i, inner]
 * (same outer and inner), y[o, off_i + a, i] = x_i[o, a, i] where off_i is
 * A_0 + ... + A_(i-1).  VJP: dx_i[o, a, i] += dy[o, off_i + a, i], the
 * slice of dy that x_i filled. Inputs may have size 0 along the axis; rank-0
 * inputs are rejected (as PyTorch). The same tensor given twice gets both
 * slices added. No kinks. */
typedef struct concat_attrs {
    int axis;
} concat_attrs;

/* "[2, 3], [2, 4]": every input's shape, cut with "..." if it gets long. */
static void list_shapes(char *buf, size_t size, const tg_node *n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n->n_inputs; i++) {
        char s[TG_SHAPE_STR_MAX];
        tg_shape_format(s, sizeof s, tg_tensor_ndim(n->inputs[i]), tg_tensor_shape(n->inputs[i]));
        size_t need = strlen(s) + 2;
        if (at + need + 16 >= size) {
            snprintf(buf + at, size - at, ", ... (%d inputs)", n->n_inputs);
            return;
        }
        at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? ", " : "", s);
    }
}

static int concat_shape(const tg_node *n, tg_shape *out)
{
    const concat_attrs *at = n->attrs;
    const tg_tensor *x0 = n->inputs[0];
    int nd = tg_tensor_ndim(x0);
    char list[640];
    list_shapes(list, sizeof list, n);
    for (int i = 0; i < n->n_inputs; i++)
        if (tg_tensor_ndim(n->inputs[i]) == 0)
            return tg_set_error(TG_ERR_SHAPE,
                                "cannot concatenate rank-0 tensors (input %d is []): inputs %s", i,
                                list);
    for (int i = 1; i < n->n_inputs; i++)
        if (tg_tensor_ndim(n->inputs[i]) != nd)
            return tg_set_error(TG_ERR_SHAPE,
                                "inputs differ in rank (input %d has %d dims, input 0 has %d): "
                                "inputs %s",
                                i, tg_tensor_ndim(n->inputs[i]), nd, list);
    if (at->axis < -nd || at->axis >= nd)
        return tg_set_error(TG_ERR_ARG, "axis %d is out of range for inputs of %d dims: inputs %s",
                            at->axis, nd, list);
    int axis = at->axis < 0 ? at->axis + nd : at->axis;
    const int64_t *d0 = tg_tensor_shape(x0);
    int64_t total = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        const int64_t *di = tg_tensor_shape(n->inputs[i]);
        for (int k = 0; k < nd; k++)
            if (k != axis && di[k] != d0[k])
                return tg_set_error(TG_ERR_SHAPE,
                                    "inputs differ outside axis %d (input %d dim %d is %lld, "
                                    "input 0 has %lld): inputs %s",
                                    at->axis, i, k, (long long)di[k], (long long)d0[k], list);
        if (di[axis] > INT64_MAX - total)
            return tg_set_error(TG_ERR_OVERFLOW, "the size along axis %d overflows: inputs %s",
                                at->axis, list);
        total += di[axis];
    }
    out->ndim = nd;
    for (int k = 0; k < nd; k++)
        out->dims[k] = d0[k];
    out->dims[axis] = total;
    return TG_OK;
}

/* outer, inner and the output's size along the axis. */
static int concat_view(const tg_node *n, int64_t *outer, int64_t *inner, int64_t *total)
{
    const concat_attrs *at = n->attrs;
    int nd = tg_tensor_ndim(n->out);
    int axis = at->axis < 0 ? at->axis + nd : at->axis;
    const int64_t *d = tg_tensor_shape(n->out);
    *outer = prod(d, 0, axis);
    *inner = prod(d, axis + 1, nd);
    *total = d[axis];
    return axis;
}

static int concat_forward(tg_node *n)
{
    int64_t outer, inner, total, off = 0;
    int axis = concat_view(n, &outer, &inner, &total);
    for (int i = 0; i < n->n_inputs; i++) {
        int64_t Ai = tg_tensor_shape(n->inputs[i])[axis];
        copy_rows(n->out, off * inner, total * inner, n->inputs[i], 0, Ai * inner, outer,
                  Ai * inner);
        off += Ai;
    }
    return TG_OK;
}

static int concat_backward(tg_node *n, const tg_tensor *dout)
{
    int64_t outer, inner, total, off = 0;
    int axis = concat_view(n, &outer, &inner, &total);
    for (int i = 0; i < n->n_inputs; i++) {
        int64_t Ai = tg_tensor_shape(n->inputs[i])[axis];
        tg_tensor *dx = tg_node_grad(n, i);
        if (dx)
            add_rows(dx, 0, Ai * inner, dout, off * inner, total * inner, outer, Ai * inner);
        off += Ai;
    }
    return TG_OK;
}

static void concat_print(const tg_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "axis=%d n=%d", ((const concat_attrs *)n->attrs)->axis, n->n_inputs);
}

const tg_op tg_op_concat = {.name = "concat", .n_inputs = TG_VARIADIC,
                            .attr_size = sizeof(concat_attrs), .shape = concat_shape,
                            .forward = concat_forward, .backward = concat_backward,
                            .print_attrs = concat_print};

/* n < 1 and a NULL array are caught here: tg_apply's own arity message
 * ("takes -1 inputs") would not say what is wrong. */
tg_tensor *tg_concat(tg_graph *g, tg_tensor *const *xs, int n, int axis)
{
    if (n < 1) {
        tg_set_error(TG_ERR_ARG, "tg_concat: needs at least one input tensor, got n = %d", n);
        return NULL;
    }
    if (!xs) {
        tg_set_error(TG_ERR_NULL, "tg_concat: the input array xs is NULL (n = %d)", n);
        return NULL;
    }
    concat_attrs at = {.axis = axis};
    return tg_apply(g, &tg_op_concat, xs, n, &at);
}
