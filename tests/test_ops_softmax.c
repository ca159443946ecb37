/* tg_softmax, tg_log_softmax: gradcheck table (every axis of ranks 1-4,
 * negative axes, size-1 dims, the blocked non-last-axis path), the seed 003
 * vectors, values and gradients from PyTorch, stability at 1e4 (float32) and
 * 1e300 (float64), all -inf rows, size-1 axes and rank 0, errors and NULL
 * propagation. */
#include "helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define VALS(...) ((const double[]){__VA_ARGS__})
#define DNAN ((double)NAN)      /* NAN and INFINITY are float constants */
#define DINF ((double)INFINITY)

/* ------------------------------------------------------- gradcheck table */

static const int axes[] = {-4, -3, -2, -1, 0, 1, 2, 3};
#define AX(a) ((const void *)&axes[(a) + 4])

static tg_tensor *sm_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_softmax(g, xs[0], *(const int *)ctx);
}

static tg_tensor *lsm_fn(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_log_softmax(g, xs[0], *(const int *)ctx);
}

/* One case: op name, graph function, axis, rank, dims. */
#define SM(op, fn, a, nd, ...)                                                                 \
    {op, "[" #__VA_ARGS__ "] axis " #a, fn, AX(a), 1,                                          \
     {{.ndim = (nd), .shape = {__VA_ARGS__}, .fill = GC_UNIFORM}}}

/* The same shapes and axes for both ops. A softmax along a size-1 axis is
 * constant (gradient 0), so those are tested exactly below, not here. */
#define SM_CASES(op, fn)                                                                       \
    SM(op, fn, 0, 1, 5), SM(op, fn, -1, 1, 7), SM(op, fn, 0, 1, 2),                            \
    SM(op, fn, 0, 2, 3, 4), SM(op, fn, 1, 2, 3, 4), SM(op, fn, -1, 2, 4, 3),                   \
    SM(op, fn, -2, 2, 4, 3), SM(op, fn, 1, 2, 1, 5), SM(op, fn, 0, 2, 5, 1),                   \
    SM(op, fn, -1, 2, 6, 9), SM(op, fn, 0, 3, 2, 3, 4), SM(op, fn, 1, 3, 2, 3, 4),             \
    SM(op, fn, 2, 3, 2, 3, 4), SM(op, fn, -1, 3, 3, 1, 5), SM(op, fn, -3, 3, 3, 2, 1),         \
    SM(op, fn, -2, 3, 1, 4, 1), SM(op, fn, 0, 3, 3, 1, 1), SM(op, fn, 1, 3, 2, 3, 70),         \
    SM(op, fn, 0, 4, 2, 3, 2, 3), SM(op, fn, 1, 4, 2, 3, 2, 3), SM(op, fn, 2, 4, 2, 3, 2, 3),  \
    SM(op, fn, 3, 4, 2, 3, 2, 3), SM(op, fn, -1, 4, 3, 2, 2, 3),                               \
    SM(op, fn, -2, 4, 2, 2, 3, 2), SM(op, fn, -3, 4, 2, 3, 2, 2),                              \
    SM(op, fn, -4, 4, 3, 1, 2, 2), SM(op, fn, 1, 4, 1, 3, 1, 4), SM(op, fn, 3, 4, 1, 3, 1, 4), \
    SM(op, fn, 2, 4, 2, 1, 3, 1)

const gc_case gc_cases_softmax[] = {
    SM_CASES("softmax", sm_fn),
    SM_CASES("log_softmax", lsm_fn),
};
const size_t gc_n_softmax = sizeof gc_cases_softmax / sizeof gc_cases_softmax[0];

Test(ops_softmax, gradcheck_table)
{
    gc_run_table(gc_cases_softmax, gc_n_softmax);
}

/* ------------------------------------------------------------- helpers */

static const tg_dtype dtypes[] = {TG_F64, TG_F32};

