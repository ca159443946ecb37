/* Reductions: sum, mean, sum_axis, mean_axis, max_axis. Gradcheck table (family
 * "reduce"), forward values, max ties and NaN, zero-size inputs, float32
 * accumulation, and the error messages. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ gradcheck */

typedef struct red_ctx {
    int axis;
    bool keepdim;
} red_ctx;

static tg_tensor *f_sum(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_sum(g, x[0]);
}

static tg_tensor *f_mean(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    return tg_mean(g, x[0]);
}

static tg_tensor *f_sum_axis(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const red_ctx *c = ctx;
    (void)n;
    return tg_sum_axis(g, x[0], c->axis, c->keepdim);
}

static tg_tensor *f_mean_axis(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const red_ctx *c = ctx;
    (void)n;
    return tg_mean_axis(g, x[0], c->axis, c->keepdim);
}

static tg_tensor *f_max_axis(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const red_ctx *c = ctx;
    (void)n;
    return tg_max_axis(g, x[0], c->axis, c->keepdim);
}

/* A chain: the gradient of max_axis must flow through a later reduction. */
static tg_tensor *f_mean_of_max(tg_graph *g, tg_tensor **x, int n, void *ctx)
{
    const red_ctx *c = ctx;
    (void)n;
    return tg_mean(g, tg_max_axis(g, x[0], c->axis, c->keepdim));
}

#define IN1(nd, fill, ...) .n_inputs = 1, .in = {{(nd), {__VA_ARGS__}, (fill), false}}
#define IN1_SCALAR(fill) .n_inputs = 1, .in = {{0, {0}, (fill), false}}

/* Full reductions: rank nd, dims follow. */
#define FULL(op, fn, nd, ...) {op, "[" #__VA_ARGS__ "]", fn, NULL, IN1(nd, GC_UNIFORM, __VA_ARGS__)}
#define FULL_SCALAR(op, fn) {op, "[]", fn, NULL, IN1_SCALAR(GC_UNIFORM)}

#define FULL_CASES(op, fn)                                                                     \
    FULL_SCALAR(op, fn), FULL(op, fn, 1, 1), FULL(op, fn, 1, 2), FULL(op, fn, 1, 7),           \
        FULL(op, fn, 1, 13), FULL(op, fn, 1, 301), FULL(op, fn, 2, 1, 1), FULL(op, fn, 2, 3, 4), \
        FULL(op, fn, 2, 1, 5), FULL(op, fn, 2, 4, 1), FULL(op, fn, 2, 9, 11),                  \
        FULL(op, fn, 3, 2, 3, 5), FULL(op, fn, 3, 3, 1, 2), FULL(op, fn, 3, 1, 1, 1),           \
        FULL(op, fn, 3, 4, 3, 2), FULL(op, fn, 3, 5, 7, 3), FULL(op, fn, 4, 2, 3, 4, 5),        \
        FULL(op, fn, 4, 2, 1, 3, 1), FULL(op, fn, 4, 1, 2, 1, 3), FULL(op, fn, 4, 3, 2, 2, 3),  \
        FULL(op, fn, 4, 1, 1, 1, 1)

/* Axis reductions: axis a, keepdim k, rank nd, dims follow. */
#define AX(op, fn, fill, a, k, nd, ...)                                                        \
    {op, "[" #__VA_ARGS__ "] axis " #a " keepdim " #k, fn, &(const red_ctx){(a), (k)},         \
     IN1(nd, fill, __VA_ARGS__)}
