/* tg_gradcheck: the VJP of a seeded random cotangent against float64 central
 * differences of f = <v, fn(inputs)>, element by element or (fast mode) along
 * one random direction per input. */
#include "gradcheck.h"
#include "internal.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check {
    tg_gradcheck_fn fn;
    void *ctx;
    tg_graph *g;
    tg_tensor **xs; /* float64 copies of the inputs */
    int n;
    const double *v; /* the cotangent */
    int64_t v_numel;
} check;

/* f(x) = <v, fn(x)> with no graph recorded. */
static int eval_f(check *c, double *f)
{
    tg_graph_reset(c->g);
    bool old = tg_graph_set_no_grad(c->g, true);
    tg_tensor *out = c->fn(c->g, c->xs, c->n, c->ctx);
    tg_graph_set_no_grad(c->g, old);
    if (!out) {
        tg_error_prefix("tg_gradcheck: fn failed: ");
        return tg_last_status() ? tg_last_status() : TG_ERR_NULL;
    }
    if (out->numel != c->v_numel || out->dtype != TG_F64)
        return tg_set_error(TG_ERR_SHAPE,
                            "tg_gradcheck: fn returned a different shape or dtype on a later call");
    const double *o = out->data;
    double s = 0.0;
    for (int64_t i = 0; i < out->numel; i++)
        s += c->v[i] * o[i];
    *f = s;
    return TG_OK;
}

typedef struct tally {
    const tg_gradcheck_opts *o;
    tg_gradcheck_report *r;
    double worst_excess; /* |a - n| / (atol + rtol |n|); > 1 fails */
    bool any_nonzero;
} tally;

static void compare(tally *t, int input, int64_t index, double a, double num)
{
    double diff = fabs(a - num);
    if (isnan(a) || isnan(num))
        diff = (double)INFINITY;
    double excess = diff / (t->o->atol + t->o->rtol * fabs(num));
    double rel = diff / fmax(fabs(num), 1e-300);
    t->r->n_checked++;
    if (a != 0.0 || num != 0.0)
        t->any_nonzero = true;
    if (diff > t->r->max_abs_err)
        t->r->max_abs_err = diff;
    if (rel > t->r->max_rel_err && diff > 0)
        t->r->max_rel_err = rel;
    if (t->r->worst_input < 0 || excess > t->worst_excess) {
        t->worst_excess = excess;
        t->r->worst_input = input;
        t->r->worst_index = index;
        t->r->worst_analytic = a;
        t->r->worst_numeric = num;
    }
}

static int check_elements(check *c, tally *t, const tg_gradcheck_opts *o)
{
    for (int i = 0; i < c->n; i++) {
        tg_tensor *x = c->xs[i];
        if (!x->requires_grad)
            continue;
        double *xd = x->data;
        const double *gd = x->grad ? (const double *)x->grad->data : NULL;
        for (int64_t j = 0; j < x->numel; j++) {
            double orig = xd[j], fp, fm;
            xd[j] = orig + o->eps;
            int rc = eval_f(c, &fp);
            xd[j] = orig - o->eps;
            if (rc == TG_OK)
                rc = eval_f(c, &fm);
            xd[j] = orig;
            if (rc != TG_OK)
                return rc;
            compare(t, i, j, gd ? gd[j] : 0.0, (fp - fm) / (2.0 * o->eps));
        }
    }
    return TG_OK;
}

static int check_directions(check *c, tally *t, const tg_gradcheck_opts *o, tg_rng *rng)
{
    for (int i = 0; i < c->n; i++) {
        tg_tensor *x = c->xs[i];
        if (!x->requires_grad)
            continue;
        double *xd = x->data;
        const double *gd = x->grad ? (const double *)x->grad->data : NULL;
        double *u = malloc((size_t)(x->numel ? x->numel : 1) * sizeof *u);
        double *orig = malloc((size_t)(x->numel ? x->numel : 1) * sizeof *orig);
        if (!u || !orig) {
            free(u);
            free(orig);
            return tg_set_error(TG_ERR_NOMEM, "tg_gradcheck: out of memory");
        }
        double a = 0.0, fp = 0.0, fm = 0.0;
        for (int64_t j = 0; j < x->numel; j++) {
            u[j] = tg_rng_normal(rng);
            orig[j] = xd[j];
            a += (gd ? gd[j] : 0.0) * u[j];
        }
        for (int64_t j = 0; j < x->numel; j++)
            xd[j] = orig[j] + o->eps * u[j];
        int rc = eval_f(c, &fp);
        for (int64_t j = 0; j < x->numel; j++)
            xd[j] = orig[j] - o->eps * u[j];
        if (rc == TG_OK)
            rc = eval_f(c, &fm);
        memcpy(xd, orig, (size_t)x->numel * sizeof *xd);
        free(u);
        free(orig);
        if (rc != TG_OK)
            return rc;
        compare(t, i, -1, a, (fp - fm) / (2.0 * o->eps));
    }
    return TG_OK;
}