/* Runs fn(x, axis) and backward with cotangent v (if v); checks y and dx. */
static void check_op(bool log, tg_dtype dt, int nd, const int64_t *shape, const double *x,
                     int axis, const double *v, const double *want_y, const double *want_dx,
                     double atol)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *xt = tgt_tensor(dt, nd, shape, x);
    tg_tensor_set_requires_grad(xt, true);
    tg_tensor *y = log ? tg_log_softmax(g, xt, axis) : tg_softmax(g, xt, axis);
    cr_assert(y, "%s", tg_last_error());
    expect_close(y, want_y, atol, 1e-6);
    if (v) {
        tg_tensor *vt = tgt_tensor(dt, nd, shape, v);
        cr_assert(tg_backward_with(g, y, vt) == TG_OK, "%s", tg_last_error());
        tg_tensor *dx = tg_tensor_grad(xt);
        expect_close(dx, want_dx, atol, 1e-6);
        tg_tensor_free(vt);
    }
    tg_tensor_free(xt);
    tg_graph_free(g);
}

/* ------------------------------------------------------- seed vectors */

/* Seed 003: softmax([3.2, 1.3, 0.2, 0.8]) = [0.775, 0.116, 0.039, 0.070] and
 * softmax([2.0, 1.0, 0.1]) = [0.659, 0.242, 0.099], to 3 decimals. */
Test(ops_softmax, softmax_matches_seed_003)
{
    for (int k = 0; k < 2; k++) {
        check_op(false, dtypes[k], 1, SHAPE(4), VALS(3.2, 1.3, 0.2, 0.8), 0, NULL,
                 VALS(0.775, 0.116, 0.039, 0.070), NULL, 5e-4);
        check_op(false, dtypes[k], 1, SHAPE(3), VALS(2.0, 1.0, 0.1), -1, NULL,
                 VALS(0.659, 0.242, 0.099), NULL, 5e-4);
    }
}

/* ------------------------------------------------- PyTorch cross-check */

/* x [3, 4] and cotangent v [3, 4] used with PyTorch 1.13 (float64):
 *   x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
 *   y = F.softmax(x, dim); y.backward(v); print(y, x.grad) */
static const double X34[] = {0.3, -1.2, 2.0, 0.5, 1.5, 0.1, -0.7, 0.0, -0.4, 0.9, 0.2, -2.1};
static const double V34[] = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, -1.0, 0.25, 0.15};

Test(ops_softmax, softmax_and_grad_match_pytorch)
{
    /* F.softmax(x, 1) and its VJP. */
    const double y1[] = {0.1262868581907832,   0.028178406892751494, 0.69128761800286043,
                         0.15424711691360482,  0.63269904480943417,  0.1560216635387609,
                         0.070105052457717101, 0.14117423919408761,  0.14983295890416085,
                         0.54978157680656858,  0.27301345133741001,  0.027372012951860671};
    const double d1[] = {-0.022236354668163854, -0.013415123446050134, 0.016536887963255607,
                         0.019114590150958351,  -0.13501647102424441,  0.13832917805594844,
                         0.069165811528837703,  -0.072478518560541785, 0.18617835163869836,
                         -0.36144139068176045,  0.16178033137727096,   0.013482707665791141};
    /* F.softmax(x, 0) (the blocked non-last-axis path) and its VJP. */
    const double y0[] = {0.20761092402443032, 0.077909127319424579, 0.81135612921139588,
                         0.59495328333617103, 0.68929254219848268,  0.28587170125028805,
                         0.054527604678190518, 0.36085740744008515, 0.10309653377708697,
                         0.63621917143028739, 0.13411626611041366,  0.044189309223743846};
    const double d0[] = {0.068739623652443849,  0.021836212528233499, -0.012255719779964806,
                         0.26420460289994446,   -0.18535193756806939, 0.30882090286350322,
                         0.020987389939468977,  -0.27278069683208456, 0.11661231391562556,
                         -0.3306571153917367,   -0.0087316701595041724, 0.0085760939321400873};
    check_op(false, TG_F64, 2, SHAPE(3, 4), X34, 1, V34, y1, d1, 1e-14);
    check_op(false, TG_F64, 2, SHAPE(3, 4), X34, -2, V34, y0, d0, 1e-14);
    check_op(false, TG_F32, 2, SHAPE(3, 4), X34, -1, V34, y1, d1, 1e-6);
    check_op(false, TG_F32, 2, SHAPE(3, 4), X34, 0, V34, y0, d0, 1e-6);
}