#define AX_SCALAR(op, fn, fill, a, k)                                                          \
    {op, "[] axis " #a " keepdim " #k, fn, &(const red_ctx){(a), (k)}, IN1_SCALAR(fill)}

#define AXIS_CASES(op, fn, fill)                                                               \
    AX_SCALAR(op, fn, fill, 0, false), AX_SCALAR(op, fn, fill, -1, true),                      \
        AX(op, fn, fill, 0, false, 1, 5), AX(op, fn, fill, -1, true, 1, 5),                    \
        AX(op, fn, fill, 0, true, 1, 1), AX(op, fn, fill, 0, false, 2, 3, 4),                  \
        AX(op, fn, fill, 1, true, 2, 3, 4), AX(op, fn, fill, -1, false, 2, 3, 4),              \
        AX(op, fn, fill, -2, true, 2, 3, 4), AX(op, fn, fill, 0, true, 2, 1, 7),               \
        AX(op, fn, fill, 1, false, 2, 1, 7), AX(op, fn, fill, 0, false, 2, 7, 1),              \
        AX(op, fn, fill, 0, false, 3, 2, 3, 5), AX(op, fn, fill, 1, true, 3, 2, 3, 5),         \
        AX(op, fn, fill, 2, false, 3, 2, 3, 5), AX(op, fn, fill, -1, true, 3, 2, 3, 5),        \
        AX(op, fn, fill, -3, false, 3, 2, 3, 5), AX(op, fn, fill, 1, false, 3, 2, 1, 3),       \
        AX(op, fn, fill, 1, true, 3, 2, 1, 3), AX(op, fn, fill, 0, true, 4, 2, 3, 4, 5),       \
        AX(op, fn, fill, 1, false, 4, 2, 3, 4, 5), AX(op, fn, fill, 2, true, 4, 2, 3, 4, 5),   \
        AX(op, fn, fill, 3, false, 4, 2, 3, 4, 5), AX(op, fn, fill, -1, true, 4, 2, 3, 4, 5),  \
        AX(op, fn, fill, -2, false, 4, 2, 3, 4, 5), AX(op, fn, fill, -4, true, 4, 2, 3, 4, 5), \
        AX(op, fn, fill, 2, true, 4, 3, 2, 1, 4), AX(op, fn, fill, -4, false, 4, 1, 3, 1, 2),  \
        AX(op, fn, fill, 3, false, 4, 2, 3, 1, 1), AX(op, fn, fill, 1, false, 3, 2, 3, 270),   \
        AX(op, fn, fill, 0, true, 2, 300, 2)

const gc_case gc_cases_reduce[] = {
    FULL_CASES("sum", f_sum),
    FULL_CASES("mean", f_mean),
    AXIS_CASES("sum_axis", f_sum_axis, GC_UNIFORM),
    AXIS_CASES("mean_axis", f_mean_axis, GC_UNIFORM),
    AXIS_CASES("max_axis", f_max_axis, GC_DISTINCT),
    AX("max_axis", f_mean_of_max, GC_DISTINCT, 1, false, 3, 3, 4, 5),
    AX("max_axis", f_mean_of_max, GC_DISTINCT, -3, true, 3, 3, 4, 5),
};
const size_t gc_n_reduce = sizeof gc_cases_reduce / sizeof gc_cases_reduce[0];

Test(ops_reduce, gradcheck_table)
{
    gc_run_table(gc_cases_reduce, gc_n_reduce);
}

/* -------------------------------------------------------------- helpers */

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})

