/* The elementwise family (add sub mul div with broadcasting; neg exp log sqrt
 * pow relu sigmoid tanh abs): gradcheck table, the broadcast helper
 * (ops/broadcast.h) on its own, forward and gradients against a naive
 * broadcast reference, known values from PyTorch, kinks, IEEE edges,
 * zero-size tensors, errors and NULL propagation. */
#include "helpers.h"
#include "ops/broadcast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

/* ------------------------------------------------------- gradcheck table */

#define BIN_FN(name)                                                                               \
    static tg_tensor *gc_##name(tg_graph *g, tg_tensor **xs, int n, void *ctx)                     \
    {                                                                                              \
        (void)n;                                                                                   \
        (void)ctx;                                                                                 \
        return tg_##name(g, xs[0], xs[1]);                                                         \
    }
#define UN_FN(name)                                                                                \
    static tg_tensor *gc_##name(tg_graph *g, tg_tensor **xs, int n, void *ctx)                     \
    {                                                                                              \
        (void)n;                                                                                   \
        (void)ctx;                                                                                 \
        return tg_##name(g, xs[0]);                                                                \
    }
BIN_FN(add)
BIN_FN(sub)
BIN_FN(mul)
BIN_FN(div)
UN_FN(neg)
UN_FN(exp)
UN_FN(log)
UN_FN(sqrt)
UN_FN(relu)
UN_FN(sigmoid)
UN_FN(tanh)
UN_FN(abs)

static tg_tensor *gc_pow(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_pow(g, xs[0], *(const double *)ctx);
}

/* x * x and x + x: one leaf as both operands, both VJP halves add into it. */
static tg_tensor *gc_mul_self(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_mul(g, xs[0], xs[0]);
}
static tg_tensor *gc_add_self(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_add(g, xs[0], xs[0]);
}

static const double P2 = 2.0, P3 = 3.0, P1 = 1.0, PHALF = 0.5, PM1 = -1.0, PM2 = -2.0,
                    PM15 = -1.5, PMHALF = -0.5, P25 = 2.5, PTHIRD = 1.0 / 3.0;

#define UNPAREN(...) __VA_ARGS__

/* Binary pairs: label, a's rank and dims, b's rank and dims, no_grad flags. */
#define BIN_PAIRS(X, op, fn, fa, fb)                                                               \
    X(op, fn, fa, fb, "[] + []", 0, (0), 0, (0), false, false)                                     \
    X(op, fn, fa, fb, "[3] + []", 1, (3), 0, (0), false, false)                                    \
    X(op, fn, fa, fb, "[] + [3]", 0, (0), 1, (3), false, false)                                    \
    X(op, fn, fa, fb, "[1] + [1]", 1, (1), 1, (1), false, false)                                   \
    X(op, fn, fa, fb, "[5] + [5]", 1, (5), 1, (5), false, false)                                   \
    X(op, fn, fa, fb, "[7] + [1]", 1, (7), 1, (1), false, false)                                   \
    X(op, fn, fa, fb, "[2,3] + [3]", 2, (2, 3), 1, (3), false, false)                              \
    X(op, fn, fa, fb, "[3] + [2,3]", 1, (3), 2, (2, 3), false, false)                              \
    X(op, fn, fa, fb, "[2,3] + [2,3]", 2, (2, 3), 2, (2, 3), false, false)                         \
    X(op, fn, fa, fb, "column [2,3] + [2,1]", 2, (2, 3), 2, (2, 1), false, false)                  \
    X(op, fn, fa, fb, "[4,3] + [1,3]", 2, (4, 3), 2, (1, 3), false, false)                         \
    X(op, fn, fa, fb, "both [1,3] + [2,1]", 2, (1, 3), 2, (2, 1), false, false)                    \
    X(op, fn, fa, fb, "both [4,1] + [1,5]", 2, (4, 1), 2, (1, 5), false, false)                    \
    X(op, fn, fa, fb, "both [1,5] + [3,1]", 2, (1, 5), 2, (3, 1), false, false)                    \
    X(op, fn, fa, fb, "[1,1] + [1]", 2, (1, 1), 1, (1), false, false)                              \
    X(op, fn, fa, fb, "[2,1,4] + [3,1]", 3, (2, 1, 4), 2, (3, 1), false, false)                    \
    X(op, fn, fa, fb, "[1] + [2,3,4]", 1, (1), 3, (2, 3, 4), false, false)                         \
    X(op, fn, fa, fb, "[2,3,4] + [2,3,4]", 3, (2, 3, 4), 3, (2, 3, 4), false, false)               \
    X(op, fn, fa, fb, "[2,3,4] + [4]", 3, (2, 3, 4), 1, (4), false, false)                         \
    X(op, fn, fa, fb, "both [2,1,3] + [1,4,1]", 3, (2, 1, 3), 3, (1, 4, 1), false, false)          \
    X(op, fn, fa, fb, "[3,1,2] + []", 3, (3, 1, 2), 0, (0), false, false)                          \
    X(op, fn, fa, fb, "[2,3,1,5] + [3,4,1]", 4, (2, 3, 1, 5), 3, (3, 4, 1), false, false)          \
    X(op, fn, fa, fb, "[2,3,4,5] + [5]", 4, (2, 3, 4, 5), 1, (5), false, false)                    \
    X(op, fn, fa, fb, "bias [2,3,4,5] + [3,1,1]", 4, (2, 3, 4, 5), 3, (3, 1, 1), false, false)     \
    X(op, fn, fa, fb, "both [2,1,1,3] + [1,2,3,1]", 4, (2, 1, 1, 3), 4, (1, 2, 3, 1), false,       \
      false)                                                                                       \
    X(op, fn, fa, fb, "both [1,2,1,4] + [2,3,4]", 4, (1, 2, 1, 4), 3, (2, 3, 4), false, false)     \
    X(op, fn, fa, fb, "b no grad [2,3] + [3]", 2, (2, 3), 1, (3), false, true)                     \
    X(op, fn, fa, fb, "a no grad [4,1] + [1,5]", 2, (4, 1), 2, (1, 5), true, false)

#define BCASE(op_, fn_, fa_, fb_, label_, na_, sa_, nb_, sb_, nga_, ngb_)                          \
    {.op = op_, .label = label_, .fn = fn_, .n_inputs = 2,                                         \
     .in = {{.ndim = na_, .shape = {UNPAREN sa_}, .fill = fa_, .no_grad = nga_},                   \
            {.ndim = nb_, .shape = {UNPAREN sb_}, .fill = fb_, .no_grad = ngb_}}},

/* Unary shapes: label, rank and dims (rank 0 to 4, size-1 and odd dims).
 * fill1 is the fill of the one-element shapes: relu takes GC_POSITIVE there,
 * since a single negative input would make its check vacuous (all zero). */
