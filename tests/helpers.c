/* Shared test helpers: allclose with the worst element, error-message checks,
 * seeded inputs and the gradcheck case runner (see helpers.h). */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool same_special(double a, double b)
{
    if (isnan(a) && isnan(b))
        return true;
    return isinf(a) && isinf(b) && (a > 0) == (b > 0);
}

static bool close_loop(const tg_tensor *got, const double *want, const tg_tensor *want_t,
                       int64_t n, double atol, double rtol, const char *name, char *msg,
                       size_t msg_size)
{
    if (!got) {
        snprintf(msg, msg_size, "%s is NULL (last error: %s)", name, tg_last_error());
        return false;
    }
    if (tg_tensor_numel(got) != n) {
        snprintf(msg, msg_size, "%s has %lld elements, expected %lld", name,
                 (long long)tg_tensor_numel(got), (long long)n);
        return false;
    }
    int64_t worst = -1, n_bad = 0;
    double worst_excess = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double g = tg_tensor_get(got, i), w = want ? want[i] : tg_tensor_get(want_t, i);
        if (g == w || same_special(g, w))
            continue;
        double diff = fabs(g - w), tol = atol + rtol * fabs(w);
        double excess = isnan(diff) ? (double)INFINITY : diff / tol;
        if (excess > 1.0 || isnan(diff)) {
            n_bad++;
            if (worst < 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
        }
    }
    if (worst < 0) {
        snprintf(msg, msg_size, "ok");
        return true;
    }
    double g = tg_tensor_get(got, worst), w = want ? want[worst] : tg_tensor_get(want_t, worst);
    snprintf(msg, msg_size,
             "%s: %lld of %lld elements differ; worst at flat index %lld: got %.10g, want %.10g, "
             "|diff| %.3g > atol %.3g + rtol %.3g * |want|",
             name, (long long)n_bad, (long long)n, (long long)worst, g, w, fabs(g - w), atol, rtol);
    return false;
}

bool tgt_allclose(const tg_tensor *got, const double *want, int64_t n, double atol, double rtol,
                  const char *name, char *msg, size_t msg_size)
{
    return close_loop(got, want, NULL, n, atol, rtol, name, msg, msg_size);
}

bool tgt_allclose_t(const tg_tensor *got, const tg_tensor *want, double atol, double rtol,
                    const char *name, char *msg, size_t msg_size)
{
    if (!want) {
        snprintf(msg, msg_size, "reference for %s is NULL", name);
        return false;
    }
    return close_loop(got, NULL, want, tg_tensor_numel(want), atol, rtol, name, msg, msg_size);
}

bool tgt_error_has(const char *const *needles, char *msg, size_t msg_size)
{
    const char *e = tg_last_error();
    for (size_t i = 0; needles[i]; i++) {
        if (!strstr(e, needles[i])) {
            snprintf(msg, msg_size, "error message \"%s\" lacks \"%s\"", e, needles[i]);
            return false;
        }
    }
    snprintf(msg, msg_size, "ok");
    return true;
}

tg_tensor *tgt_tensor(tg_dtype dtype, int ndim, const int64_t *shape, const double *values)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    cr_assert(t, "tg_tensor_new failed: %s", tg_last_error());
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, values[i]);
    return t;
}

tg_tensor *tgt_random(tg_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                      uint64_t seed)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    cr_assert(t, "tg_tensor_new failed: %s", tg_last_error());
    tg_rng r;
    tg_rng_seed(&r, seed, 7);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        tg_tensor_set(t, i, lo + (hi - lo) * tg_rng_uniform(&r));
    return t;
}

/* ------------------------------------------------------- gradcheck cases */

