/* Tests of conv2d: the gradcheck table and a generated gradcheck grid, the seed
 * documents' worked examples, numbers from PyTorch, both dtypes against the
 * direct float64 reference loop in ops/kernels/conv.h, and every error. */
#include "helpers.h"
#include "ops/kernels/conv.h"
#include "ops/kernels/cpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ utilities */

extern const tg_op tg_op_conv2d; /* ops/conv.c (the registry's row) */

static tg_tensor *conv_fn(tg_graph *g, tg_tensor **in, int n, void *ctx)
{
    const tg_conv2d_args *a = ctx;
    return tg_conv2d(g, in[0], in[1], n == 3 ? in[2] : NULL, *a);
}

#define SHP(...) ((const int64_t[]){__VA_ARGS__})
#define ARGS(...) (&(const tg_conv2d_args){__VA_ARGS__})
#define DEFAULTS ARGS(.groups = 0) /* every field zero: stride 1, no padding, ... */
#define ARGS2(...) ((tg_conv2d_args){__VA_ARGS__})
#define IN4(a, b, c, d) {4, {a, b, c, d}, GC_UNIFORM, false}
#define IN1(a) {1, {a}, GC_UNIFORM, false}
#define CB(label, args, x, w, b) {"conv2d", label, conv_fn, args, 3, {x, w, b}}
#define CN(label, args, x, w) {"conv2d", label, conv_fn, args, 2, {x, w}}

/* ------------------------------------------------------ gradcheck table */

/* Representative cases; the full grid is generated in gradcheck_grid_* below. */
const gc_case gc_cases_conv[] = {
    CB("valid 3x3, 1 channel, 5x6", DEFAULTS, IN4(1, 1, 5, 6), IN4(1, 1, 3, 3), IN1(1)),
    CB("pad 1, C 3 -> O 4, batch 2", ARGS(.padding = {1, 1}), IN4(2, 3, 5, 6), IN4(4, 3, 3, 3),
       IN1(4)),
    CB("stride 2, pad 1, 6x5", ARGS(.stride = {2, 2}, .padding = {1, 1}), IN4(2, 3, 6, 5),
       IN4(2, 3, 3, 3), IN1(2)),
    CB("dilation 2, pad 2", ARGS(.padding = {2, 2}, .dilation = {2, 2}), IN4(1, 2, 6, 6),
       IN4(3, 2, 3, 3), IN1(3)),
    CB("groups 2, pad 1", ARGS(.padding = {1, 1}, .groups = 2), IN4(2, 4, 5, 6), IN4(4, 2, 3, 3),
       IN1(4)),
    CB("depthwise, groups = C = 3, multiplier 2", ARGS(.padding = {1, 1}, .groups = 3),
       IN4(1, 3, 5, 5), IN4(6, 1, 3, 3), IN1(6)),
    CB("same 3x3", ARGS(.same = true), IN4(1, 2, 5, 6), IN4(3, 2, 3, 3), IN1(3)),
    CB("same 2x4 (odd total, extra bottom/right)", ARGS(.same = true), IN4(1, 2, 5, 6),
       IN4(2, 2, 2, 4), IN1(2)),
    CB("same 2x2 dilation [3, 1]", ARGS(.same = true, .dilation = {3, 1}), IN4(1, 1, 6, 6),
       IN4(2, 1, 2, 2), IN1(2)),
    CB("1x1 kernel (im2col is the identity)", DEFAULTS, IN4(2, 3, 4, 5), IN4(4, 3, 1, 1),
       IN1(4)),
    CB("1x1 kernel, stride 2", ARGS(.stride = {2, 2}), IN4(1, 3, 5, 6), IN4(2, 3, 1, 1), IN1(2)),
    CB("1x1 kernel, pad 1", ARGS(.padding = {1, 1}), IN4(1, 2, 4, 3), IN4(3, 2, 1, 1), IN1(3)),
    CB("1x3 kernel, stride [1, 2], pad [0, 1]", ARGS(.stride = {1, 2}, .padding = {0, 1}),
       IN4(1, 2, 5, 6), IN4(3, 2, 1, 3), IN1(3)),
    CB("3x2 kernel, stride [2, 1], dilation [1, 2]", ARGS(.stride = {2, 1}, .dilation = {1, 2}),
       IN4(2, 2, 6, 5), IN4(2, 2, 3, 2), IN1(2)),
    CB("stride [2, 3], pad [1, 2]", ARGS(.stride = {2, 3}, .padding = {1, 2}), IN4(1, 2, 5, 7),
       IN4(2, 2, 3, 3), IN1(2)),
    CN("no bias, valid", DEFAULTS, IN4(1, 3, 5, 6), IN4(2, 3, 3, 3)),
    CN("no bias, groups 2, stride 2", ARGS(.stride = {2, 2}, .groups = 2), IN4(2, 4, 6, 5),
       IN4(2, 2, 3, 3)),
    CB("kernel covers the whole image (1x1 output)", DEFAULTS, IN4(2, 2, 4, 3),
       IN4(3, 2, 4, 3), IN1(3)),
    CB("kernel larger than the image, fits after padding", ARGS(.padding = {1, 1}),
       IN4(1, 1, 2, 3), IN4(1, 1, 4, 4), IN1(1)),
    CB("stride 3 > kernel 2 (skipped pixels)", ARGS(.stride = {3, 3}), IN4(1, 2, 7, 7),
       IN4(2, 2, 2, 2), IN1(2)),
    CN("no bias, dilation [2, 3], pad [2, 3], groups 2",
       ARGS(.padding = {2, 3}, .dilation = {2, 3}, .groups = 2), IN4(1, 2, 5, 6),
       IN4(4, 1, 3, 3)),
    CB("batch 3, 1 -> 1 channel", ARGS(.padding = {1, 0}), IN4(3, 1, 4, 5), IN4(1, 1, 3, 2),
       IN1(1)),
    CB("groups 3, same, C 6 -> O 3", ARGS(.same = true, .groups = 3), IN4(1, 6, 4, 5),
       IN4(3, 2, 3, 3), IN1(3)),
    CN("no bias, 1x1 identity, batch 2", DEFAULTS, IN4(2, 4, 3, 3), IN4(2, 4, 1, 1)),
};
const size_t gc_n_conv = sizeof gc_cases_conv / sizeof gc_cases_conv[0];

Test(ops_conv, gradcheck_table)
{
    cr_expect(gc_n_conv >= 20);
    gc_run_table(gc_cases_conv, gc_n_conv);
}

/* ------------------------------------------------------- gradcheck grid */

/* stride {1, 2} x padding {0, 1, same} x dilation {1, 2} x groups {1, 2} x
 * kernel {1x1, 3x3, 1x3, 3x2} x C {1, 3, 4} x O {1, 3, 4} x batch {1, 2},
 * skipping what conv2d rejects (same with stride 2, groups not dividing C or
 * O). Images alternate 5x6 and 6x5; every third case has no bias. Each case
 * runs the float64 gradcheck and the float32-vs-float64 comparison. One test
 * per stride and padding so Criterion can spread them over the cores. */
static int grid_run(int64_t stride, int pad_mode)
{
    static const int64_t kernels[4][2] = {{1, 1}, {3, 3}, {1, 3}, {3, 2}};
    static const int64_t chans[3] = {1, 3, 4};
    int n_run = 0;
    /* One flat counter over dilation x groups x kernel x C x O x batch. */
    for (int combo = 0; combo < 2 * 2 * 4 * 3 * 3 * 2; combo++) {
        int r = combo;
        int64_t batch = 1 + r % 2;
        r /= 2;
        int64_t O = chans[r % 3];
        r /= 3;
        int64_t C = chans[r % 3];
        r /= 3;
        int k = r % 4;
        r /= 4;
        int64_t groups = 1 + r % 2, dil = 1 + r / 2;
        if (C % groups || O % groups)
            continue;
        size_t idx = (size_t)(10000 * stride + 1000 * pad_mode + n_run);
        bool odd = n_run % 2, no_bias = n_run % 3 == 2;
        tg_conv2d_args a = {.stride = {stride, stride},
                            .dilation = {dil, dil},
                            .groups = groups,
                            .same = pad_mode == 2};
        if (pad_mode == 1)
            a.padding[0] = a.padding[1] = 1;
        char label[160];
        snprintf(label, sizeof label, "grid s%lld %s d%lld g%lld k%lldx%lld C%lld O%lld N%lld%s",
                 (long long)stride, pad_mode == 2 ? "same" : pad_mode ? "p1" : "p0",
                 (long long)dil, (long long)groups, (long long)kernels[k][0],
                 (long long)kernels[k][1], (long long)C, (long long)O, (long long)batch,
                 no_bias ? " nobias" : "");
        gc_case c = CB(label, &a, IN4(batch, C, odd ? 6 : 5, odd ? 5 : 6),
                       IN4(O, C / groups, kernels[k][0], kernels[k][1]), IN1(O));
        if (no_bias)
            c.n_inputs = 2;
        gc_run(&c, idx);
        gc_run_f32(&c, idx);
        gc_run_fresh(&c, idx);
        n_run++;
    }
    return n_run;
}