Test(ops_softmax, log_softmax_and_grad_match_pytorch)
{
    /* F.log_softmax(x, 0) and its VJP. */
    const double y0[] = {-1.5720895085332438, -2.5522121658389976, -0.20904819768803778,
                         -0.51927239192039598, -0.37208950853324385, -1.2522121658389975,
                         -2.9090481976880378, -1.0192723919203961, -2.2720895085332438,
                         -0.45221216583899748, -2.0090481976880379, -3.1192723919203962};
    const double d0[] = {-0.003805462012215155, -0.15325452360834527, -0.71419516151424489,
                         0.54873832083404284,   -0.84464627109924129, 0.77152302075017287,
                         0.63184049415226184,   -0.7097856481399788,  0.8484517331114565,
                         -0.61826849714182752,  0.082354667361982964, 0.16104732730593596};
    /* F.log_softmax(x, -1) and its VJP. */
    const double y1[] = {-2.0691993073690185, -3.5691993073690185, -0.36919930736901835,
                         -1.8691993073690183, -0.4577604125357736, -1.8577604125357734,
                         -2.6577604125357737, -1.9577604125357735, -1.898234212712812,
                         -0.59823421271281196, -1.2982342127128119, -3.598234212712812};
    const double d1[] = {0.024227885085530091, -0.2169070441356509, -0.11477257080171625,
                         0.30745172985183711,  -0.49999999999999994, 0.59999999999999998,
                         0.69999999999999996,  -0.80000000000000004, 0.85505011232875172,
                         -1.1649344730419706,  0.16809596459877699,  0.1417883961144418};
    check_op(true, TG_F64, 2, SHAPE(3, 4), X34, 0, V34, y0, d0, 1e-14);
    check_op(true, TG_F64, 2, SHAPE(3, 4), X34, -1, V34, y1, d1, 1e-14);
    check_op(true, TG_F32, 2, SHAPE(3, 4), X34, -2, V34, y0, d0, 1e-5);
    check_op(true, TG_F32, 2, SHAPE(3, 4), X34, 1, V34, y1, d1, 1e-5);
}

/* ------------------------------------------------- float32 vs reference */

/* A naive double reference along axis 1 of [A, C, B]. */
static void naive(bool lg, const tg_tensor *x, int64_t A, int64_t C, int64_t B, double *y)
{
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++) {
            double m = -DINF, s = 0.0;
            for (int64_t c = 0; c < C; c++)
                m = fmax(m, tg_tensor_get(x, (a * C + c) * B + b));
            for (int64_t c = 0; c < C; c++)
                s += exp(tg_tensor_get(x, (a * C + c) * B + b) - m);
            for (int64_t c = 0; c < C; c++) {
                double v = tg_tensor_get(x, (a * C + c) * B + b) - m;
                y[(a * C + c) * B + b] = lg ? v - log(s) : exp(v) / s;
            }
        }
}

/* Inner sizes 1, 63, 64, 65 and 150 cross the 64-wide blocks of the kernel;
 * values in [-8, 8]. */