static void fill_input(tg_tensor *t, gc_fill fill, tg_rng *r)
{
    int64_t n = tg_tensor_numel(t);
    switch (fill) {
    case GC_UNIFORM:
        for (int64_t i = 0; i < n; i++)
            tg_tensor_set(t, i, -1.0 + 2.0 * tg_rng_uniform(r));
        break;
    case GC_POSITIVE:
        for (int64_t i = 0; i < n; i++)
            tg_tensor_set(t, i, 0.5 + 1.5 * tg_rng_uniform(r));
        break;
    case GC_AWAY_FROM_ZERO:
        for (int64_t i = 0; i < n; i++) {
            double m = 0.1 + 0.9 * tg_rng_uniform(r);
            tg_tensor_set(t, i, (tg_rng_u32(r) & 1) ? m : -m);
        }
        break;
    case GC_DISTINCT: {
        /* Fisher-Yates over the ramp; values are at least 2/n apart. */
        for (int64_t i = 0; i < n; i++)
            tg_tensor_set(t, i, n > 1 ? -1.0 + 2.0 * (double)i / (double)(n - 1) : 0.5);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)tg_rng_below(r, (uint64_t)i + 1);
            double a = tg_tensor_get(t, i);
            tg_tensor_set(t, i, tg_tensor_get(t, j));
            tg_tensor_set(t, j, a);
        }
        break;
    }
    }
}

void gc_make_inputs(const gc_case *c, size_t index, tg_dtype dtype, tg_tensor **xs)
{
    tg_rng r;
    tg_rng_seed(&r, 1000 + index, 11);
    for (int i = 0; i < c->n_inputs; i++) {
        xs[i] = tg_tensor_new(TG_F64, c->in[i].ndim, c->in[i].shape);
        cr_assert(xs[i], "%s/%s: input %d: %s", c->op, c->label, i, tg_last_error());
        fill_input(xs[i], c->in[i].fill, &r);
        if (dtype != TG_F64) {
            tg_tensor *y = tg_tensor_copy(xs[i], dtype);
            tg_tensor_free(xs[i]);
            xs[i] = y;
        }
        tg_tensor_set_requires_grad(xs[i], !c->in[i].no_grad);
    }
}

void gc_free_inputs(const gc_case *c, tg_tensor **xs)
{
    for (int i = 0; i < c->n_inputs; i++)
        tg_tensor_free(xs[i]);
}

void gc_run(const gc_case *c, size_t index)
{
    tg_tensor *xs[GC_MAX_INPUTS];
    gc_make_inputs(c, index, TG_F64, xs);
    tg_gradcheck_opts o = {.atol = 1e-6, .rtol = 1e-5, .seed = 42 + index};
    tg_gradcheck_report rep;
    int rc = tg_gradcheck(c->fn, (void *)c->ctx, xs, c->n_inputs, &o, &rep);
    cr_expect(rc == TG_OK && rep.passed, "gradcheck %s [%s]: %s (%s)", c->op, c->label,
              rep.message, tg_last_error());
    gc_free_inputs(c, xs);
}

/* Runs the case in one dtype with a fixed cotangent; returns the output copy
 * (float64) and fills grads (float64 copies, NULL if none). */
/* Runs the case in dtype with the cotangent of index; grads: the inputs'
 * gradients (float64 copies, NULL where none). through: the op gets each
 * input through a same-shape reshape, so its gradient buffers are
 * intermediates' (a VJP may then take them fresh, tg_node_grad_fresh). */
static tg_tensor *run_dtype(const gc_case *c, size_t index, tg_dtype dtype, tg_tensor **grads,
                            bool through)
{
    tg_tensor *xs[GC_MAX_INPUTS], *in[GC_MAX_INPUTS];
    gc_make_inputs(c, index, dtype, xs);
    tg_graph *g = tg_graph_new();
    if (through) {
        /* NaN-poison the arena the graph then reuses, in small pieces so that
         * every chunk is covered from its start: an unwritten fresh buffer
         * shows as NaN. */
        for (int k = 0; k < 1024; k++) { /* 1 MiB */
            void *piece = tg_graph_alloc(g, 1024);
            cr_assert(piece, "%s", tg_last_error());
            memset(piece, 0xff, 1024);
        }
        tg_graph_reset(g);
    }
    for (int i = 0; i < c->n_inputs; i++)
        in[i] = through ? tg_reshape(g, xs[i], tg_tensor_ndim(xs[i]), tg_tensor_shape(xs[i]))
                        : xs[i];
    tg_tensor *out = c->fn(g, in, c->n_inputs, (void *)c->ctx);
    cr_assert(out, "%s [%s] %s: %s", c->op, c->label, tg_dtype_name(dtype), tg_last_error());
    tg_tensor *res = tg_tensor_copy(out, TG_F64);
    tg_tensor *v = tgt_random(dtype, tg_tensor_ndim(out), tg_tensor_shape(out), -1, 1, 5 + index);
    if (tg_tensor_requires_grad(out))
        cr_assert(tg_backward_with(g, out, v) == TG_OK, "%s", tg_last_error());
    for (int i = 0; i < c->n_inputs; i++) {
        tg_tensor *gr = tg_tensor_grad(xs[i]);
        grads[i] = gr ? tg_tensor_copy(gr, TG_F64) : NULL;
    }
    tg_tensor_free(v);
    tg_graph_free(g);
    gc_free_inputs(c, xs);
    return res;
}