#define expect_shape(t, str)                                                                   \
    do {                                                                                       \
        char s_[TG_SHAPE_STR_MAX];                                                             \
        cr_assert((t), "NULL result: %s", tg_last_error());                                    \
        tg_shape_format(s_, sizeof s_, tg_tensor_ndim(t), tg_tensor_shape(t));                 \
        cr_expect_str_eq(s_, (str), "shape of %s", #t);                                        \
    } while (0)

static const tg_dtype dtypes[2] = {TG_F64, TG_F32};

/* Tolerance for the dtype: exact-ish for float64, float32 rounding otherwise. */
static double tol(tg_dtype dt) { return dt == TG_F64 ? 1e-12 : 1e-6; }

/* ----------------------------------------------------- forward values */

Test(ops_reduce, sum_and_mean_of_2x3)
{
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[k], 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
        tg_tensor *s = tg_sum(g, x), *m = tg_mean(g, x);
        expect_shape(s, "[]");
        expect_shape(m, "[]");
        expect_close(s, VALS(21), 0, tol(dtypes[k]));
        expect_close(m, VALS(3.5), 0, tol(dtypes[k]));
        cr_expect(tg_tensor_dtype(s) == dtypes[k]);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_reduce, sum_and_mean_of_a_scalar_is_the_scalar)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F64, 0, NULL, VALS(-2.5));
    expect_close(tg_sum(g, x), VALS(-2.5), 0, 0);
    expect_close(tg_mean(g, x), VALS(-2.5), 0, 0);
    tg_tensor *y = tg_sum_axis(g, x, -1, true);
    expect_shape(y, "[]");
    expect_close(y, VALS(-2.5), 0, 0);
    y = tg_max_axis(g, x, 0, false);
    expect_shape(y, "[]");
    expect_close(y, VALS(-2.5), 0, 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_reduce, sum_axis_and_mean_axis_of_2x3_every_axis)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
        tg_tensor *y = tg_sum_axis(g, x, 0, false);
        expect_shape(y, "[3]");
        expect_close(y, VALS(5, 7, 9), 0, tol(dt));
        y = tg_sum_axis(g, x, 0, true);
        expect_shape(y, "[1, 3]");
        expect_close(y, VALS(5, 7, 9), 0, tol(dt));
        y = tg_sum_axis(g, x, -1, false);
        expect_shape(y, "[2]");
        expect_close(y, VALS(6, 15), 0, tol(dt));
        y = tg_sum_axis(g, x, 1, true);
        expect_shape(y, "[2, 1]");
        expect_close(y, VALS(6, 15), 0, tol(dt));
        y = tg_mean_axis(g, x, -2, true);
        expect_shape(y, "[1, 3]");
        expect_close(y, VALS(2.5, 3.5, 4.5), 0, tol(dt));
        y = tg_mean_axis(g, x, 1, false);
        expect_shape(y, "[2]");
        expect_close(y, VALS(2, 5), 0, tol(dt));
        y = tg_max_axis(g, x, 0, false);
        expect_shape(y, "[3]");
        expect_close(y, VALS(4, 5, 6), 0, 0);
        y = tg_max_axis(g, x, -1, true);
        expect_shape(y, "[2, 1]");
        expect_close(y, VALS(3, 6), 0, 0);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* x = sin(0..23) as [2, 3, 4]; the expected values are PyTorch's:
 *   x = torch.sin(torch.arange(24, dtype=torch.float64)).reshape(2, 3, 4)
 *   x.max(1), x.sum(2), x.mean(0) */
Test(ops_reduce, sin_2x3x4_matches_pytorch)
{
    double v[24];
    for (int i = 0; i < 24; i++)
        v[i] = sin((double)i);
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 3, SHAPE(2, 3, 4), v);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *mx = tg_max_axis(g, x, 1, false);
        expect_shape(mx, "[2, 4]");
        expect_close(mx,
                     VALS(0.98935824662338179, 0.84147098480789650, 0.90929742682568171,
                          0.65698659871878906, 0.91294525072762767, 0.83665563853605607,
                          0.99060735569487035, 0.65028784015711683),
                     1e-7, tol(dt));
        /* PyTorch's indices: [[2, 0, 0, 1], [2, 2, 0, 0]]; the gradient of
         * sum(max) is 1 exactly there. */
        cr_assert_eq(tg_backward(g, tg_sum(g, mx)), TG_OK, "%s", tg_last_error());
        double want[24] = {0};
        const int at[2][4] = {{2, 0, 0, 1}, {2, 2, 0, 0}};
        for (int o = 0; o < 2; o++)
            for (int i = 0; i < 4; i++)
                want[o * 12 + at[o][i] * 4 + i] = 1.0;
        expect_close(tg_tensor_grad(x), want, 0, 0);

        tg_tensor *s = tg_sum_axis(g, x, 2, false);
        expect_close(s,
                     VALS(1.89188841969344534, -1.33815566945120334, -0.14253458557493481,
                          1.52448931467819326, -1.85041084565334613, 0.89452917579810909),
                     1e-6, tol(dt));
        tg_tensor *m = tg_mean_axis(g, x, 0, false);
        expect_shape(m, "[3, 4]");
        expect_close(m,
                     VALS(-0.26828645900021747, 0.63081901081726865, 0.94995239126027609,
                          0.39570392410849203, -0.52235290598649675, -0.96016088327134763,
                          -0.51520137248530096, 0.40343190419087072, 0.95115174867550478,
                          0.62438706188890636, -0.27643621008988684, -0.92310530536293700),
                     1e-7, tol(dt));
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------------ gradients */