/* 2 * (4 * 9 * 2 + 4 * 1 * 2) = 160 cases per stride and padding, 800 in all. */
Test(ops_conv, gradcheck_grid_stride1_pad0) { cr_expect(grid_run(1, 0) == 160); }
Test(ops_conv, gradcheck_grid_stride1_pad1) { cr_expect(grid_run(1, 1) == 160); }
Test(ops_conv, gradcheck_grid_stride1_same) { cr_expect(grid_run(1, 2) == 160); }
Test(ops_conv, gradcheck_grid_stride2_pad0) { cr_expect(grid_run(2, 0) == 160); }
Test(ops_conv, gradcheck_grid_stride2_pad1) { cr_expect(grid_run(2, 1) == 160); }

/* ----------------------------------------------------- seed examples */

static const double seed002_image[49] = {
    0, 0, 0, 0, 0, 0, 0, /**/ 0, 1, 0, 0, 0, 1, 0, /**/ 0, 0, 0, 0, 0, 0, 0, /**/
    0, 0, 0, 1, 0, 0, 0, /**/ 0, 1, 0, 0, 0, 1, 0, /**/ 0, 0, 1, 1, 1, 0, 0, /**/
    0, 0, 0, 0, 0, 0, 0,
};
static const double seed002_kernel[9] = {0, 0, 1, 1, 0, 0, 0, 1, 1};
/* Seed 002's feature map; its slide prints 1 at row 3, column 3, where the
 * arithmetic gives 0 (computed truth wins). */
static const double seed002_map[25] = {
    0, 1, 0, 0, 0, /**/ 0, 1, 1, 1, 0, /**/ 1, 0, 0, 2, 1, /**/ 1, 4, 2, 1, 0, /**/
    0, 0, 1, 2, 1,
};

static const double seed004_image[25] = {
    60, 113, 56, 139, 85, /**/ 73, 121, 54, 84, 128, /**/ 131, 99, 70, 129, 127, /**/
    80, 57, 115, 69, 134, /**/ 104, 126, 123, 95, 130,
};
static const double sharpen[9] = {0, -1, 0, -1, 5, -1, 0, -1, 0};

Test(ops_conv, seed002_binary_image_valid_stride1)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 4, SHP(1, 1, 7, 7), seed002_image);
        tg_tensor *w = tgt_tensor(dt, 4, SHP(1, 1, 3, 3), seed002_kernel);
        tg_tensor *y = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){0});
        cr_assert(y, "%s", tg_last_error());
        cr_expect(tg_tensor_ndim(y) == 4 && tg_tensor_shape(y)[2] == 5 &&
                  tg_tensor_shape(y)[3] == 5);
        expect_close(y, seed002_map, 0, 0); /* small integers: exact in both dtypes */
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_graph_free(g);
    }
}

Test(ops_conv, seed004_sharpen_zero_pad1_stride1_and_stride2)
{
    /* Seed 004's slide gives the first output, 114; the rest of the stride-1
     * map (arithmetic, and PyTorch F.conv2d(x, k, padding=1) agrees):
     * first row [114, 328, -26, 470, 158]. */
    static const double full_s1[25] = {
        114, 328, -26, 470, 158, /**/ 53,  266,  -61, -30,  344, /**/ 403, 116, -47,
        295, 244, /**/ 108, -135, 256, -128, 344, /**/ 314, 346, 279, 153, 421,
    };
    static const double s2[9] = {114, -26, 158, 403, -47, 244, 314, 279, 421};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_tensor(dt, 4, SHP(1, 1, 5, 5), seed004_image);
        tg_tensor *w = tgt_tensor(dt, 4, SHP(1, 1, 3, 3), sharpen);
        tg_tensor *y1 = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){.padding = {1, 1}});
        cr_assert(y1, "%s", tg_last_error());
        cr_expect(tg_tensor_shape(y1)[2] == 5 && tg_tensor_shape(y1)[3] == 5);
        double row0[5];
        for (int i = 0; i < 5; i++)
            row0[i] = tg_tensor_get(y1, i);
        cr_expect(row0[0] == 114 && row0[1] == 328 && row0[2] == -26 && row0[3] == 470 &&
                      row0[4] == 158,
                  "first row %g %g %g %g %g", row0[0], row0[1], row0[2], row0[3], row0[4]);
        expect_close(y1, full_s1, 0, 0);
        /* 'same' is padding 1 for a 3x3 kernel. */
        tg_tensor *ys = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){.same = true});
        expect_close(ys, full_s1, 0, 0);
        tg_tensor *y2 =
            tg_conv2d(g, x, w, NULL, (tg_conv2d_args){.padding = {1, 1}, .stride = {2, 2}});
        cr_assert(y2, "%s", tg_last_error());
        cr_expect(tg_tensor_shape(y2)[2] == 3 && tg_tensor_shape(y2)[3] == 3);
        expect_close(y2, s2, 0, 0);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------- numbers from PyTorch */

/* The inputs of the PyTorch cases: element k of a tensor is
 * ((k*m) % mod - off) / div (quarters and halves, exact in binary). */
static tg_tensor *pattern(tg_dtype dt, int ndim, const int64_t *shape, int m, int mod, int off,
                          double div)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    cr_assert(t);
    for (int64_t k = 0; k < tg_tensor_numel(t); k++)
        tg_tensor_set(t, k, (double)((k * m) % mod - off) / div);
    return t;
}

/* Generated by /usr/bin/python3 with torch (float64):
 *   pat = lambda n, m, mod, off, div: tensor([((k*m) % mod - off)/div for k in range(n)])
 *   x = pat(120, 7, 11, 5, 4).reshape(2,3,4,5); w = pat(72, 5, 7, 3, 2).reshape(4,3,3,2)
 *   b = tensor([0.5, -1, 0.25, 2])
 *   y = F.conv2d(x, w, b, stride=(2,1), padding=(1,0), dilation=(1,2))
 *   v = pat(48, 3, 5, 2, 2).reshape(y.shape); y.backward(v)  -> x.grad, w.grad, b.grad */