#define UN_SHAPES(X, op, fn, ctx, fill, fill1)                                                     \
    X(op, fn, ctx, fill1, "[]", 0, (0))                                                            \
    X(op, fn, ctx, fill1, "[1]", 1, (1))                                                           \
    X(op, fn, ctx, fill, "[5]", 1, (5))                                                            \
    X(op, fn, ctx, fill, "[9]", 1, (9))                                                            \
    X(op, fn, ctx, fill1, "[1,1]", 2, (1, 1))                                                      \
    X(op, fn, ctx, fill, "[2,3]", 2, (2, 3))                                                       \
    X(op, fn, ctx, fill, "[3,1]", 2, (3, 1))                                                       \
    X(op, fn, ctx, fill, "[1,4]", 2, (1, 4))                                                       \
    X(op, fn, ctx, fill, "[4,5]", 2, (4, 5))                                                       \
    X(op, fn, ctx, fill, "[1,3,1]", 3, (1, 3, 1))                                                  \
    X(op, fn, ctx, fill, "[2,3,4]", 3, (2, 3, 4))                                                  \
    X(op, fn, ctx, fill, "[3,1,5]", 3, (3, 1, 5))                                                  \
    X(op, fn, ctx, fill, "[2,2,2]", 3, (2, 2, 2))                                                  \
    X(op, fn, ctx, fill, "[5,1,3]", 3, (5, 1, 3))                                                  \
    X(op, fn, ctx, fill1, "[1,1,1,1]", 4, (1, 1, 1, 1))                                            \
    X(op, fn, ctx, fill, "[1,2,1,3]", 4, (1, 2, 1, 3))                                             \
    X(op, fn, ctx, fill, "[2,1,3,2]", 4, (2, 1, 3, 2))                                             \
    X(op, fn, ctx, fill, "[3,2,2,1]", 4, (3, 2, 2, 1))                                             \
    X(op, fn, ctx, fill, "[2,3,2,3]", 4, (2, 3, 2, 3))                                             \
    X(op, fn, ctx, fill, "[4,1,1,3]", 4, (4, 1, 1, 3))                                             \
    X(op, fn, ctx, fill, "[2,3,4,5]", 4, (2, 3, 4, 5))                                             \
    X(op, fn, ctx, fill, "[7,1]", 2, (7, 1))

#define UCASE(op_, fn_, ctx_, fill_, label_, nd_, s_)                                              \
    {.op = op_, .label = label_, .fn = fn_, .ctx = ctx_, .n_inputs = 1,                            \
     .in = {{.ndim = nd_, .shape = {UNPAREN s_}, .fill = fill_}}},

const gc_case gc_cases_elementwise[] = {
    BIN_PAIRS(BCASE, "add", gc_add, GC_UNIFORM, GC_UNIFORM)
    BIN_PAIRS(BCASE, "sub", gc_sub, GC_UNIFORM, GC_UNIFORM)
    BIN_PAIRS(BCASE, "mul", gc_mul, GC_UNIFORM, GC_UNIFORM)
    BIN_PAIRS(BCASE, "div", gc_div, GC_UNIFORM, GC_POSITIVE)
    UCASE("mul", gc_mul_self, NULL, GC_UNIFORM, "same leaf x * x [2,3]", 2, (2, 3))
    UCASE("add", gc_add_self, NULL, GC_UNIFORM, "same leaf x + x [2,3]", 2, (2, 3))
    UN_SHAPES(UCASE, "neg", gc_neg, NULL, GC_UNIFORM, GC_UNIFORM)
    UN_SHAPES(UCASE, "exp", gc_exp, NULL, GC_UNIFORM, GC_UNIFORM)
    UN_SHAPES(UCASE, "log", gc_log, NULL, GC_POSITIVE, GC_POSITIVE)
    UN_SHAPES(UCASE, "sqrt", gc_sqrt, NULL, GC_POSITIVE, GC_POSITIVE)
    UN_SHAPES(UCASE, "relu", gc_relu, NULL, GC_AWAY_FROM_ZERO, GC_POSITIVE)
    UN_SHAPES(UCASE, "sigmoid", gc_sigmoid, NULL, GC_UNIFORM, GC_UNIFORM)
    UN_SHAPES(UCASE, "tanh", gc_tanh, NULL, GC_UNIFORM, GC_UNIFORM)
    UN_SHAPES(UCASE, "abs", gc_abs, NULL, GC_AWAY_FROM_ZERO, GC_AWAY_FROM_ZERO)
    UN_SHAPES(UCASE, "pow", gc_pow, &P2, GC_UNIFORM, GC_UNIFORM)
    /* pow at other exponents: integer p on negative x, roots and negative
     * powers on positive x, and x^-1, x^-2 with |x| >= 0.1. */
    UCASE("pow", gc_pow, &P3, GC_UNIFORM, "p=3 []", 0, (0))
    UCASE("pow", gc_pow, &P3, GC_UNIFORM, "p=3 [5]", 1, (5))
    UCASE("pow", gc_pow, &P3, GC_UNIFORM, "p=3 [2,1,3,2]", 4, (2, 1, 3, 2))
    UCASE("pow", gc_pow, &P1, GC_UNIFORM, "p=1 [2,3]", 2, (2, 3))
    UCASE("pow", gc_pow, &PHALF, GC_POSITIVE, "p=0.5 []", 0, (0))
    UCASE("pow", gc_pow, &PHALF, GC_POSITIVE, "p=0.5 [7]", 1, (7))
    UCASE("pow", gc_pow, &PHALF, GC_POSITIVE, "p=0.5 [2,3,4]", 3, (2, 3, 4))
    UCASE("pow", gc_pow, &PMHALF, GC_POSITIVE, "p=-0.5 [3,1]", 2, (3, 1))
    UCASE("pow", gc_pow, &PM15, GC_POSITIVE, "p=-1.5 [1]", 1, (1))
    UCASE("pow", gc_pow, &PM15, GC_POSITIVE, "p=-1.5 [4,5]", 2, (4, 5))
    UCASE("pow", gc_pow, &PM1, GC_AWAY_FROM_ZERO, "p=-1 [5]", 1, (5))
    UCASE("pow", gc_pow, &PM1, GC_AWAY_FROM_ZERO, "p=-1 [3,1,5]", 3, (3, 1, 5))
    UCASE("pow", gc_pow, &PM2, GC_AWAY_FROM_ZERO, "p=-2 [2,3]", 2, (2, 3))
    UCASE("pow", gc_pow, &P25, GC_POSITIVE, "p=2.5 [2,2,2]", 3, (2, 2, 2))
    UCASE("pow", gc_pow, &PTHIRD, GC_POSITIVE, "p=1/3 [1,3,1]", 3, (1, 3, 1))
};
const size_t gc_n_elementwise = sizeof gc_cases_elementwise / sizeof gc_cases_elementwise[0];

Test(ops_elementwise, gradcheck_table_float64_and_float32)
{
    gc_run_table(gc_cases_elementwise, gc_n_elementwise);
}

Test(ops_elementwise, table_has_20_cases_per_op)
{
    static const char *const ops[] = {"add", "sub",  "mul",     "div",  "neg", "exp", "log",
                                      "sqrt", "pow", "relu", "sigmoid", "tanh", "abs"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        size_t n = 0;
        for (size_t i = 0; i < gc_n_elementwise; i++)
            n += strcmp(gc_cases_elementwise[i].op, ops[k]) == 0;
        cr_expect(n >= 20, "op %s has %zu cases", ops[k], n);
    }
}

/* ------------------------------------------------------- broadcast helper */

static void expect_dims(int nd, const int64_t *dims, int want_nd, const int64_t *want)
{
    cr_expect_eq(nd, want_nd);
    for (int i = 0; i < want_nd && i < nd; i++)
        cr_expect_eq(dims[i], want[i], "dim %d: %lld vs %lld", i, (long long)dims[i],
                     (long long)want[i]);
}

