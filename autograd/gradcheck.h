/* Gradient checking: the VJP of a random cotangent against central differences.
 *
 * fn builds a graph from the inputs and returns its output. The check runs in
 * float64 (float32 inputs are checked through float64 copies): it draws a
 * seeded random cotangent v of the output's shape, runs backward to get the
 * analytic v^T J, and compares every element of every input that requires grad
 * with the central difference (f(x + eps) - f(x - eps)) / 2eps of f = <v, out>.
 * An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
 * A check whose analytic and numeric gradients are all zero fails unless
 * allow_zero is set: a vacuous check proves nothing.
 * Fast mode checks one random direction u per input (v^T J u) instead. */
#ifndef TG_GRADCHECK_H
#define TG_GRADCHECK_H

#include "graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef tg_tensor *(*tg_gradcheck_fn)(tg_graph *g, tg_tensor **inputs, int n_inputs, void *ctx);

/* Zero fields mean the defaults (PyTorch's): eps 1e-6, atol 1e-5, rtol 1e-3, seed 0. */
typedef struct tg_gradcheck_opts {
    double eps;
    double atol;
    double rtol;
    uint64_t seed;   /* for the cotangent and the fast-mode directions */
    bool fast;       /* one random direction per input instead of every element */
    bool allow_zero; /* pass a check whose gradients are all zero */
} tg_gradcheck_opts;

typedef struct tg_gradcheck_report {
    bool passed;
    int64_t n_checked;   /* elements (or directions, in fast mode) compared */
    double max_abs_err;  /* max |analytic - numeric| */
    double max_rel_err;  /* max |analytic - numeric| / max(|numeric|, tiny) */
    int worst_input;     /* input and flat index of the worst element (-1: none) */
    int64_t worst_index; /* (-1 in fast mode: the whole direction) */
    double worst_analytic;
    double worst_numeric;
    char message[320];   /* one line describing the result */
} tg_gradcheck_report;

/* Returns 0 when every element passes, TG_ERR_GRADCHECK on a mismatch (report
 * filled, message in tg_last_error()), or another TG_ERR_* if fn fails or an
 * argument is bad. opts and report may be NULL. */
int tg_gradcheck(tg_gradcheck_fn fn, void *ctx, tg_tensor *const *inputs, int n_inputs,
                 const tg_gradcheck_opts *opts, tg_gradcheck_report *report);

#ifdef __cplusplus
}
#endif
#endif