Test(ops_reduce, mean_gradient_is_one_over_n)
{
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[k], 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
        tg_tensor_set_requires_grad(x, true);
        cr_assert_eq(tg_backward(g, tg_mean(g, x)), TG_OK, "%s", tg_last_error());
        double w = 1.0 / 6.0;
        expect_close(tg_tensor_grad(x), VALS(w, w, w, w, w, w), 0, tol(dtypes[k]));
        /* Sum adds 1 to the same gradient (leaf gradients accumulate). */
        cr_assert_eq(tg_backward(g, tg_sum(g, x)), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(1 + w, 1 + w, 1 + w, 1 + w, 1 + w, 1 + w), 0,
                     tol(dtypes[k]));
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_reduce, axis_gradients_broadcast_the_cotangent)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 2, SHAPE(2, 3), VALS(1, 2, 3, 4, 5, 6));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *v = tgt_tensor(dt, 2, SHAPE(1, 3), VALS(10, 20, 30));
        cr_assert_eq(tg_backward_with(g, tg_sum_axis(g, x, 0, true), v), TG_OK, "%s",
                     tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(10, 20, 30, 10, 20, 30), 0, 0);
        tg_tensor_zero_grad(x);
        tg_tensor *v2 = tgt_tensor(dt, 1, SHAPE(2), VALS(3, 6));
        cr_assert_eq(tg_backward_with(g, tg_mean_axis(g, x, 1, false), v2), TG_OK, "%s",
                     tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(1, 1, 1, 2, 2, 2), 0, tol(dt));
        tg_tensor_free(v);
        tg_tensor_free(v2);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------ max: ties, NaN */

/* The whole gradient goes to the first maximum, on both kernel paths
 * (reduced axis last: inner == 1; reduced axis first: inner > 1). */
Test(ops_reduce, max_axis_ties_send_the_gradient_to_the_first_max)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        /* Rows: [3, 1, 3], [2, 2, 2], [-0.0, 0.0, -1]. */
        tg_tensor *x = tgt_tensor(dt, 2, SHAPE(3, 3), VALS(3, 1, 3, 2, 2, 2, -0.0, 0.0, -1));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *y = tg_max_axis(g, x, 1, false);
        expect_close(y, VALS(3, 2, 0), 0, 0);
        cr_expect(signbit(tg_tensor_get(y, 2)), "-0.0 came first and is kept");
        cr_assert_eq(tg_backward(g, tg_sum(g, y)), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(1, 0, 0, 1, 0, 0, 1, 0, 0), 0, 0);

        /* Along axis 0, columns [3, 2, -0], [1, 2, 0], [3, 2, -1]. */
        tg_tensor_zero_grad(x);
        tg_tensor *x2 = tgt_tensor(dt, 2, SHAPE(3, 3), VALS(3, 1, 5, 3, 2, 5, 1, 2, 5));
        tg_tensor_set_requires_grad(x2, true);
        y = tg_max_axis(g, x2, 0, true);
        expect_shape(y, "[1, 3]");
        expect_close(y, VALS(3, 2, 5), 0, 0);
        cr_assert_eq(tg_backward(g, tg_sum(g, y)), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x2), VALS(1, 0, 1, 0, 1, 0, 0, 0, 0), 0, 0);
        tg_tensor_free(x2);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* Rows longer than the kernel's eight lanes: ties in different lanes, an
 * infinity, a NaN late in the row, a row of -inf but one. */
Test(ops_reduce, max_axis_long_rows_keep_first_max_and_specials)
{
    enum { R = 5, L = 21 };
    const double nan = (double)NAN, inf = (double)INFINITY;
    double v[R * L];
    for (int i = 0; i < L; i++) {
        v[0 * L + i] = 0.1 * i;
        v[1 * L + i] = 1.0;
        v[2 * L + i] = -0.1 * i;
        v[3 * L + i] = 0.2 * i - 1;
        v[4 * L + i] = -inf;
    }
    v[0 * L + 4] = v[0 * L + 12] = v[0 * L + 20] = 5.0;
    v[2 * L + 12] = 5.0;
    v[2 * L + 17] = inf;
    v[3 * L + 3] = 5.0;
    v[3 * L + 15] = nan;
    v[4 * L + 9] = -1e30;
    const int64_t at[R] = {4, 0, 17, 15, 9};
    for (int k = 0; k < 2; k++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[k], 2, SHAPE(R, L), v);
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *y = tg_max_axis(g, x, 1, false);
        double want[R], dx[R * L] = {0};
        for (int r = 0; r < R; r++) {
            want[r] = tg_tensor_get(x, r * L + at[r]);
            dx[r * L + at[r]] = 1.0;
        }
        expect_close(y, want, 0, 0);
        cr_assert_eq(tg_backward(g, tg_sum(g, y)), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), dx, 0, 0);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* A NaN anywhere in a slice makes its max NaN and the first NaN takes the
 * gradient (torch.max: values nan, index of the NaN). -inf slices are fine. */