static const double a_y[48] = {/* [2, 4, 2, 3] */
    -2.25, 2.25, -1.5, 0, -6.75, 4.375, -3.75, -3.625, 0.625, -3.125, -1.75, -1.75, 4.5, 2.875,
    -1.5, -3.5, 6, 4.5, 6.25, 3.75, 1.25, 7.125, 9, -0.125, 3.75, -2.75, -1, 4.75, 6.25, -3.25,
    3.75, -5.75, 1.25, -1.75, -1.75, -3.125, -2.25, -2.5, 2.75, 4.125, -7, -0.25, -0.75, -0.5,
    3.875, 0, 0.5, -0.375,
};
static const double a_dx[120] = {/* [2, 3, 4, 5] */
    -1.25, -0.75, 1.5, 1.75, -2, -3.5, -0.5, 2, -0.5, -0.5, 0.25, 0.75, -3.25, 1.75, 0.5, 1,
    -0.75, -0.75, 0.25, -1.25, -1.25, 0.25, -0.75, -0.75, 1, 2.25, 1.25, -3.25, -0.5, 2.5, 0.75,
    -0.25, -1, 0.75, -1.25, -2, 1.75, 1.5, -0.75, -1.25, 2.25, -0.5, 0.5, 0.25, 0.5, -0.75,
    -0.5, 2, 1.25, 0.25, -2.25, -1.25, 3, -0.25, -1.25, 0.25, 0.75, -3.25, 1.75, 0.5, 0.75,
    -1.25, 1, 0.5, 1.75, 1, -3.5, 0.25, -0.5, -0.5, 1, 0.25, -1.25, -2, 1.75, 0.25, 1, 0, 0.5,
    0.25, -0.25, -1.25, 1, -1.25, -0.75, -0.5, 2.25, 2.25, -3.5, -0.5, 0.5, 0.75, 0.75, 0.25,
    0.75, -2, -2, 2, 1, -0.75, -1.25, 2.25, -0.75, -1.25, 0.25, 1.5, -0.75, -1, 2.25, 1.25,
    1.75, -2.25, -0.75, 0.75, -0.25, 1, 0.25, -1.25, -2, 1.75,
};
static const double a_dw[72] = {/* [4, 3, 3, 2] */
    -1.875, -1.5, -0.875, 1.125, 1.375, 3.375, 3.25, -1.875, -0.125, -0.875, -3.375, 1.375,
    -1.25, 3.25, 3.375, -0.125, -1.25, -3.375, -1.75, 0.625, 0.625, 1.625, 1.75, -1.375, -1.375,
    -1.75, -3.125, 0.625, -0.625, 1.75, 3.125, -1.375, -1.375, -3.125, -0.25, -0.625, 2.75,
    0.25, 0.875, 0.875, 0.875, -0.5, -1.625, 2.75, -0.5, 0.875, 0.875, 0.875, -1.875, -1.625,
    -0.5, -0.5, -0.5, 0.875, -1.5, -0.125, 0.5, -0.5, -0.625, -0.25, 1.25, -1.5, 1.5, 0.5, 1.75,
    -0.625, 1.25, 1.25, -0.25, 1.5, -1.375, 1.75,
};
static const double a_db[4] = {-1, -0.5, 0, 0.5};

Test(ops_conv, multichannel_bias_stride_pad_dilation_matches_pytorch)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 1e-5 : 1e-12;
        tg_graph *g = tg_graph_new();
        tg_tensor *x = pattern(dt, 4, SHP(2, 3, 4, 5), 7, 11, 5, 4);
        tg_tensor *w = pattern(dt, 4, SHP(4, 3, 3, 2), 5, 7, 3, 2);
        tg_tensor *b = tgt_tensor(dt, 1, SHP(4), (const double[]){0.5, -1, 0.25, 2});
        tg_tensor_set_requires_grad(x, true);
        tg_tensor_set_requires_grad(w, true);
        tg_tensor_set_requires_grad(b, true);
        tg_conv2d_args a = {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}};
        tg_tensor *y = tg_conv2d(g, x, w, b, a);
        cr_assert(y, "%s", tg_last_error());
        cr_expect(tg_tensor_shape(y)[0] == 2 && tg_tensor_shape(y)[1] == 4 &&
                  tg_tensor_shape(y)[2] == 2 && tg_tensor_shape(y)[3] == 3);
        expect_close(y, a_y, tol, tol);
        tg_tensor *v = pattern(dt, 4, SHP(2, 4, 2, 3), 3, 5, 2, 2);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        expect_close(tg_tensor_grad(x), a_dx, tol, tol);
        expect_close(tg_tensor_grad(w), a_dw, tol, tol);
        expect_close(tg_tensor_grad(b), a_db, tol, tol);
        tg_tensor_free(v);
        tg_tensor_free(x);
        tg_tensor_free(w);
        tg_tensor_free(b);
        tg_graph_free(g);
    }
}

/* PyTorch: x = pat(80, 7, 11, 5, 4).reshape(1,4,5,4); w = pat(72, 5, 7, 3, 2).reshape(6,2,2,3)
 *   F.conv2d(x, w, None, stride=2, padding=(1,2), dilation=(2,1), groups=2) */
static const double b_y[54] = {/* [1, 6, 3, 3] */
    -0.625, -1.75, -0.25, -0.625, -1.125, -0.875, -0.25, 1.25, -1.125, -0.25, 1.25, -0.125,
    -0.625, -2.875, 0.5, -0.625, -2.625, 1, 1, 0.75, 0, 0.25, -0.25, -0.75, -0.125, 1.375,
    -0.375, 1, -3.125, 1.875, 2.25, -4.625, 3, 1, -2.25, 2, -2.625, 0.75, -2.5, -4.875, 2.625,
    -2.25, -2.5, 1.125, 1.125, 0.75, 1.125, 1.875, 2, -2.375, 0.375, 1, -2.5, 1.125,
};

/* PyTorch: x = pat(40, 7, 11, 5, 4).reshape(1,2,4,5); w = pat(48, 5, 7, 3, 2).reshape(3,2,2,4)
 *   F.conv2d(x, w, tensor([1, -0.5, 0.75]), padding='same') (2x4 kernel: the odd
 *   padding row and column go to the bottom and right) */
static const double c_y[60] = {/* [1, 3, 4, 5] */
    -4, 8.375, -2.125, 0.5, -0.75, -2.25, 5.375, -2.375, -1.125, 3.25, -3.25, -4.5, 8.375, 0,
    0.375, -0.625, -2, 7.625, -1.25, -0.75, 7, -6.875, -1.75, 4.75, -4.125, 2.5, 2.25, -5, 4.75,
    -1.5, -4.75, 8.625, -6.875, -2.125, 3.875, -1.625, 4.625, -3.75, -2.875, 2.75, -2.875,
    -2.75, 4.875, -1.375, 2.25, 2.125, 1, 0.375, 0.25, -0.875, 4.375, -3.5, -2.75, 4.625, -1.25,
    -1.625, -1.75, 4.25, 1.75, -0.625,
};

Test(ops_conv, groups_and_same_even_kernel_match_pytorch)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 1e-5 : 1e-12;
        tg_graph *g = tg_graph_new();
        tg_tensor *xb = pattern(dt, 4, SHP(1, 4, 5, 4), 7, 11, 5, 4);
        tg_tensor *wb = pattern(dt, 4, SHP(6, 2, 2, 3), 5, 7, 3, 2);
        tg_tensor *yb = tg_conv2d(
            g, xb, wb, NULL,
            (tg_conv2d_args){.stride = {2, 2}, .padding = {1, 2}, .dilation = {2, 1}, .groups = 2});
        cr_assert(yb, "%s", tg_last_error());
        cr_expect(tg_tensor_shape(yb)[1] == 6 && tg_tensor_shape(yb)[2] == 3 &&
                  tg_tensor_shape(yb)[3] == 3);
        expect_close(yb, b_y, tol, tol);

        tg_tensor *xc = pattern(dt, 4, SHP(1, 2, 4, 5), 7, 11, 5, 4);
        tg_tensor *wc = pattern(dt, 4, SHP(3, 2, 2, 4), 5, 7, 3, 2);
        tg_tensor *bc = tgt_tensor(dt, 1, SHP(3), (const double[]){1, -0.5, 0.75});
        tg_tensor *yc = tg_conv2d(g, xc, wc, bc, (tg_conv2d_args){.same = true});
        cr_assert(yc, "%s", tg_last_error());
        cr_expect(tg_tensor_shape(yc)[2] == 4 && tg_tensor_shape(yc)[3] == 5);
        expect_close(yc, c_y, tol, tol);
        tg_tensor *all[] = {xb, wb, xc, wc, bc};
        for (size_t i = 0; i < 5; i++)
            tg_tensor_free(all[i]);
        tg_graph_free(g);
    }
}

Test(ops_conv, same_puts_the_odd_padding_at_bottom_right)
{
    /* PyTorch: x = arange(30.).reshape(1,1,5,6), w = ones(1,1,2,2):
     * F.conv2d(x, w, padding='same') and the same with dilation=3. */
    static const double want_d1[30] = {
        14, 18, 22, 26, 30,  16, /**/ 38, 42, 46, 50, 54,  28, /**/ 62, 66, 70,
        74, 78, 40, /**/ 86, 90, 94, 98, 102, 52, /**/ 49, 51, 53, 55, 57, 29,
    };
    static const double want_d3[30] = {
        14, 27, 29, 31, 15, 16, /**/ 22, 42, 46, 50, 24, 26, /**/ 34, 66, 70, 74, 36, 38, /**/
        14, 27, 29, 31, 15, 16, /**/ 20, 39, 41, 43, 21, 22,
    };
    double xv[30], ones[4] = {1, 1, 1, 1};
    for (int i = 0; i < 30; i++)
        xv[i] = i;
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(TG_F64, 4, SHP(1, 1, 5, 6), xv);
    tg_tensor *w = tgt_tensor(TG_F64, 4, SHP(1, 1, 2, 2), ones);
    tg_tensor *y1 = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){.same = true});
    tg_tensor *y3 = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){.same = true, .dilation = {3, 3}});
    expect_close(y1, want_d1, 0, 0);
    expect_close(y3, want_d3, 0, 0);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

