/* The graph and backward: topological order, accumulation on fan-out and
 * diamonds, deep chains with no recursion, repeated backward, no-grad, detach,
 * arena reuse, and the errors of backward. */
#include "helpers.h"

#include <math.h>
#include <string.h>

static tg_tensor *scalar_leaf(tg_dtype dt, double v)
{
    tg_tensor *t = tg_tensor_new(dt, 0, NULL);
    tg_tensor_set(t, 0, v);
    tg_tensor_set_requires_grad(t, true);
    return t;
}

Test(graph, tensor_used_twice_gets_both_contributions)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 3.0);
    tg_tensor *y = tg_add(g, x, x);
    cr_assert(y);
    cr_assert_eq(tg_backward(g, y), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 2.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, diamond_gives_exact_gradients)
{
    /* u = x * w; v = u + u * x; dv/dx = w + 2 x w, dv/dw = x + x^2. */
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 3.0), *w = scalar_leaf(TG_F64, 5.0);
    tg_tensor *u = tg_mul(g, x, w);
    tg_tensor *v = tg_add(g, u, tg_mul(g, u, x));
    cr_assert_eq(tg_backward(g, v), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 5.0 + 2 * 3.0 * 5.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(w), 0) == 3.0 + 9.0);
    /* The intermediate's gradient can be read until reset: dv/du = 1 + x. */
    cr_expect(tg_tensor_get(tg_tensor_grad(u), 0) == 4.0);
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(w);
}

Test(graph, ladder_of_30_levels_gives_two_to_the_30)
{
    for (int dt = 0; dt < 2; dt++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = scalar_leaf((tg_dtype)dt, 1.0);
        tg_tensor *h = x;
        for (int i = 0; i < 30; i++)
            h = tg_add(g, h, h);
        cr_assert_eq(tg_backward(g, h), TG_OK, "%s", tg_last_error());
        cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 1073741824.0, "%s: got %.17g",
                  tg_dtype_name((tg_dtype)dt), tg_tensor_get(tg_tensor_grad(x), 0));
        cr_expect(tg_tensor_get(h, 0) == 1073741824.0);
        tg_graph_free(g);
        tg_tensor_free(x);
    }
}

Test(graph, tensor_used_100000_times_gets_exactly_100000)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 0.5);
    tg_tensor *acc = x;
    for (int i = 1; i < 100000; i++)
        acc = tg_add(g, acc, x);
    cr_assert(acc, "%s", tg_last_error());
    cr_assert_eq(tg_backward(g, acc), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 100000.0, "got %.17g",
              tg_tensor_get(tg_tensor_grad(x), 0));
    cr_expect(tg_tensor_get(acc, 0) == 50000.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, chain_of_a_million_ops_needs_no_recursion, .timeout = 120)
{
    /* Runs under the default 8 MiB stack (and under ASan in make test):
     * a recursive sort or free would overflow here. */
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F32, 2.0);
    tg_tensor *h = x;
    for (int i = 0; i < 1000000; i++)
        h = tg_neg(g, h);
    cr_assert(h, "%s", tg_last_error());
    cr_expect_eq(tg_graph_n_nodes(g), 1000000);
    cr_assert_eq(tg_backward(g, h), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 1.0); /* (-1)^1e6 */
    cr_expect(tg_tensor_get(h, 0) == 2.0);
    tg_graph_reset(g);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, backward_twice_accumulates_leaves_and_recomputes_intermediates)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 3.0);
    tg_tensor *u = tg_mul(g, x, x);
    tg_tensor *y = tg_mul(g, u, x); /* x^3, dy/dx = 27, dy/du = 3 */
    cr_assert_eq(tg_backward(g, y), TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 27.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(u), 0) == 3.0);
    cr_assert_eq(tg_backward(g, y), TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 54.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(u), 0) == 3.0, "intermediates start from zero");
    tg_tensor_zero_grad(x);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 0.0);
    cr_assert_eq(tg_backward(g, y), TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 27.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, leaf_gradients_accumulate_across_graphs_until_zeroed)
{
    tg_tensor *x = scalar_leaf(TG_F64, 2.0);
    for (int step = 1; step <= 3; step++) {
        tg_graph *g = tg_graph_new();
        cr_assert_eq(tg_backward(g, tg_mul(g, x, x)), TG_OK);
        cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 4.0 * step);
        tg_graph_free(g);
    }
    tg_tensor_free(x);
}

