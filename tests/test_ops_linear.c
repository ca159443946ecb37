/* tg_linear: gradcheck table (1-D, 2-D, batched 3-D to 5-D x, with and without
 * bias, odd and size-1 sizes, inputs without gradient, a shared leaf, a chain),
 * forward values and gradients from PyTorch, a LeNet-sized float32 product
 * against a double reference, zero-size edges, errors and NULL propagation. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------- gradcheck table */

/* x, w and, when the case has a third input, the bias. */
static tg_tensor *lin_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)ctx;
    return tg_linear(g, xs[0], xs[1], n == 3 ? xs[2] : NULL);
}

/* linear(x, x, b): one leaf is both the input and the weight, so the dx and
 * dw halves of the VJP add into one gradient. */
static tg_tensor *lin_self_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)ctx;
    return tg_linear(g, xs[0], xs[0], n == 2 ? xs[1] : NULL);
}

/* linear(linear(x, w1, b1), w2): the inner output's gradient is an
 * intermediate one, and x's gradient comes through two GEMMs. */
static tg_tensor *lin_chain_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_linear(g, tg_linear(g, xs[0], xs[1], xs[2]), xs[3], NULL);
}

#define IN(nd, ...) {.ndim = (nd), .shape = {__VA_ARGS__}, .fill = GC_UNIFORM}
#define IN_NG(nd, ...) {.ndim = (nd), .shape = {__VA_ARGS__}, .fill = GC_UNIFORM, .no_grad = true}
#define LIN_B(label, x, w, b) {"linear", (label), lin_fn, NULL, 3, {x, w, b}}
#define LIN(label, x, w) {"linear", (label), lin_fn, NULL, 2, {x, w}}

const gc_case gc_cases_linear[] = {
    LIN_B("1-D x [4], w [3, 4], b [3]", IN(1, 4), IN(2, 3, 4), IN(1, 3)),
    LIN("1-D x [4], w [3, 4], no bias", IN(1, 4), IN(2, 3, 4)),
    LIN_B("1-D x [1], w [1, 1], b [1]", IN(1, 1), IN(2, 1, 1), IN(1, 1)),
    LIN_B("2-D [5, 4], w [3, 4], b [3]", IN(2, 5, 4), IN(2, 3, 4), IN(1, 3)),
    LIN("2-D [5, 4], w [3, 4], no bias", IN(2, 5, 4), IN(2, 3, 4)),
    LIN_B("all ones [1, 1], w [1, 1], b [1]", IN(2, 1, 1), IN(2, 1, 1), IN(1, 1)),
    LIN_B("one row [1, 7], w [5, 7], b [5]", IN(2, 1, 7), IN(2, 5, 7), IN(1, 5)),
    LIN_B("in = 1 [6, 1], w [3, 1], b [3]", IN(2, 6, 1), IN(2, 3, 1), IN(1, 3)),
    LIN_B("out = 1 [4, 5], w [1, 5], b [1]", IN(2, 4, 5), IN(2, 1, 5), IN(1, 1)),
    LIN_B("odd sizes [7, 3], w [5, 3], b [5]", IN(2, 7, 3), IN(2, 5, 3), IN(1, 5)),
    LIN_B("odd sizes [9, 6], w [7, 6], b [7]", IN(2, 9, 6), IN(2, 7, 6), IN(1, 7)),
    LIN_B("batched 3-D [2, 3, 4], w [5, 4], b [5]", IN(3, 2, 3, 4), IN(2, 5, 4), IN(1, 5)),
    LIN("batched 3-D [2, 3, 4], w [5, 4], no bias", IN(3, 2, 3, 4), IN(2, 5, 4)),
    LIN_B("size-1 batch [1, 3, 5], w [2, 5], b [2]", IN(3, 1, 3, 5), IN(2, 2, 5), IN(1, 2)),
    LIN_B("size-1 middle [3, 1, 4], w [2, 4], b [2]", IN(3, 3, 1, 4), IN(2, 2, 4), IN(1, 2)),
    LIN_B("batched 4-D [2, 1, 3, 4], w [2, 4], b [2]", IN(4, 2, 1, 3, 4), IN(2, 2, 4), IN(1, 2)),
    LIN("batched 4-D [2, 2, 2, 3], w [3, 3], no bias", IN(4, 2, 2, 2, 3), IN(2, 3, 3)),
    LIN_B("batched 5-D [1, 2, 1, 2, 3], w [2, 3], b [2]", IN(5, 1, 2, 1, 2, 3), IN(2, 2, 3),
          IN(1, 2)),
    LIN_B("x needs no grad [3, 4], w [2, 4], b [2]", IN_NG(2, 3, 4), IN(2, 2, 4), IN(1, 2)),
    LIN_B("w needs no grad [3, 4], w [2, 4], b [2]", IN(2, 3, 4), IN_NG(2, 2, 4), IN(1, 2)),
    LIN_B("b needs no grad [3, 4], w [2, 4], b [2]", IN(2, 3, 4), IN(2, 2, 4), IN_NG(1, 2)),
    LIN_B("only b needs grad [2, 3, 4], w [3, 4], b [3]", IN_NG(3, 2, 3, 4), IN_NG(2, 3, 4),
          IN(1, 3)),
    {"linear", "same leaf as x and w [3, 3], b [3]", lin_self_fn, NULL, 2, {IN(2, 3, 3), IN(1, 3)}},
    {"linear", "same leaf as x and w [4, 4], no bias", lin_self_fn, NULL, 1, {IN(2, 4, 4)}},
    {"linear", "chain [2, 3, 5] -> [4] -> [3]", lin_chain_fn, NULL, 4,
     {IN(3, 2, 3, 5), IN(2, 4, 5), IN(1, 4), IN(2, 3, 4)}},
};
const size_t gc_n_linear = sizeof gc_cases_linear / sizeof gc_cases_linear[0];

