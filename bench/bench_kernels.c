/* bench_kernels: the memory-bound float32 kernels at the LeNet shapes (batch
 * 64: conv1 activations [64, 32, 28, 28], conv2 [64, 64, 14, 14], fc [64, 128],
 * logits [64, 10]), called directly (no graph), printing GB/s: the bytes each
 * call must read and write once, divided by its median time. Kernels:
 *   relu forward / backward, binary add / mul (equal shapes, [N, C] + [C]
 *   bias rows) and their VJP rows (dx += g, the bias gradient summed over the
 *   rows), maxpool 2x2/2 forward (with argmax) / backward, softmax and
 *   cross-entropy rows, sum reductions, transpose, batch norm and dropout.
 *
 *   bench_kernels [--threads N] [--reps 7] [--secs 0.2] [--only NAME[,NAME]]
 *
 * Each figure is a table row and one machine-readable line
 *   BENCH name=relu_fwd_64x32x28x28 impl=tgrad unit=GB/s median=.. min=.. max=.. threads=N
 * (min / max over the reps; GB/s is bytes / seconds / 1e9). The program only
 * uses kernel entry points that exist since the first commit of the kernels,
 * so the same file builds against an older libtgrad.a for a before/after. */
#include "ops/kernels/elementwise.h"
#include "ops/kernels/norm.h"
#include "ops/kernels/pool.h"
#include "ops/kernels/reduce.h"
#include "ops/kernels/shape.h"
#include "ops/kernels/softmax.h"
#include "tgrad.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ timing */

#include "bench_util.h"

static void run(const bench_opts *o, const char *name, void (*fn)(void), double bytes)
{
    if (!want(o, name))
        return;
    double t[64], v[64];
    bench_void_fn call = {fn};
    timeit(o, bench_call_void, &call, t);
    int n = o->reps;
    for (int i = 0; i < n; i++)
        v[i] = bytes / t[i] * 1e-9;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    double tmed = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    printf("%-34s %9.2f GB/s  %10.2f us   (%.2f - %.2f GB/s)\n", name, med, tmed * 1e6, v[0],
           v[n - 1]);
    printf("BENCH name=%s impl=tgrad unit=GB/s median=%.6g min=%.6g max=%.6g threads=%d\n", name,
           med, v[0], v[n - 1], o->threads);
    fflush(stdout);
}

/* ------------------------------------------------------------ buffers */

#define N_BIG (64 * 32 * 28 * 28) /* conv1 activations */
#define N_MID (64 * 64 * 14 * 14) /* conv2 activations */

static float *xa, *xb, *ya, *ga, *da, *sm_x, *sm_y, *sm_dx, *tr_out;
static int32_t *amax;
static uint8_t *mask;
static double *dacc, *st_mx, *st_inv, *bn_mean, *bn_var, *bn_invstd, *bn_s1, *bn_s2;
static int64_t labels[1024];
static float bn_w[64], bn_b[64];

static float *falloc(size_t n)
{
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-52 - 1.0);
}

static void setup(void)
{
    xa = falloc(N_BIG);
    xb = falloc(N_BIG);
    ya = falloc(N_BIG);
    ga = falloc(N_BIG);
    da = falloc(N_BIG);
    tr_out = falloc(N_BIG);
    sm_x = falloc(256 * 1000);
    sm_y = falloc(256 * 1000);
    sm_dx = falloc(256 * 1000);
    amax = malloc(sizeof *amax * N_BIG);
    mask = malloc(N_BIG);
    dacc = malloc(sizeof *dacc * 4096);
    st_mx = malloc(sizeof *st_mx * 1024);
    st_inv = malloc(sizeof *st_inv * 1024);
    bn_mean = malloc(sizeof(double) * 64);
    bn_var = malloc(sizeof(double) * 64);
    bn_invstd = malloc(sizeof(double) * 64);
    bn_s1 = malloc(sizeof(double) * 64);
    bn_s2 = malloc(sizeof(double) * 64);
    if (!amax || !mask || !dacc || !st_mx || !st_inv || !bn_mean || !bn_var || !bn_invstd ||
        !bn_s1 || !bn_s2) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < N_BIG; i++) {
        xa[i] = frand();
        xb[i] = frand();
        ga[i] = frand();
        da[i] = 0;
        mask[i] = frand() > -0.6f; /* keep 80% */
    }
    for (size_t i = 0; i < 256 * 1000; i++)
        sm_x[i] = 4 * frand();
    for (int i = 0; i < 1024; i++)
        labels[i] = (int64_t)(rng % 10);
    for (int c = 0; c < 64; c++) {
        bn_w[c] = 1 + 0.1f * frand();
        bn_b[c] = 0.1f * frand();
        bn_mean[c] = 0.01 * c;
        bn_invstd[c] = 1.0 + 0.01 * c;
        bn_s1[c] = 0.5;
        bn_s2[c] = 0.25;
    }
    /* relu output for the backward figures */
    tg__ew_unary_f32(TG__EWU_RELU, N_BIG, ya, xa, 0.0);
}