Test(ops_reduce, max_axis_nan_propagates_and_takes_the_gradient)
{
    const double nan = (double)NAN, inf = (double)INFINITY;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        /* Rows: [1, NaN, 5, NaN], [NaN, 7, 2, 1], [-inf, -inf, -inf, -inf]. */
        tg_tensor *x = tgt_tensor(dt, 2, SHAPE(3, 4),
                                  VALS(1, nan, 5, nan, nan, 7, 2, 1, -inf, -inf, -inf, -inf));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *y = tg_max_axis(g, x, -1, false);
        expect_close(y, VALS(nan, nan, -inf), 0, 0);
        tg_tensor *v = tgt_tensor(dt, 1, SHAPE(3), VALS(2, 3, 4));
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(0, 2, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0), 0, 0);

        /* The same along axis 0 (the strided kernel path): columns
         * [1, NaN, 3], [4, 5, NaN], [NaN, NaN, 0]. */
        tg_tensor *x2 = tgt_tensor(dt, 2, SHAPE(3, 3), VALS(1, 4, nan, nan, 5, nan, 3, nan, 0));
        tg_tensor_set_requires_grad(x2, true);
        y = tg_max_axis(g, x2, 0, false);
        expect_close(y, VALS(nan, nan, nan), 0, 0);
        cr_assert_eq(tg_backward_with(g, y, v), TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x2), VALS(0, 0, 4, 2, 0, 0, 0, 3, 0), 0, 0);
        tg_tensor_free(v);
        tg_tensor_free(x2);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

