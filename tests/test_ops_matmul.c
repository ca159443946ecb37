/* tg_matmul: gradcheck table (1-D, 2-D, batched, broadcast, rank 4-5), fixed
 * values by hand and from PyTorch, a large float32 product against a float64
 * reference, zero-size edges, errors and NULL propagation. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------- gradcheck table */

static tg_tensor *mm_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_matmul(g, xs[0], xs[1]);
}

/* x @ x: both operands are the same leaf, so both VJP halves add into one grad. */
static tg_tensor *mm_self_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_matmul(g, xs[0], xs[0]);
}

/* x @ (x @ y): x feeds two nodes, and the inner node's gradient is an
 * intermediate one. */
static tg_tensor *mm_chain_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_matmul(g, xs[0], tg_matmul(g, xs[0], xs[1]));
}

#define IN(nd, ...) {.ndim = (nd), .shape = {__VA_ARGS__}, .fill = GC_UNIFORM}
#define IN_NG(nd, ...) {.ndim = (nd), .shape = {__VA_ARGS__}, .fill = GC_UNIFORM, .no_grad = true}
#define MM(label, a, b) {"matmul", (label), mm_fn, NULL, 2, {a, b}}

const gc_case gc_cases_matmul[] = {
    MM("dot [5] . [5]", IN(1, 5), IN(1, 5)),
    MM("dot [1] . [1]", IN(1, 1), IN(1, 1)),
    MM("vec-mat [4] @ [4, 3]", IN(1, 4), IN(2, 4, 3)),
    MM("mat-vec [3, 4] @ [4]", IN(2, 3, 4), IN(1, 4)),
    MM("1x1 [1, 1] @ [1, 1]", IN(2, 1, 1), IN(2, 1, 1)),
    MM("row @ col [1, 5] @ [5, 1]", IN(2, 1, 5), IN(2, 5, 1)),
    MM("outer, K = 1 [4, 1] @ [1, 3]", IN(2, 4, 1), IN(2, 1, 3)),
    MM("Mx1 result [6, 4] @ [4, 1]", IN(2, 6, 4), IN(2, 4, 1)),
    MM("1xK [1, 6] @ [6, 5]", IN(2, 1, 6), IN(2, 6, 5)),
    MM("square [3, 3] @ [3, 3]", IN(2, 3, 3), IN(2, 3, 3)),
    MM("[3, 5] @ [5, 2]", IN(2, 3, 5), IN(2, 5, 2)),
    MM("[7, 3] @ [3, 4]", IN(2, 7, 3), IN(2, 3, 4)),
    MM("odd sizes [5, 7] @ [7, 3]", IN(2, 5, 7), IN(2, 7, 3)),
    MM("batched equal [2, 3, 4] @ [2, 4, 5]", IN(3, 2, 3, 4), IN(3, 2, 4, 5)),
    MM("broadcast both [2, 1, 3, 4] @ [5, 4, 2]", IN(4, 2, 1, 3, 4), IN(3, 5, 4, 2)),
    MM("broadcast a [3, 4] @ [2, 4, 5]", IN(2, 3, 4), IN(3, 2, 4, 5)),
    MM("broadcast b, folded [2, 3, 4] @ [4, 5]", IN(3, 2, 3, 4), IN(2, 4, 5)),
    MM("batched mat-vec [2, 3, 4] @ [4]", IN(3, 2, 3, 4), IN(1, 4)),
    MM("vec @ batched [4] @ [2, 4, 3]", IN(1, 4), IN(3, 2, 4, 3)),
    MM("size-1 batch [1, 3, 4] @ [1, 4, 2]", IN(3, 1, 3, 4), IN(3, 1, 4, 2)),
    MM("size-1 batch broadcast [1, 3, 4] @ [2, 4, 2]", IN(3, 1, 3, 4), IN(3, 2, 4, 2)),
    MM("rank 4 equal [2, 2, 3, 4] @ [2, 2, 4, 3]", IN(4, 2, 2, 3, 4), IN(4, 2, 2, 4, 3)),
    MM("rank 4 broadcast both [2, 1, 2, 3] @ [1, 3, 3, 2]", IN(4, 2, 1, 2, 3),
       IN(4, 1, 3, 3, 2)),
    MM("rank 4 @ size-1 batch, folded [3, 1, 2, 4] @ [1, 4, 3]", IN(4, 3, 1, 2, 4),
       IN(3, 1, 4, 3)),
    MM("b has more size-1 batch dims, folded [2, 3, 4] @ [1, 1, 4, 2]", IN(3, 2, 3, 4),
       IN(4, 1, 1, 4, 2)),
    MM("rank 5 broadcast [1, 2, 1, 2, 3] @ [2, 3, 3, 2]", IN(5, 1, 2, 1, 2, 3),
       IN(4, 2, 3, 3, 2)),
    MM("b needs no grad [3, 4] @ [4, 2]", IN(2, 3, 4), IN_NG(2, 4, 2)),
    MM("a needs no grad, broadcast [3, 4] @ [2, 4, 2]", IN_NG(2, 3, 4), IN(3, 2, 4, 2)),
    {"matmul", "same leaf x @ x [3, 3]", mm_self_fn, NULL, 1, {IN(2, 3, 3)}},
    {"matmul", "chain x @ (x @ y) [3, 3], [3, 2]", mm_chain_fn, NULL, 2,
     {IN(2, 3, 3), IN(2, 3, 2)}},
};
const size_t gc_n_matmul = sizeof gc_cases_matmul / sizeof gc_cases_matmul[0];