int tg_gradcheck(tg_gradcheck_fn fn, void *ctx, tg_tensor *const *inputs, int n_inputs,
                 const tg_gradcheck_opts *opts, tg_gradcheck_report *report)
{
    tg_gradcheck_report local_report;
    tg_gradcheck_report *r = report ? report : &local_report;
    memset(r, 0, sizeof *r);
    r->worst_input = -1;
    r->worst_index = -1;
    tg_gradcheck_opts o = opts ? *opts : (tg_gradcheck_opts){0};
    if (o.eps <= 0)
        o.eps = 1e-6;
    if (o.atol <= 0)
        o.atol = 1e-5;
    if (o.rtol <= 0)
        o.rtol = 1e-3;
    if (!fn || !inputs || n_inputs < 1) {
        snprintf(r->message, sizeof r->message, "bad arguments");
        return tg_set_error(TG_ERR_ARG, "tg_gradcheck: fn, inputs and n_inputs >= 1 are required");
    }
    for (int i = 0; i < n_inputs; i++)
        if (!inputs[i])
            return tg_set_error(TG_ERR_NULL, "tg_gradcheck: input %d is NULL", i);

    int rc = TG_OK;
    check c = {.fn = fn, .ctx = ctx, .n = n_inputs};
    tg_tensor *vt = NULL;
    c.g = tg_graph_new();
    c.xs = calloc((size_t)n_inputs, sizeof *c.xs);
    if (!c.g || !c.xs) {
        rc = tg_set_error(TG_ERR_NOMEM, "tg_gradcheck: out of memory");
        goto done;
    }
    for (int i = 0; i < n_inputs; i++) {
        c.xs[i] = tg_tensor_copy(inputs[i], TG_F64);
        if (!c.xs[i]) {
            rc = tg_last_status();
            goto done;
        }
        c.xs[i]->requires_grad = inputs[i]->requires_grad;
    }

    /* Analytic: one backward of the random cotangent v. */
    tg_tensor *out = fn(c.g, c.xs, n_inputs, ctx);
    if (!out) {
        tg_error_prefix("tg_gradcheck: fn failed: ");
        rc = tg_last_status() ? tg_last_status() : TG_ERR_NULL;
        goto done;
    }
    if (out->dtype != TG_F64) {
        rc = tg_set_error(TG_ERR_DTYPE, "tg_gradcheck: fn returned %s, expected float64",
                          tg_dtype_name(out->dtype));
        goto done;
    }
    tg_rng rng;
    tg_rng_seed(&rng, o.seed, 0x6772616463686bULL);
    vt = tg_tensor_new(TG_F64, out->ndim, out->shape);
    if (!vt) {
        rc = tg_last_status();
        goto done;
    }
    double *v = vt->data;
    for (int64_t i = 0; i < vt->numel; i++)
        v[i] = tg_rng_normal(&rng);
    c.v = v;
    c.v_numel = vt->numel;
    if (out->requires_grad) {
        rc = tg_backward_with(c.g, out, vt);
        if (rc != TG_OK)
            goto done;
    }

    tally t = {.o = &o, .r = r};
    rc = o.fast ? check_directions(&c, &t, &o, &rng) : check_elements(&c, &t, &o);
    if (rc != TG_OK)
        goto done;
    r->passed = t.worst_excess <= 1.0 && (t.any_nonzero || o.allow_zero);
    if (r->n_checked == 0) {
        r->passed = o.allow_zero;
        snprintf(r->message, sizeof r->message, "no input requires grad: nothing was checked");
    } else if (!t.any_nonzero && !o.allow_zero) {
        snprintf(r->message, sizeof r->message,
                 "analytic and numeric gradients are all zero over %lld checks (vacuous; set "
                 "allow_zero to accept)",
                 (long long)r->n_checked);
    } else {
        snprintf(r->message, sizeof r->message,
                 "%s: %lld checks, max abs err %.3g, max rel err %.3g; worst: input %d index %lld "
                 "analytic %.10g numeric %.10g",
                 r->passed ? "passed" : "FAILED", (long long)r->n_checked, r->max_abs_err,
                 r->max_rel_err, r->worst_input, (long long)r->worst_index, r->worst_analytic,
                 r->worst_numeric);
    }
    if (!r->passed)
        rc = tg_set_error(TG_ERR_GRADCHECK, "tg_gradcheck: %s", r->message);

done:
    if (rc != TG_OK && rc != TG_ERR_GRADCHECK)
        snprintf(r->message, sizeof r->message, "%s", tg_last_error());
    tg_tensor_free(vt);
    if (c.xs)
        for (int i = 0; i < n_inputs; i++)
            tg_tensor_free(c.xs[i]);
    free(c.xs);
    tg_graph_free(c.g);
    return rc;
}