Test(ops_elementwise, broadcast_shape_rule_follows_numpy)
{
    int nd = -1;
    int64_t d[TG_MAX_DIMS];
    cr_expect(tg__bcast_dims(0, NULL, 0, NULL, &nd, d));
    cr_expect_eq(nd, 0);
    cr_expect(tg__bcast_dims(1, SHAPE(3), 0, NULL, &nd, d));
    expect_dims(nd, d, 1, SHAPE(3));
    cr_expect(tg__bcast_dims(3, SHAPE(2, 1, 4), 2, SHAPE(3, 1), &nd, d));
    expect_dims(nd, d, 3, SHAPE(2, 3, 4));
    cr_expect(tg__bcast_dims(2, SHAPE(4, 1), 2, SHAPE(1, 5), &nd, d));
    expect_dims(nd, d, 2, SHAPE(4, 5));
    cr_expect(tg__bcast_dims(4, SHAPE(2, 3, 1, 5), 3, SHAPE(3, 4, 1), &nd, d));
    expect_dims(nd, d, 4, SHAPE(2, 3, 4, 5));
    cr_expect(tg__bcast_dims(1, SHAPE(1), 3, SHAPE(2, 3, 4), &nd, d));
    expect_dims(nd, d, 3, SHAPE(2, 3, 4));
    /* 0 with 1 gives 0; 0 with 0 gives 0. */
    cr_expect(tg__bcast_dims(2, SHAPE(0, 3), 1, SHAPE(1), &nd, d));
    expect_dims(nd, d, 2, SHAPE(0, 3));
    cr_expect(tg__bcast_dims(2, SHAPE(2, 0), 1, SHAPE(0), &nd, d));
    expect_dims(nd, d, 2, SHAPE(2, 0));
    cr_expect(!tg__bcast_dims(2, SHAPE(2, 3), 1, SHAPE(4), &nd, d));
    cr_expect(!tg__bcast_dims(1, SHAPE(0), 1, SHAPE(2), &nd, d));
    cr_expect(!tg__bcast_dims(3, SHAPE(2, 3, 4), 2, SHAPE(2, 4), &nd, d));
}

static tg__bcast plan_of(int na, const int64_t *a, int nb, const int64_t *b)
{
    tg__bcast p;
    tg__bcast_plan(&p, na, a, nb, b);
    return p;
}

Test(ops_elementwise, broadcast_plan_collapses_the_common_cases)
{
    /* Equal shapes: one contiguous row. */
    tg__bcast p = plan_of(3, SHAPE(2, 3, 4), 3, SHAPE(2, 3, 4));
    cr_expect(p.kind == TG__BCAST_FLAT && p.ndim == 1 && p.inner == 24 && p.rows == 1);
    cr_expect(p.st[0][0] == 1 && p.st[1][0] == 1);
    /* A scalar operand (rank 0 or all-ones): one row, stride 0. */
    p = plan_of(2, SHAPE(2, 3), 0, NULL);
    cr_expect(p.kind == TG__BCAST_FLAT && p.inner == 6 && p.st[0][0] == 1 && p.st[1][0] == 0);
    p = plan_of(2, SHAPE(1, 1), 3, SHAPE(4, 5, 6));
    cr_expect(p.kind == TG__BCAST_FLAT && p.inner == 120 && p.st[0][0] == 0 && p.st[1][0] == 1);
    /* Size-1 dims do not break equal shapes. */
    p = plan_of(3, SHAPE(2, 1, 3), 3, SHAPE(2, 1, 3));
    cr_expect(p.kind == TG__BCAST_FLAT && p.inner == 6);
    p = plan_of(3, SHAPE(1, 2, 3), 2, SHAPE(2, 3));
    cr_expect(p.kind == TG__BCAST_FLAT && p.inner == 6);
    /* Trailing row [N, C] + [C]: N rows of C, b repeats. */
    p = plan_of(2, SHAPE(5, 3), 1, SHAPE(3));
    cr_expect(p.kind == TG__BCAST_ROWS && p.rows == 5 && p.inner == 3);
    cr_expect(p.st[0][0] == 3 && p.st[0][1] == 1 && p.st[1][0] == 0 && p.st[1][1] == 1);
    /* [N, H, W, C] + [C] folds the leading dims into rows. */
    p = plan_of(4, SHAPE(2, 3, 4, 5), 1, SHAPE(5));
    cr_expect(p.kind == TG__BCAST_ROWS && p.rows == 24 && p.inner == 5);
    /* Column [N, 1] + [N, C]. */
    p = plan_of(2, SHAPE(4, 1), 2, SHAPE(4, 3));
    cr_expect(p.kind == TG__BCAST_ROWS && p.st[0][0] == 1 && p.st[0][1] == 0);
    /* Conv bias [N, C, H, W] + [C, 1, 1] -> [N, C, H*W]. */
    p = plan_of(4, SHAPE(2, 3, 4, 5), 3, SHAPE(3, 1, 1));
    cr_expect(p.kind == TG__BCAST_ND && p.ndim == 3 && p.inner == 20 && p.rows == 6);
    cr_expect(p.st[1][0] == 0 && p.st[1][1] == 1 && p.st[1][2] == 0);
    /* One element in all, and empty outputs. */
    p = plan_of(2, SHAPE(1, 1), 1, SHAPE(1));
    cr_expect(p.ndim == 1 && p.inner == 1 && p.rows == 1 && p.numel == 1);
    p = plan_of(2, SHAPE(0, 3), 1, SHAPE(3));
    cr_expect(p.numel == 0 && p.rows == 0);
}

/* The flat index into an operand of shape (nk, dk) for output multi-index idx. */
static int64_t ref_offset(const int64_t *idx, int nd, int nk, const int64_t *dk)
{
    int64_t off = 0;
    for (int j = 0; j < nk; j++) {
        int i = j + nd - nk;
        off = off * dk[j] + (dk[j] == 1 ? 0 : idx[i]);
    }
    return off;
}

/* Walks the output with an explicit multi-index, the slow obvious way. */
static bool ref_next(int64_t *idx, int nd, const int64_t *dims)
{
    for (int i = nd - 1; i >= 0; i--) {
        if (++idx[i] < dims[i])
            return true;
        idx[i] = 0;
    }
    return false;
}

Test(ops_elementwise, broadcast_iteration_visits_every_offset_like_a_naive_walk)
{
    static const struct {
        int na, nb;
        int64_t a[4], b[4];
    } pairs[] = {{2, 1, {2, 3}, {3}},          {2, 2, {4, 1}, {1, 5}},
                 {3, 2, {2, 1, 4}, {3, 1}},    {4, 3, {2, 3, 1, 5}, {3, 4, 1}},
                 {4, 3, {2, 3, 4, 5}, {3, 1, 1}}, {4, 4, {2, 1, 1, 3}, {1, 2, 3, 1}},
                 {1, 3, {1}, {2, 3, 4}},       {3, 0, {3, 1, 2}, {0}}};
    for (size_t c = 0; c < sizeof pairs / sizeof pairs[0]; c++) {
        int nd = 0;
        int64_t dims[TG_MAX_DIMS], idx[TG_MAX_DIMS] = {0};
        cr_assert(tg__bcast_dims(pairs[c].na, pairs[c].a, pairs[c].nb, pairs[c].b, &nd, dims));
        tg__bcast p = plan_of(pairs[c].na, pairs[c].a, pairs[c].nb, pairs[c].b);
        tg__bcast_it it;
        int64_t flat = 0, bad = 0;
        const int last = p.ndim - 1;
        for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it)) {
            for (int64_t j = 0; j < p.inner; j++, flat++) {
                int64_t oa = it.off[0] + j * p.st[0][last], ob = it.off[1] + j * p.st[1][last];
                bad += ref_offset(idx, nd, pairs[c].na, pairs[c].a) != oa;
                bad += ref_offset(idx, nd, pairs[c].nb, pairs[c].b) != ob;
                ref_next(idx, nd, dims);
            }
        }
        cr_expect_eq(flat, p.numel, "pair %zu: visited %lld of %lld", c, (long long)flat,
                     (long long)p.numel);
        cr_expect_eq(bad, 0, "pair %zu: %lld offsets differ from the naive walk", c,
                     (long long)bad);
    }
}