Test(ops_softmax, float32_and_float64_match_naive_reference_across_blocks)
{
    const int64_t inners[] = {1, 63, 64, 65, 150};
    for (int k = 0; k < 5; k++)
        for (int d = 0; d < 2; d++)
            for (int lg = 0; lg < 2; lg++) {
                int64_t A = 2, C = 5, B = inners[k];
                tg_tensor *x = tgt_random(dtypes[d], 3, SHAPE(A, C, B), -8, 8, 3 + (uint64_t)k);
                double *want = malloc((size_t)(A * C * B) * sizeof *want);
                naive(lg, x, A, C, B, want);
                tg_graph *g = tg_graph_new();
                tg_tensor *y = lg ? tg_log_softmax(g, x, 1) : tg_softmax(g, x, 1);
                expect_close(y, want, dtypes[d] == TG_F32 ? 2e-6 : 1e-15, 1e-6);
                free(want);
                tg_tensor_free(x);
                tg_graph_free(g);
            }
}

/* Every softmax row sums to 1 and log_softmax rows have logsumexp 0, along
 * each axis of a rank-4 tensor. */
Test(ops_softmax, rows_sum_to_one_on_every_axis)
{
    const int64_t sh[] = {2, 3, 4, 5};
    for (int d = 0; d < 2; d++)
        for (int axis = -4; axis < 4; axis++) {
            tg_tensor *x = tgt_random(dtypes[d], 4, sh, -5, 5, 9);
            tg_graph *g = tg_graph_new();
            tg_tensor *y = tg_softmax(g, x, axis);
            tg_tensor *ly = tg_log_softmax(g, x, axis);
            cr_assert(y && ly, "%s", tg_last_error());
            int ax = axis < 0 ? axis + 4 : axis;
            int64_t outer = 1, inner = 1, C = sh[ax];
            for (int i = 0; i < ax; i++)
                outer *= sh[i];
            for (int i = ax + 1; i < 4; i++)
                inner *= sh[i];
            double worst = 0.0, worst_l = 0.0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < inner; j++) {
                    double s = 0.0, sl = 0.0;
                    for (int64_t c = 0; c < C; c++) {
                        s += tg_tensor_get(y, (o * C + c) * inner + j);
                        sl += exp(tg_tensor_get(ly, (o * C + c) * inner + j));
                    }
                    worst = fmax(worst, fabs(s - 1.0));
                    worst_l = fmax(worst_l, fabs(sl - 1.0));
                }
            double tol = dtypes[d] == TG_F32 ? 1e-6 : 1e-15;
            cr_expect(worst <= tol && worst_l <= tol, "axis %d %s: |sum - 1| %g, %g", axis,
                      tg_dtype_name(dtypes[d]), worst, worst_l);
            tg_tensor_free(x);
            tg_graph_free(g);
        }
}

/* ---------------------------------------------------------- stability */

static bool all_finite(const tg_tensor *t)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        if (!isfinite(tg_tensor_get(t, i)))
            return false;
    return true;
}

/* Logits of magnitude M (1e4 in float32, 1e300 in float64): finite values and
 * gradients, and the exact limits (softmax one-hot on the max, log_softmax
 * equal to x - max), along the last axis and along axis 0 (blocked path). */
Test(ops_softmax, huge_logits_stay_finite)
{
    const double Ms[] = {1e300, 1e4};
    for (int d = 0; d < 2; d++) {
        double M = Ms[d];
        const double x[] = {M, -M, 0.0, -M, -M, M};
        for (int lg = 0; lg < 2; lg++)
            for (int axis = 0; axis < 2; axis++) {
                tg_graph *g = tg_graph_new();
                tg_tensor *xt = tgt_tensor(dtypes[d], 2, SHAPE(2, 3), x);
                tg_tensor_set_requires_grad(xt, true);
                tg_tensor *y = lg ? tg_log_softmax(g, xt, axis) : tg_softmax(g, xt, axis);
                cr_assert(y, "%s", tg_last_error());
                cr_expect(all_finite(y), "%s axis %d %s: non-finite output",
                          lg ? "log_softmax" : "softmax", axis, tg_dtype_name(dtypes[d]));
                if (axis == 1) {
                    if (lg)
                        expect_close(y, VALS(0.0, -2 * M, -M, -2 * M, -2 * M, 0.0), 0.0, 1e-15);
                    else
                        expect_close(y, VALS(1, 0, 0, 0, 0, 1), 0.0, 0.0);
                } else {
                    /* columns: (M, -M), (-M, -M) tie, (0, M) */
                    if (lg)
                        expect_close(y, VALS(0.0, -log(2.0), -M, -2 * M, -log(2.0), 0.0),
                                     1e-6, 1e-6);
                    else
                        expect_close(y, VALS(1, 0.5, 0, 0, 0.5, 1), 0.0, 0.0);
                }
                tg_tensor *v = tgt_tensor(dtypes[d], 2, SHAPE(2, 3), V34);
                cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
                cr_expect(all_finite(tg_tensor_grad(xt)), "%s axis %d %s: non-finite gradient",
                          lg ? "log_softmax" : "softmax", axis, tg_dtype_name(dtypes[d]));
                tg_tensor_free(v);
                tg_tensor_free(xt);
                tg_graph_free(g);
            }
    }
}