static double max_abs(const tg_tensor *t)
{
    double m = 0.0;
    for (int64_t i = 0; i < tg_tensor_numel(t); i++) {
        double a = fabs(tg_tensor_get(t, i));
        if (a > m && !isinf(a))
            m = a;
    }
    return m;
}

void gc_run_f32(const gc_case *c, size_t index)
{
    tg_tensor *g64[GC_MAX_INPUTS], *g32[GC_MAX_INPUTS];
    tg_tensor *o64 = run_dtype(c, index, TG_F64, g64, false);
    tg_tensor *o32 = run_dtype(c, index, TG_F32, g32, false);
    char name[160];
    snprintf(name, sizeof name, "%s [%s] float32 output", c->op, c->label);
    char msg[512];
    double scale = 1.0 + max_abs(o64);
    cr_expect(tgt_allclose_t(o32, o64, 1e-4 * scale, 1e-4, name, msg, sizeof msg), "%s", msg);
    for (int i = 0; i < c->n_inputs; i++) {
        cr_expect((g64[i] == NULL) == (g32[i] == NULL), "%s [%s]: gradient presence differs",
                  c->op, c->label);
        if (g64[i] && g32[i]) {
            snprintf(name, sizeof name, "%s [%s] float32 grad of input %d", c->op, c->label, i);
            double gs = 1.0 + max_abs(g64[i]);
            cr_expect(tgt_allclose_t(g32[i], g64[i], 1e-4 * gs, 1e-4, name, msg, sizeof msg),
                      "%s", msg);
        }
        tg_tensor_free(g64[i]);
        tg_tensor_free(g32[i]);
    }
    tg_tensor_free(o64);
    tg_tensor_free(o32);
}

static bool same_value(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

void gc_run_fresh(const gc_case *c, size_t index)
{
    for (int d = 0; d < 2; d++) {
        const tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tensor *ga[GC_MAX_INPUTS], *gb[GC_MAX_INPUTS];
        tg_tensor *oa = run_dtype(c, index, dt, ga, false);
        tg_tensor *ob = run_dtype(c, index, dt, gb, true);
        for (int i = 0; i < c->n_inputs; i++) {
            cr_expect((ga[i] == NULL) == (gb[i] == NULL), "%s [%s]: gradient presence differs",
                      c->op, c->label);
            int64_t bad = -1;
            for (int64_t k = 0; ga[i] && gb[i] && k < tg_tensor_numel(ga[i]) && bad < 0; k++)
                if (!same_value(tg_tensor_get(ga[i], k), tg_tensor_get(gb[i], k)))
                    bad = k;
            cr_expect(bad < 0,
                      "%s [%s] %s: grad of input %d through an intermediate differs at %lld: "
                      "%.17g vs %.17g",
                      c->op, c->label, tg_dtype_name(dt), i, (long long)bad,
                      bad < 0 ? 0.0 : tg_tensor_get(ga[i], bad),
                      bad < 0 ? 0.0 : tg_tensor_get(gb[i], bad));
            tg_tensor_free(ga[i]);
            tg_tensor_free(gb[i]);
        }
        tg_tensor_free(oa);
        tg_tensor_free(ob);
    }
}

void gc_run_table(const gc_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        gc_run(&cases[i], i);
        gc_run_f32(&cases[i], i);
        gc_run_fresh(&cases[i], i);
    }
}