Test(ops_elementwise, broadcast_sum_to_reduces_the_broadcast_dims)
{
    const double src[6] = {1, 2, 3, 4, 5, 6}; /* [2, 3] */
    const float srcf[6] = {1, 2, 3, 4, 5, 6};
    double d3[3] = {0.5, 0, 0}, d2[2] = {0, 0}, d1[1] = {0}, same[6] = {0};
    tg__bcast p = plan_of(2, SHAPE(2, 3), 1, SHAPE(3));
    tg__bcast_sum_to_f64(&p, 1, d3, src); /* row sums into [3], added to 0.5 */
    cr_expect(d3[0] == 5.5 && d3[1] == 7 && d3[2] == 9);
    tg__bcast_sum_to_f64(&p, 0, same, src); /* not broadcast: a copy */
    for (int i = 0; i < 6; i++)
        cr_expect(same[i] == src[i]);
    p = plan_of(2, SHAPE(2, 3), 2, SHAPE(2, 1));
    tg__bcast_sum_to_f64(&p, 1, d2, src);
    cr_expect(d2[0] == 6 && d2[1] == 15);
    p = plan_of(2, SHAPE(2, 3), 0, NULL);
    tg__bcast_sum_to_f32(&p, 1, d1, srcf);
    cr_expect(d1[0] == 21);
    double e2[2] = {0, 0};
    p = plan_of(2, SHAPE(2, 1), 2, SHAPE(2, 3));
    tg__bcast_sum_to_f32(&p, 0, e2, srcf);
    cr_expect(e2[0] == 6 && e2[1] == 15);
}

/* ---------------------------------------- binary ops against a reference */

typedef tg_tensor *(*bin_fn)(tg_graph *, tg_tensor *, tg_tensor *);
static const bin_fn bin_fns[4] = {tg_add, tg_sub, tg_mul, tg_div};
static const char *const bin_names[4] = {"add", "sub", "mul", "div"};

static double ref_op(int op, double a, double b)
{
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    default: return a / b;
    }
}

/* dL/da and dL/db of one output element with upstream gradient g. */
static void ref_grad(int op, double a, double b, double g, double *da, double *db)
{
    switch (op) {
    case 0: *da = g; *db = g; break;
    case 1: *da = g; *db = -g; break;
    case 2: *da = g * b; *db = g * a; break;
    default: *da = g / b; *db = -g * a / (b * b); break;
    }
}

/* Every binary case of the gradcheck table, in both dtypes: the output and
 * both gradients (for a random cotangent) against a naive broadcast walk. */
static void check_binary_against_reference(tg_dtype dtype, double tol)
{
    for (size_t c = 0; c < gc_n_elementwise; c++) {
        const gc_case *gc = &gc_cases_elementwise[c];
        int op = -1;
        for (int k = 0; k < 4; k++)
            if (strcmp(gc->op, bin_names[k]) == 0 && gc->n_inputs == 2)
                op = k;
        if (op < 0)
            continue;
        tg_tensor *xs[2];
        gc_make_inputs(gc, c, dtype, xs);
        tg_graph *g = tg_graph_new();
        tg_tensor *y = bin_fns[op](g, xs[0], xs[1]);
        cr_assert(y, "%s [%s]: %s", gc->op, gc->label, tg_last_error());
        int nd = 0;
        int64_t dims[TG_MAX_DIMS], idx[TG_MAX_DIMS] = {0};
        cr_assert(tg__bcast_dims(gc->in[0].ndim, gc->in[0].shape, gc->in[1].ndim,
                                 gc->in[1].shape, &nd, dims));
        cr_expect_eq(tg_tensor_ndim(y), nd, "%s [%s]: rank", gc->op, gc->label);
        for (int i = 0; i < nd; i++)
            cr_expect_eq(tg_tensor_shape(y)[i], dims[i], "%s [%s]: dim %d", gc->op, gc->label, i);
        tg_tensor *v = tgt_random(dtype, nd, dims, -1, 1, 77 + c);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        int64_t na = tg_tensor_numel(xs[0]), nb = tg_tensor_numel(xs[1]), no = tg_tensor_numel(y);
        double *want = calloc((size_t)no, sizeof *want);
        double *ga = calloc((size_t)na, sizeof *ga), *gb = calloc((size_t)nb, sizeof *gb);
        for (int64_t i = 0; i < no; i++) {
            int64_t ia = ref_offset(idx, nd, gc->in[0].ndim, gc->in[0].shape);
            int64_t ib = ref_offset(idx, nd, gc->in[1].ndim, gc->in[1].shape);
            double a = tg_tensor_get(xs[0], ia), b = tg_tensor_get(xs[1], ib), da, db;
            want[i] = ref_op(op, a, b);
            ref_grad(op, a, b, tg_tensor_get(v, i), &da, &db);
            ga[ia] += da;
            gb[ib] += db;
            ref_next(idx, nd, dims);
        }
        char name[160], msg[512];
        snprintf(name, sizeof name, "%s [%s] %s output", gc->op, gc->label, tg_dtype_name(dtype));
        cr_expect(tgt_allclose(y, want, no, tol, tol, name, msg, sizeof msg), "%s", msg);
        const double *grads[2] = {ga, gb};
        for (int k = 0; k < 2; k++) {
            tg_tensor *gr = tg_tensor_grad(xs[k]);
            if (gc->in[k].no_grad) {
                cr_expect(gr == NULL, "%s [%s]: input %d needs no grad but got one", gc->op,
                          gc->label, k);
                continue;
            }
            snprintf(name, sizeof name, "%s [%s] %s grad %d", gc->op, gc->label,
                     tg_dtype_name(dtype), k);
            cr_expect(tgt_allclose(gr, grads[k], tg_tensor_numel(xs[k]), tol, tol, name, msg,
                                   sizeof msg),
                      "%s", msg);
        }
        free(want);
        free(ga);
        free(gb);
        tg_tensor_free(v);
        tg_graph_free(g);
        gc_free_inputs(gc, xs);
    }
}

Test(ops_elementwise, binary_forward_and_grads_match_naive_broadcast_float64)
{
    check_binary_against_reference(TG_F64, 1e-14);
}

Test(ops_elementwise, binary_forward_and_grads_match_naive_broadcast_float32)
{
    check_binary_against_reference(TG_F32, 1e-5);
}

/* ------------------------------------------------------- known values */

