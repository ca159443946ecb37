/* Elementwise ops: add, sub, mul, div with NumPy/PyTorch broadcasting, and the
 * unary neg, exp, log, sqrt, pow, relu, sigmoid, tanh, abs. Shape rules,
 * forwards and VJPs sit together per op; the loops are in
 * ops/kernels/elementwise.c and the broadcast plan in ops/broadcast.h.
 * Reductions, softmax and the losses live in their own families. */
#include "broadcast.h"
#include "internal.h"
#include "kernels/elementwise.h"

#include <string.h>

/* ================================================================ binary */

/* Shared by the four binary ops. The forward walks the output row by row
 * (see broadcast.h); a VJP accumulates the local gradient of one operand over
 * the same rows into that operand's gradient, which sums it over the dims the
 * operand was broadcast across (sum-to-shape). A float32 operand that was
 * broadcast is summed in a double buffer first. */

static int binary_shape(const tg_node *n, tg_shape *out)
{
    return tg__bcast_shape(n->inputs[0], n->inputs[1], out);
}

static int binary_forward(tg_node *n, tg__ew_binop op)
{
    const tg_tensor *a = n->inputs[0], *b = n->inputs[1];
    tg__bcast p;
    tg__bcast_plan_t(&p, a, b);
    const int last = p.ndim - 1;
    tg__bcast_it it;
    if (tg_tensor_dtype(a) == TG_F32) {
        float *out = tg_tensor_data(n->out);
        const float *ad = tg_tensor_data(a), *bd = tg_tensor_data(b);
        for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
            tg__ew_binary_f32(op, p.inner, out + it.row * p.inner, ad + it.off[0], p.st[0][last],
                              bd + it.off[1], p.st[1][last]);
    } else {
        double *out = tg_tensor_data(n->out);
        const double *ad = tg_tensor_data(a), *bd = tg_tensor_data(b);
        for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
            tg__ew_binary_f64(op, p.inner, out + it.row * p.inner, ad + it.off[0], p.st[0][last],
                              bd + it.off[1], p.st[1][last]);
    }
    return TG_OK;
}

/* d(input k) += sum_to(t(dout, input yi, out)) for the local gradient `op`;
 * yi names the operand t reads as y (the other one for mul, b for div). */
static int binary_grad(tg_node *n, const tg_tensor *dout, int k, tg__ew_gradop op, int yi)
{
    tg_tensor *dx = tg_node_grad(n, k);
    if (!dx)
        return TG_OK; /* needs no gradient */
    tg__bcast p;
    tg__bcast_plan_t(&p, n->inputs[0], n->inputs[1]);
    if (p.numel == 0)
        return TG_OK;
    const int last = p.ndim - 1;
    const int64_t sd = p.st[k][last], sy = p.st[yi][last], nx = tg_tensor_numel(dx);
    tg__bcast_it it;
    if (tg_tensor_dtype(dx) == TG_F64) {
        double *d = tg_tensor_data(dx);
        const double *g = tg_tensor_data(dout), *o = tg_tensor_data(n->out);
        const double *y = tg_tensor_data(n->inputs[yi]);
        for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
            tg__ew_bgrad_f64(op, p.inner, d + it.off[k], sd, g + it.row * p.inner, y + it.off[yi],
                             sy, o + it.row * p.inner);
        return TG_OK;
    }
    float *d = tg_tensor_data(dx);
    const float *g = tg_tensor_data(dout), *o = tg_tensor_data(n->out);
    const float *y = tg_tensor_data(n->inputs[yi]);
    if (nx == p.numel) { /* not broadcast: the operand is laid out as the output */
        for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
            tg__ew_bgrad_f32(op, p.inner, d + it.off[k], sd, g + it.row * p.inner, y + it.off[yi],
                             sy, o + it.row * p.inner);
        return TG_OK;
    }
    double *acc = tg_graph_alloc(n->graph, (size_t)nx * sizeof *acc);
    if (!acc)
        return tg_last_status();
    memset(acc, 0, (size_t)nx * sizeof *acc);
    for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
        tg__ew_bgrad_f32d(op, p.inner, acc + it.off[k], sd, g + it.row * p.inner, y + it.off[yi],
                          sy, o + it.row * p.inner);
    for (int64_t i = 0; i < nx; i++)
        d[i] += (float)acc[i];
    return TG_OK;
}

static tg_tensor *binary_apply(tg_graph *g, const tg_op *op, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    return tg_apply(g, op, in, 2, NULL);
}

/* ------------------------------------------------------------------- add */