Test(graph, ops_without_grad_inputs_record_nothing)
{
    tg_graph *g = tg_graph_new();
    int64_t s[] = {3};
    tg_tensor *a = tg_tensor_new(TG_F32, 1, s), *b = tg_tensor_new(TG_F32, 1, s);
    tg_tensor *c = tg_add(g, a, b);
    cr_assert(c);
    cr_expect(!tg_tensor_requires_grad(c));
    cr_expect_eq(tg_graph_n_nodes(g), 0);
    expect_error(tg_backward(g, tg_sum(g, c)) == TG_ERR_GRAD, "tg_backward", "does not require grad");
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(graph, no_grad_switch_records_nothing)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 1.5);
    cr_expect(!tg_graph_set_no_grad(g, true));
    cr_expect(tg_graph_no_grad(g));
    tg_tensor *y = tg_mul(g, x, x);
    cr_expect(tg_tensor_get(y, 0) == 2.25);
    cr_expect(!tg_tensor_requires_grad(y));
    cr_expect_eq(tg_graph_n_nodes(g), 0);
    cr_expect(tg_graph_set_no_grad(g, false));
    tg_tensor *z = tg_mul(g, x, x);
    cr_expect(tg_tensor_requires_grad(z));
    cr_expect_eq(tg_graph_n_nodes(g), 1);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, detach_stops_gradients)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 3.0);
    tg_tensor *u = tg_mul(g, x, x);
    tg_tensor *d = tg_detach(g, u);
    cr_expect(!tg_tensor_requires_grad(d));
    cr_expect(tg_tensor_get(d, 0) == 9.0);
    tg_tensor *y = tg_add(g, tg_mul(g, d, x), u); /* d treated as a constant 9 */
    cr_assert_eq(tg_backward(g, y), TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 9.0 + 6.0);
    expect_error(tg_detach(g, NULL) == NULL, "tg_detach");
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, backward_with_a_cotangent_for_any_root)
{
    tg_graph *g = tg_graph_new();
    int64_t s[] = {2, 2};
    double xv[] = {1, 2, 3, 4}, cv[] = {1, 10, 100, 1000};
    tg_tensor *x = tgt_tensor(TG_F64, 2, s, xv);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *c = tgt_tensor(TG_F64, 2, s, cv);
    tg_tensor *y = tg_mul(g, x, x);
    expect_error(tg_backward(g, y) == TG_ERR_GRAD, "tg_backward", "[2, 2]", "4 elements");
    cr_assert_eq(tg_backward_with(g, y, c), TG_OK, "%s", tg_last_error());
    const double want[] = {2, 40, 600, 8000};
    expect_close(tg_tensor_grad(x), want, 0, 0);

    int64_t s3[] = {3};
    tg_tensor *bad = tg_tensor_new(TG_F64, 1, s3);
    expect_error(tg_backward_with(g, y, bad) == TG_ERR_SHAPE, "tg_backward_with", "[3]", "[2, 2]");
    tg_tensor *bad_dt = tg_tensor_new(TG_F32, 2, s);
    expect_error(tg_backward_with(g, y, bad_dt) == TG_ERR_SHAPE, "float32", "float64");
    expect_error(tg_backward_with(g, y, NULL) == TG_ERR_NULL, "tg_backward_with", "cotangent");
    tg_error_clear();
    expect_error(tg_backward(g, NULL) == TG_ERR_NULL, "tg_backward", "root is NULL");
    expect_error(tg_backward(NULL, y) == TG_ERR_NULL, "tg_backward", "graph is NULL");
    tg_tensor_free(bad);
    tg_tensor_free(bad_dt);
    tg_tensor_free(c);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(graph, leaf_root_gets_the_cotangent)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F32, 4.0);
    cr_assert_eq(tg_backward(g, x), TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 1.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, tensors_of_another_graph_are_rejected)
{
    tg_graph *g1 = tg_graph_new(), *g2 = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 1.0);
    tg_tensor *y = tg_mul(g1, x, x);
    expect_error(tg_add(g2, y, x) == NULL, "tg_add", "another graph");
    expect_error(tg_backward(g2, y) == TG_ERR_ARG, "tg_backward", "another graph");
    tg_graph_free(g1);
    tg_graph_free(g2);
    tg_tensor_free(x);
}