/* a [2, 3] op b [3] by hand, then the gradients for dout = 1. */
static void check_binary_known(tg_dtype dtype)
{
    tg_tensor *a = tgt_tensor(dtype, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
    tg_tensor *b = tgt_tensor(dtype, 1, SHAPE(3), VALS(10, 20, 40));
    tg_tensor_set_requires_grad(a, true);
    tg_tensor_set_requires_grad(b, true);
    tg_graph *g = tg_graph_new();
    tg_tensor *ones = tg_tensor_new(dtype, 2, SHAPE(2, 3));
    tg_tensor_fill(ones, 1.0);
    double tol = dtype == TG_F64 ? 1e-15 : 1e-7;

    tg_tensor *y = tg_add(g, a, b);
    expect_close(y, VALS(11, 22, 43, 14, 25, 46), 0, tol);
    y = tg_sub(g, a, b);
    expect_close(y, VALS(-9, -18, -37, -6, -15, -34), 0, tol);
    y = tg_mul(g, a, b);
    expect_close(y, VALS(10, 40, 120, 40, 100, 240), 0, tol);
    y = tg_div(g, a, b);
    expect_close(y, VALS(0.1, 0.1, 0.075, 0.4, 0.25, 0.15), 0, tol);

    /* div: da = 1 / b per row; db = -sum_rows(a) / b^2 = -(5, 7, 9) / (100, 400, 1600). */
    cr_assert(tg_backward_with(g, y, ones) == TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(a), VALS(0.1, 0.05, 0.025, 0.1, 0.05, 0.025), 0, tol);
    expect_close(tg_tensor_grad(b), VALS(-0.05, -0.0175, -0.005625), 0, 4 * tol);
    tg_tensor_zero_grad(a);
    tg_tensor_zero_grad(b);
    /* mul: da = b per row; db = column sums of a = (5, 7, 9). */
    cr_assert(tg_backward_with(g, tg_mul(g, a, b), ones) == TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(a), VALS(10, 20, 40, 10, 20, 40), 0, 0);
    expect_close(tg_tensor_grad(b), VALS(5, 7, 9), 0, 0);
    tg_tensor_zero_grad(a);
    tg_tensor_zero_grad(b);
    /* sub: da = 1; db = -2 (two rows). */
    cr_assert(tg_backward_with(g, tg_sub(g, a, b), ones) == TG_OK, "%s", tg_last_error());
    expect_close(tg_tensor_grad(a), VALS(1, 1, 1, 1, 1, 1), 0, 0);
    expect_close(tg_tensor_grad(b), VALS(-2, -2, -2), 0, 0);

    tg_tensor_free(ones);
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(ops_elementwise, binary_known_values_and_grads_float64) { check_binary_known(TG_F64); }
Test(ops_elementwise, binary_known_values_and_grads_float32) { check_binary_known(TG_F32); }

Test(ops_elementwise, outer_broadcast_known_values)
{
    /* [4, 1] * [1, 5] is the outer product; [4, 1] - [5] likewise. */
    tg_tensor *a = tgt_tensor(TG_F64, 2, SHAPE(4, 1), VALS(1, 2, 3, 4));
    tg_tensor *b = tgt_tensor(TG_F64, 2, SHAPE(1, 5), VALS(1, 10, 100, 1000, 10000));
    tg_tensor *c = tgt_tensor(TG_F64, 1, SHAPE(5), VALS(1, 10, 100, 1000, 10000));
    tg_graph *g = tg_graph_new();
    tg_tensor *y = tg_mul(g, a, b);
    cr_assert(y);
    cr_expect(tg_tensor_ndim(y) == 2 && tg_tensor_shape(y)[0] == 4 && tg_tensor_shape(y)[1] == 5);
    expect_close(y, VALS(1, 10, 100, 1000, 10000, 2, 20, 200, 2000, 20000, 3, 30, 300, 3000,
                         30000, 4, 40, 400, 4000, 40000),
                 0, 0);
    y = tg_sub(g, a, c);
    expect_close(y, VALS(0, -9, -99, -999, -9999, 1, -8, -98, -998, -9998, 2, -7, -97, -997,
                         -9997, 3, -6, -96, -996, -9996),
                 0, 0);
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
}

typedef tg_tensor *(*un_fn)(tg_graph *, tg_tensor *);

/* Values from PyTorch 2.x:
 * python3 -c 'import torch; x = torch.tensor([-2., -.5, .25, 1., 3.], dtype=torch.float64);
 *             print(torch.exp(x).tolist())'   (and tanh, sigmoid, relu, abs, neg; log and
 * sqrt at [0.25, 1, 2, 10]); the float32 rows are the same with dtype=torch.float32. */
static const struct {
    const char *name;
    un_fn fn;
    bool positive; /* evaluated at [0.25, 1, 2, 10] instead */
    double f64[5];
    double f32[5];
} unary_known[] = {
    {"neg", tg_neg, false, {2.0, 0.5, -0.25, -1.0, -3.0}, {2.0, 0.5, -0.25, -1.0, -3.0}},
    {"exp", tg_exp, false,
     {0.1353352832366127, 0.6065306597126334, 1.2840254166877414, 2.718281828459045,
      20.085536923187668},
     {0.1353352814912796, 0.6065306663513184, 1.2840254306793213, 2.7182817459106445,
      20.08553695678711}},
    {"tanh", tg_tanh, false,
     {-0.9640275800758169, -0.46211715726000974, 0.24491866240370913, 0.7615941559557649,
      0.9950547536867305},
     {-0.9640275835990906, -0.46211716532707214, 0.24491865932941437, 0.7615941762924194,
      0.9950547814369202}},
    {"sigmoid", tg_sigmoid, false,
     {0.11920292202211755, 0.3775406687981454, 0.5621765008857981, 0.7310585786300049,
      0.9525741268224334},
     {0.11920291930437088, 0.3775406777858734, 0.562176525592804, 0.7310585975646973,
      0.9525741338729858}},
    {"relu", tg_relu, false, {0.0, 0.0, 0.25, 1.0, 3.0}, {0.0, 0.0, 0.25, 1.0, 3.0}},
    {"abs", tg_abs, false, {2.0, 0.5, 0.25, 1.0, 3.0}, {2.0, 0.5, 0.25, 1.0, 3.0}},
    {"log", tg_log, true,
     {-1.3862943611198906, 0.0, 0.6931471805599453, 2.302585092994046},
     {-1.3862943649291992, 0.0, 0.6931471824645996, 2.3025851249694824}},
    {"sqrt", tg_sqrt, true,
     {0.5, 1.0, 1.4142135623730951, 3.1622776601683795},
     {0.5, 1.0, 1.4142135381698608, 3.1622776985168457}},
};

Test(ops_elementwise, unary_known_values_from_pytorch)
{
    tg_graph *g = tg_graph_new();
    for (size_t k = 0; k < sizeof unary_known / sizeof unary_known[0]; k++) {
        int64_t n = unary_known[k].positive ? 4 : 5;
        const double *xv = unary_known[k].positive ? VALS(0.25, 1, 2, 10)
                                                   : VALS(-2, -0.5, 0.25, 1, 3);
        tg_tensor *x = tgt_tensor(TG_F64, 1, &n, xv);
        tg_tensor *xf = tg_tensor_copy(x, TG_F32);
        tg_tensor *y = unary_known[k].fn(g, x);
        tg_tensor *yf = unary_known[k].fn(g, xf);
        cr_expect(y && yf, "%s: %s", unary_known[k].name, tg_last_error());
        char msg[512];
        cr_expect(tgt_allclose(y, unary_known[k].f64, n, 0, 1e-15, unary_known[k].name, msg,
                               sizeof msg),
                  "%s", msg);
        cr_expect(tgt_allclose(yf, unary_known[k].f32, n, 0, 1.2e-7, unary_known[k].name, msg,
                               sizeof msg),
                  "float32 %s", msg);
        tg_tensor_free(x);
        tg_tensor_free(xf);
    }
    tg_graph_free(g);
}

/* dout = 1: each VJP at a few points against its formula. */
Test(ops_elementwise, unary_grads_known_values)
{
    const double xv[4] = {-1.5, -0.25, 0.5, 2.0};
    const double pv[4] = {0.25, 1.0, 2.0, 4.0};
    struct {
        un_fn fn;
        bool positive;
        double want[4];
    } cases[] = {
        {tg_neg, false, {-1, -1, -1, -1}},
        {tg_exp, false, {exp(-1.5), exp(-0.25), exp(0.5), exp(2.0)}},
        {tg_tanh, false,
         {1 - tanh(-1.5) * tanh(-1.5), 1 - tanh(-0.25) * tanh(-0.25), 1 - tanh(0.5) * tanh(0.5),
          1 - tanh(2.0) * tanh(2.0)}},
        {tg_relu, false, {0, 0, 1, 1}},
        {tg_abs, false, {-1, -1, 1, 1}},
        {tg_log, true, {4, 1, 0.5, 0.25}},
        {tg_sqrt, true, {1, 0.5, 0.5 / sqrt(2.0), 0.25}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_tensor *x = tgt_tensor(TG_F64, 1, SHAPE(4), cases[k].positive ? pv : xv);
        tg_tensor_set_requires_grad(x, true);
        tg_graph *g = tg_graph_new();
        tg_tensor *ones = tg_tensor_new(TG_F64, 1, SHAPE(4));
        tg_tensor_fill(ones, 1.0);
        cr_assert(tg_backward_with(g, cases[k].fn(g, x), ones) == TG_OK, "%s", tg_last_error());
        char name[32];
        snprintf(name, sizeof name, "grad of case %zu", k);
        char msg[512];
        cr_expect(tgt_allclose(tg_tensor_grad(x), cases[k].want, 4, 0, 1e-15, name, msg,
                               sizeof msg),
                  "%s", msg);
        tg_tensor_free(ones);
        tg_graph_free(g);
        tg_tensor_free(x);
    }
    /* sigmoid' = s (1 - s): at 0 exactly 1/4. */
    tg_tensor *x = tgt_tensor(TG_F64, 0, NULL, VALS(0));
    tg_tensor_set_requires_grad(x, true);
    tg_graph *g = tg_graph_new();
    cr_assert(tg_backward(g, tg_sigmoid(g, x)) == TG_OK);
    cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 0.25);
    tg_graph_free(g);
    tg_tensor_free(x);
}

Test(ops_elementwise, sigmoid_is_stable_for_large_inputs)
{
    /* PyTorch float64: sigmoid([-800, -100, -20, 20, 100, 800]). PyTorch's
     * float32 gives 0 at -100; ours keeps the subnormal e^-100 = 3.7e-44. */
    const double want[6] = {0.0, 3.7200759760208356e-44, 2.0611536181902037e-09,
                            0.9999999979388463, 1.0, 1.0};
    const double xv[6] = {-800, -100, -20, 20, 100, 800};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tensor *x = tgt_tensor(dt, 1, SHAPE(6), xv);
        tg_tensor_set_requires_grad(x, true);
        tg_graph *g = tg_graph_new();
        tg_tensor *y = tg_sigmoid(g, x);
        cr_assert(y);
        if (dt == TG_F64) {
            expect_close(y, want, 1e-300, 1e-15);
        } else {
            expect_close(y, want, 1e-44, 1e-7);
        }
        tg_tensor *ones = tg_tensor_new(dt, 1, SHAPE(6));
        tg_tensor_fill(ones, 1.0);
        cr_assert(tg_backward_with(g, y, ones) == TG_OK);
        for (int i = 0; i < 6; i++) {
            double gi = tg_tensor_get(tg_tensor_grad(x), i);
            cr_expect(isfinite(gi) && gi >= 0 && gi < 1e-8, "%s x=%g: grad %g",
                      tg_dtype_name(dt), xv[i], gi);
        }
        cr_expect(tg_tensor_get(tg_tensor_grad(x), 0) == 0 &&
                  tg_tensor_get(tg_tensor_grad(x), 5) == 0);
        tg_tensor_free(ones);
        tg_graph_free(g);
        tg_tensor_free(x);
    }
}

/* ------------------------------------------------------- kinks, exactly */

/* dout = 1 through fn at x; returns the gradient tensor (owned by x). */
static tg_tensor *grad_at(un_fn fn, tg_tensor *x, tg_graph *g)
{
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = fn(g, x);
    cr_assert(y, "%s", tg_last_error());
    tg_tensor *ones = tg_tensor_new(tg_tensor_dtype(x), tg_tensor_ndim(x), tg_tensor_shape(x));
    tg_tensor_fill(ones, 1.0);
    cr_assert(tg_backward_with(g, y, ones) == TG_OK, "%s", tg_last_error());
    tg_tensor_free(ones);
    return tg_tensor_grad(x);
}

Test(ops_elementwise, relu_and_abs_have_zero_gradient_at_zero)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 1, SHAPE(5), VALS(0.0, -0.0, 1.5, -1.5, 1e-30));
        tg_tensor *drelu = grad_at(tg_relu, x, g);
        expect_close(drelu, VALS(0, 0, 1, 0, 1), 0, 0);
        tg_tensor_free(x);
        x = tgt_tensor(dt, 1, SHAPE(5), VALS(0.0, -0.0, 1.5, -1.5, -1e-30));
        tg_tensor *dabs = grad_at(tg_abs, x, g);
        expect_close(dabs, VALS(0, 0, 1, -1, -1), 0, 0);
        /* Forward at the kink: relu(0) = 0, |-0| = +0. */
        tg_tensor *y = tg_abs(g, x);
        cr_expect(tg_tensor_get(y, 1) == 0 && !signbit(tg_tensor_get(y, 1)));
        y = tg_relu(g, x);
        cr_expect(tg_tensor_get(y, 0) == 0 && tg_tensor_get(y, 3) == 0);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_elementwise, mul_of_a_leaf_with_itself_gives_2x)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tensor *x = tgt_tensor(dt, 2, SHAPE(2, 3), VALS(-1.5, 0, 0.25, 2, 3, -7));
        tg_tensor_set_requires_grad(x, true);
        tg_graph *g = tg_graph_new();
        tg_tensor *ones = tg_tensor_new(dt, 2, SHAPE(2, 3));
        tg_tensor_fill(ones, 1.0);
        tg_tensor *y = tg_mul(g, x, x);
        expect_close(y, VALS(2.25, 0, 0.0625, 4, 9, 49), 0, 0);
        cr_assert(tg_backward_with(g, y, ones) == TG_OK);
        expect_close(tg_tensor_grad(x), VALS(-3, 0, 0.5, 4, 6, -14), 0, 0);
        /* A second backward accumulates (+=): 2 * 2x. */
        cr_assert(tg_backward_with(g, y, ones) == TG_OK);
        expect_close(tg_tensor_grad(x), VALS(-6, 0, 1, 8, 12, -28), 0, 0);
        tg_tensor_free(ones);
        tg_graph_free(g);
        tg_tensor_free(x);
    }
}