/* A row of all -inf gives NaN in softmax and log_softmax, as PyTorch 1.13:
 *   F.softmax(torch.tensor([[-inf]*3, [1., 2., 3.]]), 1)
 *     -> [[nan, nan, nan], [0.0900, 0.2447, 0.6652]]
 *   F.log_softmax(same, 1) -> [[nan, nan, nan], [-2.4076, -1.4076, -0.4076]]
 * and the gradient of that row is NaN too; other rows are unaffected. A single
 * -inf entry gives probability 0 and log-probability -inf:
 *   F.softmax([[-inf, 1., 2.]], 1) -> [0.0000, 0.2689, 0.7311]
 *   F.log_softmax(...) -> [-inf, -1.3133, -0.3133] */
Test(ops_softmax, all_neg_inf_row_gives_nan_like_pytorch)
{
    for (int d = 0; d < 2; d++) {
        const double ni = -DINF;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[d], 2, SHAPE(3, 3),
                                  VALS(ni, ni, ni, 1, 2, 3, ni, 1, 2));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *y = tg_softmax(g, x, 1);
        tg_tensor *ly = tg_log_softmax(g, x, -1);
        cr_assert(y && ly, "%s", tg_last_error());
        expect_close(y,
                     VALS(DNAN, DNAN, DNAN, 0.090030573170380462, 0.24472847105479764,
                          0.66524095577482178, 0.0, 0.2689414213699951, 0.7310585786300049),
                     1e-6, 1e-6);
        expect_close(ly,
                     VALS(DNAN, DNAN, DNAN, -2.4076059644443806, -1.4076059644443804,
                          -0.40760596444438057, -DINF, -1.3132616875182228,
                          -0.31326168751822286),
                     1e-6, 1e-6);
        tg_tensor *ones = tgt_tensor(dtypes[d], 2, SHAPE(3, 3), VALS(1, 1, 1, 1, 1, 1, 1, 1, 1));
        cr_assert(tg_backward_with(g, y, ones) == TG_OK, "%s", tg_last_error());
        tg_tensor *dx = tg_tensor_grad(x);
        for (int64_t i = 0; i < 9; i++) {
            if (i < 3)
                cr_expect(isnan(tg_tensor_get(dx, i)), "dx[%lld] should be NaN", (long long)i);
            else
                cr_expect(fabs(tg_tensor_get(dx, i)) < 1e-6, "dx[%lld] = %g", (long long)i,
                          tg_tensor_get(dx, i));
        }
        tg_tensor_free(ones);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* A +inf entry makes its line NaN, as PyTorch 1.13:
 *   F.softmax(torch.tensor([[inf, 1., 2.]]), 1) -> [[nan, nan, nan]] (log_softmax too). */
Test(ops_softmax, pos_inf_entry_gives_nan_like_pytorch)
{
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[d], 2, SHAPE(2, 3), VALS(DINF, 1, 2, 1, 2, 3));
        tg_tensor *y = tg_softmax(g, x, 1);
        tg_tensor *ly = tg_log_softmax(g, x, 1);
        cr_assert(y && ly, "%s", tg_last_error());
        for (int64_t i = 0; i < 3; i++)
            cr_expect(isnan(tg_tensor_get(y, i)) && isnan(tg_tensor_get(ly, i)));
        for (int64_t i = 3; i < 6; i++)
            cr_expect(isfinite(tg_tensor_get(y, i)) && isfinite(tg_tensor_get(ly, i)));
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------ size-1 and rank 0 */

static tg_tensor *sm_axis2(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return *(const int *)ctx ? tg_log_softmax(g, xs[0], 2) : tg_softmax(g, xs[0], 2);
}

/* Along a size-1 axis softmax is exactly 1 and log_softmax exactly 0; the
 * gradient is exactly 0 (checked against finite differences with allow_zero). */
Test(ops_softmax, size_one_axis_is_constant_with_zero_gradient)
{
    static const int which[] = {0, 1};
    for (int d = 0; d < 2; d++)
        for (int lg = 0; lg < 2; lg++) {
            tg_tensor *x = tgt_random(dtypes[d], 3, SHAPE(2, 3, 1), -3, 3, 4);
            tg_tensor_set_requires_grad(x, true);
            tg_graph *g = tg_graph_new();
            tg_tensor *y = sm_axis2(g, &x, 1, (void *)&which[lg]);
            const double want = lg ? 0.0 : 1.0;
            for (int64_t i = 0; i < 6; i++)
                cr_expect(tg_tensor_get(y, i) == want, "y[%lld] = %g", (long long)i,
                          tg_tensor_get(y, i));
            tg_tensor *v = tgt_random(dtypes[d], 3, SHAPE(2, 3, 1), -1, 1, 5);
            cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
            for (int64_t i = 0; i < 6; i++)
                cr_expect(tg_tensor_get(tg_tensor_grad(x), i) == 0.0, "dx[%lld] = %g",
                          (long long)i, tg_tensor_get(tg_tensor_grad(x), i));
            if (dtypes[d] == TG_F64) {
                tg_gradcheck_opts o = {.allow_zero = true};
                cr_expect(tg_gradcheck(sm_axis2, (void *)&which[lg], &x, 1, &o, NULL) == TG_OK,
                          "%s", tg_last_error());
            }
            tg_tensor_free(v);
            tg_tensor_free(x);
            tg_graph_free(g);
        }
}

/* A rank-0 tensor takes axis 0 and -1 (as PyTorch): softmax 1, log_softmax 0. */
Test(ops_softmax, rank_zero_scalar)
{
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dtypes[d], 0, NULL, VALS(3.0));
        tg_tensor_set_requires_grad(x, true);
        tg_tensor *y = tg_softmax(g, x, 0);
        tg_tensor *ly = tg_log_softmax(g, x, -1);
        cr_assert(y && ly, "%s", tg_last_error());
        cr_expect(tg_tensor_ndim(y) == 0 && tg_tensor_ndim(ly) == 0);
        expect_close(y, VALS(1.0), 0.0, 0.0);
        expect_close(ly, VALS(0.0), 0.0, 0.0);
        cr_assert(tg_backward(g, y) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), VALS(0.0), 0.0, 0.0);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* Empty tensors give empty outputs of the same shape (no work, no NaN). */