Test(ops_linear, gradcheck_table_and_float32_match_float64)
{
    gc_run_table(gc_cases_linear, gc_n_linear);
}

/* ----------------------------------------------------------- helpers */

static void expect_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    cr_assert(t, "NULL tensor: %s", tg_last_error());
    cr_expect_eq(tg_tensor_ndim(t), ndim, "ndim %d, want %d", tg_tensor_ndim(t), ndim);
    for (int i = 0; i < ndim && i < tg_tensor_ndim(t); i++)
        cr_expect_eq(tg_tensor_shape(t)[i], shape[i], "dim %d is %lld, want %lld", i,
                     (long long)tg_tensor_shape(t)[i], (long long)shape[i]);
}

/* ------------------------------------------------------ forward values */

Test(ops_linear, vector_input_by_hand_with_and_without_bias)
{
    /* x = [1, 2, 3], w = [[1, 0, -1], [2, 1, 0.5]]: x w^T = [-2, 5.5]; with
     * b = [0.5, -2]: [-1.5, 3.5] (torch.nn.functional.linear agrees). Exact in
     * both dtypes. */
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 1, SHAPE(3), VALS(1, 2, 3));
        tg_tensor *w = tgt_tensor(dt, 2, SHAPE(2, 3), VALS(1, 0, -1, 2, 1, 0.5));
        tg_tensor *b = tgt_tensor(dt, 1, SHAPE(2), VALS(0.5, -2));
        tg_tensor *y = tg_linear(g, x, w, NULL);
        expect_shape(y, 1, SHAPE(2));
        cr_expect_eq(tg_tensor_dtype(y), dt);
        expect_close(y, VALS(-2, 5.5), 0.0, 0.0);
        tg_tensor *yb = tg_linear(g, x, w, b);
        expect_shape(yb, 1, SHAPE(2));
        expect_close(yb, VALS(-1.5, 3.5), 0.0, 0.0);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        tg_graph_free(g);
    }
}

