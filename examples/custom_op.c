/* custom_op: defining your own op (Swish / SiLU, y = x * sigmoid(x)) with the
 * same public struct and entry point the built-in ops use, using it in a graph
 * next to built-ins, and gradchecking it.
 *
 *   make examples && ./build/examples/custom_op */
#include "tgrad.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- The op: shape rule, forward and VJP side by side ----
 * swish: y = x * s, s = 1 / (1 + e^-x).
 * VJP: dx += dout * (s + x * s * (1 - s)) = dout * (s + y * (1 - s)). */

static int swish_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *x = n->inputs[0];
    out->ndim = tg_tensor_ndim(x);
    memcpy(out->dims, tg_tensor_shape(x), (size_t)out->ndim * sizeof(int64_t));
    return TG_OK; /* any shape works; tg_apply already checked NULL and dtypes */
}

static double sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

static int swish_forward(tg_node *n)
{
    const tg_tensor *x = n->inputs[0];
    for (int64_t i = 0; i < tg_tensor_numel(x); i++) {
        double v = tg_tensor_get(x, i);
        tg_tensor_set(n->out, i, v * sigmoid(v));
    }
    return TG_OK;
}

static int swish_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0); /* NULL when x needs no gradient */
    if (!dx)
        return TG_OK;
    const tg_tensor *x = n->inputs[0];
    for (int64_t i = 0; i < tg_tensor_numel(x); i++) {
        double v = tg_tensor_get(x, i), s = sigmoid(v);
        double d = tg_tensor_get(dout, i) * (s + v * s * (1.0 - s));
        tg_tensor_set(dx, i, tg_tensor_get(dx, i) + d); /* accumulate, never assign */
    }
    return TG_OK;
}

static const tg_op swish_op = {
    .name = "swish",
    .n_inputs = 1,
    .shape = swish_shape,
    .forward = swish_forward,
    .backward = swish_backward,
};

static tg_tensor *swish(tg_graph *g, tg_tensor *x) { return tg_apply(g, &swish_op, &x, 1, NULL); }

/* ---- A graph using it: loss = mean(swish(x @ w)) ---- */

static tg_tensor *model(tg_graph *g, tg_tensor **in, int n_in, void *ctx)
{
    (void)n_in;
    (void)ctx;
    return tg_mean(g, swish(g, tg_matmul(g, in[0], in[1])));
}

int main(void)
{
    int64_t xs[] = {4, 3}, ws[] = {3, 2};
    tg_rng rng;
    tg_rng_seed(&rng, 1, 0);
    tg_tensor *x = tg_tensor_new(TG_F64, 2, xs), *w = tg_tensor_new(TG_F64, 2, ws);
    for (int64_t i = 0; i < 12; i++)
        tg_tensor_set(x, i, tg_rng_normal(&rng));
    for (int64_t i = 0; i < 6; i++)
        tg_tensor_set(w, i, tg_rng_normal(&rng));
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);

    tg_graph *g = tg_graph_new();
    tg_tensor *in[2] = {x, w};
    tg_tensor *loss = model(g, in, 2, NULL);
    if (!loss || tg_backward(g, loss) != TG_OK) {
        fprintf(stderr, "error: %s\n", tg_last_error());
        return 1;
    }
    printf("loss = %.6f\n", tg_tensor_get(loss, 0));
    for (int64_t i = 0; i < 6; i++)
        printf("dloss/dw[%lld] = % .6f\n", (long long)i, tg_tensor_get(tg_tensor_grad(w), i));

    tg_gradcheck_report rep;
    int rc = tg_gradcheck(model, NULL, in, 2, NULL, &rep);
    printf("gradcheck: %s\n", rep.message);

    /* Errors from a custom op read like the built-ins': "tg_swish: ...". */
    tg_tensor *bad = swish(g, NULL);
    printf("swish(NULL) -> %s (%s)\n", bad ? "tensor" : "NULL", tg_last_error());

    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(w);
    return rc == TG_OK ? 0 : 1;
}