/* add: y = a + b.  VJP: da += sum_to(dout), db += sum_to(dout). */
static int add_forward(tg_node *n) { return binary_forward(n, TG__EWB_ADD); }
static int add_backward(tg_node *n, const tg_tensor *dout)
{
    int rc = binary_grad(n, dout, 0, TG__EWG_ID, 1);
    return rc ? rc : binary_grad(n, dout, 1, TG__EWG_ID, 0);
}
const tg_op tg_op_add = {.name = "add", .n_inputs = 2, .shape = binary_shape,
                         .forward = add_forward, .backward = add_backward};
tg_tensor *tg_add(tg_graph *g, tg_tensor *a, tg_tensor *b)
{
    return binary_apply(g, &tg_op_add, a, b);
}

/* ------------------------------------------------------------------- sub */

/* sub: y = a - b.  VJP: da += sum_to(dout), db += sum_to(-dout). */
static int sub_forward(tg_node *n) { return binary_forward(n, TG__EWB_SUB); }
static int sub_backward(tg_node *n, const tg_tensor *dout)
{
    int rc = binary_grad(n, dout, 0, TG__EWG_ID, 1);
    return rc ? rc : binary_grad(n, dout, 1, TG__EWG_NEG, 0);
}
const tg_op tg_op_sub = {.name = "sub", .n_inputs = 2, .shape = binary_shape,
                         .forward = sub_forward, .backward = sub_backward};
tg_tensor *tg_sub(tg_graph *g, tg_tensor *a, tg_tensor *b)
{
    return binary_apply(g, &tg_op_sub, a, b);
}

/* ------------------------------------------------------------------- mul */

/* mul: y = a * b.  VJP: da += sum_to(dout * b), db += sum_to(dout * a).
 * tg_mul(g, x, x) gives dx = 2 x: both terms accumulate into x's gradient. */
static int mul_forward(tg_node *n) { return binary_forward(n, TG__EWB_MUL); }
static int mul_backward(tg_node *n, const tg_tensor *dout)
{
    int rc = binary_grad(n, dout, 0, TG__EWG_MUL, 1);
    return rc ? rc : binary_grad(n, dout, 1, TG__EWG_MUL, 0);
}
const tg_op tg_op_mul = {.name = "mul", .n_inputs = 2, .shape = binary_shape,
                         .forward = mul_forward, .backward = mul_backward};
tg_tensor *tg_mul(tg_graph *g, tg_tensor *a, tg_tensor *b)
{
    return binary_apply(g, &tg_op_mul, a, b);
}

/* ------------------------------------------------------------------- div */

/* div: y = a / b (IEEE: x / 0 is +-inf, 0 / 0 NaN).
 * VJP: da += sum_to(dout / b), db += sum_to(-dout * (y / b)) = -dout a / b^2,
 * written with the saved output as PyTorch does (no b^2 to overflow). */
static int div_forward(tg_node *n) { return binary_forward(n, TG__EWB_DIV); }
static int div_backward(tg_node *n, const tg_tensor *dout)
{
    int rc = binary_grad(n, dout, 0, TG__EWG_DIV, 1);
    return rc ? rc : binary_grad(n, dout, 1, TG__EWG_DIVB, 1);
}
const tg_op tg_op_div = {.name = "div", .n_inputs = 2, .shape = binary_shape,
                         .forward = div_forward, .backward = div_backward};
tg_tensor *tg_div(tg_graph *g, tg_tensor *a, tg_tensor *b)
{
    return binary_apply(g, &tg_op_div, a, b);
}

/* ================================================================= unary */

/* Shared by the unary ops: the output has x's shape; forward and VJP are one
 * kernel call over the contiguous data. p is pow's exponent (0 otherwise). */

static int unary_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *x = n->inputs[0];
    out->ndim = tg_tensor_ndim(x);
    if (out->ndim > 0)
        memcpy(out->dims, tg_tensor_shape(x), (size_t)out->ndim * sizeof out->dims[0]);
    return TG_OK;
}

static int unary_forward(tg_node *n, tg__ew_unop op, double p)
{
    const tg_tensor *x = n->inputs[0];
    if (tg_tensor_dtype(x) == TG_F32)
        tg__ew_unary_f32(op, tg_tensor_numel(x), tg_tensor_data(n->out), tg_tensor_data(x), p);
    else
        tg__ew_unary_f64(op, tg_tensor_numel(x), tg_tensor_data(n->out), tg_tensor_data(x), p);
    return TG_OK;
}

