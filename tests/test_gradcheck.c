/* tg_gradcheck itself: it passes correct VJPs, fails a deliberately wrong one
 * and reports the worst element, refuses vacuous all-zero checks, has a fast
 * mode, and reports bad arguments. The test-only ops use the public API only. */
#include "helpers.h"

#include <math.h>
#include <string.h>

/* ---- Test-only ops: y = x^2 elementwise, with a right and a wrong VJP. ---- */

static int same_shape(const tg_node *n, tg_shape *out)
{
    out->ndim = tg_tensor_ndim(n->inputs[0]);
    memcpy(out->dims, tg_tensor_shape(n->inputs[0]), (size_t)out->ndim * sizeof(int64_t));
    return TG_OK;
}

static int square_forward(tg_node *n)
{
    const double *x = tg_tensor_data(n->inputs[0]);
    double *y = tg_tensor_data(n->out);
    for (int64_t i = 0; i < tg_tensor_numel(n->out); i++)
        y[i] = x[i] * x[i];
    return TG_OK;
}

static int square_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    const double *x = tg_tensor_data(n->inputs[0]), *dy = tg_tensor_data(dout);
    double *d = tg_tensor_data(dx);
    for (int64_t i = 0; i < tg_tensor_numel(dx); i++)
        d[i] += 2.0 * x[i] * dy[i];
    return TG_OK;
}

/* Wrong on purpose: element 3 gets 2.5x instead of 2x. */
static int bad_square_backward(tg_node *n, const tg_tensor *dout)
{
    tg_tensor *dx = tg_node_grad(n, 0);
    if (!dx)
        return TG_OK;
    const double *x = tg_tensor_data(n->inputs[0]), *dy = tg_tensor_data(dout);
    double *d = tg_tensor_data(dx);
    for (int64_t i = 0; i < tg_tensor_numel(dx); i++)
        d[i] += (i == 3 ? 2.5 : 2.0) * x[i] * dy[i];
    return TG_OK;
}

static int zero_forward(tg_node *n)
{
    memset(tg_tensor_data(n->out), 0, (size_t)tg_tensor_numel(n->out) * sizeof(double));
    return TG_OK;
}

static int zero_backward(tg_node *n, const tg_tensor *dout)
{
    (void)dout;
    (void)tg_node_grad(n, 0);
    return TG_OK;
}

static const tg_op square_op = {.name = "square", .n_inputs = 1, .shape = same_shape,
                                .forward = square_forward, .backward = square_backward};
static const tg_op bad_square_op = {.name = "bad_square", .n_inputs = 1, .shape = same_shape,
                                    .forward = square_forward, .backward = bad_square_backward};
static const tg_op zero_op = {.name = "zero", .n_inputs = 1, .shape = same_shape,
                              .forward = zero_forward, .backward = zero_backward};

static tg_tensor *apply_ctx_op(tg_graph *g, tg_tensor **in, int n, void *ctx)
{
    (void)n;
    return tg_apply(g, (const tg_op *)ctx, in, 1, NULL);
}

static tg_tensor *input_6(void)
{
    int64_t s[] = {2, 3};
    double v[] = {0.3, -1.2, 0.7, 1.9, -0.4, 1.1};
    tg_tensor *x = tgt_tensor(TG_F64, 2, s, v);
    tg_tensor_set_requires_grad(x, true);
    return x;
}

Test(gradcheck, passes_a_correct_vjp)
{
    tg_tensor *x = input_6();
    tg_gradcheck_report r;
    int rc = tg_gradcheck(apply_ctx_op, (void *)&square_op, &x, 1, NULL, &r);
    cr_expect_eq(rc, TG_OK, "%s", r.message);
    cr_expect(r.passed);
    cr_expect_eq(r.n_checked, 6);
    cr_expect(r.max_abs_err < 1e-8, "max abs err %g", r.max_abs_err);
    cr_expect(strstr(r.message, "passed") != NULL, "%s", r.message);
    tg_tensor_free(x);
}