/* ------------------------------------------------------------- cases */

#define FB ((double)sizeof(float))

static void relu_fwd_big(void) { tg__ew_unary_f32(TG__EWU_RELU, N_BIG, ya, xa, 0.0); }
static void relu_bwd_big(void)
{
    tg__ew_unary_grad_f32(TG__EWU_RELU, N_BIG, da, ga, xa, ya, 0.0, true);
}
static void relu_fwd_mid(void) { tg__ew_unary_f32(TG__EWU_RELU, N_MID, ya, xa, 0.0); }
static void relu_bwd_mid(void)
{
    tg__ew_unary_grad_f32(TG__EWU_RELU, N_MID, da, ga, xa, ya, 0.0, true);
}
static void relu_fwd_fc(void) { tg__ew_unary_f32(TG__EWU_RELU, 64 * 128, ya, xa, 0.0); }
static void relu_bwd_fc(void)
{
    tg__ew_unary_grad_f32(TG__EWU_RELU, 64 * 128, da, ga, xa, ya, 0.0, true);
}

static void add_equal_big(void) { tg__ew_binary_f32(TG__EWB_ADD, N_BIG, ya, xa, 1, xb, 1); }
static void mul_equal_big(void) { tg__ew_binary_f32(TG__EWB_MUL, N_BIG, ya, xa, 1, xb, 1); }
static void add_equal_fc(void) { tg__ew_binary_f32(TG__EWB_ADD, 64 * 128, ya, xa, 1, xb, 1); }

/* [64, 128] + [128] and [64, 10] + [10], row by row as ops/elementwise.c walks
 * a ROWS broadcast plan. */
static void add_bias_rows(int64_t N, int64_t C)
{
    for (int64_t r = 0; r < N; r++)
        tg__ew_binary_f32(TG__EWB_ADD, C, ya + r * C, xa + r * C, 1, xb, 1);
}
static void add_bias_fc(void) { add_bias_rows(64, 128); }
static void add_bias_logits(void) { add_bias_rows(64, 10); }
/* [64, 32, 784] + [32, 1, 1]: 64*32 rows of 784 with a repeated b. */
static void add_chan_big(void)
{
    for (int64_t r = 0; r < 64 * 32; r++)
        tg__ew_binary_f32(TG__EWB_ADD, 784, ya + r * 784, xa + r * 784, 1, xb + r % 32, 0);
}

/* VJP rows: dx += g (equal shapes), and the bias gradient of [N, C] + [C]:
 * rows summed into a double row, then added (as ops/elementwise.c does). */
static void add_grad_equal_big(void)
{
    tg__ew_bgrad_f32(TG__EWG_ID, N_BIG, da, 1, ga, NULL, 0, NULL);
}
static void bias_grad_rows(int64_t N, int64_t C)
{
    memset(dacc, 0, (size_t)C * sizeof *dacc);
    for (int64_t r = 0; r < N; r++)
        tg__ew_bgrad_f32d(TG__EWG_ID, C, dacc, 1, ga + r * C, NULL, 0, NULL);
    for (int64_t j = 0; j < C; j++)
        da[j] += (float)dacc[j];
}
static void add_grad_bias_fc(void) { bias_grad_rows(64, 128); }
static void mul_grad_equal_big(void)
{
    tg__ew_bgrad_f32(TG__EWG_MUL, N_BIG, da, 1, ga, xb, 1, NULL);
}

static const tg__pool2d_geom pool_big = {.H = 28, .W = 28, .OH = 14, .OW = 14, .KH = 2, .KW = 2,
                                         .SH = 2, .SW = 2, .DH = 1, .DW = 1};