/* ----------------------------------- both dtypes against the reference */

/* The expected geometry, computed here independently of ops/conv.c. Returns
 * false for a combination conv2d must reject. */
static bool test_geom(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH,
                      int64_t KW, const tg_conv2d_args *a, tg__conv2d_geom *g)
{
    int64_t S[2] = {a->stride[0] ? a->stride[0] : 1, a->stride[1] ? a->stride[1] : 1};
    int64_t D[2] = {a->dilation[0] ? a->dilation[0] : 1, a->dilation[1] ? a->dilation[1] : 1};
    int64_t G = a->groups ? a->groups : 1, K[2] = {KH, KW}, IN[2] = {H, W}, OUT[2], PLO[2];
    if (C % G || O % G || (a->same && (S[0] != 1 || S[1] != 1)))
        return false;
    for (int d = 0; d < 2; d++) {
        int64_t tot = a->same ? D[d] * (K[d] - 1) : 2 * a->padding[d];
        PLO[d] = a->same ? tot / 2 : a->padding[d];
        int64_t room = IN[d] + tot - D[d] * (K[d] - 1) - 1;
        if (room < 0)
            return false;
        OUT[d] = room / S[d] + 1;
    }
    *g = (tg__conv2d_geom){N, C, H, W, O, KH, KW, OUT[0], OUT[1], S[0], S[1],
                           PLO[0], PLO[1], D[0], D[1], G};
    return true;
}

/* Runs conv2d forward and a backward of a random cotangent in dtype dt and
 * compares output and all three gradients with the float64 reference loops.
 * Returns false if the combination was rejected as expected (nothing run). */
static bool check_against_reference(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O,
                                    int64_t KH, int64_t KW, tg_conv2d_args a, tg_dtype dt,
                                    uint64_t seed)
{
    tg__conv2d_geom ge;
    bool valid = test_geom(N, C, H, W, O, KH, KW, &a, &ge);
    int64_t G = a.groups ? a.groups : 1;
    tg_tensor *x = tgt_random(TG_F64, 4, SHP(N, C, H, W), -1, 1, seed);
    tg_tensor *w = tgt_random(TG_F64, 4, SHP(O, C / G, KH, KW), -1, 1, seed + 1);
    tg_tensor *b = tgt_random(TG_F64, 1, SHP(O), -1, 1, seed + 2);
    tg_tensor *xd = tg_tensor_copy(x, dt), *wd = tg_tensor_copy(w, dt), *bd = tg_tensor_copy(b, dt);
    tg_tensor_set_requires_grad(xd, true);
    tg_tensor_set_requires_grad(wd, true);
    tg_tensor_set_requires_grad(bd, true);
    tg_graph *g = tg_graph_new();
    tg_tensor *y = tg_conv2d(g, xd, wd, bd, a);
    char desc[200];
    snprintf(desc, sizeof desc,
             "%s x [%lld, %lld, %lld, %lld] w [%lld, %lld, %lld, %lld] s [%lld, %lld] p [%lld, "
             "%lld]%s d [%lld, %lld] g %lld",
             tg_dtype_name(dt), (long long)N, (long long)C, (long long)H, (long long)W,
             (long long)O, (long long)(C / G), (long long)KH, (long long)KW,
             (long long)a.stride[0], (long long)a.stride[1], (long long)a.padding[0],
             (long long)a.padding[1], a.same ? " same" : "", (long long)a.dilation[0],
             (long long)a.dilation[1], (long long)G);
    cr_expect((y != NULL) == valid, "%s: valid %d but got %p (%s)", desc, valid, (void *)y,
              tg_last_error());
    if (y && valid) {
        cr_expect(tg_tensor_shape(y)[0] == N && tg_tensor_shape(y)[1] == O &&
                      tg_tensor_shape(y)[2] == ge.OH && tg_tensor_shape(y)[3] == ge.OW,
                  "%s: output shape", desc);
        int64_t ny = N * O * ge.OH * ge.OW;
        double *ref = calloc((size_t)(ny ? ny : 1), sizeof *ref);
        tg__conv2d_ref_f64(&ge, tg_tensor_data(x), tg_tensor_data(w), tg_tensor_data(b), ref);
        double tol = dt == TG_F64 ? 1e-12 : 1e-5;
        /* Rounding grows with the terms summed, not with each output (and
         * Winograd F(4x4, 3x3) mixes a tile's outputs): the absolute
         * tolerance scales with the largest output, as for the gradients. */
        double ymx = 1.0;
        for (int64_t k = 0; k < ny; k++)
            ymx = fmax(ymx, fabs(ref[k]));
        char msg[512];
        cr_expect(tgt_allclose(y, ref, ny, tol * ymx, tol, desc, msg, sizeof msg), "%s", msg);

        tg_tensor *v = tgt_random(TG_F64, 4, tg_tensor_shape(y), -1, 1, seed + 3);
        tg_tensor *vd = tg_tensor_copy(v, dt);
        cr_assert(tg_backward_with(g, y, vd) == TG_OK, "%s: %s", desc, tg_last_error());
        tg_tensor *dx = tg_tensor_new(TG_F64, 4, tg_tensor_shape(x));
        tg_tensor *dw = tg_tensor_new(TG_F64, 4, tg_tensor_shape(w));
        tg_tensor *db = tg_tensor_new(TG_F64, 1, tg_tensor_shape(b));
        tg__conv2d_ref_backward_f64(&ge, tg_tensor_data(x), tg_tensor_data(w), tg_tensor_data(v),
                                    tg_tensor_data(dx), tg_tensor_data(dw), tg_tensor_data(db));
        const char *names[3] = {"dx", "dw", "db"};
        tg_tensor *got[3] = {tg_tensor_grad(xd), tg_tensor_grad(wd), tg_tensor_grad(bd)};
        tg_tensor *want[3] = {dx, dw, db};
        for (int i = 0; i < 3; i++) {
            char name[260];
            snprintf(name, sizeof name, "%s %s", desc, names[i]);
            /* Gradients sum more terms than outputs: scale by the magnitude. */
            double mx = 1.0;
            for (int64_t k = 0; k < tg_tensor_numel(want[i]); k++)
                mx = fmax(mx, fabs(tg_tensor_get(want[i], k)));
            cr_expect(tgt_allclose_t(got[i], want[i], tol * mx, tol, name, msg, sizeof msg), "%s",
                      msg);
        }
        free(ref);
        tg_tensor_free(v);
        tg_tensor_free(vd);
        tg_tensor_free(dx);
        tg_tensor_free(dw);
        tg_tensor_free(db);
    }
    tg_graph_free(g);
    tg_tensor *all[] = {x, w, b, xd, wd, bd};
    for (size_t i = 0; i < 6; i++)
        tg_tensor_free(all[i]);
    return valid;
}

/* stride x padding x dilation x (C, O, groups) x image x kernel x batch, both
 * dtypes: float64 must match the reference to 1e-12, float32 to 1e-5 (of the
 * largest magnitude). */