Test(ops_matmul, gradcheck_table_and_float32_match_float64)
{
    gc_run_table(gc_cases_matmul, gc_n_matmul);
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

/* Integer-valued products are exact in both dtypes, so these compare with 0
 * tolerance. */
static void check_exact(tg_dtype dt, int na, const int64_t *sa, const double *va, int nb,
                        const int64_t *sb, const double *vb, int nc, const int64_t *sc,
                        const double *want)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tgt_tensor(dt, na, sa, va), *b = tgt_tensor(dt, nb, sb, vb);
    tg_tensor *c = tg_matmul(g, a, b);
    expect_shape(c, nc, sc);
    cr_expect_eq(tg_tensor_dtype(c), dt);
    expect_close(c, want, 0.0, 0.0);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, matrix_2x3_at_3x2_by_hand)
{
    /* [[1,2,3],[4,5,6]] @ [[7,8],[9,10],[11,12]] = [[58,64],[139,154]] */
    for (int d = 0; d < 2; d++)
        check_exact((tg_dtype)d, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6), 2, SHAPE(3, 2),
                    VALS(7, 8, 9, 10, 11, 12), 2, SHAPE(2, 2), VALS(58, 64, 139, 154));
}

Test(ops_matmul, dot_of_vectors_is_a_scalar)
{
    /* [1,2,3] . [4,5,-6] = 4 + 10 - 18 = -4, shape [] */
    for (int d = 0; d < 2; d++)
        check_exact((tg_dtype)d, 1, SHAPE(3), VALS(1, 2, 3), 1, SHAPE(3), VALS(4, 5, -6), 0,
                    NULL, VALS(-4));
}

Test(ops_matmul, vector_at_matrix_drops_prepended_dim)
{
    /* [1,2] @ [[1,2,3],[4,5,6]] = [9,12,15], shape [3] */
    for (int d = 0; d < 2; d++)
        check_exact((tg_dtype)d, 1, SHAPE(2), VALS(1, 2), 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6),
                    1, SHAPE(3), VALS(9, 12, 15));
}

Test(ops_matmul, matrix_at_vector_drops_appended_dim)
{
    /* [[1,2,3],[4,5,6]] @ [1,0,-1] = [-2,-2], shape [2] */
    for (int d = 0; d < 2; d++)
        check_exact((tg_dtype)d, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6), 1, SHAPE(3),
                    VALS(1, 0, -1), 1, SHAPE(2), VALS(-2, -2));
}

Test(ops_matmul, batch_of_matrices_at_shared_matrix_by_hand)
{
    /* [2, 1, 2] @ [2, 2]: [[1,2]] @ B = [5, 8]; [[3,-1]] @ B = [1, 3] for
     * B = [[1,2],[2,3]]. Exercises the folded path. */
    for (int d = 0; d < 2; d++)
        check_exact((tg_dtype)d, 3, SHAPE(2, 1, 2), VALS(1, 2, 3, -1), 2, SHAPE(2, 2),
                    VALS(1, 2, 2, 3), 3, SHAPE(2, 1, 2), VALS(5, 8, 1, 3));
}