Test(ops_softmax, empty_tensors)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *a = tg_tensor_new(TG_F32, 2, SHAPE(0, 3));
    tg_tensor *b = tg_tensor_new(TG_F64, 3, SHAPE(3, 0, 2));
    tg_tensor *y1 = tg_softmax(g, a, 1);
    tg_tensor *y2 = tg_log_softmax(g, b, 1);
    tg_tensor *y3 = tg_softmax(g, b, 0);
    cr_assert(y1 && y2 && y3, "%s", tg_last_error());
    cr_expect(tg_tensor_numel(y1) == 0 && tg_tensor_shape(y1)[1] == 3);
    cr_expect(tg_tensor_numel(y2) == 0 && tg_tensor_shape(y2)[1] == 0);
    cr_expect(tg_tensor_numel(y3) == 0);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_graph_free(g);
}

/* The VJP accumulates into an existing gradient: x used by two softmax nodes
 * gets the sum of both contributions. */
Test(ops_softmax, gradient_accumulates_over_two_uses)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F64, 2, SHAPE(3, 4), X34);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = tg_softmax(g, x, 1);
    tg_tensor *v = tgt_tensor(TG_F64, 2, SHAPE(3, 4), V34);
    cr_assert(tg_backward_with(g, y, v) == TG_OK);
    double once[12];
    for (int i = 0; i < 12; i++)
        once[i] = 2.0 * tg_tensor_get(tg_tensor_grad(x), i);
    cr_assert(tg_backward_with(g, y, v) == TG_OK);
    expect_close(tg_tensor_grad(x), once, 1e-15, 1e-14);
    tg_tensor_free(v);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_softmax, no_grad_input_records_no_node)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F32, 2, SHAPE(3, 4), X34);
    tg_tensor *y = tg_log_softmax(g, x, 1);
    cr_assert(y, "%s", tg_last_error());
    cr_expect(tg_graph_n_nodes(g) == 0 && !tg_tensor_requires_grad(y));
    tg_tensor_free(x);
    tg_graph_free(g);
}