Test(ops_reduce, sum_and_mean_propagate_nan_and_inf)
{
    const double nan = (double)NAN, inf = (double)INFINITY;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F32, 2, SHAPE(2, 2), VALS(1, nan, inf, 2));
    expect_close(tg_sum_axis(g, x, 1, false), VALS(nan, inf), 0, 0);
    expect_close(tg_mean(g, x), VALS(nan), 0, 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* No-grad mode and inputs that need no gradient: values are the same, no
 * node is recorded (max_axis then saves no indices). */
Test(ops_reduce, max_axis_without_grad_records_nothing)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F32, 2, SHAPE(2, 3), VALS(1, 9, 3, 4, 0, 6));
    tg_tensor *y = tg_max_axis(g, x, 1, false);
    expect_close(y, VALS(9, 6), 0, 0);
    cr_expect(!tg_tensor_requires_grad(y));
    tg_tensor_set_requires_grad(x, true);
    tg_graph_set_no_grad(g, true);
    y = tg_max_axis(g, x, 0, false);
    expect_close(y, VALS(4, 9, 6), 0, 0);
    cr_expect(!tg_tensor_requires_grad(y));
    cr_expect_eq(tg_graph_n_nodes(g), 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ---------------------------------------------------------- zero sizes */

/* As PyTorch: the sum of nothing is 0, the mean of nothing NaN; max over an
 * empty axis is an error but max with other dims empty is an empty result. */
Test(ops_reduce, zero_size_inputs_follow_pytorch)
{
    const double nan = (double)NAN;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_graph *g = tg_graph_new();
        tg_tensor *e = tg_tensor_new(dt, 1, SHAPE(0));
        tg_tensor *e20 = tg_tensor_new(dt, 2, SHAPE(2, 0));
        tg_tensor *e03 = tg_tensor_new(dt, 2, SHAPE(0, 3));
        tg_tensor_set_requires_grad(e20, true);
        expect_close(tg_sum(g, e), VALS(0), 0, 0);
        expect_close(tg_mean(g, e), VALS(nan), 0, 0);
        tg_tensor *y = tg_sum_axis(g, e20, 1, false);
        expect_shape(y, "[2]");
        expect_close(y, VALS(0, 0), 0, 0);
        y = tg_mean_axis(g, e20, -1, true);
        expect_shape(y, "[2, 1]");
        expect_close(y, VALS(nan, nan), 0, 0);
        y = tg_sum_axis(g, e20, 0, false);
        expect_shape(y, "[0]");
        y = tg_sum_axis(g, e03, 0, true);
        expect_shape(y, "[1, 3]");
        expect_close(y, VALS(0, 0, 0), 0, 0);
        y = tg_mean_axis(g, e03, 0, false);
        expect_close(y, VALS(nan, nan, nan), 0, 0);
        y = tg_max_axis(g, e03, 1, false);
        expect_shape(y, "[0]");
        /* Backward through an empty reduction gives an empty gradient. */
        cr_assert_eq(tg_backward(g, tg_sum(g, e20)), TG_OK, "%s", tg_last_error());
        cr_expect_eq(tg_tensor_numel(tg_tensor_grad(e20)), 0);
        cr_assert_eq(tg_backward(g, tg_mean(g, e20)), TG_OK, "%s", tg_last_error());
        tg_tensor_free(e);
        tg_tensor_free(e20);
        tg_tensor_free(e03);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------- float32 accuracy */

/* 2^24 followed by a thousand ones: a float32 accumulator would stay at 2^24
 * (every +1 rounds away); the double accumulator gives 2^24 + 1000, which
 * float32 represents exactly. */
Test(ops_reduce, float32_sums_accumulate_in_double)
{
    enum { N = 1001 };
    double *v = malloc(N * sizeof *v);
    v[0] = 16777216.0;
    for (int i = 1; i < N; i++)
        v[i] = 1.0;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F32, 1, SHAPE(N), v);
    expect_close(tg_sum(g, x), VALS(16778216.0), 0, 0);
    tg_tensor *x2 = tgt_tensor(TG_F32, 2, SHAPE(N, 1), v);
    expect_close(tg_sum_axis(g, x2, 0, false), VALS(16778216.0), 0, 0);
    tg_tensor_free(x);
    tg_tensor_free(x2);
    tg_graph_free(g);
    free(v);
}

/* Larger shapes than the gradcheck table, over every axis, against a naive
 * double loop: inner strips wider than the kernel's 256 and rows with
 * lengths not a multiple of 4. Gradients of sum(v * y) checked too. */
Test(ops_reduce, axis_kernels_match_a_naive_loop)
{
    const int64_t d[3] = {3, 7, 601};
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = dtypes[k];
        tg_tensor *x = tgt_random(dt, 3, d, -1, 1, 77);
        tg_tensor_set_requires_grad(x, true);
        for (int axis = 0; axis < 3; axis++) {
            int64_t outer = 1, inner = 1, A = d[axis];
            for (int i = 0; i < axis; i++)
                outer *= d[i];
            for (int i = axis + 1; i < 3; i++)
                inner *= d[i];
            double *sum = calloc((size_t)(outer * inner), sizeof *sum);
            double *mx = malloc((size_t)(outer * inner) * sizeof *mx);
            int64_t *arg = malloc((size_t)(outer * inner) * sizeof *arg);
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    mx[o * inner + i] = -(double)INFINITY;
                    for (int64_t a = 0; a < A; a++) {
                        double xv = tg_tensor_get(x, (o * A + a) * inner + i);
                        sum[o * inner + i] += xv;
                        if (xv > mx[o * inner + i]) {
                            mx[o * inner + i] = xv;
                            arg[o * inner + i] = a;
                        }
                    }
                }
            tg_graph *g = tg_graph_new();
            tg_tensor *s = tg_sum_axis(g, x, axis, false);
            tg_tensor *m = tg_max_axis(g, x, axis, false);
            expect_close(s, sum, 1e-5, tol(dt));
            expect_close(m, mx, 0, 0);
            /* Gradient of sum(v * max): v scattered to the argmax. */
            tg_tensor *v = tgt_random(dt, tg_tensor_ndim(m), tg_tensor_shape(m), -1, 1, 5);
            tg_tensor_zero_grad(x);
            cr_assert_eq(tg_backward_with(g, m, v), TG_OK, "%s", tg_last_error());
            double *want = calloc((size_t)tg_tensor_numel(x), sizeof *want);
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++)
                    want[(o * A + arg[o * inner + i]) * inner + i] =
                        tg_tensor_get(v, o * inner + i);
            expect_close(tg_tensor_grad(x), want, 0, 0);
            /* Gradient of sum(v * mean): v / A broadcast. */
            tg_tensor_zero_grad(x);
            cr_assert_eq(tg_backward_with(g, tg_mean_axis(g, x, axis, false), v), TG_OK, "%s",
                         tg_last_error());
            for (int64_t o = 0; o < outer; o++)
                for (int64_t a = 0; a < A; a++)
                    for (int64_t i = 0; i < inner; i++)
                        want[(o * A + a) * inner + i] =
                            tg_tensor_get(v, o * inner + i) / (double)A;
            expect_close(tg_tensor_grad(x), want, 1e-7, tol(dt));
            free(want);
            tg_tensor_free(v);
            tg_graph_free(g);
            free(sum);
            free(mx);
            free(arg);
        }
        tg_tensor_free(x);
    }
}