Test(ops_conv, both_dtypes_match_float64_reference_on_a_grid)
{
    static const int64_t strides[4][2] = {{1, 1}, {2, 2}, {2, 1}, {3, 2}};
    static const int64_t pads[4][2] = {{0, 0}, {1, 1}, {2, 1}, {-1, -1}}; /* -1: same */
    static const int64_t dils[3][2] = {{1, 1}, {2, 2}, {1, 3}};
    static const int64_t cog[5][3] = {{1, 1, 1}, {3, 2, 1}, {4, 6, 2}, {6, 3, 3}, {4, 4, 4}};
    static const int64_t imgs[2][2] = {{7, 9}, {8, 5}};
    static const int64_t kers[4][2] = {{3, 3}, {1, 1}, {2, 3}, {5, 1}};
    int n_valid = 0, n_total = 0;
    for (int s = 0; s < 4; s++)
        for (int p = 0; p < 4; p++)
            for (int d = 0; d < 3; d++)
                for (int c = 0; c < 5; c++)
                    for (int k = 0; k < 4; k++) {
                        int im = (s + p + d + c + k) % 2;
                        int64_t N = 1 + (s + k) % 2;
                        tg_conv2d_args a = {.stride = {strides[s][0], strides[s][1]},
                                            .dilation = {dils[d][0], dils[d][1]},
                                            .groups = cog[c][2],
                                            .same = pads[p][0] < 0};
                        if (!a.same) {
                            a.padding[0] = pads[p][0];
                            a.padding[1] = pads[p][1];
                        }
                        for (int dt = 0; dt < 2; dt++) {
                            tg_error_clear();
                            n_valid += check_against_reference(
                                N, cog[c][0], imgs[im][0], imgs[im][1], cog[c][1], kers[k][0],
                                kers[k][1], a, dt ? TG_F32 : TG_F64, (uint64_t)(7 * n_total));
                            n_total++;
                        }
                    }
    cr_expect(n_valid > n_total / 2, "only %d of %d combinations ran", n_valid, n_total);
}

/* Cg*KH*KW = 288 > the GEMM's K block of 256, and larger images. */
Test(ops_conv, both_dtypes_match_reference_with_a_deep_kernel)
{
    tg_conv2d_args a = {.padding = {1, 1}};
    cr_expect(check_against_reference(2, 32, 10, 9, 8, 3, 3, a, TG_F64, 99));
    cr_expect(check_against_reference(2, 32, 10, 9, 8, 3, 3, a, TG_F32, 99));
    tg_conv2d_args b = {.stride = {2, 2}, .groups = 2, .dilation = {1, 2}};
    cr_expect(check_against_reference(1, 64, 12, 13, 6, 3, 3, b, TG_F32, 5));
    cr_expect(check_against_reference(3, 16, 9, 9, 16, 1, 1, (tg_conv2d_args){0}, TG_F32, 6));
}

/* --------------------------------------------- the float32 fast path */

/* Shapes that reach every float32 path: the direct kernels (C = 1) with a p
 * tail, 28-pixel rows, stride 2; the GEMM path with rows of at most 16 (the
 * gathered col2im), rows over 16 (the padded copy), stride 2 in W and an
 * image over the padded copy's 8192 floats (the row walk); groups, dilation,
 * a 1x1 kernel (no im2col in the forward) and empty batches. With the
 * default budget small images share a block; with a 1-byte budget every image
 * is its own block (so dw and db sum over several slots) and images taller
 * than 256 output columns are cut into row bands. */