static int unary_backward(tg_node *n, const tg_tensor *dout, tg__ew_unop op, double p)
{
    bool fresh;
    tg_tensor *dx = tg_node_grad_fresh(n, 0, &fresh);
    if (!dx)
        return TG_OK;
    const tg_tensor *x = n->inputs[0];
    if (tg_tensor_dtype(x) == TG_F32)
        tg__ew_unary_grad_f32(op, tg_tensor_numel(x), tg_tensor_data(dx), tg_tensor_data(dout),
                              tg_tensor_data(x), tg_tensor_data(n->out), p, !fresh);
    else
        tg__ew_unary_grad_f64(op, tg_tensor_numel(x), tg_tensor_data(dx), tg_tensor_data(dout),
                              tg_tensor_data(x), tg_tensor_data(n->out), p, !fresh);
    return TG_OK;
}

/* One parameterless unary op: its forward, backward, op value and wrapper. */
#define UNARY_OP(NAME, OP)                                                                         \
    static int NAME##_forward(tg_node *n) { return unary_forward(n, OP, 0.0); }                    \
    static int NAME##_backward(tg_node *n, const tg_tensor *dout)                                  \
    {                                                                                              \
        return unary_backward(n, dout, OP, 0.0);                                                   \
    }                                                                                              \
    const tg_op tg_op_##NAME = {.name = #NAME, .n_inputs = 1, .shape = unary_shape,                \
                                .forward = NAME##_forward, .backward = NAME##_backward};           \
    tg_tensor *tg_##NAME(tg_graph *g, tg_tensor *x)                                                \
    {                                                                                              \
        return tg_apply(g, &tg_op_##NAME, &x, 1, NULL);                                            \
    }

/* neg: y = -x.  VJP: dx -= dout. */
UNARY_OP(neg, TG__EWU_NEG)

/* exp: y = e^x.  VJP: dx += dout * y (the saved output). */
UNARY_OP(exp, TG__EWU_EXP)

/* log: y = ln x; x = 0 gives -inf and x < 0 NaN (IEEE, as PyTorch).
 * VJP: dx += dout / x (inf at x = 0, as PyTorch). */
UNARY_OP(log, TG__EWU_LOG)

/* sqrt: y = sqrt(x); x < 0 gives NaN, sqrt(-0) = -0.
 * VJP: dx += dout / (2 y) (inf at x = 0, as PyTorch). */
UNARY_OP(sqrt, TG__EWU_SQRT)

/* relu: y = max(0, x) (NaN and -0 pass through, as torch.relu).
 * VJP: dx += dout where y > 0, else 0: subgradient 0 at x == 0. */
UNARY_OP(relu, TG__EWU_RELU)

/* sigmoid: y = 1 / (1 + e^-x), computed with e = e^-|x| as 1 / (1 + e) for
 * x >= 0 and e / (1 + e) below, so no exp overflows for large |x|.
 * VJP: dx += dout * (1 - y) * y from the saved output. */
UNARY_OP(sigmoid, TG__EWU_SIGMOID)

/* tanh: y = tanh x.  VJP: dx += dout * (1 - y^2) from the saved output. */
UNARY_OP(tanh, TG__EWU_TANH)

/* abs: y = |x|.  VJP: dx += dout * sign(x); subgradient 0 at x == 0. */
UNARY_OP(abs, TG__EWU_ABS)

/* ------------------------------------------------------------------- pow */

/* pow: y = x^p for a scalar attribute p (torch.pow(x, p)).
 * VJP: dx += dout * p * x^(p - 1), and nothing at all for p == 0 (x^0 = 1 is
 * constant, so its gradient is 0 even at x = 0). Edges follow PyTorch: at x = 0
 * a p < 1 (p != 0) gives an inf/NaN gradient; non-integer p on x < 0 gives
 * NaN; x^2, x^3, x^0.5, x^-0.5, x^-1, x^-2 use products, sqrt and reciprocals
 * as torch.pow does, for both y and x^(p - 1). */
typedef struct pow_attrs {
    double p;
} pow_attrs;

static int pow_forward(tg_node *n)
{
    return unary_forward(n, TG__EWU_POW, ((const pow_attrs *)n->attrs)->p);
}
static int pow_backward(tg_node *n, const tg_tensor *dout)
{
    return unary_backward(n, dout, TG__EWU_POW, ((const pow_attrs *)n->attrs)->p);
}
static void pow_print_attrs(const tg_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "p=%.17g", ((const pow_attrs *)n->attrs)->p);
}
const tg_op tg_op_pow = {.name = "pow", .n_inputs = 1, .attr_size = sizeof(pow_attrs),
                         .shape = unary_shape, .forward = pow_forward, .backward = pow_backward,
                         .print_attrs = pow_print_attrs};
tg_tensor *tg_pow(tg_graph *g, tg_tensor *x, double p)
{
    pow_attrs a = {.p = p};
    return tg_apply(g, &tg_op_pow, &x, 1, &a);
}