static const tg__pool2d_geom pool_mid = {.H = 14, .W = 14, .OH = 7, .OW = 7, .KH = 2, .KW = 2,
                                         .SH = 2, .SW = 2, .DH = 1, .DW = 1};
static void pool_fwd_big(void) { tg__maxpool2d_forward_f32(ya, amax, xa, 64 * 32, &pool_big); }
static void pool_fwd_big_noarg(void)
{
    tg__maxpool2d_forward_f32(ya, NULL, xa, 64 * 32, &pool_big);
}
static void pool_bwd_big(void)
{
    tg__maxpool2d_backward_f32(da, ga, amax, 64 * 32, &pool_big, false);
}
static void pool_fwd_mid(void) { tg__maxpool2d_forward_f32(ya, amax, xa, 64 * 64, &pool_mid); }
static void pool_bwd_mid(void)
{
    tg__maxpool2d_backward_f32(da, ga, amax, 64 * 64, &pool_mid, false);
}

static void softmax_logits(void) { tg__softmax_forward_f32(sm_y, sm_x, 64, 10, 1); }
static void softmax_1000(void) { tg__softmax_forward_f32(sm_y, sm_x, 256, 1000, 1); }
static void softmax_bwd_1000(void) { tg__softmax_backward_f32(sm_dx, sm_y, sm_x, 256, 1000, 1); }
static void logsoftmax_1000(void) { tg__log_softmax_forward_f32(sm_y, sm_x, 256, 1000, 1); }
static void xent_fwd_logits(void)
{
    tg__xent_forward_f32(NULL, st_mx, st_inv, sm_x, labels, 64, 10);
}
static void xent_bwd_logits(void)
{
    float g = 1.0f;
    tg__xent_backward_f32(sm_dx, sm_x, st_mx, st_inv, labels, &g, 0, 1.0f / 64, 64, 10);
}
static void xent_fwd_1000(void)
{
    tg__xent_forward_f32(NULL, st_mx, st_inv, sm_x, labels, 256, 1000);
}
static void xent_bwd_1000(void)
{
    float g = 1.0f;
    tg__xent_backward_f32(sm_dx, sm_x, st_mx, st_inv, labels, &g, 0, 1.0f / 256, 256, 1000);
}

static void sum_all_big(void) { tg__sum_axis_f32(ya, xa, 1, N_BIG, 1, 1.0); }
static void sum_rows_fc(void) { tg__sum_axis_f32(ya, xa, 1, 64, 128, 1.0); }
static void sum_last_big(void) { tg__sum_axis_f32(ya, xa, 64 * 32, 784, 1, 1.0); }
static void sum_bwd_big(void) { tg__sum_axis_backward_f32(da, ga, 64 * 32, 784, 1, 1.0); }

static void transpose_fc_w(void) { tg__transpose_f32(tr_out, xa, 1, 3136, 1, 128, 1); }
static void transpose_nchw_nhwc(void) { tg__transpose_f32(tr_out, xa, 64, 32, 1, 784, 1); }
static void transpose_add_fc_w(void) { tg__transpose_add_f32(tr_out, xa, 1, 128, 1, 3136, 1); }

static void bn_stats_big(void) { tg__bn2d_stats_f32(bn_mean, bn_var, xa, 64, 32, 784); }
static void bn_fwd_big(void)
{
    tg__bn2d_forward_f32(ya, xa, bn_mean, bn_invstd, bn_w, bn_b, 64, 32, 784);
}
static void bn_sums_big(void)
{
    tg__bn2d_sums_f32(bn_s1, bn_s2, ga, xa, bn_mean, bn_invstd, 64, 32, 784);
}
static void bn_bwd_big(void)
{
    tg__bn2d_backward_x_f32(da, ga, xa, bn_mean, bn_invstd, bn_w, bn_s1, bn_s2, 1, 64, 32, 784);
}
static void dropout_fwd_big(void) { tg__dropout_forward_f32(ya, xa, mask, 0.8f, N_BIG); }
static void dropout_bwd_big(void) { tg__dropout_backward_f32(da, ga, mask, 0.8f, N_BIG); }