static void fast_path_grid(void)
{
    tg_conv2d_args p1 = {.padding = {1, 1}}, s2 = {.stride = {2, 2}, .padding = {1, 0}};
    tg_conv2d_args gd = {.padding = {2, 1}, .dilation = {2, 1}, .groups = 2};
    tg_conv2d_args same = {.same = true, .dilation = {1, 2}};
    uint64_t seed = 200;
    cr_expect(check_against_reference(3, 1, 9, 7, 5, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 1, 28, 28, 9, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 1, 11, 12, 4, 5, 3, s2, TG_F32, seed++));
    cr_expect(check_against_reference(3, 5, 14, 14, 6, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 3, 20, 19, 4, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 4, 13, 21, 6, 3, 2, gd, TG_F32, seed++));
    cr_expect(check_against_reference(2, 2, 9, 17, 3, 2, 3, same, TG_F32, seed++));
    cr_expect(check_against_reference(2, 3, 12, 15, 4, 3, 3, s2, TG_F32, seed++));
    cr_expect(check_against_reference(1, 2, 95, 90, 3, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(5, 4, 6, 5, 8, 1, 1, (tg_conv2d_args){0}, TG_F32, seed++));
    /* 3x3, stride 1: Winograd at the AVX-512 level. Tile rows of at most 8
     * tiles (two per vector) and longer ones (9, 19 and 1000 tiles: the
     * padded copy then holds two tile rows at a time), odd sizes (partial
     * tiles), valid, 'same' and larger padding, groups. */
    cr_expect(check_against_reference(2, 4, 14, 14, 8, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(1, 5, 13, 11, 6, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 4, 9, 20, 4, 3, 3, (tg_conv2d_args){0}, TG_F32, seed++));
    cr_expect(check_against_reference(1, 6, 11, 35, 5, 3, 3, ARGS2(.padding = {2, 2}), TG_F32,
                                      seed++));
    cr_expect(check_against_reference(1, 4, 10, 9, 4, 3, 3, ARGS2(.padding = {2, 0}), TG_F32,
                                      seed++));
    cr_expect(check_against_reference(1, 8, 12, 13, 8, 3, 3, ARGS2(.padding = {1, 1}, .groups = 2),
                                      TG_F32, seed++));
    cr_expect(check_against_reference(1, 4, 5, 2000, 4, 3, 3, p1, TG_F32, seed++));
    /* Rows of at most 16 both ways: F(4x4, 3x3) (4 tiles a row, 4 tile rows a
     * vector). Several groups of tile rows with a partial last one, a 16-wide
     * source ('valid': columns past the row in the last tile), padding 2,
     * odd sizes with groups, 'same', blocks of several images with a partial
     * last block; the dx of some goes through F(2x2). */
    cr_expect(check_against_reference(2, 4, 30, 14, 5, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(1, 4, 21, 13, 4, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(1, 4, 16, 16, 4, 3, 3, (tg_conv2d_args){0}, TG_F32,
                                      seed++));
    cr_expect(check_against_reference(2, 5, 12, 12, 3, 3, 3, ARGS2(.padding = {2, 2}), TG_F32,
                                      seed++));
    cr_expect(check_against_reference(1, 8, 13, 15, 6, 3, 3, ARGS2(.padding = {1, 1}, .groups = 2),
                                      TG_F32, seed++));
    cr_expect(check_against_reference(3, 4, 14, 13, 4, 3, 3, ARGS2(.same = true), TG_F32, seed++));
    cr_expect(check_against_reference(7, 6, 16, 14, 7, 3, 3, p1, TG_F32, seed++));
    /* Taller images: with a 1-byte budget these are cut into row bands. */
    cr_expect(check_against_reference(2, 3, 30, 20, 4, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(2, 1, 60, 21, 3, 3, 3, s2, TG_F32, seed++));
    cr_expect(check_against_reference(1, 2, 40, 18, 3, 3, 3, same, TG_F32, seed++));
    cr_expect(check_against_reference(1, 3, 50, 30, 2, 3, 3, s2, TG_F32, seed++));
    cr_expect(check_against_reference(0, 3, 5, 5, 2, 3, 3, p1, TG_F32, seed++));
    cr_expect(check_against_reference(0, 1, 5, 5, 2, 3, 3, p1, TG_F32, seed++));
}

Test(ops_conv, float32_paths_match_reference_at_every_cpu_level)
{
    tg__cpu_level top = tg__cpu_max();
    for (int level = (int)top; level >= (int)TG_CPU_GENERIC; level--) {
        tg__cpu_force((tg__cpu_level)level);
        fast_path_grid();
    }
    tg__cpu_force(top);
}

Test(ops_conv, float32_paths_match_reference_in_blocks_of_one_image)
{
    tg__conv2d_budget_force(1);
    fast_path_grid();
    tg__cpu_level top = tg__cpu_force(TG_CPU_GENERIC);
    fast_path_grid();
    tg__cpu_force(top);
    tg__conv2d_budget_force(0);
}

/* Which float32 path a shape takes: Winograd for 3x3 stride 1 at the AVX-512
 * level (the LeNet and ResNet-style layers), the direct kernels for one
 * input channel, im2col + GEMM otherwise. */
Test(ops_conv, float32_plan_picks_the_path)
{
    tg__conv2d_geom lenet2 = {64, 32, 14, 14, 64, 3, 3, 14, 14, 1, 1, 1, 1, 1, 1, 1};
    tg__conv2d_geom lenet1 = {64, 1, 28, 28, 32, 3, 3, 28, 28, 1, 1, 1, 1, 1, 1, 1};
    tg__conv2d_geom strided = {64, 32, 14, 14, 64, 3, 3, 7, 7, 2, 2, 1, 1, 1, 1, 1};
    tg__conv2d_plan p;
    tg__cpu_level top = tg__cpu_max();
    tg__conv2d_plan_f32(&lenet2, &p);
    cr_expect(p.wino == (top == TG_CPU_AVX512) && !p.direct);
    if (p.wino)
        cr_expect(p.wino_m[0] == 4 && p.wino_m[1] == 4, "14x14: F(4x4) both ways");
    tg__conv2d_geom res = {64, 64, 56, 56, 64, 3, 3, 56, 56, 1, 1, 1, 1, 1, 1, 1};
    tg__conv2d_plan_f32(&res, &p);
    if (p.wino)
        cr_expect(p.wino_m[0] == 2 && p.wino_m[1] == 2, "56x56: F(2x2) both ways");
    tg__conv2d_plan_f32(&lenet1, &p);
    cr_expect(p.direct && !p.wino);
    tg__conv2d_plan_f32(&strided, &p);
    cr_expect(!p.direct && !p.wino);
    tg__cpu_force(TG_CPU_AVX2);
    tg__conv2d_plan_f32(&lenet2, &p);
    cr_expect(!p.wino && !p.direct);
    tg__cpu_force(top);
}

/* A second backward adds the same gradients again on every float32 path
 * (Winograd F(2x2) and F(4x4) dx, direct, im2col with strided col2im). */
Test(ops_conv, float32_vjp_accumulates_on_every_path)
{
    static const int64_t shapes[4][5] = {/* C, O, stride, H, W */
                                         {4, 6, 1, 9, 8},
                                         {1, 5, 1, 9, 8},
                                         {4, 6, 2, 9, 8},
                                         {4, 6, 1, 14, 14}};
    for (int s = 0; s < 4; s++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x =
            tgt_random(TG_F32, 4, SHP(2, shapes[s][0], shapes[s][3], shapes[s][4]), -1, 1, 1);
        tg_tensor *w = tgt_random(TG_F32, 4, SHP(shapes[s][1], shapes[s][0], 3, 3), -1, 1, 2);
        tg_tensor *b = tgt_random(TG_F32, 1, SHP(shapes[s][1]), -1, 1, 3);
        tg_tensor *in[3] = {x, w, b}, *first[3];
        for (int i = 0; i < 3; i++)
            tg_tensor_set_requires_grad(in[i], true);
        tg_conv2d_args a = {.padding = {1, 1}, .stride = {shapes[s][2], shapes[s][2]}};
        tg_tensor *y = tg_conv2d(g, x, w, b, a);
        tg_tensor *v = tgt_random(TG_F32, 4, tg_tensor_shape(y), -1, 1, 4);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        for (int i = 0; i < 3; i++)
            first[i] = tg_tensor_copy(tg_tensor_grad(in[i]), TG_F32);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        for (int i = 0; i < 3; i++) {
            int64_t n = tg_tensor_numel(first[i]);
            double *want = malloc((size_t)n * sizeof *want);
            for (int64_t j = 0; j < n; j++)
                want[j] = 2 * tg_tensor_get(first[i], j);
            char name[64], msg[512];
            snprintf(name, sizeof name, "shape %d grad %d", s, i);
            cr_expect(tgt_allclose(tg_tensor_grad(in[i]), want, n, 1e-6, 1e-6, name, msg,
                                   sizeof msg),
                      "%s", msg);
            free(want);
            tg_tensor_free(first[i]);
            tg_tensor_free(in[i]);
        }
        tg_tensor_free(v);
        tg_graph_free(g);
    }
}

/* y, dx, dw, db of one float32 conv2d with `threads` threads, concatenated. */
static float *run_threads(int threads, int64_t N, int64_t C, int64_t HW, int64_t O,
                          tg_conv2d_args a, int64_t *n_out)
{
    tg_set_num_threads(threads);
    tg_tensor *x = tgt_random(TG_F32, 4, SHP(N, C, HW, HW), -1, 1, 31);
    tg_tensor *w = tgt_random(TG_F32, 4, SHP(O, C, 3, 3), -1, 1, 32);
    tg_tensor *b = tgt_random(TG_F32, 1, SHP(O), -1, 1, 33);
    tg_tensor *in[3] = {x, w, b};
    for (int i = 0; i < 3; i++)
        tg_tensor_set_requires_grad(in[i], true);
    tg_graph *g = tg_graph_new();
    tg_tensor *y = tg_conv2d(g, x, w, b, a);
    cr_assert(y, "%s", tg_last_error());
    tg_tensor *v = tgt_random(TG_F32, 4, tg_tensor_shape(y), -1, 1, 34);
    cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
    const tg_tensor *parts[4] = {y, tg_tensor_grad(x), tg_tensor_grad(w), tg_tensor_grad(b)};
    int64_t n = 0;
    for (int i = 0; i < 4; i++)
        n += tg_tensor_numel(parts[i]);
    float *all = malloc((size_t)n * sizeof *all), *at = all;
    for (int i = 0; i < 4; i++) {
        memcpy(at, tg_tensor_data(parts[i]), (size_t)tg_tensor_numel(parts[i]) * sizeof *at);
        at += tg_tensor_numel(parts[i]);
    }
    *n_out = n;
    tg_tensor_free(v);
    tg_graph_free(g);
    for (int i = 0; i < 3; i++)
        tg_tensor_free(in[i]);
    return all;
}

/* Blocks of one image (16 of them, more than the 8 slots) on the im2col path
 * (stride 2), the direct path, Winograd (3x3 stride 1, 4+ channels: with a
 * 1-byte budget one tile row per block, or four for F(4x4) on the 14x14
 * images) and row bands: every result bitwise
 * equal with 1, 2 and 3 threads. Each conv is over the million multiply-adds
 * below which one thread does the work. */
Test(ops_conv, float32_results_do_not_depend_on_the_thread_count)
{
    tg__conv2d_budget_force(1);
    static const int64_t shapes[6][5] = {/* N, C, H = W, O, stride */
                                         {16, 8, 12, 16, 2},
                                         {16, 1, 28, 32, 1},
                                         {6, 16, 10, 16, 1},
                                         {16, 8, 12, 8, 1},
                                         {6, 2, 40, 8, 1},
                                         {16, 8, 14, 16, 1}};
    for (int s = 0; s < 6; s++) {
        const int64_t *sh = shapes[s];
        tg_conv2d_args a = {.padding = {1, 1}, .stride = {sh[4], 1}};
        int64_t n1, n2, n3;
        float *r1 = run_threads(1, sh[0], sh[1], sh[2], sh[3], a, &n1);
        float *r2 = run_threads(2, sh[0], sh[1], sh[2], sh[3], a, &n2);
        float *r3 = run_threads(3, sh[0], sh[1], sh[2], sh[3], a, &n3);
        cr_assert(n1 == n2 && n1 == n3);
        cr_expect(memcmp(r1, r2, (size_t)n1 * sizeof *r1) == 0, "shape %d: 1 vs 2 threads", s);
        cr_expect(memcmp(r1, r3, (size_t)n1 * sizeof *r1) == 0, "shape %d: 1 vs 3 threads", s);
        free(r1);
        free(r2);
        free(r3);
    }
    tg__conv2d_budget_force(0);
    tg_set_num_threads(0);
}

/* --------------------------------------- gradient flow and edge cases */

Test(ops_conv, vjp_skips_inputs_without_grad)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(TG_F64, 4, SHP(2, 2, 5, 4), -1, 1, 1);
    tg_tensor *w = tgt_random(TG_F64, 4, SHP(3, 2, 3, 3), -1, 1, 2);
    tg_tensor *b = tgt_random(TG_F64, 1, SHP(3), -1, 1, 3);
    tg_tensor_set_requires_grad(w, true); /* x and b need no gradient */
    tg_tensor *y = tg_conv2d(g, x, w, b, (tg_conv2d_args){.padding = {1, 1}});
    tg_tensor *v = tgt_random(TG_F64, 4, tg_tensor_shape(y), -1, 1, 4);
    cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
    cr_expect(tg_tensor_grad(x) == NULL && tg_tensor_grad(b) == NULL);
    cr_expect(tg_tensor_grad(w) != NULL);
    tg_tensor *all[] = {x, w, b, v};
    for (size_t i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
    tg_graph_free(g);
}

/* A second backward adds the same gradients again: every VJP path (im2col and
 * the 1x1 identity shortcut, both dtypes) accumulates with +=, never =. */
Test(ops_conv, vjp_accumulates_into_existing_gradients)
{
    static const int64_t kers[2] = {3, 1};
    for (int k = 0; k < 2; k++)
        for (int dt = 0; dt < 2; dt++) {
            tg_dtype d = dt ? TG_F32 : TG_F64;
            tg_graph *g = tg_graph_new();
            tg_tensor *x = tgt_random(d, 4, SHP(2, 2, 5, 4), -1, 1, 1);
            tg_tensor *w = tgt_random(d, 4, SHP(3, 2, kers[k], kers[k]), -1, 1, 2);
            tg_tensor *b = tgt_random(d, 1, SHP(3), -1, 1, 3);
            tg_tensor *in[3] = {x, w, b}, *first[3];
            for (int i = 0; i < 3; i++)
                tg_tensor_set_requires_grad(in[i], true);
            tg_conv2d_args a = {.padding = {kers[k] / 2, kers[k] / 2}};
            tg_tensor *y = tg_conv2d(g, x, w, b, a);
            tg_tensor *v = tgt_random(d, 4, tg_tensor_shape(y), -1, 1, 4);
            cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
            for (int i = 0; i < 3; i++)
                first[i] = tg_tensor_copy(tg_tensor_grad(in[i]), TG_F64);
            cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
            for (int i = 0; i < 3; i++) {
                int64_t n = tg_tensor_numel(first[i]);
                double *want = malloc((size_t)n * sizeof *want);
                for (int64_t j = 0; j < n; j++)
                    want[j] = 2 * tg_tensor_get(first[i], j);
                char name[64];
                snprintf(name, sizeof name, "k%lld %s grad %d", (long long)kers[k],
                         tg_dtype_name(d), i);
                char msg[512];
                cr_expect(tgt_allclose(tg_tensor_grad(in[i]), want, n, 1e-6, 1e-6, name, msg,
                                       sizeof msg),
                          "%s", msg);
                free(want);
                tg_tensor_free(first[i]);
                tg_tensor_free(in[i]);
            }
            tg_tensor_free(v);
            tg_graph_free(g);
        }
}

Test(ops_conv, no_grad_mode_records_no_node)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(TG_F32, 4, SHP(1, 2, 5, 5), -1, 1, 1);
    tg_tensor *w = tgt_random(TG_F32, 4, SHP(2, 2, 3, 3), -1, 1, 2);
    tg_tensor_set_requires_grad(w, true);
    tg_graph_set_no_grad(g, true);
    tg_tensor *y = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){0});
    cr_expect(y && !tg_tensor_requires_grad(y) && tg_graph_n_nodes(g) == 0);
    tg_graph_set_no_grad(g, false);
    y = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){0});
    cr_expect(y && tg_tensor_requires_grad(y) && tg_graph_n_nodes(g) == 1);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_graph_free(g);
}