Test(graph, reset_reuses_the_arena_without_growing)
{
    tg_graph *g = tg_graph_new();
    int64_t s[] = {64, 1024}; /* 256 KiB per float32 tensor: spills the first chunk */
    tg_tensor *x = tg_tensor_new(TG_F32, 2, s);
    tg_tensor_set_requires_grad(x, true);
    size_t bytes[6];
    for (int step = 0; step < 6; step++) {
        tg_tensor *y = tg_sum(g, tg_mul(g, tg_add(g, x, x), x));
        cr_assert(y, "%s", tg_last_error());
        cr_assert_eq(tg_backward(g, y), TG_OK);
        bytes[step] = tg_graph_arena_bytes(g);
        tg_graph_reset(g);
        cr_expect_eq(tg_graph_n_nodes(g), 0);
    }
    for (int step = 2; step < 6; step++)
        cr_expect_eq(bytes[step], bytes[1], "arena grew at step %d: %zu -> %zu", step, bytes[1],
                     bytes[step]);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, graph_tensor_and_alloc)
{
    tg_graph *g = tg_graph_new();
    int64_t s[] = {5};
    tg_tensor *t = tg_graph_tensor(g, TG_F64, 1, s);
    cr_assert(t);
    cr_expect(tg_tensor_get(t, 4) == 0.0);
    tg_tensor_free(t); /* arena tensor: a no-op */
    cr_expect_eq(tg_tensor_set_requires_grad(t, true), TG_OK, "an arena leaf may require grad");
    void *p = tg_graph_alloc(g, 100);
    cr_expect(p && ((uintptr_t)p % 64) == 0);
    cr_expect_null(tg_graph_tensor(NULL, TG_F32, 1, s));
    cr_expect_null(tg_graph_alloc(NULL, 8));
    tg_tensor *y = tg_mul(g, t, t);
    expect_error(tg_tensor_set_requires_grad(y, false) == TG_ERR_ARG, "not a leaf", "tg_mul");
    tg_graph_reset(NULL);
    tg_graph_free(NULL);
    tg_graph_free(g);
}

/* ---- Reverse topological order, observed through a custom op ---- */

typedef struct trace_attrs {
    int id;
    int *log;
    int *n_log;
} trace_attrs;

static int trace_shape(const tg_node *n, tg_shape *out)
{
    const tg_tensor *x = n->inputs[0];
    out->ndim = tg_tensor_ndim(x);
    memcpy(out->dims, tg_tensor_shape(x), (size_t)out->ndim * sizeof(int64_t));
    return TG_OK;
}

static int trace_forward(tg_node *n)
{
    /* y = sum of inputs (all of one shape). */
    tg_tensor *y = n->out;
    double *d = tg_tensor_data(y);
    for (int64_t i = 0; i < tg_tensor_numel(y); i++) {
        d[i] = 0;
        for (int k = 0; k < n->n_inputs; k++)
            d[i] += ((double *)tg_tensor_data(n->inputs[k]))[i];
    }
    return TG_OK;
}

