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

#include "tgrad.h"

/* A program sets its defaults, then parse_opts overrides them. path: the
 * default shapes file of a program that takes one (positional) and --cpu;
 * NULL for the others. */
typedef struct bench_opts {
    int threads, reps; /* threads 0: the library's default count */
    double secs;
    const char *only;
    const char *path;
} bench_opts;

/* Wall time, or with --cpu the process's CPU time (steadier on a loaded
 * machine, but only meaningful with one thread: spinning threads count). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static inline double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
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

/* --threads N --reps R --secs S --only NAME[,NAME], and for a program with a
 * shapes file [shapes.txt] and --cpu, over the defaults already in *o; sets
 * the thread count and records the one in effect. 0, or 2 after the usage. */
static inline int parse_opts(int argc, char **argv, bench_opts *o, const char *prog)
{
    const bool shapes = o->path != NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        bool ok = true;
        if (shapes && !strcmp(a, "--cpu")) {
            bench_clock = CLOCK_PROCESS_CPUTIME_ID;
            continue;
        } else if (shapes && a[0] != '-') {
            o->path = a;
            continue;
        } else if (!v) {
            ok = false;
        } else if (!strcmp(a, "--threads")) {
            o->threads = (int)strtol(v, &end, 10);
        } else if (!strcmp(a, "--reps")) {
            o->reps = (int)strtol(v, &end, 10);
        } else if (!strcmp(a, "--secs")) {
            o->secs = strtod(v, &end);
        } else if (!strcmp(a, "--only")) {
            o->only = v;
        } else {
            ok = false;
        }
        i++;
        if (!ok || (end && (end == v || *end)) || o->reps < 1 || o->reps > 64 || o->secs <= 0 ||
            o->threads < 0) {
            fprintf(stderr, "usage: %s %s[--threads N] [--reps 1..64] [--secs S] "
                    "[--only NAME[,NAME]]%s\n",
                    prog, shapes ? "[shapes.txt] " : "", shapes ? " [--cpu]" : "");
            return 2;
        }
    }
    if (o->threads)
        tg_set_num_threads(o->threads);
    o->threads = tg_num_threads();
    return 0;
}

/* For programs whose timed work is a plain function. */
typedef struct bench_void_fn {
    void (*fn)(void);
} bench_void_fn;

static inline int bench_call_void(void *ctx)
{
    ((bench_void_fn *)ctx)->fn();
    return 0;
}

#endif
