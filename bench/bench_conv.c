/* bench_conv: float32 conv2d timings on the shapes of ../shared/bench/shapes_conv.txt,
 * the same figures as ../shared/bench/torch_bench.py (--only conv):
 *   conv_fwd     y = conv2d(x, w, b) on a no-grad graph (forward only)
 *   conv_fwdbwd  y = conv2d(x, w, b), then backward with a fixed random dy,
 *                computing dx, dw and db for every layer (the first one too)
 * Each figure: median and [min - max] ms per call over --reps reps, each rep
 * enough calls to last about --secs seconds, and GFLOP/s at the median
 * (forward 2*N*O*OH*OW*C*KH*KW, forward+backward three times that); printed
 * as a table row and as a line
 *   BENCH name=conv_fwd_lenet_c1 impl=tgrad unit=ms median=.. min=.. max=.. gflops=.. threads=N
 *
 * Usage: bench_conv [shapes.txt] [--threads N] [--reps R] [--secs S] [--only NAME[,NAME]]
 *                   [--cpu]
 * Default shapes file: ../shared/bench/shapes_conv.txt (run from the repo root);
 * --only keeps the figures whose name starts with one of the NAMEs.
 * --cpu times with the process CPU clock instead of the wall clock: with one
 * thread on a busy machine it shows the work without the waiting. */
#include "tgrad.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_case {
    tg_graph *g;
    tg_tensor *x, *w, *b, *dy;
    tg_conv2d_args args;
    int backward;
} bench_case;

/* One call of the timed work; returns 0 or exits on an error (a bench bug). */
static void run_once(bench_case *c)
{
    tg_tensor *y = tg_conv2d(c->g, c->x, c->w, c->b, c->args);
    if (!y || (c->backward && tg_backward_with(c->g, y, c->dy) != 0)) {
        fprintf(stderr, "bench_conv: %s\n", tg_last_error());
        exit(1);
    }
    tg_graph_reset(c->g);
}

/* torch_bench.py's timeit: 3 warm-up calls, then calls per rep calibrated to
 * last about secs; fills per_call[reps] with seconds per call. */
static void time_it(bench_case *c, int reps, double secs, double *per_call)
{
    for (int i = 0; i < 3; i++)
        run_once(c);
    long n = 1;
    double t;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            run_once(c);
        t = now() - t0;
        if (t > 0.05)
            break;
        n *= 4;
    }
    n = (long)((double)n * secs / t);
    if (n < 1)
        n = 1;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            run_once(c);
        per_call[r] = (now() - t0) / (double)n;
    }
}

static void report(const char *name, double *per_call, int reps, double flop)
{
    qsort(per_call, (size_t)reps, sizeof *per_call, cmp_double);
    double med = reps % 2 ? per_call[reps / 2]
                          : 0.5 * (per_call[reps / 2 - 1] + per_call[reps / 2]);
    printf("%-28s %-6s %12.4g %12.4g - %-12.4g %8.1f\n", name, "ms", med * 1e3, per_call[0] * 1e3,
           per_call[reps - 1] * 1e3, flop / med * 1e-9);
    printf("BENCH name=%s impl=tgrad unit=ms median=%.6g min=%.6g max=%.6g gflops=%.6g "
           "threads=%d\n",
           name, med * 1e3, per_call[0] * 1e3, per_call[reps - 1] * 1e3, flop / med * 1e-9,
           tg_num_threads());
    fflush(stdout);
}

/* --only: a comma-separated list of name prefixes (empty: every figure). */
static bool want(const char *only, const char *name)
{
    if (!*only)
        return true;
    const char *s = only;
    while (*s) {
        size_t len = strcspn(s, ",");
        if (len && !strncmp(name, s, len))
            return true;
        s += len + (s[len] == ',');
    }
    return false;
}

static tg_tensor *random_tensor(tg_rng *r, int ndim, const int64_t *shape, double scale)
{
    tg_tensor *t = tg_tensor_new(TG_F32, ndim, shape);
    if (!t) {
        fprintf(stderr, "bench_conv: %s\n", tg_last_error());
        exit(1);
    }
    float *d = tg_tensor_data(t);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        d[i] = (float)(scale * tg_rng_normal(r));
    return t;
}

int main(int argc, char **argv)
{
    const char *path = "../shared/bench/shapes_conv.txt", *only = "";
    int threads = 1, reps = 7;
    double secs = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--secs") && i + 1 < argc)
            secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--cpu"))
            clock_id = CLOCK_PROCESS_CPUTIME_ID;
        else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr,
                    "usage: %s [shapes.txt] [--threads N] [--reps R] [--secs S] "
                    "[--only NAME[,NAME]] [--cpu]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 1000)
        reps = 7;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_conv: cannot open %s\n", path);
        return 1;
    }
    tg_set_num_threads(threads);
    printf("# tgrad conv2d float32, threads=%d, shapes %s%s\n", tg_num_threads(), path,
           clock_id == CLOCK_MONOTONIC ? "" : ", CPU time");
    printf("%-28s %-6s %12s %12s - %-12s %8s\n", "benchmark", "unit", "median", "min", "max",
           "GFLOP/s");
    double *per_call = malloc((size_t)reps * sizeof *per_call);
    tg_rng rng;
    tg_rng_seed(&rng, 0, 0);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char nm[64];
        long long N, C, H, W, O, k, s, p;
        if (line[0] == '#' ||
            sscanf(line, "%63s %lld %lld %lld %lld %lld %lld %lld %lld", nm, &N, &C, &H, &W, &O,
                   &k, &s, &p) != 9)
            continue;
        char fwd_name[96], fb_name[96];
        snprintf(fwd_name, sizeof fwd_name, "conv_fwd_%s", nm);
        snprintf(fb_name, sizeof fb_name, "conv_fwdbwd_%s", nm);
        bool want_fwd = want(only, fwd_name), want_fb = want(only, fb_name);
        if (!want_fwd && !want_fb)
            continue;
        long long OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
        double flop = 2.0 * (double)(N * O * OH * OW * C * k * k);
        bench_case c = {.g = tg_graph_new(),
                        .args = {.stride = {s, s}, .padding = {p, p}}};
        c.x = random_tensor(&rng, 4, (const int64_t[]){N, C, H, W}, 1.0);
        c.w = random_tensor(&rng, 4, (const int64_t[]){O, C, k, k}, 0.1);
        c.b = random_tensor(&rng, 1, (const int64_t[]){O}, 1.0);
        c.dy = random_tensor(&rng, 4, (const int64_t[]){N, O, OH, OW}, 1.0);
        if (want_fwd) {
            tg_graph_set_no_grad(c.g, true);
            c.backward = 0;
            time_it(&c, reps, secs, per_call);
            report(fwd_name, per_call, reps, flop);
            tg_graph_set_no_grad(c.g, false);
        }
        if (want_fb) {
            tg_tensor_set_requires_grad(c.x, true);
            tg_tensor_set_requires_grad(c.w, true);
            tg_tensor_set_requires_grad(c.b, true);
            c.backward = 1;
            time_it(&c, reps, secs, per_call);
            report(fb_name, per_call, reps, 3 * flop);
        }
        tg_tensor_free(c.x);
        tg_tensor_free(c.w);
        tg_tensor_free(c.b);
        tg_tensor_free(c.dy);
        tg_graph_free(c.g);
    }
    fclose(f);
    free(per_call);
    return 0;
}