extern const tg_op tg_op_softmax; /* defined in ops/softmax.c (the registry lists it) */

Test(ops_softmax, print_attrs_shows_axis)
{
    char buf[64];
    cr_assert(tg_op_softmax.print_attrs);
    tg_node n = {.op = &tg_op_softmax, .attrs = (void *)&axes[3]};
    tg_op_softmax.print_attrs(&n, buf, sizeof buf);
    cr_expect_str_eq(buf, "axis=-1");
}

/* --------------------------------------------------------------- errors */

Test(ops_softmax, axis_out_of_range_is_an_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 3, SHAPE(2, 3, 4));
    expect_error(tg_softmax(g, x, 3) == NULL, "tg_softmax", "axis 3", "[2, 3, 4]");
    expect_error(tg_softmax(g, x, -4) == NULL, "tg_softmax", "axis -4", "[2, 3, 4]");
    expect_error(tg_log_softmax(g, x, 7) == NULL, "tg_log_softmax", "axis 7", "[2, 3, 4]");
    expect_error(tg_log_softmax(g, x, -5) == NULL, "tg_log_softmax", "axis -5", "[2, 3, 4]");
    cr_expect(tg_last_status() == TG_ERR_ARG);
    tg_tensor *s = tg_tensor_new(TG_F32, 0, NULL);
    expect_error(tg_softmax(g, s, 1) == NULL, "tg_softmax", "axis 1", "[]");
    expect_error(tg_log_softmax(g, s, -2) == NULL, "tg_log_softmax", "axis -2", "[]");
    tg_tensor_free(s);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_softmax, null_input_and_graph)
{
    tg_graph *g = tg_graph_new();
    tg_error_clear();
    expect_error(tg_softmax(g, NULL, 0) == NULL, "tg_softmax", "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_log_softmax(g, NULL, 0) == NULL, "tg_log_softmax", "input 0 is NULL");
    tg_tensor *x = tg_tensor_new(TG_F64, 1, SHAPE(3));
    expect_error(tg_softmax(NULL, x, 0) == NULL, "tg_softmax", "graph is NULL");
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* A chain keeps the first error: the inner op's message survives the outer ops. */
Test(ops_softmax, null_propagates_and_keeps_first_error)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 2, SHAPE(2, 3));
    tg_tensor *y = tg_log_softmax(g, tg_softmax(g, x, 5), 0);
    expect_error(y == NULL, "tg_softmax", "axis 5", "[2, 3]");
    cr_expect(strstr(tg_last_error(), "tg_log_softmax") == NULL, "%s", tg_last_error());
    tg_tensor_free(x);
    tg_graph_free(g);
}