Test(ops_matmul, result_shapes_follow_torch)
{
    /* Shapes from torch.matmul on tensors of these shapes. */
    static const struct {
        int na, nb, nc;
        int64_t a[5], b[5], c[5];
    } rows[] = {
        {4, 3, 4, {2, 1, 3, 4}, {5, 4, 2}, {2, 5, 3, 2}},
        {2, 3, 3, {3, 4}, {2, 4, 5}, {2, 3, 5}},
        {3, 1, 2, {2, 3, 4}, {4}, {2, 3}},
        {1, 3, 2, {4}, {2, 4, 3}, {2, 3}},
        {1, 2, 1, {4}, {4, 3}, {3}},
        {2, 1, 1, {3, 4}, {4}, {3}},
        {1, 1, 0, {4}, {4}, {0}},
        {3, 4, 4, {2, 3, 4}, {1, 1, 4, 2}, {1, 2, 3, 2}},
        {5, 4, 5, {1, 2, 1, 2, 3}, {2, 3, 3, 2}, {1, 2, 3, 2, 2}},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *a = tgt_random(TG_F64, rows[r].na, rows[r].a, -1, 1, 1);
        tg_tensor *b = tgt_random(TG_F64, rows[r].nb, rows[r].b, -1, 1, 2);
        tg_tensor *c = tg_matmul(g, a, b);
        expect_shape(c, rows[r].nc, rows[r].c);
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_graph_free(g);
    }
}

Test(ops_matmul, broadcast_values_and_grads_match_torch)
{
    /* From PyTorch 2.x, float64:
     *   a = torch.arange(12.).reshape(2,1,2,3)/4 - 1
     *   b = torch.arange(18.).reshape(3,3,2)/3 - 2
     *   c = a @ b                                    # [2, 3, 2, 2]
     *   v = torch.arange(24.).reshape(c.shape)/8 - 1
     *   c.backward(v); a.grad, b.grad */
    static const double want_c[24] = {
        3.3333333333333335,  2.5833333333333335,  0.3333333333333333,  0.33333333333333337,
        -1.1666666666666665, -1.9166666666666667, 0.33333333333333337, 0.33333333333333326,
        -5.666666666666666,  -6.416666666666666,  0.33333333333333326, 0.3333333333333335,
        -2.666666666666667,  -1.9166666666666667, -5.666666666666667,  -4.166666666666667,
        1.8333333333333335,  2.583333333333333,   3.333333333333333,   4.833333333333334,
        6.333333333333333,   7.083333333333334,   12.333333333333332,  13.833333333333332};
    static const double want_da[12] = {3.625, 1.8750000000000002, 0.125, 3.8750000000000004,
                                       3.125, 2.3749999999999996, 5.124999999999999, 9.375,
                                       13.625, 5.374999999999999, 10.625, 15.875};
    static const double want_db[18] = {2.375, 2.4375, 2.25,   2.4375, 2.125, 2.4375,
                                       2.625, 2.6875, 3.0,    3.1875, 3.375, 3.6875,
                                       2.875, 2.9375, 3.75,   3.9375, 4.625, 4.9375};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        double tol = dt == TG_F64 ? 1e-12 : 1e-5;
        tg_graph *g = tg_graph_new();
        tg_tensor *a = tg_tensor_new(dt, 4, SHAPE(2, 1, 2, 3));
        tg_tensor *b = tg_tensor_new(dt, 3, SHAPE(3, 3, 2));
        tg_tensor *v = tg_tensor_new(dt, 4, SHAPE(2, 3, 2, 2));
        for (int i = 0; i < 12; i++)
            tg_tensor_set(a, i, i / 4.0 - 1);
        for (int i = 0; i < 18; i++)
            tg_tensor_set(b, i, i / 3.0 - 2);
        for (int i = 0; i < 24; i++)
            tg_tensor_set(v, i, i / 8.0 - 1);
        tg_tensor_set_requires_grad(a, true);
        tg_tensor_set_requires_grad(b, true);
        tg_tensor *c = tg_matmul(g, a, b);
        expect_shape(c, 4, SHAPE(2, 3, 2, 2));
        expect_close(c, want_c, tol, tol);
        cr_assert_eq(tg_backward_with(g, c, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(a), want_da, tol, tol);
        expect_close(tg_tensor_grad(b), want_db, tol, tol);
        tg_tensor_free(a);
        tg_tensor_free(b);
        tg_tensor_free(v);
        tg_graph_free(g);
    }
}

