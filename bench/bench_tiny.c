/* bench_tiny: the fixed cost of the engine per op, timed as
 * ../shared/bench/torch_bench.py times PyTorch's (float32, 1-element tensors):
 *   tiny_add_fwdbwd    : tg_graph_reset; c = tg_add(a, b); tg_backward(c)
 *                        (a, b leaves requiring grad)                   us/iter
 *   tiny_add_nograd    : tg_graph_reset; c = tg_add(a, b) in a no-grad graph
 *   tiny_add_fwd_graph : tg_graph_reset; c = tg_add(a, b), node recorded
 * and the per-op bookkeeping cost, from a chain of 1000 tiny adds per
 * iteration (one reset per chain), divided by 1000:
 *   chain_add_fwd_per_op, chain_add_fwdbwd_per_op, chain_add_nograd_per_op
 * plus graph_reset alone (an empty graph). The target: tiny add
 * forward+backward under 1 us.
 *
 *   bench_tiny [--threads N] [--reps 7] [--secs 0.3] [--only NAME[,NAME]]
 *
 * Each figure is printed as a table row and as one machine-readable line
 *   BENCH name=tiny_add_fwdbwd impl=tgrad unit=us median=.. min=.. max=.. threads=N
 * (bench/README.md describes the format). */
#include "tgrad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ timing */

#include "bench_util.h"


/* Prints one figure: per_call seconds of each rep, shown as us per op
 * (per_call / ops). */
static void report(const bench_opts *o, const char *name, const double *per_call, double ops)
{
    double v[64];
    int n = o->reps;
    for (int i = 0; i < n; i++)
        v[i] = per_call[i] / ops * 1e6;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    printf("%-28s %-6s %12.4g %12.4g - %-12.4g\n", name, "us", med, v[0], v[n - 1]);
    printf("BENCH name=%s impl=tgrad unit=us median=%.6g min=%.6g max=%.6g threads=%d\n", name,
           med, v[0], v[n - 1], o->threads);
    fflush(stdout);
}

/* ------------------------------------------------------------- cases */

#define CHAIN 1000

typedef struct tiny_ctx {
    tg_graph *g;
    tg_tensor *a, *b;
} tiny_ctx;

static int reset_only(void *p)
{
    tiny_ctx *c = p;
    tg_graph_reset(c->g);
    return 0;
}

static int add_fwdbwd(void *p)
{
    tiny_ctx *c = p;
    tg_graph_reset(c->g);
    return tg_backward(c->g, tg_add(c->g, c->a, c->b));
}

static int add_fwd(void *p)
{
    tiny_ctx *c = p;
    tg_graph_reset(c->g);
    return tg_add(c->g, c->a, c->b) ? 0 : tg_last_status();
}

static int chain_fwd(void *p)
{
    tiny_ctx *c = p;
    tg_graph_reset(c->g);
    tg_tensor *y = c->a;
    for (int i = 0; i < CHAIN; i++)
        y = tg_add(c->g, y, c->b);
    return y ? 0 : tg_last_status();
}

static int chain_fwdbwd(void *p)
{
    tiny_ctx *c = p;
    tg_graph_reset(c->g);
    tg_tensor *y = c->a;
    for (int i = 0; i < CHAIN; i++)
        y = tg_add(c->g, y, c->b);
    return tg_backward(c->g, y);
}

typedef struct tiny_case {
    const char *name;
    int (*fn)(void *);
    bool no_grad;
    double ops;
} tiny_case;

int main(int argc, char **argv)
{
    bench_opts o = {.reps = 7, .secs = 0.3, .only = ""};
    int rc = parse_opts(argc, argv, &o, "bench_tiny");
    if (rc)
        return rc;
    const tiny_case cases[] = {
        {"tiny_add_fwdbwd", add_fwdbwd, false, 1},
        {"tiny_add_nograd", add_fwd, true, 1},
        {"tiny_add_fwd_graph", add_fwd, false, 1},
        {"graph_reset", reset_only, false, 1},
        {"chain_add_fwd_per_op", chain_fwd, false, CHAIN},
        {"chain_add_fwdbwd_per_op", chain_fwdbwd, false, CHAIN},
        {"chain_add_nograd_per_op", chain_fwd, true, CHAIN},
    };
    int64_t one[] = {1};
    tiny_ctx c = {tg_graph_new(), tg_tensor_new(TG_F32, 1, one), tg_tensor_new(TG_F32, 1, one)};
    if (!c.g || !c.a || !c.b) {
        fprintf(stderr, "bench_tiny: %s\n", tg_last_error());
        rc = 1;
        goto done;
    }
    tg_tensor_fill(c.a, 1.0);
    tg_tensor_fill(c.b, 1.0);
    tg_tensor_set_requires_grad(c.a, true);
    tg_tensor_set_requires_grad(c.b, true);
    printf("# bench_tiny: tgrad float32 [1] tensors, threads=%d, reps %d x ~%.2g s\n", o.threads,
           o.reps, o.secs);
    printf("%-28s %-6s %12s %12s - %-12s\n", "benchmark", "unit", "median", "min", "max");
    double per_call[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!want(&o, cases[i].name))
            continue;
        tg_graph_reset(c.g);
        tg_graph_set_no_grad(c.g, cases[i].no_grad);
        if (timeit(&o, cases[i].fn, &c, per_call) != 0) {
            fprintf(stderr, "bench_tiny: %s: %s\n", cases[i].name, tg_last_error());
            rc = 1;
            break;
        }
        report(&o, cases[i].name, per_call, cases[i].ops);
    }
done:
    tg_tensor_free(c.a);
    tg_tensor_free(c.b);
    tg_graph_free(c.g);
    return rc;
}