/* ----------------------------------------------------------------- errors */

Test(ops_reduce, axis_out_of_range_names_op_axis_and_shape)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *s = tg_tensor_new(TG_F64, 0, NULL);
    expect_error(tg_sum_axis(g, x, 2, false) == NULL, "tg_sum_axis", "axis 2", "[2, 3]");
    expect_error(tg_sum_axis(g, x, -3, true) == NULL, "tg_sum_axis", "axis -3", "[2, 3]");
    expect_error(tg_mean_axis(g, x, 5, false) == NULL, "tg_mean_axis", "axis 5", "[2, 3]");
    expect_error(tg_mean_axis(g, x, -3, false) == NULL, "tg_mean_axis", "axis -3", "[2, 3]");
    expect_error(tg_max_axis(g, x, 2, true) == NULL, "tg_max_axis", "axis 2", "[2, 3]");
    expect_error(tg_max_axis(g, x, -3, false) == NULL, "tg_max_axis", "axis -3", "[2, 3]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    /* Rank 0 accepts 0 and -1 only. */
    expect_error(tg_sum_axis(g, s, 1, false) == NULL, "tg_sum_axis", "axis 1", "[]");
    expect_error(tg_max_axis(g, s, -2, false) == NULL, "tg_max_axis", "axis -2", "[]");
    tg_tensor_free(x);
    tg_tensor_free(s);
    tg_graph_free(g);
}

Test(ops_reduce, max_over_an_empty_axis_is_an_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 2, SHAPE(3, 0));
    expect_error(tg_max_axis(g, x, 1, false) == NULL, "tg_max_axis", "axis 1", "size 0",
                 "[3, 0]");
    expect_error(tg_max_axis(g, x, -1, true) == NULL, "tg_max_axis", "axis -1", "[3, 0]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_reduce, null_input_propagates_the_first_error)
{
    tg_graph *g = tg_graph_new();
    tg_set_error(TG_ERR_SHAPE, "tg_matmul: earlier failure");
    cr_expect_null(tg_sum(g, NULL));
    cr_expect_null(tg_mean(g, NULL));
    cr_expect_null(tg_sum_axis(g, NULL, 0, false));
    cr_expect_null(tg_mean_axis(g, NULL, 0, true));
    cr_expect_null(tg_max_axis(g, NULL, 0, false));
    cr_expect_str_eq(tg_last_error(), "tg_matmul: earlier failure");
    /* A chain: the first failure is the one reported. */
    tg_tensor *x = tg_tensor_new(TG_F64, 1, SHAPE(4));
    cr_expect_null(tg_sum(g, tg_mean_axis(g, tg_max_axis(g, x, 3, false), 0, false)));
    expect_error(true, "tg_max_axis", "axis 3");
    /* A NULL with no earlier error names the op. */
    tg_error_clear();
    expect_error(tg_max_axis(g, NULL, 0, false) == NULL, "tg_max_axis", "NULL");
    tg_error_clear();
    expect_error(tg_sum(g, NULL) == NULL, "tg_sum", "NULL");
    tg_tensor_free(x);
    tg_graph_free(g);
}