/* --------------------------------------------- large float32 vs float64 */

Test(ops_matmul, float32_64x784_at_784x128_matches_float64_reference)
{
    enum { M = 64, K = 784, N = 128 };
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tgt_random(TG_F32, 2, SHAPE(M, K), -1, 1, 11);
    tg_tensor *b = tgt_random(TG_F32, 2, SHAPE(K, N), -1, 1, 12);
    tg_tensor *v = tgt_random(TG_F32, 2, SHAPE(M, N), -1, 1, 13);
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *c = tg_matmul(g, a, b);
    expect_shape(c, 2, SHAPE(M, N));
    cr_assert_eq(tg_backward_with(g, c, v), TG_OK, "%s", tg_last_error());

    /* Reference: the same float32 values multiplied and summed in double. */
    const float *A = tg_tensor_data(a), *B = tg_tensor_data(b), *V = tg_tensor_data(v);
    double *rc = malloc(sizeof(double) * M * N), *rda = malloc(sizeof(double) * M * K),
           *rdb = malloc(sizeof(double) * K * N);
    cr_assert(rc && rda && rdb);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[i * K + k] * (double)B[k * N + j];
            rc[i * N + j] = s;
        }
    for (int i = 0; i < M; i++) /* dA = V B^T */
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int j = 0; j < N; j++)
                s += (double)V[i * N + j] * (double)B[k * N + j];
            rda[i * K + k] = s;
        }
    for (int k = 0; k < K; k++) /* dB = A^T V */
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int i = 0; i < M; i++)
                s += (double)A[i * K + k] * (double)V[i * N + j];
            rdb[k * N + j] = s;
        }
    /* float32 tolerance for sums of a few hundred terms of size <= 1 (values
     * reach ~30; rounding error grows like sqrt(K) * 2^-24 * magnitude). */
    expect_close(c, rc, 1e-4, 1e-4);
    expect_close(tg_tensor_grad(a), rda, 1e-4, 1e-4);
    expect_close(tg_tensor_grad(b), rdb, 1e-4, 1e-4);
    free(rc);
    free(rda);
    free(rdb);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(v);
    tg_graph_free(g);
}

/* ------------------------------------------------------- zero-size edges */

/* Runs a @ b and backward with a random cotangent; checks the result's shape,
 * that every value is 0, and that both gradients exist, have the inputs'
 * shapes and are all zero (nothing flows through an empty product). */
static void check_empty_case(tg_dtype dt, int na, const int64_t *sa, int nb, const int64_t *sb,
                             int nc, const int64_t *sc)
{
    tg_graph *g = tg_graph_new();
    /* Leave NaN where the output will be allocated after the reset, so a K = 0
     * product that skips writing its zeros shows up. */
    tg_tensor_fill(tg_graph_tensor(g, dt, nc, sc), (double)NAN);
    tg_graph_reset(g);
    tg_tensor *a = tgt_random(dt, na, sa, -1, 1, 3), *b = tgt_random(dt, nb, sb, -1, 1, 4);
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *c = tg_matmul(g, a, b);
    expect_shape(c, nc, sc);
    for (int64_t i = 0; i < tg_tensor_numel(c); i++)
        cr_expect_eq(tg_tensor_get(c, i), 0.0, "element %lld is %g, want 0 (K = 0)",
                     (long long)i, tg_tensor_get(c, i));
    tg_tensor *v = tgt_random(dt, nc, sc, -1, 1, 5);
    cr_assert_eq(tg_backward_with(g, c, v), TG_OK, "%s", tg_last_error());
    tg_tensor *ga = tg_tensor_grad(a), *gb = tg_tensor_grad(b);
    cr_assert(ga && gb, "gradients missing");
    expect_shape(ga, na, sa);
    expect_shape(gb, nb, sb);
    for (int64_t i = 0; i < tg_tensor_numel(ga); i++)
        cr_expect_eq(tg_tensor_get(ga, i), 0.0);
    for (int64_t i = 0; i < tg_tensor_numel(gb); i++)
        cr_expect_eq(tg_tensor_get(gb, i), 0.0);
    tg_tensor_free(v);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, inner_dim_zero_gives_zeros_like_torch)
{
    /* torch.matmul(torch.zeros(2, 0), torch.zeros(0, 3)) is zeros(2, 3);
     * torch.zeros(0) @ torch.zeros(0) is tensor(0.). */
    for (int d = 0; d < 2; d++) {
        check_empty_case((tg_dtype)d, 2, SHAPE(2, 0), 2, SHAPE(0, 3), 2, SHAPE(2, 3));
        check_empty_case((tg_dtype)d, 1, SHAPE(0), 1, SHAPE(0), 0, NULL);
        check_empty_case((tg_dtype)d, 3, SHAPE(2, 2, 0), 3, SHAPE(2, 0, 3), 3, SHAPE(2, 2, 3));
        check_empty_case((tg_dtype)d, 3, SHAPE(2, 2, 0), 2, SHAPE(0, 3), 3, SHAPE(2, 2, 3));
    }
}