/* ------------------------------------------------------- pow and IEEE edges */

static double pow_e; /* the exponent pow_fn applies */
static tg_tensor *pow_fn(tg_graph *g, tg_tensor *x) { return tg_pow(g, x, pow_e); }

/* x^p and its gradient (dout = 1) at xs against PyTorch's numbers. */
static void check_pow(double p, int n, const double *xs, const double *want_y,
                      const double *want_g)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 2.5e-7 : 1e-15;
        int64_t shape[1] = {n};
        pow_e = p;
        tg_tensor *x = tgt_tensor(dt, 1, shape, xs);
        tg_graph *g = tg_graph_new();
        tg_tensor *y = tg_pow(g, x, p);
        char name[64], msg[512];
        snprintf(name, sizeof name, "%s x^%g", tg_dtype_name(dt), p);
        cr_expect(tgt_allclose(y, want_y, n, 0, tol, name, msg, sizeof msg), "%s", msg);
        tg_tensor *gr = grad_at(pow_fn, x, g);
        snprintf(name, sizeof name, "%s d/dx x^%g", tg_dtype_name(dt), p);
        cr_expect(tgt_allclose(gr, want_g, n, 0, tol, name, msg, sizeof msg), "%s", msg);
        for (int i = 0; i < n; i++) /* signed zeros and infinities as PyTorch */
            cr_expect(!signbit(tg_tensor_get(y, i)) == !signbit(want_y[i]) || isnan(want_y[i]),
                      "%s: sign of y[%d]", name, i);
        tg_graph_free(g);
        tg_tensor_free(x);
    }
}