Test(ops_conv, empty_batch_gives_empty_output_and_zero_weight_grad)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 4, SHP(0, 2, 5, 6));
    tg_tensor *w = tgt_random(TG_F64, 4, SHP(3, 2, 3, 3), -1, 1, 2);
    tg_tensor *b = tgt_random(TG_F64, 1, SHP(3), -1, 1, 3);
    tg_tensor_set_requires_grad(w, true);
    tg_tensor_set_requires_grad(b, true);
    tg_tensor *y = tg_conv2d(g, x, w, b, (tg_conv2d_args){.padding = {1, 1}});
    cr_assert(y, "%s", tg_last_error());
    cr_expect(tg_tensor_shape(y)[0] == 0 && tg_tensor_shape(y)[1] == 3 &&
              tg_tensor_shape(y)[2] == 5 && tg_tensor_shape(y)[3] == 6);
    tg_tensor *v = tg_tensor_new(TG_F64, 4, SHP(0, 3, 5, 6));
    cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
    double zeros[54] = {0};
    expect_close(tg_tensor_grad(w), zeros, 0, 0);
    expect_close(tg_tensor_grad(b), zeros, 0, 0);
    tg_tensor *all[] = {x, w, b, v};
    for (size_t i = 0; i < 4; i++)
        tg_tensor_free(all[i]);
    tg_graph_free(g);
}

Test(ops_conv, padding_only_reads_zeros)
{
    /* 1x1 kernel with padding 2: the border of the output is exactly the bias. */
    tg_graph *g = tg_graph_new();
    tg_tensor *x =
        tgt_tensor(TG_F32, 4, SHP(1, 1, 2, 3), (const double[]){1, 1.5, 2, 1.25, 1.75, 1.125});
    tg_tensor *w = tgt_tensor(TG_F32, 4, SHP(1, 1, 1, 1), (const double[]){3});
    tg_tensor *b = tgt_tensor(TG_F32, 1, SHP(1), (const double[]){0.5});
    tg_tensor *y = tg_conv2d(g, x, w, b, (tg_conv2d_args){.padding = {2, 2}});
    cr_assert(y && tg_tensor_shape(y)[2] == 6 && tg_tensor_shape(y)[3] == 7);
    for (int64_t i = 0; i < 6; i++)
        for (int64_t j = 0; j < 7; j++) {
            bool inside = i >= 2 && i < 4 && j >= 2 && j < 5;
            double want = inside ? 0.5 + 3 * tg_tensor_get(x, (i - 2) * 3 + (j - 2)) : 0.5;
            cr_expect(tg_tensor_get(y, i * 7 + j) == want, "y[%lld, %lld]",
                      (long long)i, (long long)j);
        }
    tg_tensor *all[] = {x, w, b};
    for (size_t i = 0; i < 3; i++)
        tg_tensor_free(all[i]);
    tg_graph_free(g);
}

/* ----------------------------------------------------------------- errors */

typedef struct err_env {
    tg_graph *g;
    tg_tensor *t[8];
    int n;
} err_env;

static tg_tensor *mk(err_env *e, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_tensor_new(TG_F64, ndim, shape);
    cr_assert(t);
    e->t[e->n++] = t;
    return t;
}

static void env_free(err_env *e)
{
    for (int i = 0; i < e->n; i++)
        tg_tensor_free(e->t[i]);
    tg_graph_free(e->g);
}

static tg_tensor *conv_err(err_env *e, const int64_t *xs, const int64_t *ws, const int64_t *bs,
                           tg_conv2d_args a)
{
    tg_error_clear();
    tg_tensor *x = mk(e, 4, xs), *w = mk(e, 4, ws), *b = bs ? mk(e, 1, bs) : NULL;
    return tg_conv2d(e->g, x, w, b, a);
}

Test(ops_conv, error_channel_mismatch)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y = conv_err(&e, SHP(1, 3, 5, 5), SHP(2, 2, 3, 3), NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "channels", "x [1, 3, 5, 5]", "w [2, 2, 3, 3]");
    cr_expect(tg_last_status() == TG_ERR_SHAPE);
    /* groups divide both, but C/groups differs from w's dim 1. */
    y = conv_err(&e, SHP(1, 4, 5, 5), SHP(2, 1, 3, 3), NULL, (tg_conv2d_args){.groups = 2});
    expect_error(y == NULL, "tg_conv2d", "channels", "x [1, 4, 5, 5]", "w [2, 1, 3, 3]",
                 "groups 2");
    env_free(&e);
}

Test(ops_conv, error_kernel_larger_than_padded_input)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y = conv_err(&e, SHP(1, 1, 4, 6), SHP(1, 1, 5, 3), NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "kernel larger", "x [1, 1, 4, 6]", "w [1, 1, 5, 3]",
                 "padded to 4 x 6", "spans 5 x 3");
    /* 3x3 dilated by 2 spans 5 > 4, even with padding [0, 1]. */
    y = conv_err(&e, SHP(1, 1, 4, 4), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.dilation = {2, 2}, .padding = {0, 1}});
    expect_error(y == NULL, "tg_conv2d", "kernel larger", "x [1, 1, 4, 4]", "w [1, 1, 3, 3]",
                 "padded to 4 x 6", "spans 5 x 5");
    /* Padding 1 makes it fit: 4 + 2 >= 5. */
    y = conv_err(&e, SHP(1, 1, 4, 4), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.dilation = {2, 2}, .padding = {1, 1}});
    cr_expect(y != NULL, "%s", tg_last_error());
    env_free(&e);
}