Test(ops_matmul, empty_rows_cols_or_batch_give_empty_results)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = (tg_dtype)d;
        check_empty_case(dt, 2, SHAPE(0, 3), 2, SHAPE(3, 2), 2, SHAPE(0, 2));       /* M = 0 */
        check_empty_case(dt, 2, SHAPE(2, 3), 2, SHAPE(3, 0), 2, SHAPE(2, 0));       /* N = 0 */
        check_empty_case(dt, 1, SHAPE(3), 2, SHAPE(3, 0), 1, SHAPE(0));             /* N = 0, 1-D a */
        check_empty_case(dt, 3, SHAPE(0, 2, 3), 2, SHAPE(3, 4), 3, SHAPE(0, 2, 4)); /* batch 0, folded */
        check_empty_case(dt, 3, SHAPE(0, 2, 3), 3, SHAPE(0, 3, 4), 3, SHAPE(0, 2, 4));
        check_empty_case(dt, 2, SHAPE(2, 3), 3, SHAPE(0, 3, 4), 3, SHAPE(0, 2, 4));
    }
}

/* ------------------------------------------------------------ gradients */

Test(ops_matmul, second_backward_accumulates_leaf_gradients)
{
    /* d/dA <V, A B> = V B^T: A [1, 2] = [1, 2], B [2, 1] = [3, 4], V = [[1]]:
     * dA = [3, 4], dB = A^T V = [1, 2]. Two backwards give twice that. */
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tgt_tensor(TG_F64, 2, SHAPE(1, 2), VALS(1, 2));
    tg_tensor *b = tgt_tensor(TG_F64, 2, SHAPE(2, 1), VALS(3, 4));
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *c = tg_matmul(g, a, b);
    expect_close(c, VALS(11), 0.0, 0.0);
    cr_assert_eq(tg_backward(g, c), TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(a), VALS(3, 4), 0.0, 0.0);
    expect_close(tg_tensor_grad(b), VALS(1, 2), 0.0, 0.0);
    cr_assert_eq(tg_backward(g, c), TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(a), VALS(6, 8), 0.0, 0.0);
    expect_close(tg_tensor_grad(b), VALS(2, 4), 0.0, 0.0);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, only_inputs_that_require_grad_get_one)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tgt_random(TG_F64, 3, SHAPE(2, 3, 4), -1, 1, 1);
    tg_tensor *b = tgt_random(TG_F64, 2, SHAPE(4, 2), -1, 1, 2);
    tg_tensor *c = tg_matmul(g, a, b);
    cr_assert(c, "%s", tg_last_error());
    cr_expect_eq(tg_graph_n_nodes(g), 0, "no input requires grad: no node");
    cr_expect(!tg_tensor_requires_grad(c));
    tg_tensor_set_requires_grad(b, true);
    c = tg_matmul(g, a, b);
    cr_expect_eq(tg_graph_n_nodes(g), 1);
    tg_tensor *v = tgt_random(TG_F64, 3, SHAPE(2, 3, 2), -1, 1, 3);
    cr_assert_eq(tg_backward_with(g, c, v), TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_grad(a) == NULL, "a needs no grad");
    cr_expect(tg_tensor_grad(b) != NULL);
    tg_tensor_free(v);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

