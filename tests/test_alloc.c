/* Zero heap allocations in the training loop: after the first step, a LeNet
 * training step (reset, loader batch, forward, cross-entropy, backward,
 * optimizer step) and an evaluation pass call no malloc, calloc, realloc,
 * free, aligned_alloc or posix_memalign. Counted by tests/alloc_hook.c through
 * the linker's --wrap (see alloc_hook.h); a debug run with TGT_ALLOC_TRACE=1
 * prints a backtrace for every counted call. */
#include "alloc_hook.h"
#include "helpers.h"
#include "nn/nn.h"

#include <stdlib.h>

#define N_IMAGES 40 /* 5 batches of 8: the three steps stay in one epoch */

typedef struct setup {
    tg_nn_module *m;
    tg_nn_optim *opt;
    tg_graph *g;
    tg_nn_loader *loader;
    tg_nn_dataset ds;
} setup;

/* The main job's network with `c1`, `c2` conv channels and `hidden` units. */
static tg_nn_module *lenet_like(int64_t c1, int64_t c2, int64_t hidden)
{
    tg_rng r;
    tg_rng_seed(&r, 7, 0);
    tg_conv2d_args pad1 = {.padding = {1, 1}};
    tg_pool2d_args pool2 = {.kernel = {2, 2}};
    tg_nn_module *mods[] = {
        tg_nn_conv2d_new(1, c1, 3, 3, pad1, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_conv2d_new(c1, c2, 3, 3, pad1, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_maxpool2d_new(pool2),
        tg_nn_flatten_new(1),
        tg_nn_linear_new(c2 * 7 * 7, hidden, true, TG_F32, &r),
        tg_nn_relu_new(),
        tg_nn_linear_new(hidden, 10, true, TG_F32, &r),
    };
    return tg_nn_sequential_new(10, mods);
}

static void setup_new(setup *s, int64_t c1, int64_t c2, int64_t hidden, bool adam)
{
    cr_assert(tgt_alloc_hooked(),
              "the test binary is not linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,"
              "--wrap=free,--wrap=aligned_alloc,--wrap=posix_memalign: no call can be counted");
    *s = (setup){0};
    s->ds = (tg_nn_dataset){.n = N_IMAGES, .c = 1, .h = 28, .w = 28, .mean = 0.5, .std = 0.25};
    s->ds.pixels = malloc(N_IMAGES * 28 * 28 * sizeof *s->ds.pixels);
    s->ds.labels = malloc(N_IMAGES * sizeof *s->ds.labels);
    cr_assert(s->ds.pixels && s->ds.labels);
    tg_rng r;
    tg_rng_seed(&r, 3, 0);
    for (int64_t i = 0; i < N_IMAGES * 28 * 28; i++)
        s->ds.pixels[i] = (uint8_t)tg_rng_below(&r, 256);
    for (int64_t i = 0; i < N_IMAGES; i++)
        s->ds.labels[i] = (int64_t)tg_rng_below(&r, 10);
    s->m = lenet_like(c1, c2, hidden);
    cr_assert(s->m, "%s", tg_last_error());
    s->opt = adam ? tg_nn_adam_new(s->m, (tg_nn_adam_args){.lr = 1e-3})
                  : tg_nn_sgd_new(s->m, (tg_nn_sgd_args){.lr = 0.01, .momentum = 0.9});
    s->g = tg_graph_new();
    s->loader = tg_nn_loader_new(&s->ds, 8, true, 1);
    cr_assert(s->opt && s->g && s->loader, "%s", tg_last_error());
}

static void setup_free(setup *s)
{
    tg_nn_loader_free(s->loader);
    tg_graph_free(s->g);
    tg_nn_optim_free(s->opt);
    tg_nn_module_free(s->m);
    tg_nn_dataset_free(&s->ds);
}

/* One step of the main job's loop (examples/fashion_mnist.c). No Criterion
 * call in here: its macros may allocate while the counter is on. */
static int train_step(setup *s, double *loss)
{
    const int64_t *labels;
    tg_graph_reset(s->g);
    tg_tensor *x = tg_nn_loader_next(s->loader, s->g, &labels);
    tg_tensor *z = x ? tg_nn_forward(s->m, s->g, x) : NULL;
    tg_tensor *ce = z ? tg_cross_entropy(s->g, z, labels) : NULL;
    tg_nn_optim_zero_grad(s->opt);
    if (!ce || tg_backward(s->g, ce) != TG_OK || tg_nn_optim_step(s->opt) != TG_OK)
        return tg_last_status() ? tg_last_status() : TG_ERR_ARG;
    *loss = tg_tensor_get(ce, 0);
    return TG_OK;
}

/* Step 1 outside the counter, steps 2 and 3 inside; requires zero calls. */
/* Under AddressSanitizer, libgomp can start a replacement pool thread before
 * the thread it retires has parked its GEMM packing buffer (ops/kernels/
 * gemm.c), so with 2 threads the replacement sometimes allocates one: a
 * timing effect of the sanitized build, tracked as a known issue. The plain
 * run checks the 2-thread cases strictly; 1 thread is strict everywhere. */
#if defined(__SANITIZE_ADDRESS__)
#define TGT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TGT_ASAN 1
#endif
#endif

static void expect_steps_allocate_nothing(int64_t c1, int64_t c2, int64_t hidden, bool adam,
                                          int threads)
{
#ifdef TGT_ASAN
    if (threads > 1)
        cr_skip_test("2-thread heap-call count is checked in the plain run only (OpenMP pool "
                     "threads are replaced with sanitizer timing; see the comment above)");
#endif
    setup s;
    setup_new(&s, c1, c2, hidden, adam);
    tg_set_num_threads(threads);
    double loss[3] = {0};
    cr_assert_eq(train_step(&s, &loss[0]), TG_OK, "step 1: %s", tg_last_error());
    tgt_alloc_start(false);
    int rc2 = train_step(&s, &loss[1]);
    int rc3 = rc2 == TG_OK ? train_step(&s, &loss[2]) : rc2;
    tgt_alloc_counts c = tgt_alloc_stop();
    char msg[256];
    tgt_alloc_format(&c, msg, sizeof msg);
    cr_expect_eq(rc3, TG_OK, "steps 2-3: %s", tg_last_error());
    cr_expect_eq(tgt_alloc_total(&c), 0,
                 "%s, %d threads: heap calls during training steps 2 and 3: %s (rerun with "
                 "TGT_ALLOC_TRACE=1 for backtraces)",
                 adam ? "Adam" : "SGD", threads, msg);
    for (int i = 0; i < 3; i++)
        cr_expect(loss[i] > 0 && loss[i] < 10, "loss of step %d is %g", i + 1, loss[i]);
    setup_free(&s);
}

Test(alloc, hook_counts_each_heap_function)
{
    cr_assert(tgt_alloc_hooked(), "binary not linked with the --wrap options");
    tgt_alloc_start(false);
    void *volatile a = malloc(8);
    void *volatile b = calloc(2, 8);
    void *volatile null = NULL; /* keeps realloc(NULL, n) from becoming malloc(n) */
    void *volatile c = realloc(null, 8);
    void *volatile d = aligned_alloc(64, 64);
    void *e = NULL;
    int rc = posix_memalign(&e, 64, 64);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    tgt_alloc_counts n = tgt_alloc_stop();
    cr_expect_eq(rc, 0);
    cr_expect_eq(n.n_malloc, 1);
    cr_expect_eq(n.n_calloc, 1);
    cr_expect_eq(n.n_realloc, 1);
    cr_expect_eq(n.n_aligned_alloc, 1);
    cr_expect_eq(n.n_posix_memalign, 1);
    cr_expect_eq(n.n_free, 5);
    /* Stopped: nothing more is counted. */
    void *volatile f = malloc(8);
    free(f);
    cr_expect_eq(tgt_alloc_total(&n), 10);
}

Test(alloc, small_lenet_sgd_steps_after_the_first_allocate_nothing)
{
    expect_steps_allocate_nothing(4, 8, 16, false, 1);
}

Test(alloc, small_lenet_sgd_two_threads_steps_after_the_first_allocate_nothing)
{
    expect_steps_allocate_nothing(4, 8, 16, false, 2);
}

/* The main job's exact layer sizes and optimizer, at batch 8: the kernels
 * take their blocked (and, with 2 threads, threaded) paths. */
Test(alloc, main_job_lenet_adam_steps_after_the_first_allocate_nothing)
{
    expect_steps_allocate_nothing(32, 64, 128, true, 2);
}

Test(alloc, eval_passes_after_the_first_allocate_nothing)
{
    setup s;
    setup_new(&s, 4, 8, 16, false);
    tg_nn_train(s.m, false);
    tg_graph_set_no_grad(s.g, true);
    int ok = 0;
    tgt_alloc_counts c = {0};
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            tgt_alloc_start(false);
        const int64_t *labels;
        tg_graph_reset(s.g);
        tg_tensor *x = tg_nn_loader_next(s.loader, s.g, &labels);
        tg_tensor *z = x ? tg_nn_forward(s.m, s.g, x) : NULL;
        tg_tensor *ce = z ? tg_cross_entropy_ex(s.g, z, labels, TG_REDUCTION_SUM) : NULL;
        ok += ce != NULL;
    }
    c = tgt_alloc_stop();
    char msg[256];
    tgt_alloc_format(&c, msg, sizeof msg);
    cr_expect_eq(ok, 3, "%s", tg_last_error());
    cr_expect_eq(tgt_alloc_total(&c), 0, "heap calls during evaluation passes 2 and 3: %s", msg);
    setup_free(&s);
}