#define NAN_ ((double)NAN)
#define INF_ ((double)INFINITY)

/* All values below are from PyTorch 2.x: x = torch.tensor([...], requires_grad=True);
 * (x ** p).backward(torch.ones_like(x)). */
Test(ops_elementwise, pow_zero_exponent_has_zero_gradient_everywhere)
{
    check_pow(0.0, 5, VALS(0.0, -2.0, 4.0, -0.0, NAN_), VALS(1, 1, 1, 1, 1), VALS(0, 0, 0, 0, 0));
}

Test(ops_elementwise, pow_integer_exponent_on_negative_x)
{
    check_pow(3.0, 4, VALS(-2.0, -0.5, 1.5, -1.0), VALS(-8, -0.125, 3.375, -1),
              VALS(12, 0.75, 6.75, 3));
    check_pow(2.0, 3, VALS(-3.0, -0.25, 5.0), VALS(9, 0.0625, 25), VALS(-6, -0.5, 10));
    check_pow(-1.0, 2, VALS(-2.0, -0.5), VALS(-0.5, -2), VALS(-0.25, -4));
    check_pow(-2.0, 2, VALS(-2.0, 4.0), VALS(0.25, 0.0625), VALS(0.25, -0.03125));
}

Test(ops_elementwise, pow_half_at_positive_x)
{
    check_pow(0.5, 3, VALS(4.0, 0.25, 9.0), VALS(2, 0.5, 3), VALS(0.25, 1, 1.0 / 6.0));
    check_pow(2.5, 2, VALS(4.0, 1.0), VALS(32, 1), VALS(20, 2.5));
}

Test(ops_elementwise, pow_at_zero_and_negative_x_follows_pytorch)
{
    /* torch: x = [0., -2., 4., -0.]; p = 0.5 -> y [0, nan, 2, -0], grad [inf, nan, .25, -inf] */
    check_pow(0.5, 4, VALS(0.0, -2.0, 4.0, -0.0), VALS(0, NAN_, 2, -0.0),
              VALS(INF_, NAN_, 0.25, -INF_));
    check_pow(2.0, 2, VALS(0.0, -0.0), VALS(0, 0), VALS(0, -0.0));
    check_pow(3.0, 2, VALS(0.0, -0.0), VALS(0, -0.0), VALS(0, 0));
    check_pow(1.0, 2, VALS(0.0, -0.0), VALS(0, -0.0), VALS(1, 1));
    check_pow(-1.0, 2, VALS(0.0, -0.0), VALS(INF_, -INF_), VALS(-INF_, -INF_));
    check_pow(-0.5, 3, VALS(0.0, -2.0, -0.0), VALS(INF_, NAN_, -INF_), VALS(-INF_, NAN_, -INF_));
    check_pow(2.5, 3, VALS(0.0, -2.0, -0.0), VALS(0, NAN_, 0), VALS(0, NAN_, 0));
}

Test(ops_elementwise, log_and_sqrt_at_zero_and_negative_follow_ieee)
{
    /* torch: x = [0., -2., 4., -0.]: log -> [-inf, nan, 1.386..., -inf], grad
     * [inf, -0.5, 0.25, -inf]; sqrt -> [0, nan, 2, -0], grad [inf, nan, 0.25, -inf]. */
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 1, SHAPE(4), VALS(0.0, -2.0, 4.0, -0.0));
        tg_tensor *y = tg_log(g, x);
        expect_close(y, VALS(-INF_, NAN_, log(4.0), -INF_), 0, 1e-7);
        tg_tensor *dlog = grad_at(tg_log, x, g);
        expect_close(dlog, VALS(INF_, -0.5, 0.25, -INF_), 0, 0);
        tg_tensor_free(x);
        x = tgt_tensor(dt, 1, SHAPE(4), VALS(0.0, -2.0, 4.0, -0.0));
        y = tg_sqrt(g, x);
        expect_close(y, VALS(0, NAN_, 2, -0.0), 0, 0);
        cr_expect(signbit(tg_tensor_get(y, 3)));
        tg_tensor *dsqrt = grad_at(tg_sqrt, x, g);
        expect_close(dsqrt, VALS(INF_, NAN_, 0.25, -INF_), 0, 0);
        tg_tensor_free(x);
        /* Division by zero is IEEE too: 1/0 = inf, 0/0 = NaN, -1/0 = -inf. */
        tg_tensor *a = tgt_tensor(dt, 1, SHAPE(3), VALS(1, 0, -1));
        tg_tensor *z = tgt_tensor(dt, 0, NULL, VALS(0));
        expect_close(tg_div(g, a, z), VALS(INF_, NAN_, -INF_), 0, 0);
        tg_tensor_free(a);
        tg_tensor_free(z);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------- zero-size and accuracy */