Test(ops_linear, batched_values_and_grads_match_torch)
{
    /* From PyTorch 1.13, float64:
     *   x = torch.arange(24.).reshape(2, 3, 4) / 5 - 1
     *   w = torch.arange(20.).reshape(5, 4) / 7 - 1.5
     *   b = torch.arange(5.) / 3 - 0.5
     *   y = F.linear(x, w, b)                               # [2, 3, 5]
     *   v = torch.arange(30.).reshape(2, 3, 5) / 8 - 1
     *   y.backward(v); x.grad, w.grad, b.grad */
    static const double want_y[30] = {
        3.242857142857143,   1.976190476190476,   0.7095238095238094,  -0.5571428571428572,
        -1.8238095238095238, -0.8714285714285713, -0.30952380952380953, 0.2523809523809523,
        0.8142857142857143,  1.3761904761904762,  -4.985714285714286,  -2.5952380952380953,
        -0.2047619047619048, 2.185714285714286,   4.576190476190476,   -9.1,
        -4.880952380952381,  -0.6619047619047619, 3.557142857142857,   7.776190476190475,
        -13.214285714285715, -7.166666666666667,  -1.119047619047619,  4.928571428571428,
        10.976190476190476,  -17.32857142857143,  -9.45238095238095,   -1.5761904761904764,
        6.3,                 14.176190476190477};
    static const double want_dx[24] = {
        2.053571428571429,   1.5178571428571428,  0.9821428571428572,  0.4464285714285714,
        0.9375000000000001,  0.8482142857142856,  0.7589285714285714,  0.6696428571428572,
        -0.17857142857142871, 0.1785714285714285, 0.5357142857142858,  0.8928571428571429,
        -1.2946428571428577, -0.4910714285714283, 0.3125000000000004,  1.1160714285714286,
        -2.410714285714287,  -1.160714285714286,  0.08928571428571441, 1.3392857142857144,
        -3.526785714285715,  -1.8303571428571428, -0.13392857142857068, 1.5625};
    static const double want_dw[20] = {12.125, 12.8,   13.475000000000001, 14.149999999999999,
                                       12.875, 13.700000000000001, 14.525, 15.35,
                                       13.625, 14.6,   15.575000000000001, 16.55,
                                       14.375, 15.5,   16.625, 17.75,
                                       15.125, 16.400000000000002, 17.675, 18.95};
    static const double want_db[5] = {3.375, 4.125, 4.875, 5.625, 6.375};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        double tol = dt == TG_F64 ? 1e-12 : 1e-5;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tg_tensor_new(dt, 3, SHAPE(2, 3, 4));
        tg_tensor *w = tg_tensor_new(dt, 2, SHAPE(5, 4));
        tg_tensor *b = tg_tensor_new(dt, 1, SHAPE(5));
        tg_tensor *v = tg_tensor_new(dt, 3, SHAPE(2, 3, 5));
        for (int i = 0; i < 24; i++)
            tg_tensor_set(x, i, i / 5.0 - 1);
        for (int i = 0; i < 20; i++)
            tg_tensor_set(w, i, i / 7.0 - 1.5);
        for (int i = 0; i < 5; i++)
            tg_tensor_set(b, i, i / 3.0 - 0.5);
        for (int i = 0; i < 30; i++)
            tg_tensor_set(v, i, i / 8.0 - 1);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor_set_requires_grad(w, true);
        tg_tensor_set_requires_grad(b, true);
        tg_tensor *y = tg_linear(g, x, w, b);
        expect_shape(y, 3, SHAPE(2, 3, 5));
        expect_close(y, want_y, tol, tol);
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), want_dx, tol, tol);
        expect_close(tg_tensor_grad(w), want_dw, tol, tol);
        expect_close(tg_tensor_grad(b), want_db, tol, tol);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        tg_tensor_free(v);
        tg_graph_free(g);
    }
}

