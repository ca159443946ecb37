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
 * Usage: bench_conv [shapes.txt] [--threads N] [--reps 1..64] [--secs S] [--only NAME[,NAME]]
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

#include "bench_util.h"

typedef struct bench_case {
    tg_graph *g;
    tg_tensor *x, *w, *b, *dy;
    tg_conv2d_args args;
    int backward;
} bench_case;

/* One call of the timed work (a bench_fn); exits on an error (a bench bug). */
static int run_once(void *ctx)
{
    bench_case *c = ctx;
    tg_tensor *y = tg_conv2d(c->g, c->x, c->w, c->b, c->args);
    if (!y || (c->backward && tg_backward_with(c->g, y, c->dy) != 0)) {
        fprintf(stderr, "bench_conv: %s\n", tg_last_error());
        exit(1);
    }
    tg_graph_reset(c->g);
    return 0;
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
    bench_opts o = {.threads = 1, .reps = 7, .secs = 0.3, .only = "",
                    .path = "../shared/bench/shapes_conv.txt"};
    int rc = parse_opts(argc, argv, &o, "bench_conv");
    if (rc)
        return rc;
    const char *path = o.path;
    const int reps = o.reps;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_conv: cannot open %s\n", path);
        return 1;
    }
    printf("# tgrad conv2d float32, threads=%d, shapes %s%s\n", tg_num_threads(), path,
           bench_clock == CLOCK_MONOTONIC ? "" : ", CPU time");
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
        bool want_fwd = want(&o, fwd_name), want_fb = want(&o, fb_name);
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
            timeit(&o, run_once, &c, per_call);
            report(fwd_name, per_call, reps, flop);
            tg_graph_set_no_grad(c.g, false);
        }
        if (want_fb) {
            tg_tensor_set_requires_grad(c.x, true);
            tg_tensor_set_requires_grad(c.w, true);
            tg_tensor_set_requires_grad(c.b, true);
            c.backward = 1;
            timeit(&o, run_once, &c, per_call);
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