Test(ops_elementwise, zero_size_tensors_forward_and_backward)
{
    static const struct {
        int na, nb, no;
        int64_t a[2], b[2], o[2];
    } pairs[] = {{1, 1, 1, {0}, {0}, {0}},       {2, 1, 2, {0, 3}, {3}, {0, 3}},
                 {2, 1, 2, {2, 0}, {0}, {2, 0}}, {1, 0, 1, {0}, {0}, {0}},
                 {1, 1, 1, {0}, {1}, {0}},       {2, 2, 2, {1, 0}, {4, 1}, {4, 0}}};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        for (size_t c = 0; c < sizeof pairs / sizeof pairs[0]; c++) {
            for (int op = 0; op < 4; op++) {
                tg_tensor *a = tg_tensor_new(dt, pairs[c].na, pairs[c].a);
                tg_tensor *b = tg_tensor_new(dt, pairs[c].nb, pairs[c].b);
                tg_tensor_set_requires_grad(a, true);
                tg_tensor_set_requires_grad(b, true);
                tg_graph *g = tg_graph_new();
                tg_tensor *y = bin_fns[op](g, a, b);
                cr_assert(y, "%s pair %zu: %s", bin_names[op], c, tg_last_error());
                cr_expect_eq(tg_tensor_ndim(y), pairs[c].no);
                for (int i = 0; i < pairs[c].no; i++)
                    cr_expect_eq(tg_tensor_shape(y)[i], pairs[c].o[i]);
                cr_expect_eq(tg_tensor_numel(y), 0);
                tg_tensor *v = tg_tensor_new(dt, pairs[c].no, pairs[c].o);
                cr_expect(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
                /* b of shape [1] or [] gets a zero gradient: nothing was summed. */
                tg_tensor *gb = tg_tensor_grad(b);
                for (int64_t i = 0; gb && i < tg_tensor_numel(gb); i++)
                    cr_expect(tg_tensor_get(gb, i) == 0);
                tg_tensor_free(v);
                tg_graph_free(g);
                tg_tensor_free(a);
                tg_tensor_free(b);
            }
        }
        /* Unary ops on [0, 4]. */
        un_fn fns[] = {tg_neg, tg_exp, tg_log, tg_sqrt, tg_relu, tg_sigmoid, tg_tanh, tg_abs};
        for (size_t k = 0; k <= sizeof fns / sizeof fns[0]; k++) {
            tg_tensor *x = tg_tensor_new(dt, 2, SHAPE(0, 4));
            tg_tensor_set_requires_grad(x, true);
            tg_graph *g = tg_graph_new();
            tg_tensor *y = k < sizeof fns / sizeof fns[0] ? fns[k](g, x) : tg_pow(g, x, 1.5);
            cr_assert(y, "%s", tg_last_error());
            cr_expect(tg_tensor_ndim(y) == 2 && tg_tensor_shape(y)[0] == 0 &&
                      tg_tensor_shape(y)[1] == 4);
            tg_tensor *v = tg_tensor_new(dt, 2, SHAPE(0, 4));
            cr_expect(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
            tg_tensor_free(v);
            tg_graph_free(g);
            tg_tensor_free(x);
        }
    }
    /* 0 against 2 does not broadcast. */
    tg_tensor *a = tg_tensor_new(TG_F64, 1, SHAPE(0));
    tg_tensor *b = tg_tensor_new(TG_F64, 1, SHAPE(2));
    tg_graph *g = tg_graph_new();
    expect_error(tg_add(g, a, b) == NULL, "tg_add", "do not broadcast", "a [0]", "b [2]");
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(ops_elementwise, float32_broadcast_gradient_sums_in_double)
{
    /* 200000 * 0.1f summed in float32 drifts by ~1e-3 relative; summed in
     * double it is 200000 * (double)0.1f to float32 rounding. Covers the
     * scalar (one row) and the trailing-row ([N, 2] + [2], N rows) paths. */
    const int64_t n = 200000;
    const double want = (double)n / 2 * (double)0.1f;
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(n / 2, 2));
    tg_tensor *s = tg_tensor_new(TG_F32, 0, NULL);
    tg_tensor *r = tg_tensor_new(TG_F32, 1, SHAPE(2));
    tg_tensor_fill(x, 1.0);
    tg_tensor_set_requires_grad(s, true);
    tg_tensor_set_requires_grad(r, true);
    tg_tensor *v = tg_tensor_new(TG_F32, 2, SHAPE(n / 2, 2));
    tg_tensor_fill(v, 0.1);
    tg_graph *g = tg_graph_new();
    cr_assert(tg_backward_with(g, tg_add(g, tg_mul(g, x, r), s), v) == TG_OK, "%s",
              tg_last_error());
    double gs = tg_tensor_get(tg_tensor_grad(s), 0);
    cr_expect(fabs(gs - 2 * want) <= 2 * want * 1e-7, "scalar grad %.9g, want %.9g", gs, 2 * want);
    for (int i = 0; i < 2; i++) {
        double gr = tg_tensor_get(tg_tensor_grad(r), i);
        cr_expect(fabs(gr - want) <= want * 1e-7, "row grad %.9g, want %.9g", gr, want);
    }
    tg_graph_free(g);
    tg_tensor_free(x);
    tg_tensor_free(s);
    tg_tensor_free(r);
    tg_tensor_free(v);
}

Test(ops_elementwise, inputs_without_grad_get_none_and_no_node_is_recorded)
{
    tg_tensor *a = tgt_tensor(TG_F64, 1, SHAPE(3), VALS(1, 2, 3));
    tg_tensor *b = tgt_tensor(TG_F64, 1, SHAPE(3), VALS(4, 5, 6));
    tg_graph *g = tg_graph_new();
    tg_tensor *y = tg_mul(g, a, b);
    cr_assert(y);
    cr_expect(!tg_tensor_requires_grad(y));
    cr_expect_eq(tg_graph_n_nodes(g), 0);
    tg_tensor_set_requires_grad(a, true);
    y = tg_exp(g, tg_mul(g, a, b));
    cr_expect_eq(tg_graph_n_nodes(g), 2);
    cr_assert(tg_backward_with(g, y, y) == TG_OK);
    cr_expect(tg_tensor_grad(a) != NULL && tg_tensor_grad(b) == NULL);
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* ----------------------------------------------------------------- errors */

static tg_tensor *pow2(tg_graph *g, tg_tensor *x) { return tg_pow(g, x, 2.0); }

static const struct {
    const char *name;
    un_fn fn;
} unary_ops[] = {{"tg_neg", tg_neg},   {"tg_exp", tg_exp},         {"tg_log", tg_log},
                 {"tg_sqrt", tg_sqrt}, {"tg_pow", pow2},           {"tg_relu", tg_relu},
                 {"tg_sigmoid", tg_sigmoid}, {"tg_tanh", tg_tanh}, {"tg_abs", tg_abs}};

Test(ops_elementwise, null_input_names_the_op)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F64, 1, SHAPE(2), VALS(1, 2));
    for (size_t k = 0; k < sizeof unary_ops / sizeof unary_ops[0]; k++) {
        tg_error_clear();
        expect_error(unary_ops[k].fn(g, NULL) == NULL, unary_ops[k].name, "input 0 is NULL");
        cr_expect_eq(tg_last_status(), TG_ERR_NULL);
    }
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "tg_%s", bin_names[k]);
        tg_error_clear();
        expect_error(bin_fns[k](g, NULL, x) == NULL, name, "input 0 is NULL");
        tg_error_clear();
        expect_error(bin_fns[k](g, x, NULL) == NULL, name, "input 1 is NULL");
        cr_expect_eq(tg_last_status(), TG_ERR_NULL);
    }
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_elementwise, null_input_keeps_the_first_error_of_a_chain)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tgt_tensor(TG_F64, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
    tg_tensor *b = tgt_tensor(TG_F64, 1, SHAPE(4), VALS(1, 2, 3, 4));
    tg_error_clear();
    /* The add fails; every op after it sees NULL and keeps the add's message. */
    tg_tensor *y = tg_exp(g, tg_mul(g, tg_relu(g, tg_add(g, a, b)), a));
    y = tg_pow(g, tg_sub(g, a, tg_div(g, y, b)), 3.0);
    expect_error(y == NULL, "tg_add: shapes do not broadcast: a [2, 3] and b [4]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    for (size_t k = 0; k < sizeof unary_ops / sizeof unary_ops[0]; k++) {
        cr_expect(unary_ops[k].fn(g, NULL) == NULL);
        cr_expect(strstr(tg_last_error(), "tg_add: shapes") == tg_last_error(), "%s replaced it",
                  unary_ops[k].name);
    }
    tg_graph_free(g);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(ops_elementwise, broadcast_mismatch_names_both_shapes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *b = tg_tensor_new(TG_F64, 1, SHAPE(4));
    tg_tensor *c = tg_tensor_new(TG_F32, 3, SHAPE(2, 3, 4));
    tg_tensor *d = tg_tensor_new(TG_F32, 2, SHAPE(2, 4));
    for (int k = 0; k < 4; k++) {
        char want[96];
        snprintf(want, sizeof want, "tg_%s: shapes do not broadcast: a [2, 3] and b [4]",
                 bin_names[k]);
        tg_error_clear();
        expect_error(bin_fns[k](g, a, b) == NULL, want);
        cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
        snprintf(want, sizeof want, "tg_%s: shapes do not broadcast: a [4] and b [2, 3]",
                 bin_names[k]);
        expect_error(bin_fns[k](g, b, a) == NULL, want);
        snprintf(want, sizeof want, "tg_%s: shapes do not broadcast: a [2, 3, 4] and b [2, 4]",
                 bin_names[k]);
        expect_error(bin_fns[k](g, c, d) == NULL, want);
    }
    cr_expect_eq(tg_graph_n_nodes(g), 0);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(c);
    tg_tensor_free(d);
    tg_graph_free(g);
}

Test(ops_elementwise, dtype_mismatch_names_both_dtypes)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F32, 2, SHAPE(2, 3));
    tg_tensor *b = tg_tensor_new(TG_F64, 1, SHAPE(3));
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "tg_%s", bin_names[k]);
        tg_error_clear();
        expect_error(bin_fns[k](g, a, b) == NULL, name, "float32", "float64", "[2, 3]", "[3]");
        cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
        tg_error_clear();
        expect_error(bin_fns[k](g, b, a) == NULL, name, "float64", "float32");
        cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    }
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}