Test(ops_linear, output_shapes_follow_torch)
{
    /* Shapes from F.linear on tensors of these shapes (w [3, 4] throughout). */
    static const struct {
        int nx;
        int64_t x[5], y[5];
    } rows[] = {
        {1, {4}, {3}},
        {2, {1, 4}, {1, 3}},
        {2, {6, 4}, {6, 3}},
        {3, {2, 5, 4}, {2, 5, 3}},
        {4, {2, 1, 3, 4}, {2, 1, 3, 3}},
        {5, {1, 2, 1, 2, 4}, {1, 2, 1, 2, 3}},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_random(TG_F64, rows[r].nx, rows[r].x, -1, 1, 1);
        tg_tensor *w = tgt_random(TG_F64, 2, SHAPE(3, 4), -1, 1, 2);
        tg_tensor *b = tgt_random(TG_F64, 1, SHAPE(3), -1, 1, 3);
        expect_shape(tg_linear(g, x, w, NULL), rows[r].nx, rows[r].y);
        expect_shape(tg_linear(g, x, w, b), rows[r].nx, rows[r].y);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        tg_graph_free(g);
    }
}

/* ----------------------------------------- LeNet size, float32 reference */

/* The first LeNet classifier layer: x [64, 3136] w^T, w [128, 3136], b [128],
 * forward and all three gradients against the same float32 values multiplied
 * and summed in double. */
Test(ops_linear, float32_lenet_fc1_matches_double_reference)
{
    enum { M = 64, K = 3136, N = 128 };
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(TG_F32, 2, SHAPE(M, K), -1, 1, 11);
    tg_tensor *w = tgt_random(TG_F32, 2, SHAPE(N, K), -0.05, 0.05, 12);
    tg_tensor *b = tgt_random(TG_F32, 1, SHAPE(N), -1, 1, 13);
    tg_tensor *v = tgt_random(TG_F32, 2, SHAPE(M, N), -1, 1, 14);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *y = tg_linear(g, x, w, b);
    expect_shape(y, 2, SHAPE(M, N));
    cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());

    const float *X = tg_tensor_data(x), *Wt = tg_tensor_data(w), *B = tg_tensor_data(b),
                *V = tg_tensor_data(v);
    double *ry = malloc(sizeof(double) * M * N), *rdx = malloc(sizeof(double) * M * K),
           *rdw = malloc(sizeof(double) * N * K), *rdb = malloc(sizeof(double) * N);
    cr_assert(ry && rdx && rdw && rdb);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = (double)B[j];
            for (int k = 0; k < K; k++)
                s += (double)X[i * K + k] * (double)Wt[j * K + k];
            ry[i * N + j] = s;
        }
    for (int i = 0; i < M; i++) /* dx = V W */
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += (double)V[i * N + j] * (double)Wt[j * K + k];
            rdx[i * K + k] = s;
        }
    for (int j = 0; j < N; j++) { /* dw = V^T X, db = column sums of V */
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int i = 0; i < M; i++)
                s += (double)V[i * N + j] * (double)X[i * K + k];
            rdw[j * K + k] = s;
        }
        double s = 0;
        for (int i = 0; i < M; i++)
            s += (double)V[i * N + j];
        rdb[j] = s;
    }
    /* Sums of up to 3136 float32 products: rounding grows like sqrt(K) 2^-24
     * times the magnitudes (|y| ~ 2, |dw| ~ 5). */
    expect_close(y, ry, 1e-4, 1e-4);
    expect_close(tg_tensor_grad(x), rdx, 1e-4, 1e-4);
    expect_close(tg_tensor_grad(w), rdw, 1e-4, 1e-4);
    expect_close(tg_tensor_grad(b), rdb, 1e-5, 1e-5);
    free(ry);
    free(rdx);
    free(rdw);
    free(rdb);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(v);
    tg_graph_free(g);
}

/* ------------------------------------------------------- zero-size edges */

/* Runs linear and backward; the output has shape ys and the values want
 * (NULL: all zero); NaN left in the arena where the output lands must not
 * leak through. Gradients exist with the inputs' shapes; dx and dw are zero
 * (nothing flows through an empty product), db is the column sums of v. */