/* a @ b must fail with TG_ERR_SHAPE and a message naming the op and both shapes. */
static void check_shape_error(int na, const int64_t *sa, int nb, const int64_t *sb,
                              const char *what, const char *shp_a, const char *shp_b)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F64, na, sa), *b = tg_tensor_new(TG_F64, nb, sb);
    cr_assert(a && b);
    tg_error_clear();
    tg_tensor *c = tg_matmul(g, a, b);
    expect_error(c == NULL, "tg_matmul: ", what, shp_a, shp_b);
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE, "status %s", tg_status_name(tg_last_status()));
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, inner_dimension_mismatch_message_is_exact)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F64, 2, SHAPE(2, 3)), *b = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    cr_expect_null(tg_matmul(g, a, b));
    cr_expect_str_eq(tg_last_error(), "tg_matmul: inner dimensions differ: a [2, 3] @ b [4, 5]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, inner_dimension_mismatch_in_every_form)
{
    check_shape_error(1, SHAPE(3), 1, SHAPE(4), "inner dimensions differ", "a [3]", "b [4]");
    check_shape_error(1, SHAPE(3), 2, SHAPE(4, 5), "inner dimensions differ", "a [3]",
                      "b [4, 5]");
    check_shape_error(2, SHAPE(2, 3), 1, SHAPE(4), "inner dimensions differ", "a [2, 3]",
                      "b [4]");
    check_shape_error(3, SHAPE(2, 3, 4), 3, SHAPE(2, 5, 6), "inner dimensions differ",
                      "a [2, 3, 4]", "b [2, 5, 6]");
    check_shape_error(2, SHAPE(2, 0), 2, SHAPE(1, 3), "inner dimensions differ", "a [2, 0]",
                      "b [1, 3]");
}

Test(ops_matmul, rank0_operands_are_rejected)
{
    check_shape_error(0, NULL, 1, SHAPE(3), "at least 1-D", "a []", "b [3]");
    check_shape_error(2, SHAPE(2, 3), 0, NULL, "at least 1-D", "a [2, 3]", "b []");
    check_shape_error(0, NULL, 0, NULL, "at least 1-D", "a []", "b []");
}

Test(ops_matmul, batch_dims_that_do_not_broadcast_are_rejected)
{
    check_shape_error(3, SHAPE(2, 3, 4), 3, SHAPE(3, 4, 5), "batch dimensions [2] and [3]",
                      "a [2, 3, 4]", "b [3, 4, 5]");
    check_shape_error(4, SHAPE(2, 2, 3, 4), 3, SHAPE(3, 4, 2), "do not broadcast",
                      "a [2, 2, 3, 4]", "b [3, 4, 2]");
    check_shape_error(3, SHAPE(0, 3, 4), 3, SHAPE(2, 4, 5), "do not broadcast", "a [0, 3, 4]",
                      "b [2, 4, 5]");
}

Test(ops_matmul, mixed_dtypes_are_rejected)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F32, 2, SHAPE(2, 3)), *b = tg_tensor_new(TG_F64, 2, SHAPE(3, 2));
    expect_error(tg_matmul(g, a, b) == NULL, "tg_matmul", "float32", "float64", "[2, 3]",
                 "[3, 2]");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

Test(ops_matmul, null_input_returns_null)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_error_clear();
    expect_error(tg_matmul(g, NULL, a) == NULL, "tg_matmul", "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_matmul(g, a, NULL) == NULL, "tg_matmul", "input 1 is NULL");
    tg_error_clear();
    expect_error(tg_matmul(NULL, a, a) == NULL, "tg_matmul", "graph is NULL");
    tg_tensor_free(a);
    tg_graph_free(g);
}

Test(ops_matmul, null_input_keeps_the_first_error_of_a_chain)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F64, 2, SHAPE(2, 3)), *b = tg_tensor_new(TG_F64, 2, SHAPE(4, 5));
    tg_tensor *c = tg_tensor_new(TG_F64, 2, SHAPE(5, 2));
    tg_error_clear();
    /* (a @ b) fails; the outer matmuls get NULL and must not overwrite it. */
    tg_tensor *y = tg_matmul(g, tg_matmul(g, tg_matmul(g, a, b), c), c);
    cr_expect_null(y);
    cr_expect_str_eq(tg_last_error(), "tg_matmul: inner dimensions differ: a [2, 3] @ b [4, 5]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
    tg_graph_free(g);
}