Test(gradcheck, fails_a_wrong_vjp_and_reports_the_worst_element)
{
    tg_tensor *x = input_6();
    tg_gradcheck_report r;
    int rc = tg_gradcheck(apply_ctx_op, (void *)&bad_square_op, &x, 1, NULL, &r);
    cr_expect_eq(rc, TG_ERR_GRADCHECK);
    cr_expect(!r.passed);
    cr_expect_eq(r.worst_input, 0);
    cr_expect_eq(r.worst_index, 3);
    /* numeric = 2 x v, analytic = 2.5 x v at x = 1.9 */
    cr_expect(fabs(r.worst_analytic / r.worst_numeric - 1.25) < 1e-6, "analytic %g numeric %g",
              r.worst_analytic, r.worst_numeric);
    cr_expect(fabs(r.max_abs_err - fabs(r.worst_analytic - r.worst_numeric)) < 1e-12);
    cr_expect(strstr(r.message, "FAILED") && strstr(r.message, "index 3"), "%s", r.message);
    expect_error(rc != TG_OK, "tg_gradcheck", "FAILED", "index 3");
    tg_tensor_free(x);
}

Test(gradcheck, fast_mode_checks_large_inputs_by_direction)
{
    int64_t s[] = {100, 100};
    tg_tensor *x = tgt_random(TG_F64, 2, s, -1, 1, 3);
    tg_tensor_set_requires_grad(x, true);
    tg_gradcheck_opts o = {.fast = true};
    tg_gradcheck_report r;
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&square_op, &x, 1, &o, &r), TG_OK, "%s",
                 r.message);
    cr_expect_eq(r.n_checked, 1);
    cr_expect_eq(r.worst_index, -1);
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&bad_square_op, &x, 1, &o, &r),
                 TG_ERR_GRADCHECK, "%s", r.message);
    tg_tensor_free(x);
}

Test(gradcheck, refuses_a_vacuous_all_zero_check)
{
    tg_tensor *x = input_6();
    tg_gradcheck_report r;
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&zero_op, &x, 1, NULL, &r), TG_ERR_GRADCHECK);
    cr_expect(strstr(r.message, "all zero") != NULL, "%s", r.message);
    tg_gradcheck_opts o = {.allow_zero = true};
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&zero_op, &x, 1, &o, &r), TG_OK, "%s",
                 r.message);
    tg_tensor_free(x);
}

Test(gradcheck, float32_inputs_are_checked_in_float64)
{
    tg_tensor *x64 = input_6();
    tg_tensor *x = tg_tensor_copy(x64, TG_F32);
    tg_tensor_set_requires_grad(x, true);
    tg_gradcheck_report r;
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&square_op, &x, 1, NULL, &r), TG_OK, "%s",
                 r.message);
    cr_expect_null(tg_tensor_grad(x), "the caller's tensor is not touched");
    tg_tensor_free(x);
    tg_tensor_free(x64);
}

static tg_tensor *failing_fn(tg_graph *g, tg_tensor **in, int n, void *ctx)
{
    (void)n;
    (void)ctx;
    int64_t s[] = {7};
    tg_tensor *y = tg_graph_tensor(g, TG_F64, 1, s);
    return tg_add(g, in[0], y); /* [2, 3] + [7] does not broadcast */
}

Test(gradcheck, bad_arguments_and_failing_fn_are_errors)
{
    tg_tensor *x = input_6();
    tg_gradcheck_report r;
    expect_error(tg_gradcheck(NULL, NULL, &x, 1, NULL, &r) == TG_ERR_ARG, "tg_gradcheck");
    expect_error(tg_gradcheck(apply_ctx_op, (void *)&square_op, NULL, 1, NULL, NULL) == TG_ERR_ARG,
                 "tg_gradcheck");
    tg_tensor *none = NULL;
    expect_error(tg_gradcheck(apply_ctx_op, (void *)&square_op, &none, 1, NULL, NULL) ==
                     TG_ERR_NULL,
                 "tg_gradcheck", "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_gradcheck(failing_fn, NULL, &x, 1, NULL, &r) == TG_ERR_SHAPE, "tg_gradcheck",
                 "fn failed", "tg_add", "[2, 3]", "[7]");
    tg_tensor_free(x);
}

Test(gradcheck, checks_several_inputs_and_skips_those_without_grad)
{
    int64_t s[] = {3};
    double av[] = {0.5, 1.5, -0.7}, bv[] = {1.2, -0.3, 0.9};
    tg_tensor *in[2] = {tgt_tensor(TG_F64, 1, s, av), tgt_tensor(TG_F64, 1, s, bv)};
    tg_tensor_set_requires_grad(in[0], true);
    tg_gradcheck_report r;
    cr_expect_eq(tg_gradcheck(apply_ctx_op, (void *)&square_op, in, 2,
                              NULL, &r),
                 TG_OK, "%s", r.message);
    cr_expect_eq(r.n_checked, 3, "only input 0 requires grad");
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
}
