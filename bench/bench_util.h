/* Shared by the benchmark programs: options, the clock, the median helper,
 * the --only filter and torch_bench.py's timeit (warm-up, then reps of a call
 * count lasting about --secs). */
#ifndef TG_BENCH_UTIL_H
#define TG_BENCH_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_opts {
    int threads, reps;
    double secs;
    const char *only;
} bench_opts;

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline bool want(const bench_opts *o, const char *name)
{
    if (!o->only || !*o->only)
        return true;
    const char *s = o->only;
    while (*s) {
        size_t len = strcspn(s, ",");
        if (len && !strncmp(name, s, len))
            return true;
        s += len + (s[len] == ',');
    }
    return false;
}

typedef int (*bench_fn)(void *ctx);

/* torch_bench.py's timeit: 3 warm-up calls, then the call count that lasts
 * about o->secs, then o->reps reps of that many calls; per-call seconds of
 * each rep in out[0..reps). Returns 0, or the failing call's status. */
static inline int timeit(const bench_opts *o, bench_fn fn, void *ctx, double *out)
{
    int rc;
    for (int i = 0; i < 3; i++)
        if ((rc = fn(ctx)) != 0)
            return rc;
    long n = 1;
    double t;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            if ((rc = fn(ctx)) != 0)
                return rc;
        t = now() - t0;
        if (t > 0.05)
            break;
        n *= 4;
    }
    n = (long)((double)n * o->secs / t);
    if (n < 1)
        n = 1;
    for (int r = 0; r < o->reps; r++) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            if ((rc = fn(ctx)) != 0)
                return rc;
        out[r] = (now() - t0) / (double)n;
    }
    return 0;
}

#endif