static int trace_backward(tg_node *n, const tg_tensor *dout)
{
    trace_attrs *a = n->attrs;
    a->log[(*a->n_log)++] = a->id;
    for (int k = 0; k < n->n_inputs; k++) {
        tg_tensor *dx = tg_node_grad(n, k);
        if (!dx)
            continue;
        for (int64_t i = 0; i < tg_tensor_numel(dx); i++)
            ((double *)tg_tensor_data(dx))[i] += ((const double *)tg_tensor_data(dout))[i];
    }
    return TG_OK;
}

static const tg_op trace_op = {.name = "trace", .n_inputs = TG_VARIADIC,
                               .attr_size = sizeof(trace_attrs), .shape = trace_shape,
                               .forward = trace_forward, .backward = trace_backward};

static tg_tensor *trace(tg_graph *g, int id, int *log, int *n_log, tg_tensor *a, tg_tensor *b)
{
    trace_attrs at = {id, log, n_log};
    tg_tensor *in[2] = {a, b};
    return tg_apply(g, &trace_op, in, b ? 2 : 1, &at);
}

Test(graph, vjps_run_in_reverse_topological_order)
{
    /*      x -> 1 -> 2 ----> 4 -> 5
     *           \-> 3 ---/        (4 takes 2 and 3; 5 takes 4 and 1) */
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 1.0);
    int log[8], n_log = 0;
    tg_tensor *t1 = trace(g, 1, log, &n_log, x, NULL);
    tg_tensor *t2 = trace(g, 2, log, &n_log, t1, NULL);
    tg_tensor *t3 = trace(g, 3, log, &n_log, t1, NULL);
    tg_tensor *t4 = trace(g, 4, log, &n_log, t2, t3);
    tg_tensor *t5 = trace(g, 5, log, &n_log, t4, t1);
    cr_assert_eq(tg_backward(g, t5), TG_OK, "%s", tg_last_error());
    cr_assert_eq(n_log, 5, "each VJP runs once");
    int pos[6] = {0};
    for (int i = 0; i < 5; i++)
        pos[log[i]] = i;
    cr_expect(pos[5] < pos[4] && pos[4] < pos[2] && pos[4] < pos[3]);
    cr_expect(pos[2] < pos[1] && pos[3] < pos[1] && pos[5] < pos[1]);
    /* t5 = t4 + t1 = (t1 + t1) + t1 = 3x */
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 3.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, null_inputs_propagate_the_first_error)
{
    tg_graph *g = tg_graph_new();
    int64_t a[] = {2, 3}, b[] = {4, 5};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, a), *w = tg_tensor_new(TG_F64, 2, b);
    tg_error_clear();
    tg_tensor *y = tg_exp(g, tg_relu(g, tg_matmul(g, x, w)));
    expect_error(y == NULL, "tg_matmul", "inner dimensions differ", "[2, 3]", "[4, 5]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_error_clear();
    expect_error(tg_relu(g, NULL) == NULL, "tg_relu: input 0 is NULL");
    expect_error(tg_relu(NULL, x) == NULL, "tg_relu", "graph is NULL");
    expect_error(tg_apply(g, NULL, &x, 1, NULL) == NULL, "tg_apply", "op is NULL");
    expect_error(tg_apply(g, &trace_op, &x, 1, NULL) == NULL, "tg_trace", "attributes are NULL");
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

/* ---- First contributions: tg_node_grad_fresh ---- */

/* y = 2 x, whose VJP takes its buffer with tg_node_grad_fresh: on the first
 * contribution it assigns, after that it adds. The buffer is NaN-poisoned
 * where the engine hands it out unfilled, so a wrong assign/add shows. */
static int twice_forward(tg_node *n)
{
    const double *x = tg_tensor_data(n->inputs[0]);
    double *y = tg_tensor_data(n->out);
    for (int64_t i = 0; i < tg_tensor_numel(n->out); i++)
        y[i] = 2 * x[i];
    return TG_OK;
}

static int n_fresh;

static int twice_backward(tg_node *n, const tg_tensor *dout)
{
    bool fresh;
    tg_tensor *dx = tg_node_grad_fresh(n, 0, &fresh);
    if (!dx)
        return TG_OK;
    double *d = tg_tensor_data(dx);
    const double *g = tg_tensor_data(dout);
    n_fresh += fresh;
    for (int64_t i = 0; i < tg_tensor_numel(dx); i++)
        d[i] = (fresh ? 0.0 : d[i]) + 2 * g[i];
    return TG_OK;
}

static const tg_op twice_op = {.name = "twice", .n_inputs = 1, .shape = trace_shape,
                               .forward = twice_forward, .backward = twice_backward};

/* A VJP that sends nothing back (its input's gradient is left untouched). */
static int silent_backward(tg_node *n, const tg_tensor *dout)
{
    (void)n, (void)dout;
    return TG_OK;
}

static const tg_op silent_op = {.name = "silent", .n_inputs = 1, .shape = trace_shape,
                                .forward = twice_forward, .backward = silent_backward};

Test(graph, first_contribution_assigns_and_later_ones_add)
{
    tg_graph *g = tg_graph_new();
    int64_t shape[] = {3};
    tg_tensor *x = tg_tensor_from(TG_F64, 1, shape, (double[]){1, -2, 3});
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *u = tg_mul(g, x, x); /* an intermediate: its gradient can be fresh */
    tg_tensor *a = tg_apply(g, &twice_op, &u, 1, NULL);
    tg_tensor *b = tg_apply(g, &twice_op, &u, 1, NULL);
    tg_tensor *y = tg_sum(g, tg_add(g, tg_mul(g, a, a), b)); /* 4u^2 + 2u */
    cr_assert(y, "%s", tg_last_error());
    for (int pass = 1; pass <= 2; pass++) {
        n_fresh = 0;
        cr_assert_eq(tg_backward(g, y), TG_OK, "%s", tg_last_error());
        cr_expect_eq(n_fresh, 1, "pass %d: one first contribution to u's gradient", pass);
        for (int i = 0; i < 3; i++) {
            const double ui = tg_tensor_get(u, i), xi = tg_tensor_get(x, i);
            cr_expect(tg_tensor_get(tg_tensor_grad(u), i) == 8 * ui + 2, "pass %d: du[%d]", pass,
                      i);
            cr_expect(tg_tensor_get(tg_tensor_grad(x), i) == pass * (8 * ui + 2) * 2 * xi,
                      "pass %d: dx[%d] accumulates", pass, i);
        }
    }
    /* A leaf's gradient is never fresh once it exists: it keeps accumulating. */
    n_fresh = 0;
    tg_tensor *c = tg_sum(g, tg_apply(g, &twice_op, &x, 1, NULL));
    cr_assert_eq(tg_backward(g, c), TG_OK, "%s", tg_last_error());
    cr_expect_eq(n_fresh, 0);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 1) == 2 * (8 * 4.0 + 2) * 2 * -2.0 + 2);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(graph, an_intermediate_nothing_reaches_reads_zero_on_a_later_backward)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = scalar_leaf(TG_F64, 3.0);
    tg_tensor *u = tg_mul(g, x, x);
    tg_tensor *s = tg_apply(g, &silent_op, &u, 1, NULL);
    tg_tensor *y1 = tg_add(g, u, s), *y2 = tg_add(g, s, s);
    cr_assert(y1 && y2, "%s", tg_last_error());
    cr_assert_eq(tg_backward(g, y1), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(u), 0) == 1.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 6.0);
    /* y2 reaches u only through the silent VJP: u's gradient is now zero. */
    cr_assert_eq(tg_backward(g, y2), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_get(tg_tensor_grad(u), 0) == 0.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(s), 0) == 2.0);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 6.0);
    tg_graph_free(g);
    tg_tensor_free(x);
}