int main(int argc, char **argv)
{
    bench_opts o = {.reps = 7, .secs = 0.2, .only = ""};
    int rc = parse_opts(argc, argv, &o, "bench_kernels");
    if (rc)
        return rc;
    const char *cpu = getenv("TG_CPU");
    printf("bench_kernels: float32, threads %d, TG_CPU=%s\n", o.threads, cpu ? cpu : "(auto)");
    setup();

    const double big = N_BIG * FB, mid = N_MID * FB, fc = 64 * 128 * FB;
    run(&o, "relu_fwd_64x32x28x28", relu_fwd_big, 2 * big);
    run(&o, "relu_bwd_64x32x28x28", relu_bwd_big, 4 * big); /* g, y, dx read; dx written */
    run(&o, "relu_fwd_64x64x14x14", relu_fwd_mid, 2 * mid);
    run(&o, "relu_bwd_64x64x14x14", relu_bwd_mid, 4 * mid);
    run(&o, "relu_fwd_64x128", relu_fwd_fc, 2 * fc);
    run(&o, "relu_bwd_64x128", relu_bwd_fc, 4 * fc);
    run(&o, "add_equal_64x32x28x28", add_equal_big, 3 * big);
    run(&o, "mul_equal_64x32x28x28", mul_equal_big, 3 * big);
    run(&o, "add_equal_64x128", add_equal_fc, 3 * fc);
    run(&o, "add_bias_64x128+128", add_bias_fc, 2 * fc + 128 * FB);
    run(&o, "add_bias_64x10+10", add_bias_logits, 2 * 640 * FB + 10 * FB);
    run(&o, "add_chan_64x32x784+32x1x1", add_chan_big, 2 * big);
    run(&o, "add_grad_equal_64x32x28x28", add_grad_equal_big, 3 * big);
    run(&o, "mul_grad_equal_64x32x28x28", mul_grad_equal_big, 4 * big);
    run(&o, "add_grad_bias_64x128->128", add_grad_bias_fc, fc);
    run(&o, "maxpool_fwd_64x32x28x28", pool_fwd_big, big + big / 4 * 2);
    run(&o, "maxpool_fwd_noidx_64x32x28x28", pool_fwd_big_noarg, big + big / 4);
    run(&o, "maxpool_bwd_64x32x28x28", pool_bwd_big, 2 * big + big / 4 * 2);
    run(&o, "maxpool_fwd_64x64x14x14", pool_fwd_mid, mid + mid / 4 * 2);
    run(&o, "maxpool_bwd_64x64x14x14", pool_bwd_mid, 2 * mid + mid / 4 * 2);
    run(&o, "softmax_fwd_64x10", softmax_logits, 2 * 640 * FB);
    run(&o, "softmax_fwd_256x1000", softmax_1000, 2 * 256000 * FB);
    run(&o, "softmax_bwd_256x1000", softmax_bwd_1000, 4 * 256000 * FB);
    run(&o, "log_softmax_fwd_256x1000", logsoftmax_1000, 2 * 256000 * FB);
    run(&o, "xent_fwd_64x10", xent_fwd_logits, 640 * FB);
    run(&o, "xent_bwd_64x10", xent_bwd_logits, 3 * 640 * FB);
    run(&o, "xent_fwd_256x1000", xent_fwd_1000, 256000 * FB);
    run(&o, "xent_bwd_256x1000", xent_bwd_1000, 3 * 256000 * FB);
    run(&o, "sum_all_64x32x28x28", sum_all_big, big);
    run(&o, "sum_axis0_64x128", sum_rows_fc, fc);
    run(&o, "sum_last_64x32x784", sum_last_big, big);
    run(&o, "sum_bwd_last_64x32x784", sum_bwd_big, 2 * big);
    run(&o, "transpose_3136x128", transpose_fc_w, 2 * 3136 * 128 * FB);
    run(&o, "transpose_add_128x3136", transpose_add_fc_w, 3 * 3136 * 128 * FB);
    run(&o, "transpose_64x32x784", transpose_nchw_nhwc, 2 * big);
    run(&o, "bn_stats_64x32x28x28", bn_stats_big, 2 * big);
    run(&o, "bn_fwd_64x32x28x28", bn_fwd_big, 2 * big);
    run(&o, "bn_sums_64x32x28x28", bn_sums_big, 2 * big);
    run(&o, "bn_bwd_64x32x28x28", bn_bwd_big, 4 * big);
    run(&o, "dropout_fwd_64x32x28x28", dropout_fwd_big, 2 * big + N_BIG);
    run(&o, "dropout_bwd_64x32x28x28", dropout_bwd_big, 3 * big + N_BIG);
    return 0;
}