static void check_empty_case(tg_dtype dt, int nx, const int64_t *xs, const int64_t *wsh,
                             bool bias, int ny, const int64_t *ysh)
{
    tg_graph *g = tg_graph_new();
    tg_tensor_fill(tg_graph_tensor(g, dt, ny, ysh), (double)NAN);
    tg_graph_reset(g);
    tg_tensor *x = tgt_random(dt, nx, xs, -1, 1, 3), *w = tgt_random(dt, 2, wsh, -1, 1, 4);
    tg_tensor *b = bias ? tgt_random(dt, 1, SHAPE(wsh[0]), -1, 1, 5) : NULL;
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);
    if (b)
        tg_tensor_set_requires_grad(b, true);
    tg_tensor *y = tg_linear(g, x, w, b);
    expect_shape(y, ny, ysh);
    const int64_t n_out = wsh[0], rows = n_out ? tg_tensor_numel(y) / n_out : 0;
    for (int64_t i = 0; i < tg_tensor_numel(y); i++) {
        double want = b ? tg_tensor_get(b, i % n_out) : 0.0;
        cr_expect_eq(tg_tensor_get(y, i), want, "element %lld is %g, want %g", (long long)i,
                     tg_tensor_get(y, i), want);
    }
    tg_tensor *v = tgt_random(dt, ny, ysh, -1, 1, 6);
    cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
    tg_tensor *gx = tg_tensor_grad(x), *gw = tg_tensor_grad(w);
    cr_assert(gx && gw, "gradients missing");
    expect_shape(gx, nx, xs);
    expect_shape(gw, 2, wsh);
    for (int64_t i = 0; i < tg_tensor_numel(gx); i++)
        cr_expect_eq(tg_tensor_get(gx, i), 0.0);
    for (int64_t i = 0; i < tg_tensor_numel(gw); i++)
        cr_expect_eq(tg_tensor_get(gw, i), 0.0);
    if (b) {
        tg_tensor *gb = tg_tensor_grad(b);
        cr_assert(gb, "bias gradient missing");
        for (int64_t j = 0; j < n_out; j++) {
            double s = 0;
            for (int64_t r = 0; r < rows; r++)
                s += tg_tensor_get(v, r * n_out + j);
            cr_expect(fabs(tg_tensor_get(gb, j) - s) <= 1e-6, "db[%lld] = %g, want %g",
                      (long long)j, tg_tensor_get(gb, j), s);
        }
    }
    tg_tensor_free(v);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_linear, zero_in_features_give_the_bias_like_torch)
{
    /* F.linear(torch.zeros(3, 0), torch.zeros(2, 0), torch.tensor([1., 2.]))
     * is [[1, 2]] * 3; without the bias it is zeros(3, 2). */
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        check_empty_case(dt, 2, SHAPE(3, 0), SHAPE(2, 0), true, 2, SHAPE(3, 2));
        check_empty_case(dt, 2, SHAPE(3, 0), SHAPE(2, 0), false, 2, SHAPE(3, 2));
        check_empty_case(dt, 1, SHAPE(0), SHAPE(4, 0), true, 1, SHAPE(4));
        check_empty_case(dt, 3, SHAPE(2, 2, 0), SHAPE(3, 0), true, 3, SHAPE(2, 2, 3));
    }
}

Test(ops_linear, empty_batch_or_out_features_give_empty_results)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        check_empty_case(dt, 2, SHAPE(0, 3), SHAPE(2, 3), true, 2, SHAPE(0, 2));
        check_empty_case(dt, 3, SHAPE(2, 0, 3), SHAPE(2, 3), false, 3, SHAPE(2, 0, 2));
        check_empty_case(dt, 2, SHAPE(4, 3), SHAPE(0, 3), true, 2, SHAPE(4, 0));
        check_empty_case(dt, 1, SHAPE(3), SHAPE(0, 3), false, 1, SHAPE(0));
    }
}

/* ------------------------------------------------------------ gradients */