Test(ops_conv, error_groups_do_not_divide_channels)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y =
        conv_err(&e, SHP(1, 3, 5, 5), SHP(4, 1, 3, 3), NULL, (tg_conv2d_args){.groups = 2});
    expect_error(y == NULL, "tg_conv2d", "groups 2", "C = 3", "x [1, 3, 5, 5]", "w [4, 1, 3, 3]");
    y = conv_err(&e, SHP(1, 4, 5, 5), SHP(3, 2, 3, 3), NULL, (tg_conv2d_args){.groups = 2});
    expect_error(y == NULL, "tg_conv2d", "groups 2", "O = 3", "x [1, 4, 5, 5]", "w [3, 2, 3, 3]");
    env_free(&e);
}

Test(ops_conv, error_bias_wrong_length_or_rank)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y = conv_err(&e, SHP(1, 2, 5, 5), SHP(2, 2, 3, 3), SHP(3), (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "bias [3]", "w [2, 2, 3, 3]");
    tg_error_clear();
    tg_tensor *x = mk(&e, 4, SHP(1, 2, 5, 5)), *w = mk(&e, 4, SHP(2, 2, 3, 3));
    tg_tensor *b2 = mk(&e, 2, SHP(1, 2));
    y = tg_conv2d(e.g, x, w, b2, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "bias [1, 2]", "w [2, 2, 3, 3]");
    env_free(&e);
}

Test(ops_conv, error_wrong_ranks)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *x3 = mk(&e, 3, SHP(2, 5, 5)), *w4 = mk(&e, 4, SHP(2, 2, 3, 3));
    tg_tensor *x4 = mk(&e, 4, SHP(1, 2, 5, 5)), *w3 = mk(&e, 3, SHP(2, 3, 3));
    tg_tensor *y = tg_conv2d(e.g, x3, w4, NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "x [2, 5, 5]", "w [2, 2, 3, 3]");
    tg_error_clear();
    y = tg_conv2d(e.g, x4, w3, NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "x [1, 2, 5, 5]", "w [2, 3, 3]");
    env_free(&e);
}

Test(ops_conv, error_same_needs_stride_1_and_no_padding)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL,
                            (tg_conv2d_args){.same = true, .stride = {2, 2}});
    expect_error(y == NULL, "tg_conv2d", "same", "stride [2, 2]", "x [1, 1, 5, 5]",
                 "w [1, 1, 3, 3]");
    cr_expect(tg_last_status() == TG_ERR_ARG);
    y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.same = true, .stride = {1, 2}});
    expect_error(y == NULL, "tg_conv2d", "same", "stride [1, 2]");
    y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.same = true, .padding = {1, 0}});
    expect_error(y == NULL, "tg_conv2d", "same", "padding [1, 0]", "x [1, 1, 5, 5]");
    /* stride 0 means 1, so 'same' accepts an explicit {1, 1} and {0, 0}. */
    y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.same = true, .stride = {1, 1}});
    cr_expect(y != NULL, "%s", tg_last_error());
    env_free(&e);
}

Test(ops_conv, error_bad_stride_dilation_padding_groups)
{
    static const tg_conv2d_args bad[] = {
        {.stride = {-1, 1}}, {.stride = {1, -2}}, {.dilation = {-1, 1}},
        {.dilation = {1, -1}}, {.padding = {-1, 0}}, {.padding = {0, -3}},
    };
    static const char *what[] = {"stride [-1, 1]",   "stride [1, -2]",   "dilation [-1, 1]",
                                 "dilation [1, -1]", "padding [-1, 0]", "padding [0, -3]"};
    err_env e = {.g = tg_graph_new()};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tg_tensor *y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL, bad[i]);
        expect_error(y == NULL, "tg_conv2d", what[i], "x [1, 1, 5, 5]", "w [1, 1, 3, 3]");
        cr_expect(tg_last_status() == TG_ERR_ARG);
        /* conv_err made 2 tensors; keep the env from overflowing. */
        tg_tensor_free(e.t[--e.n]);
        tg_tensor_free(e.t[--e.n]);
    }
    tg_tensor *y = conv_err(&e, SHP(1, 2, 5, 5), SHP(2, 2, 3, 3), NULL,
                            (tg_conv2d_args){.groups = -1});
    expect_error(y == NULL, "tg_conv2d", "groups -1", "x [1, 2, 5, 5]", "w [2, 2, 3, 3]");
    env_free(&e);
}

Test(ops_conv, error_empty_dims_and_huge_sizes)
{
    err_env e = {.g = tg_graph_new()};
    tg_tensor *y = conv_err(&e, SHP(1, 1, 5, 5), SHP(0, 1, 3, 3), NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "w [0, 1, 3, 3]", "x [1, 1, 5, 5]");
    y = conv_err(&e, SHP(1, 1, 0, 5), SHP(1, 1, 1, 1), NULL, (tg_conv2d_args){.padding = {1, 1}});
    expect_error(y == NULL, "tg_conv2d", "x [1, 1, 0, 5]", "w [1, 1, 1, 1]");
    y = conv_err(&e, SHP(1, 1, 5, 5), SHP(1, 1, 3, 3), NULL,
                 (tg_conv2d_args){.dilation = {INT64_MAX, 1}});
    expect_error(y == NULL, "tg_conv2d", "too large", "x [1, 1, 5, 5]");
    cr_expect(tg_last_status() == TG_ERR_OVERFLOW);
    env_free(&e);
}

Test(ops_conv, error_dtype_mismatch_and_input_count)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 4, SHP(1, 1, 5, 5));
    tg_tensor *w = tg_tensor_new(TG_F64, 4, SHP(1, 1, 3, 3));
    tg_tensor *y = tg_conv2d(g, x, w, NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "dtypes differ", "[1, 1, 5, 5]", "[1, 1, 3, 3]");
    /* Through tg_apply directly: 1 or 4 inputs are rejected by the rule. */
    tg_tensor *w32 = tg_tensor_new(TG_F32, 4, SHP(1, 1, 3, 3));
    tg_conv2d_args a = {0};
    tg_error_clear();
    y = tg_apply(g, &tg_op_conv2d, (tg_tensor *[]){x}, 1, &a);
    expect_error(y == NULL, "tg_conv2d", "2 or 3 inputs", "got 1");
    tg_error_clear();
    y = tg_apply(g, &tg_op_conv2d, (tg_tensor *[]){x, w32, x, x}, 4, &a);
    expect_error(y == NULL, "tg_conv2d", "2 or 3 inputs", "got 4");
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(w32);
    tg_graph_free(g);
}

Test(ops_conv, error_null_inputs_propagate)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 4, SHP(1, 3, 5, 5));
    tg_tensor *w = tg_tensor_new(TG_F64, 4, SHP(2, 2, 3, 3));
    tg_tensor *w3 = tg_tensor_new(TG_F64, 4, SHP(2, 3, 3, 3));
    tg_error_clear();
    /* The first failure (channel mismatch) survives the chain. */
    tg_tensor *y = tg_conv2d(g, tg_conv2d(g, x, w, NULL, (tg_conv2d_args){0}), w3, NULL,
                             (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "channels", "x [1, 3, 5, 5]", "w [2, 2, 3, 3]");
    tg_error_clear();
    y = tg_conv2d(g, x, NULL, NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "input 1 is NULL");
    cr_expect(tg_last_status() == TG_ERR_NULL);
    tg_error_clear();
    y = tg_conv2d(NULL, x, w3, NULL, (tg_conv2d_args){0});
    expect_error(y == NULL, "tg_conv2d", "graph is NULL");
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(w3);
    tg_graph_free(g);
}

Test(ops_conv, print_attrs_resolves_defaults)
{
    char buf[160];
    tg_conv2d_args a = {.stride = {2, 0}, .padding = {1, 0}, .groups = 0};
    tg_node n = {.op = &tg_op_conv2d, .attrs = &a};
    tg_op_conv2d.print_attrs(&n, buf, sizeof buf);
    cr_expect_str_eq(buf, "stride=[2, 1] padding=[1, 0] dilation=[1, 1] groups=1");
    tg_conv2d_args s = {.same = true, .dilation = {2, 3}, .groups = 4};
    n.attrs = &s;
    tg_op_conv2d.print_attrs(&n, buf, sizeof buf);
    cr_expect_str_eq(buf, "stride=[1, 1] padding=same dilation=[2, 3] groups=4");
}
