/* Shared test helpers: allclose that reports the worst element, error checks,
 * and the gradcheck case tables every op family fills.
 *
 * Gradcheck cases: each family file defines
 *     const gc_case gc_cases_<family>[] = {...};
 *     const size_t gc_n_<family> = sizeof gc_cases_<family> / sizeof gc_cases_<family>[0];
 * and adds one row GC_FAMILY(<family>) to tests/gc_families.def, so that
 * test_registry.c can walk tg_op_table[] and fail for any op without cases.
 * gc_run checks one case in float64 (tolerances atol 1e-6, rtol 1e-5, tighter
 * than the defaults); gc_run_f32 checks that float32 forward and gradients
 * match float64 within float32 tolerance. */
#ifndef TG_TEST_HELPERS_H
#define TG_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>

#include "tgrad.h"

/* --------------------------------------------------------------- allclose */

/* True if |got[i] - want[i]| <= atol + rtol * |want[i]| for all i (NaN equals
 * NaN, inf equals the same inf). Else writes the worst element into msg. */
bool tgt_allclose(const tg_tensor *got, const double *want, int64_t n, double atol, double rtol,
                  const char *name, char *msg, size_t msg_size);
/* Same, comparing two tensors of equal numel. */
bool tgt_allclose_t(const tg_tensor *got, const tg_tensor *want, double atol, double rtol,
                    const char *name, char *msg, size_t msg_size);

#define expect_close(t, want, atol, rtol)                                                      \
    do {                                                                                       \
        char msg_[512];                                                                        \
        const tg_tensor *t_ = (t);                                                             \
        const double *want_ = (want);                                                          \
        cr_expect(tgt_allclose(t_, want_, t_ ? tg_tensor_numel(t_) : 0, (atol), (rtol), #t,    \
                               msg_, sizeof msg_),                                             \
                  "%s", msg_);                                                                 \
    } while (0)

/* float32 path: default float32 tolerances. */
#define expect_close_f32(t, want) expect_close((t), (want), 1e-5, 1e-5)

#define expect_close_t(got, want, atol, rtol)                                                  \
    do {                                                                                       \
        char msg_[512];                                                                        \
        cr_expect(tgt_allclose_t((got), (want), (atol), (rtol), #got, msg_, sizeof msg_), "%s",  \
                  msg_);                                                                       \
    } while (0)

/* ----------------------------------------------------------------- errors */

/* The call returned NULL (or a negative status) and tg_last_error() contains
 * every one of the NULL-terminated substrings. */
bool tgt_error_has(const char *const *needles, char *msg, size_t msg_size);
#define expect_error(result_is_failure, ...)                                                   \
    do {                                                                                       \
        char msg_[768];                                                                        \
        const char *needles_[] = {__VA_ARGS__, NULL};                                          \
        cr_expect((result_is_failure), "expected a failure; last error: \"%s\"",               \
                  tg_last_error());                                                            \
        cr_expect(tgt_error_has(needles_, msg_, sizeof msg_), "%s", msg_);                     \
    } while (0)

/* --------------------------------------------------------------- tensors */

/* A float64 (or dtype) leaf from values; shape given as a list. */
tg_tensor *tgt_tensor(tg_dtype dtype, int ndim, const int64_t *shape, const double *values);
/* Uniform values in [lo, hi] from a seeded generator. */
tg_tensor *tgt_random(tg_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                      uint64_t seed);

/* ------------------------------------------------------- gradcheck cases */

typedef enum gc_fill {
    GC_UNIFORM = 0,        /* uniform in [-1, 1] */
    GC_POSITIVE,           /* uniform in [0.5, 2] */
    GC_AWAY_FROM_ZERO,     /* |x| uniform in [0.1, 1], random sign (relu, abs kinks) */
    GC_DISTINCT            /* a shuffled evenly spaced ramp over [-1, 1] (max, pooling) */
} gc_fill;

typedef struct gc_input {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    gc_fill fill;
    bool no_grad; /* input takes part but is not differentiated */
} gc_input;

#define GC_MAX_INPUTS 4

typedef struct gc_case {
    const char *op;      /* registry name it covers ("add") */
    const char *label;   /* what the case exercises ("broadcast [2,1,3] + [4,3]") */
    tg_gradcheck_fn fn;  /* builds the graph from the inputs */
    const void *ctx;     /* handed to fn (attributes), may be NULL */
    int n_inputs;
    gc_input in[GC_MAX_INPUTS];
} gc_case;

/* Makes the case's inputs (seeded by its index) in dtype; caller frees with
 * gc_free_inputs. */
void gc_make_inputs(const gc_case *c, size_t index, tg_dtype dtype, tg_tensor **xs);
void gc_free_inputs(const gc_case *c, tg_tensor **xs);
/* Runs the float64 gradcheck of one case with atol 1e-6, rtol 1e-5; cr_expect
 * failures name the case and the report's worst element. */
void gc_run(const gc_case *c, size_t index);
/* float32 forward and gradients against float64 (atol 1e-4, rtol 1e-4 scaled
 * by the magnitude of the float64 values). */
void gc_run_f32(const gc_case *c, size_t index);
/* The gradients with each input passed through an intermediate (a VJP may
 * then write its first contribution instead of adding: tg_node_grad_fresh)
 * must equal those of the leaves exactly, in float64 and float32. */
void gc_run_fresh(const gc_case *c, size_t index);
/* Runs gc_run, gc_run_f32 and gc_run_fresh over a whole table. */
void gc_run_table(const gc_case *cases, size_t n);

#define GC_FAMILY(fam)                                                                         \
    extern const gc_case gc_cases_##fam[];                                                     \
    extern const size_t gc_n_##fam;
#include "gc_families.def"
#undef GC_FAMILY

#endif
