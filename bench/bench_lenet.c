/* bench_lenet: images/s of the main job's LeNet (examples/lenet.h) and of the
 * 784-128-10 MLP (torch_bench.py's MLP: flatten, linear, relu, linear) at
 * batch 64, float32, random input and labels, timed as
 * ../shared/bench/torch_bench.py times PyTorch:
 *   <model>_train_b64 : tg_graph_reset, zero_grad, forward, cross-entropy,
 *                       backward, SGD(lr .01, momentum .9) step
 *   <model>_infer_b64 : tg_graph_reset, eval-mode forward in a no-grad graph
 * GFLOP/s use torch_bench.py's formulas (conv and linear MACs x2 forward,
 * x3 for a training step; relu/pool/loss ignored).
 *
 *   bench_lenet [--threads N] [--reps 7] [--secs 0.3] [--only NAME[,NAME]]
 *
 * Each figure is printed as a table row and as one machine-readable line
 *   BENCH name=lenet_train_b64 impl=tgrad unit=img/s median=.. min=.. max=.. gflops=.. threads=N
 * which bench/compare.py reads (bench/README.md describes the format). */
#include "examples/lenet.h"
#include "nn/nn.h"
#include "tgrad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ timing */

#include "bench_util.h"


/* Prints one figure. per_call: seconds per call of each rep; the value shown
 * is batch / seconds (img/s); flop: work per call for GFLOP/s at the median. */
static void report(const bench_opts *o, const char *name, const double *per_call, double batch,
                   double flop)
{
    double v[64], s[64];
    int n = o->reps;
    for (int i = 0; i < n; i++) {
        v[i] = batch / per_call[i];
        s[i] = per_call[i];
    }
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    double smed = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    double gf = flop / smed * 1e-9;
    printf("%-28s %-6s %12.1f %12.1f - %-12.1f %8.1f\n", name, "img/s", med, v[0], v[n - 1], gf);
    printf("BENCH name=%s impl=tgrad unit=img/s median=%.6g min=%.6g max=%.6g gflops=%.6g "
           "threads=%d\n",
           name, med, v[0], v[n - 1], gf, o->threads);
    fflush(stdout);
}

/* ------------------------------------------------------------ models */

/* forward FLOP per image, as torch_bench.py */
#define LENET_FLOP (2.0 * (32 * 28 * 28 * 9 + 64 * 14 * 14 * 32 * 9 + 3136 * 128 + 128 * 10))
#define MLP_FLOP (2.0 * (784 * 128 + 128 * 10))
#define BATCH 64

/* The main job's network (examples/lenet.h, as examples/fashion_mnist.c). */
static tg_nn_module *lenet(tg_rng *rng)
{
    return lenet_new(tg_rng_u32(rng), TG_F32);
}

static tg_nn_module *mlp(tg_rng *rng)
{
    tg_nn_module *layers[] = {
        tg_nn_flatten_new(1),
        tg_nn_linear_new(784, 128, true, TG_F32, rng),
        tg_nn_relu_new(),
        tg_nn_linear_new(128, 10, true, TG_F32, rng),
    };
    return tg_nn_sequential_new((int)(sizeof layers / sizeof layers[0]), layers);
}

typedef struct step_ctx {
    tg_nn_module *m;
    tg_nn_optim *opt;
    tg_graph *g;
    tg_tensor *x;
    const int64_t *labels;
} step_ctx;

static int train_step(void *p)
{
    step_ctx *c = p;
    tg_graph_reset(c->g);
    tg_nn_optim_zero_grad(c->opt);
    tg_tensor *z = tg_nn_forward(c->m, c->g, c->x);
    tg_tensor *loss = tg_cross_entropy(c->g, z, c->labels);
    if (!loss || tg_backward(c->g, loss) != TG_OK)
        return tg_last_status();
    return tg_nn_optim_step(c->opt);
}

static int infer_step(void *p)
{
    step_ctx *c = p;
    tg_graph_reset(c->g);
    return tg_nn_forward(c->m, c->g, c->x) ? 0 : tg_last_status();
}

static int run_model(const bench_opts *o, const char *mname, tg_nn_module *(*make)(tg_rng *),
                     double flop)
{
    char train_name[64], infer_name[64];
    snprintf(train_name, sizeof train_name, "%s_train_b%d", mname, BATCH);
    snprintf(infer_name, sizeof infer_name, "%s_infer_b%d", mname, BATCH);
    if (!want(o, train_name) && !want(o, infer_name))
        return 0;
    tg_rng rng;
    tg_rng_seed(&rng, 0, 0);
    int64_t xs[] = {BATCH, 1, 28, 28};
    int64_t labels[BATCH];
    tg_tensor *x = tg_tensor_new(TG_F32, 4, xs);
    tg_nn_module *m = make(&rng);
    tg_nn_optim *opt = m ? tg_nn_sgd_new(m, (tg_nn_sgd_args){.lr = 0.01, .momentum = 0.9}) : NULL;
    tg_graph *g = tg_graph_new();
    int rc = 1;
    double per_call[64];
    if (!x || !m || !opt || !g)
        goto done;
    float *xd = tg_tensor_data(x);
    for (int64_t i = 0; i < tg_tensor_numel(x); i++)
        xd[i] = (float)tg_rng_normal(&rng);
    for (int i = 0; i < BATCH; i++)
        labels[i] = (int64_t)tg_rng_below(&rng, 10);
    step_ctx c = {m, opt, g, x, labels};
    if (want(o, train_name)) {
        tg_nn_train(m, true);
        if (timeit(o, train_step, &c, per_call) != 0)
            goto done;
        report(o, train_name, per_call, BATCH, 3 * flop * BATCH);
    }
    if (want(o, infer_name)) {
        tg_nn_train(m, false);
        tg_graph_reset(g);
        tg_graph_set_no_grad(g, true);
        if (timeit(o, infer_step, &c, per_call) != 0)
            goto done;
        report(o, infer_name, per_call, BATCH, flop * BATCH);
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench_lenet: %s: %s\n", mname, tg_last_error());
    tg_graph_free(g);
    tg_nn_optim_free(opt);
    tg_nn_module_free(m);
    tg_tensor_free(x);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o = {.reps = 7, .secs = 0.3, .only = ""};
    int rc = parse_opts(argc, argv, &o, "bench_lenet");
    if (rc)
        return rc;
    printf("# bench_lenet: tgrad float32, batch %d, threads=%d, reps %d x ~%.2g s\n", BATCH,
           o.threads, o.reps, o.secs);
    printf("%-28s %-6s %12s %12s - %-12s %8s\n", "benchmark", "unit", "median", "min", "max",
           "GFLOP/s");
    rc |= run_model(&o, "lenet", lenet, LENET_FLOP);
    rc |= run_model(&o, "mlp", mlp, MLP_FLOP);
    return rc ? 1 : 0;
}