Test(ops_linear, second_backward_accumulates_leaf_gradients)
{
    /* y = x w^T + b with x [1, 2] = [1, 2], w [1, 2] = [3, 4], b = [5]:
     * y = 16; dy = 1 gives dx = w = [3, 4], dw = x = [1, 2], db = 1. */
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F64, 2, SHAPE(1, 2), VALS(1, 2));
    tg_tensor *w = tgt_tensor(TG_F64, 2, SHAPE(1, 2), VALS(3, 4));
    tg_tensor *b = tgt_tensor(TG_F64, 1, SHAPE(1), VALS(5));
    tg_tensor_set_requires_grad(x, true);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *y = tg_linear(g, x, w, b);
    expect_close(y, VALS(16), 0.0, 0.0);
    tg_tensor *s = tg_tensor_new(TG_F64, 2, SHAPE(1, 1));
    tg_tensor_fill(s, 1.0);
    for (int rep = 1; rep <= 2; rep++) {
        cr_assert_eq(tg_backward_with(g, y, s), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(3.0 * rep, 4.0 * rep), 0.0, 0.0);
        expect_close(tg_tensor_grad(w), VALS(1.0 * rep, 2.0 * rep), 0.0, 0.0);
        expect_close(tg_tensor_grad(b), VALS(1.0 * rep), 0.0, 0.0);
    }
    tg_tensor_free(s);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_linear, only_inputs_that_require_grad_get_one)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(TG_F32, 2, SHAPE(3, 4), -1, 1, 1);
    tg_tensor *w = tgt_random(TG_F32, 2, SHAPE(2, 4), -1, 1, 2);
    tg_tensor *b = tgt_random(TG_F32, 1, SHAPE(2), -1, 1, 3);
    tg_tensor *y = tg_linear(g, x, w, b);
    cr_assert(y, "%s", tg_last_error());
    cr_expect_eq(tg_graph_n_nodes(g), 0, "no input requires grad: no node");
    tg_tensor_set_requires_grad(b, true);
    y = tg_linear(g, x, w, b);
    cr_expect_eq(tg_graph_n_nodes(g), 1);
    tg_tensor *v = tgt_random(TG_F32, 2, SHAPE(3, 2), -1, 1, 4);
    cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_grad(x) == NULL && tg_tensor_grad(w) == NULL);
    cr_expect(tg_tensor_grad(b) != NULL);
    tg_tensor_free(v);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

/* linear(x, w, b) must fail with `status` and a message naming the op, the
 * problem and the shapes given. */
static void check_error(int nx, const int64_t *xs, int nw, const int64_t *wsh, int nb,
                        const int64_t *bs, int status, const char *what, const char *s1,
                        const char *s2)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, nx, xs), *w = tg_tensor_new(TG_F64, nw, wsh);
    tg_tensor *b = nb >= 0 ? tg_tensor_new(TG_F64, nb, bs) : NULL;
    cr_assert(x && w && (nb < 0 || b));
    tg_error_clear();
    expect_error(tg_linear(g, x, w, b) == NULL, "tg_linear: ", what, s1, s2);
    cr_expect_eq(tg_last_status(), status, "status %s", tg_status_name(tg_last_status()));
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_linear, in_features_mismatch_message_is_exact)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *w = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    cr_expect_null(tg_linear(g, x, w, NULL));
    cr_expect_str_eq(tg_last_error(), "tg_linear: in-features differ: x [2, 3] has 3, "
                                      "w [4, 5] has 5 (w is [out, in])");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

Test(ops_linear, in_features_mismatch_in_every_rank)
{
    check_error(1, SHAPE(3), 2, SHAPE(2, 4), -1, NULL, TG_ERR_SHAPE, "in-features differ",
                "x [3]", "w [2, 4]");
    check_error(3, SHAPE(2, 3, 4), 2, SHAPE(5, 3), 1, SHAPE(5), TG_ERR_SHAPE,
                "in-features differ", "x [2, 3, 4]", "w [5, 3]");
    check_error(4, SHAPE(2, 1, 3, 4), 2, SHAPE(4, 5), -1, NULL, TG_ERR_SHAPE,
                "in-features differ", "x [2, 1, 3, 4]", "w [4, 5]");
    check_error(2, SHAPE(2, 0), 2, SHAPE(3, 1), -1, NULL, TG_ERR_SHAPE, "in-features differ",
                "x [2, 0]", "w [3, 1]");
}

Test(ops_linear, bias_of_the_wrong_length_or_rank_is_rejected)
{
    check_error(2, SHAPE(2, 5), 2, SHAPE(4, 5), 1, SHAPE(3), TG_ERR_SHAPE,
                "bias must be [out] = [4]: got bias [3]", "w [4, 5]", "x [2, 5]");
    check_error(2, SHAPE(2, 5), 2, SHAPE(4, 5), 1, SHAPE(5), TG_ERR_SHAPE,
                "bias must be [out] = [4]: got bias [5]", "w [4, 5]", "x [2, 5]");
    check_error(2, SHAPE(2, 5), 2, SHAPE(4, 5), 2, SHAPE(1, 4), TG_ERR_SHAPE,
                "got bias [1, 4]", "w [4, 5]", "x [2, 5]");
    check_error(2, SHAPE(2, 5), 2, SHAPE(1, 5), 0, NULL, TG_ERR_SHAPE, "got bias []",
                "w [1, 5]", "x [2, 5]");
}

Test(ops_linear, bad_ranks_are_rejected)
{
    check_error(0, NULL, 2, SHAPE(2, 1), -1, NULL, TG_ERR_SHAPE, "x must be at least 1-D",
                "x []", "w [2, 1]");
    check_error(2, SHAPE(2, 3), 1, SHAPE(3), -1, NULL, TG_ERR_SHAPE, "w must be 2-D [out, in]",
                "x [2, 3]", "w [3]");
    check_error(2, SHAPE(2, 3), 3, SHAPE(1, 4, 3), 1, SHAPE(4), TG_ERR_SHAPE,
                "w must be 2-D [out, in]", "x [2, 3]", "w [1, 4, 3]");
    check_error(2, SHAPE(2, 3), 0, NULL, -1, NULL, TG_ERR_SHAPE, "w must be 2-D", "x [2, 3]",
                "w []");
}

extern const tg_op tg_op_linear; /* until ops.def lists it (ops.h declares the table's ops) */

Test(ops_linear, wrong_input_counts_through_tg_apply_are_rejected)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *w = tg_tensor_new(TG_F64, 2, SHAPE(4, 3));
    tg_tensor *in[4] = {x, w, x, w};
    tg_error_clear();
    expect_error(tg_apply(g, &tg_op_linear, in, 1, NULL) == NULL, "tg_linear: ", "2 or 3 inputs",
                 "got 1");
    tg_error_clear();
    expect_error(tg_apply(g, &tg_op_linear, in, 4, NULL) == NULL, "tg_linear: ", "2 or 3 inputs",
                 "got 4");
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

Test(ops_linear, mixed_dtypes_are_rejected)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_tensor *w = tg_tensor_new(TG_F32, 2, SHAPE(4, 3));
    tg_tensor *b = tg_tensor_new(TG_F64, 1, SHAPE(4));
    expect_error(tg_linear(g, x, w, b) == NULL, "tg_linear", "float32", "float64", "[2, 3]",
                 "[4, 3]", "[4]");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_linear, null_input_returns_null)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *w = tg_tensor_new(TG_F64, 2, SHAPE(4, 3));
    tg_error_clear();
    expect_error(tg_linear(g, NULL, w, NULL) == NULL, "tg_linear", "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_linear(g, x, NULL, NULL) == NULL, "tg_linear", "input 1 is NULL");
    tg_error_clear();
    expect_error(tg_linear(NULL, x, w, NULL) == NULL, "tg_linear", "graph is NULL");
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

Test(ops_linear, null_input_keeps_the_first_error_of_a_chain)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *w = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    tg_tensor *w2 = tg_tensor_new(TG_F64, 2, SHAPE(2, 4));
    tg_error_clear();
    /* linear(x, w) fails; the outer calls get NULL and must not overwrite it. */
    tg_tensor *y = tg_linear(g, tg_linear(g, tg_linear(g, x, w, NULL), w2, NULL), w2, NULL);
    cr_expect_null(y);
    cr_expect_str_eq(tg_last_error(), "tg_linear: in-features differ: x [2, 3] has 3, "
                                      "w [4, 5] has 5 (w is [out, in])");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(w2);
    tg_graph_free(g);
}
