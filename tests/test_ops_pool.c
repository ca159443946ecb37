/* Tests of the pooling family: tg_maxpool2d and tg_avgpool2d. Gradcheck table,
 * the seed documents' pooling examples, values and output sizes from PyTorch,
 * ties and NaN exactly, errors, and a parameter grid that checks both dtypes
 * against a naive reference written from PyTorch's CPU loops. */
#include "helpers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define ARGS(...) ((tg_pool2d_args){__VA_ARGS__})

/* ------------------------------------------------------ gradcheck table */

static tg_tensor *gc_maxpool(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_maxpool2d(g, xs[0], *(const tg_pool2d_args *)ctx);
}

static tg_tensor *gc_avgpool(tg_graph *g, tg_tensor **xs, int n, void *ctx)
{
    (void)n;
    return tg_avgpool2d(g, xs[0], *(const tg_pool2d_args *)ctx);
}

/* File-scope compound literals have static storage, so their addresses can sit
 * in the table. Maxpool inputs are GC_DISTINCT: no ties, kinks out of reach. */
#define PA(...) (&(const tg_pool2d_args){__VA_ARGS__})
#define MAXC(lbl, args, nd, ...)                                                               \
    {.op = "maxpool2d", .label = lbl, .fn = gc_maxpool, .ctx = args, .n_inputs = 1,            \
     .in = {{.ndim = nd, .shape = {__VA_ARGS__}, .fill = GC_DISTINCT}}}
#define AVGC(lbl, args, nd, ...)                                                               \
    {.op = "avgpool2d", .label = lbl, .fn = gc_avgpool, .ctx = args, .n_inputs = 1,            \
     .in = {{.ndim = nd, .shape = {__VA_ARGS__}, .fill = GC_UNIFORM}}}

const gc_case gc_cases_pool[] = {
    /* maxpool2d */
    MAXC("k2 s2 [1,1,4,4]", PA(.kernel = {2, 2}), 4, 1, 1, 4, 4),
    MAXC("k2 s2 batch [2,3,4,4]", PA(.kernel = {2, 2}, .stride = {2, 2}), 4, 2, 3, 4, 4),
    MAXC("k2 s2 odd [1,2,5,7] (floor)", PA(.kernel = {2, 2}), 4, 1, 2, 5, 7),
    MAXC("k3 s1 overlapping [1,1,5,5]", PA(.kernel = {3, 3}, .stride = {1, 1}), 4, 1, 1, 5, 5),
    MAXC("k3 s2 overlapping odd [1,2,7,7]", PA(.kernel = {3, 3}, .stride = {2, 2}), 4, 1, 2, 7, 7),
    MAXC("k2 s1 [2,1,3,5]", PA(.kernel = {2, 2}, .stride = {1, 1}), 4, 2, 1, 3, 5),
    MAXC("k(2,3) s(1,2) [1,2,5,7]", PA(.kernel = {2, 3}, .stride = {1, 2}), 4, 1, 2, 5, 7),
    MAXC("k(3,1) s(2,1) [1,1,6,4]", PA(.kernel = {3, 1}, .stride = {2, 1}), 4, 1, 1, 6, 4),
    MAXC("k3 s2 p1 [1,1,5,5]", PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}), 4, 1,
         1, 5, 5),
    MAXC("k(3,2) s2 p(1,1) [2,1,6,5]", PA(.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}),
         4, 2, 1, 6, 5),
    MAXC("k2 s2 ceil [1,1,5,5]", PA(.kernel = {2, 2}, .ceil_mode = true), 4, 1, 1, 5, 5),
    MAXC("k3 s2 p1 ceil [1,2,6,6]",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true), 4, 1, 2, 6,
         6),
    MAXC("k(2,3) s2 ceil [1,1,5,6]", PA(.kernel = {2, 3}, .stride = {2, 2}, .ceil_mode = true), 4,
         1, 1, 5, 6),
    MAXC("k2 s1 d2 [1,1,5,5]", PA(.kernel = {2, 2}, .stride = {1, 1}, .dilation = {2, 2}), 4, 1,
         1, 5, 5),
    MAXC("k3 s1 d(2,1) p(2,1) [1,1,7,6]",
         PA(.kernel = {3, 3}, .stride = {1, 1}, .padding = {2, 1}, .dilation = {2, 1}), 4, 1, 1,
         7, 6),
    MAXC("k2 s2 d2 ceil [1,1,6,7]", PA(.kernel = {2, 2}, .dilation = {2, 2}, .ceil_mode = true),
         4, 1, 1, 6, 7),
    MAXC("3-D k2 [3,4,4]", PA(.kernel = {2, 2}), 3, 3, 4, 4),
    MAXC("3-D k3 s2 p1 ceil [2,5,5]",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true), 3, 2, 5,
         5),
    MAXC("k1 s1 identity [1,2,3,3]", PA(.kernel = {1, 1}), 4, 1, 2, 3, 3),
    MAXC("k1 s2 subsample [1,1,5,5]", PA(.kernel = {1, 1}, .stride = {2, 2}), 4, 1, 1, 5, 5),
    MAXC("global k(4,5) [2,2,4,5]", PA(.kernel = {4, 5}), 4, 2, 2, 4, 5),
    MAXC("size-1 dims k(1,2) s1 [1,1,1,5]", PA(.kernel = {1, 2}, .stride = {1, 1}), 4, 1, 1, 1,
         5),
    MAXC("stride > kernel k2 s3 [1,1,7,7]", PA(.kernel = {2, 2}, .stride = {3, 3}), 4, 1, 1, 7, 7),
    MAXC("k4 s3 p2 ceil [2,2,6,6]",
         PA(.kernel = {4, 4}, .stride = {3, 3}, .padding = {2, 2}, .ceil_mode = true), 4, 2, 2, 6,
         6),
    MAXC("k(2,1) s1 d(3,1) p(2,0) [1,1,5,3] pad <= eff/2",
         PA(.kernel = {2, 1}, .stride = {1, 1}, .padding = {2, 0}, .dilation = {3, 1}), 4, 1, 1,
         5, 3),
    /* avgpool2d */
    AVGC("k2 s2 [1,1,4,4]", PA(.kernel = {2, 2}), 4, 1, 1, 4, 4),
    AVGC("k2 s2 batch [2,3,4,4]", PA(.kernel = {2, 2}), 4, 2, 3, 4, 4),
    AVGC("k2 s2 odd [1,2,5,7] (floor)", PA(.kernel = {2, 2}), 4, 1, 2, 5, 7),
    AVGC("k3 s1 overlapping [1,1,5,5]", PA(.kernel = {3, 3}, .stride = {1, 1}), 4, 1, 1, 5, 5),
    AVGC("k3 s2 overlapping odd [1,2,7,7]", PA(.kernel = {3, 3}, .stride = {2, 2}), 4, 1, 2, 7, 7),
    AVGC("k(2,3) s(1,2) [1,2,5,7]", PA(.kernel = {2, 3}, .stride = {1, 2}), 4, 1, 2, 5, 7),
    AVGC("k(3,1) s(2,1) [1,1,6,4]", PA(.kernel = {3, 1}, .stride = {2, 1}), 4, 1, 1, 6, 4),
    AVGC("k3 s2 p1 [1,1,5,5]", PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}), 4, 1,
         1, 5, 5),
    AVGC("k3 s2 p1 exclude [1,1,5,5]",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_padding = true), 4, 1,
         1, 5, 5),
    AVGC("k(3,2) s2 p(1,1) [2,1,6,5]", PA(.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}),
         4, 2, 1, 6, 5),
    AVGC("k2 s2 ceil [1,1,5,5]", PA(.kernel = {2, 2}, .ceil_mode = true), 4, 1, 1, 5, 5),
    AVGC("k3 s2 p1 ceil [1,2,6,6] overhang",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true), 4, 1, 2, 6,
         6),
    AVGC("k3 s2 p1 ceil exclude [1,2,6,6]",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true,
            .exclude_padding = true),
         4, 1, 2, 6, 6),
    AVGC("k(3,2) s(2,3) p1 ceil [1,1,5,7]",
         PA(.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true), 4, 1, 1, 5,
         7),
    AVGC("k(3,2) s(2,3) p1 ceil exclude [1,1,5,7]",
         PA(.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true,
            .exclude_padding = true),
         4, 1, 1, 5, 7),
    AVGC("3-D k2 [3,4,4]", PA(.kernel = {2, 2}), 3, 3, 4, 4),
    AVGC("3-D k3 s2 p1 ceil [2,5,5]",
         PA(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true), 3, 2, 5,
         5),
    AVGC("k1 s1 identity [1,2,3,3]", PA(.kernel = {1, 1}), 4, 1, 2, 3, 3),
    AVGC("k1 s2 subsample [1,1,5,5]", PA(.kernel = {1, 1}, .stride = {2, 2}), 4, 1, 1, 5, 5),
    AVGC("global k(4,5) [2,2,4,5]", PA(.kernel = {4, 5}), 4, 2, 2, 4, 5),
    AVGC("size-1 dims k(1,2) s1 [1,1,1,5]", PA(.kernel = {1, 2}, .stride = {1, 1}), 4, 1, 1, 1,
         5),
    AVGC("stride > kernel k2 s3 [1,1,7,7]", PA(.kernel = {2, 2}, .stride = {3, 3}), 4, 1, 1, 7, 7),
    AVGC("k4 s3 p2 ceil [2,2,6,6]",
         PA(.kernel = {4, 4}, .stride = {3, 3}, .padding = {2, 2}, .ceil_mode = true), 4, 2, 2, 6,
         6),
    AVGC("k4 s3 p2 ceil exclude [2,2,6,6]",
         PA(.kernel = {4, 4}, .stride = {3, 3}, .padding = {2, 2}, .ceil_mode = true,
            .exclude_padding = true),
         4, 2, 2, 6, 6),
    AVGC("dilation 1 given explicitly [1,1,4,4]", PA(.kernel = {2, 2}, .dilation = {1, 1}), 4, 1,
         1, 4, 4),
};
const size_t gc_n_pool = sizeof gc_cases_pool / sizeof gc_cases_pool[0];

Test(ops_pool, gradcheck_table) { gc_run_table(gc_cases_pool, gc_n_pool); }

Test(ops_pool, gradcheck_table_has_20_cases_per_op)
{
    size_t n_max = 0, n_avg = 0;
    for (size_t i = 0; i < gc_n_pool; i++) {
        n_max += strcmp(gc_cases_pool[i].op, "maxpool2d") == 0;
        n_avg += strcmp(gc_cases_pool[i].op, "avgpool2d") == 0;
    }
    cr_expect(n_max >= 20 && n_avg >= 20, "maxpool2d %zu cases, avgpool2d %zu", n_max, n_avg);
}

/* ------------------------------------------------------------- helpers */

/* Runs op on a float64 (or dtype) input made from values; returns the output
 * (in g) and, when dx is given, backward with cotangent `cot` (ones if NULL)
 * and a copy of dL/dx the caller frees. */
typedef tg_tensor *(*pool_fn)(tg_graph *, tg_tensor *, tg_pool2d_args);

static tg_tensor *run_pool(tg_graph *g, pool_fn f, tg_dtype dt, int nd, const int64_t *shape,
                           const double *vals, tg_pool2d_args a, const double *cot,
                           tg_tensor **dx)
{
    tg_tensor *x = tgt_tensor(dt, nd, shape, vals);
    tg_tensor_set_requires_grad(x, dx != NULL);
    tg_tensor *y = f(g, x, a);
    cr_assert(y, "op failed: %s", tg_last_error());
    if (dx) {
        tg_tensor *v = tg_tensor_new(dt, tg_tensor_ndim(y), tg_tensor_shape(y));
        for (int64_t i = 0; i < tg_tensor_numel(v); i++)
            tg_tensor_set(v, i, cot ? cot[i] : 1.0);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        *dx = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
        tg_tensor_free(v);
    }
    tg_tensor_free(x); /* y lives in g's arena and does not need x any more */
    return y;
}

static void expect_shape(const tg_tensor *y, int nd, const int64_t *shape)
{
    cr_assert(y);
    cr_expect_eq(tg_tensor_ndim(y), nd);
    for (int d = 0; d < nd && d < tg_tensor_ndim(y); d++)
        cr_expect_eq(tg_tensor_shape(y)[d], shape[d], "dim %d: got %lld, want %lld", d,
                     (long long)tg_tensor_shape(y)[d], (long long)shape[d]);
}

/* ------------------------------------------------------- seed examples */

/* Seed 002: the convolved feature map (arithmetic gives 0 at row 2, column 2,
 * where the slide prints 1), max pooled 2x2 stride 2 keeping the partial
 * windows at the right and bottom edges, i.e. ceil mode. */
Test(ops_pool, maxpool_2x2_s2_ceil_matches_seed_002)
{
    const double x[25] = {0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 2, 1,
                          1, 4, 2, 1, 0, 0, 0, 1, 2, 1};
    const double want[9] = {1, 1, 0, 4, 2, 1, 0, 2, 1};
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *y = run_pool(g, tg_maxpool2d, d ? TG_F32 : TG_F64, 4, SHAPE(1, 1, 5, 5), x,
                                ARGS(.kernel = {2, 2}, .stride = {2, 2}, .ceil_mode = true), NULL,
                                NULL);
        expect_shape(y, 4, SHAPE(1, 1, 3, 3));
        expect_close(y, want, 0, 0);
        tg_graph_free(g);
    }
}

/* The same map without ceil mode drops the edge windows (PyTorch's default). */
Test(ops_pool, maxpool_2x2_s2_floor_drops_edge_windows)
{
    const double x[25] = {0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 2, 1,
                          1, 4, 2, 1, 0, 0, 0, 1, 2, 1};
    const double want[4] = {1, 1, 4, 2};
    tg_graph *g = tg_graph_new();
    tg_tensor *y = run_pool(g, tg_maxpool2d, TG_F64, 4, SHAPE(1, 1, 5, 5), x,
                            ARGS(.kernel = {2, 2}), NULL, NULL);
    expect_shape(y, 4, SHAPE(1, 1, 2, 2));
    expect_close(y, want, 0, 0);
    tg_graph_free(g);
}

/* Seed 003, Figure 7.8: 3x3 max pooling, stride 1, over a 5x5 feature map. */
Test(ops_pool, maxpool_3x3_s1_matches_seed_003)
{
    const double x[25] = {3, 3, 2, 1, 0, 0, 0, 1, 3, 1, 3, 1, 2,
                          2, 3, 2, 0, 0, 2, 2, 2, 0, 0, 0, 1};
    const double want[9] = {3, 3, 3, 3, 3, 3, 3, 2, 3};
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        /* The 3-D [C, H, W] form. */
        tg_tensor *y = run_pool(g, tg_maxpool2d, d ? TG_F32 : TG_F64, 3, SHAPE(1, 5, 5), x,
                                ARGS(.kernel = {3, 3}, .stride = {1, 1}), NULL, NULL);
        expect_shape(y, 3, SHAPE(1, 3, 3));
        expect_close(y, want, 0, 0);
        tg_graph_free(g);
    }
}

/* ------------------------------------------------------ PyTorch values */

/* x = ((arange(36) * 7) % 11 - 3).reshape(1, 1, 6, 6), then
 * F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=cip) and the
 * gradient of its sum, from PyTorch 1.13 (float64). The last row and column
 * of windows start at 5 and end at 8, past the padded edge 7: the include-pad
 * divisor counts 2 rows there, not 3. */
static const double avg_x6[36] = {-3, 4, 0, 7,  3,  -1, 6, 2, -2, 5, 1, -3, 4,  0, 7,  3, -1, 6,
                                  2, -2, 5, 1, -3, 4,  0, 7, 3,  -1, 6, 2, -2, 5, 1, -3, 4, 0};

Test(ops_pool, avgpool_pad_ceil_include_pad_matches_pytorch)
{
    const double want[16] = {1.0, 1.7777777777777777, 1.3333333333333333, -0.6666666666666666,
                             1.3333333333333333, 2.111111111111111, 1.4444444444444444,
                             1.1666666666666667, 1.1111111111111112, 1.7777777777777777,
                             1.1111111111111112, 1.0, 0.5, 0.5, 0.16666666666666666, 0.0};
    /* PyTorch's x.grad of the sum, as fractions. */
    const double c9 = 1.0 / 9, c18 = 2.0 / 9, c36 = 5.0 / 18, c49 = 4.0 / 9, c59 = 5.0 / 9,
                 c2536 = 25.0 / 36;
    const double want_dx[36] = {c9,  c18, c9,  c18, c9,  c36,   c18, c49, c18, c49, c18, c59,
                                c9,  c18, c9,  c18, c9,  c36,   c18, c49, c18, c49, c18, c59,
                                c9,  c18, c9,  c18, c9,  c36,   c36, c59, c36, c59, c36, c2536};
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *dx = NULL;
        tg_tensor *y = run_pool(g, tg_avgpool2d, d ? TG_F32 : TG_F64, 4, SHAPE(1, 1, 6, 6), avg_x6,
                                ARGS(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1},
                                     .ceil_mode = true),
                                NULL, &dx);
        expect_shape(y, 4, SHAPE(1, 1, 4, 4));
        expect_close(y, want, d ? 1e-6 : 1e-14, d ? 1e-6 : 1e-14);
        expect_close(dx, want_dx, d ? 1e-6 : 1e-14, d ? 1e-6 : 1e-14);
        tg_tensor_free(dx);
        tg_graph_free(g);
    }
}

Test(ops_pool, avgpool_pad_ceil_exclude_pad_matches_pytorch)
{
    const double want[16] = {2.25, 2.6666666666666665, 2.0, -2.0, 2.0, 2.111111111111111,
                             1.4444444444444444, 2.3333333333333335, 1.6666666666666667,
                             1.7777777777777777, 1.1111111111111112, 2.0, 1.5, 1.0,
                             0.3333333333333333, 0.0};
    /* PyTorch's x.grad of the sum (float64). */
    const double want_dx[36] = {0.25, 0.41666666666666663, 0.16666666666666666, 0.3333333333333333,
                                0.16666666666666666, 0.6666666666666666, 0.41666666666666663,
                                0.6944444444444444, 0.2777777777777778, 0.5555555555555556,
                                0.2777777777777778, 1.111111111111111, 0.16666666666666666,
                                0.2777777777777778, 0.1111111111111111, 0.2222222222222222,
                                0.1111111111111111, 0.4444444444444444, 0.3333333333333333,
                                0.5555555555555556, 0.2222222222222222, 0.4444444444444444,
                                0.2222222222222222, 0.8888888888888888, 0.16666666666666666,
                                0.2777777777777778, 0.1111111111111111, 0.2222222222222222,
                                0.1111111111111111, 0.4444444444444444, 0.6666666666666666,
                                1.1111111111111112, 0.4444444444444444, 0.8888888888888888,
                                0.4444444444444444, 1.7777777777777777};
    for (int d = 0; d < 2; d++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *dx = NULL;
        tg_tensor *y = run_pool(g, tg_avgpool2d, d ? TG_F32 : TG_F64, 4, SHAPE(1, 1, 6, 6), avg_x6,
                                ARGS(.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1},
                                     .ceil_mode = true, .exclude_padding = true),
                                NULL, &dx);
        expect_shape(y, 4, SHAPE(1, 1, 4, 4));
        expect_close(y, want, d ? 1e-6 : 1e-14, d ? 1e-6 : 1e-14);
        expect_close(dx, want_dx, d ? 1e-6 : 1e-14, d ? 1e-6 : 1e-14);
        tg_tensor_free(dx);
        tg_graph_free(g);
    }
}

/* y = ((arange(35) * 5) % 13 - 6).reshape(1, 1, 5, 7),
 * F.avg_pool2d(y, (3, 2), (2, 3), (1, 1), ceil_mode=True, count_include_pad=cip)
 * from PyTorch 1.13: non-square kernel and stride; along W the ceil window
 * would start at 8, in the right padding, so the output keeps 3 columns. */
Test(ops_pool, avgpool_nonsquare_ceil_both_modes_match_pytorch)
{
    const double x[35] = {-6, -1, 4, -4, 1,  6, -2, 3,  -5, 0, 5, -3, 2, -6, -1, 4, -4, 1,
                          6,  -2, 3, -5, 0,  5, -3, 2,  -6, -1, 4, -4, 1, 6, -2, 3,  -5};
    const double want_inc[9] = {-0.5, 0.8333333333333334, 0.0, -0.5, 0.6666666666666666,
                                -1.6666666666666667, -0.16666666666666666, 1.5, -1.5};
    const double want_exc[9] = {-1.5, 1.25, 0.0, -1.0, 0.6666666666666666, -1.6666666666666667,
                                -0.5, 2.25, -2.25};
    for (int e = 0; e < 2; e++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *y = run_pool(g, tg_avgpool2d, TG_F64, 4, SHAPE(1, 1, 5, 7), x,
                                ARGS(.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1},
                                     .ceil_mode = true, .exclude_padding = e),
                                NULL, NULL);
        expect_shape(y, 4, SHAPE(1, 1, 3, 3));
        expect_close(y, e ? want_exc : want_inc, 1e-14, 1e-14);
        tg_graph_free(g);
    }
}

/* (H, K, S, P, D, ceil) -> output size, from PyTorch 1.13:
 * F.max_pool2d(torch.zeros(1, 1, H, 1), (K, 1), (S, 1), (P, 0), (D, 1),
 * ceil_mode=ceil).shape[2] (avg_pool2d agrees for D == 1). In rows 4, 5, 11,
 * 13, 15, 16, 17 and 20 (from 1) the last ceil window would start in the
 * right padding and is dropped. */
Test(ops_pool, output_size_matches_pytorch)
{
    static const int64_t cases[][7] = {
        {5, 2, 2, 0, 1, 0, 2},  {5, 2, 2, 0, 1, 1, 3},   {6, 3, 2, 1, 1, 1, 4},
        {7, 2, 3, 1, 1, 1, 3},  {5, 2, 2, 1, 1, 1, 3},   {4, 3, 3, 1, 1, 1, 2},
        {10, 3, 3, 1, 2, 1, 4}, {10, 3, 3, 1, 2, 0, 3},  {1, 1, 1, 0, 1, 0, 1},
        {1, 3, 1, 1, 1, 0, 1},  {2, 4, 4, 2, 1, 1, 1},   {8, 5, 3, 2, 1, 1, 4},
        {9, 4, 4, 2, 1, 1, 3},  {7, 3, 2, 0, 2, 1, 2},   {11, 2, 5, 1, 1, 1, 3},
        {3, 3, 5, 1, 1, 1, 1},  {6, 2, 4, 1, 1, 1, 2},   {13, 4, 3, 2, 3, 1, 4},
        {13, 4, 3, 2, 3, 0, 3}, {4, 2, 3, 1, 1, 1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t *c = cases[i];
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tg_tensor_new(TG_F64, 4, SHAPE(1, 1, c[0], 1));
        tg_pool2d_args a = {.kernel = {c[1], 1}, .stride = {c[2], 1}, .padding = {c[3], 0},
                            .dilation = {c[4], 1}, .ceil_mode = c[5] != 0};
        tg_tensor *y = tg_maxpool2d(g, x, a);
        cr_assert(y, "case %zu: %s", i, tg_last_error());
        cr_expect_eq(tg_tensor_shape(y)[2], c[6], "maxpool case %zu (H %lld K %lld S %lld P %lld "
                     "D %lld ceil %lld): got %lld, want %lld", i, (long long)c[0],
                     (long long)c[1], (long long)c[2], (long long)c[3], (long long)c[4],
                     (long long)c[5], (long long)tg_tensor_shape(y)[2], (long long)c[6]);
        /* The same rule along W. */
        tg_tensor *xt = tg_tensor_new(TG_F64, 4, SHAPE(1, 1, 1, c[0]));
        tg_pool2d_args at = {.kernel = {1, c[1]}, .stride = {1, c[2]}, .padding = {0, c[3]},
                             .dilation = {1, c[4]}, .ceil_mode = c[5] != 0};
        tg_tensor *yt = tg_maxpool2d(g, xt, at);
        cr_assert(yt, "case %zu (W): %s", i, tg_last_error());
        cr_expect_eq(tg_tensor_shape(yt)[3], c[6], "maxpool case %zu along W", i);
        if (c[4] == 1) {
            tg_tensor *ya = tg_avgpool2d(g, x, a);
            cr_assert(ya, "case %zu: %s", i, tg_last_error());
            cr_expect_eq(tg_tensor_shape(ya)[2], c[6], "avgpool case %zu", i);
        }
        tg_tensor_free(x);
        tg_tensor_free(xt);
        tg_graph_free(g);
    }
}

/* In ceil mode with stride = kernel a kernel taller than the input still
 * gives one window (it hangs past the end, no padding involved). PyTorch 1.13,
 * x = arange(10.).reshape(1, 1, 2, 5), kernel 3, ceil_mode=True: avg_pool2d
 * [3.5, 6.0] in both count modes (the window is clipped to the input before
 * counting), max_pool2d [7, 9]. */
Test(ops_pool, ceil_mode_kernel_larger_than_input_keeps_one_window)
{
    const double x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int op = 0; op < 3; op++) {
        tg_graph *g = tg_graph_new();
        tg_pool2d_args a = {.kernel = {3, 3}, .ceil_mode = true, .exclude_padding = op == 2};
        tg_tensor *y = run_pool(g, op ? tg_avgpool2d : tg_maxpool2d, TG_F64, 4,
                                SHAPE(1, 1, 2, 5), x, a, NULL, NULL);
        expect_shape(y, 4, SHAPE(1, 1, 1, 2));
        static const double want_avg[2] = {3.5, 6.0}, want_max[2] = {7, 9};
        expect_close(y, op ? want_avg : want_max, 0, 0);
        tg_graph_free(g);
    }
}

/* PyTorch >= 2.0 checks padding against half the effective kernel
 * D(K-1)+1, not half of K (1.13, installed here, still used K / 2). By hand:
 * H 5, K 2, D 3, P 2, S 1: (5 + 4 - 3 - 1) / 1 + 1 = 6. */
Test(ops_pool, maxpool_padding_limit_uses_effective_kernel)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 4, SHAPE(1, 1, 5, 1));
    tg_tensor *y = tg_maxpool2d(g, x, ARGS(.kernel = {2, 1}, .stride = {1, 1},
                                           .padding = {2, 0}, .dilation = {3, 1}));
    expect_shape(y, 4, SHAPE(1, 1, 6, 1));
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ------------------------------------------------------- ties and NaN */

/* Ties route the gradient to the first maximum in row-major window order,
 * also when overlapping windows share elements and in the unrolled 2x2 path. */
Test(ops_pool, maxpool_ties_go_to_first_max)
{
    for (int d = 0; d < 2; d++) {
        const tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        /* 2x2 stride 2 (unrolled path): [[2, 2], [1, 2]] and [[5, 1], [5, 5]]. */
        const double x1[8] = {2, 2, 5, 1, 1, 2, 5, 5};
        tg_tensor *dx = NULL;
        tg_tensor *y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 2, 4), x1,
                                ARGS(.kernel = {2, 2}), NULL, &dx);
        expect_close(y, ((const double[]){2, 5}), 0, 0);
        expect_close(dx, ((const double[]){1, 0, 1, 0, 0, 0, 0, 0}), 0, 0);
        tg_tensor_free(dx);
        /* Overlapping 1x2 windows, stride 1, over [1, 3, 3, 2]: windows [1,3], [3,3], [3,2]
         * take indices 1, 1 (first of the tie), 2. */
        const double x2[4] = {1, 3, 3, 2};
        y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 1, 4), x2,
                     ARGS(.kernel = {1, 2}, .stride = {1, 1}), (const double[]){1, 10, 100},
                     &dx);
        expect_close(y, ((const double[]){3, 3, 3}), 0, 0);
        expect_close(dx, ((const double[]){0, 11, 100, 0}), 0, 0);
        tg_tensor_free(dx);
        /* A 3x3 window of equal values: the top-left one; padding never wins. */
        const double x3[4] = {7, 7, 7, 7};
        y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 2, 2), x3,
                     ARGS(.kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}),
                     (const double[]){1, 2, 3, 4}, &dx);
        expect_close(y, ((const double[]){7, 7, 7, 7}), 0, 0);
        expect_close(dx, ((const double[]){10, 0, 0, 0}), 0, 0);
        tg_tensor_free(dx);
        tg_graph_free(g);
    }
}

/* Windows of -inf: the output is -inf and the gradient goes to the first
 * in-input tap (PyTorch 1.13 gives index 0 for a 2x2 window of -inf). */
Test(ops_pool, maxpool_all_neg_inf_window_routes_to_first_tap)
{
    const double ni = -(double)INFINITY;
    const double x[8] = {ni, ni, 0, ni, ni, ni, ni, ni};
    tg_graph *g = tg_graph_new();
    tg_tensor *dx = NULL;
    tg_tensor *y = run_pool(g, tg_maxpool2d, TG_F64, 4, SHAPE(1, 1, 2, 4), x,
                            ARGS(.kernel = {2, 2}), (const double[]){3, 4}, &dx);
    expect_close(y, ((const double[]){ni, 0}), 0, 0);
    expect_close(dx, ((const double[]){3, 0, 4, 0, 0, 0, 0, 0}), 0, 0);
    tg_tensor_free(dx);
    tg_graph_free(g);
}

/* NaN propagates: a NaN in a window is its max and takes the gradient. With
 * several NaNs PyTorch's CPU kernel (val > max || isnan(val)) keeps the last:
 * F.max_pool2d of [[1, nan, 2, nan]] with kernel (1, 4) gives nan, index 3. */
Test(ops_pool, maxpool_nan_propagates_and_takes_gradient)
{
    const double nan = (double)NAN;
    for (int d = 0; d < 2; d++) {
        const tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_graph *g = tg_graph_new();
        tg_tensor *dx = NULL;
        /* General path: one NaN, then two NaNs (PyTorch: index 3). */
        tg_tensor *y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 1, 4),
                                (const double[]){1, nan, 2, 0}, ARGS(.kernel = {1, 4}), NULL, &dx);
        cr_expect(isnan(tg_tensor_get(y, 0)));
        expect_close(dx, ((const double[]){0, 1, 0, 0}), 0, 0);
        tg_tensor_free(dx);
        y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 1, 4), (const double[]){1, nan, 2, nan},
                     ARGS(.kernel = {1, 4}), NULL, &dx);
        cr_expect(isnan(tg_tensor_get(y, 0)));
        expect_close(dx, ((const double[]){0, 0, 0, 1}), 0, 0);
        tg_tensor_free(dx);
        /* Unrolled 2x2 path: NaN first in one window, last in the other; a NaN
         * before a larger value still wins. */
        y = run_pool(g, tg_maxpool2d, dt, 4, SHAPE(1, 1, 2, 4),
                     (const double[]){nan, 9, 1, 2, 3, 4, 5, nan}, ARGS(.kernel = {2, 2}),
                     (const double[]){2, 5}, &dx);
        cr_expect(isnan(tg_tensor_get(y, 0)) && isnan(tg_tensor_get(y, 1)));
        expect_close(dx, ((const double[]){2, 0, 0, 0, 0, 0, 0, 5}), 0, 0);
        tg_tensor_free(dx);
        /* avgpool: NaN spreads to every window that sees it. */
        y = run_pool(g, tg_avgpool2d, dt, 4, SHAPE(1, 1, 1, 4), (const double[]){1, nan, 2, 0},
                     ARGS(.kernel = {1, 2}, .stride = {1, 1}), NULL, NULL);
        cr_expect(isnan(tg_tensor_get(y, 0)) && isnan(tg_tensor_get(y, 1)));
        cr_expect_eq(tg_tensor_get(y, 2), 1.0);
        tg_graph_free(g);
    }
}

/* With dilation, a window can hold padding only (2P <= D(K-1)+1 allows it):
 * H 2, K 2, D 3, P 2 gives windows starting at -2 (taps -2, 1), -1 (taps -1,
 * 2: none inside) and 0 (taps 0, 3). The empty one outputs -inf and passes no
 * gradient (PyTorch would index outside the plane there). */
Test(ops_pool, maxpool_padding_only_window_is_neg_inf_without_gradient)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *dx = NULL;
    tg_tensor *y = run_pool(g, tg_maxpool2d, TG_F64, 4, SHAPE(1, 1, 2, 1), (const double[]){5, 7},
                            ARGS(.kernel = {2, 1}, .stride = {1, 1}, .padding = {2, 0},
                                 .dilation = {3, 1}),
                            (const double[]){1, 10, 100}, &dx);
    expect_shape(y, 4, SHAPE(1, 1, 3, 1));
    expect_close(y, ((const double[]){7, -(double)INFINITY, 5}), 0, 0);
    expect_close(dx, ((const double[]){100, 1}), 0, 0);
    tg_tensor_free(dx);
    tg_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

static tg_tensor *new_x(int nd, const int64_t *shape) { return tg_tensor_new(TG_F64, nd, shape); }

Test(ops_pool, error_wrong_rank)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x2 = new_x(2, SHAPE(4, 4)), *x5 = new_x(5, SHAPE(1, 1, 1, 4, 4));
    expect_error(tg_maxpool2d(g, x2, ARGS(.kernel = {2, 2})) == NULL, "tg_maxpool2d", "[4, 4]",
                 "3-D");
    expect_error(tg_avgpool2d(g, x5, ARGS(.kernel = {2, 2})) == NULL, "tg_avgpool2d",
                 "[1, 1, 1, 4, 4]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    tg_tensor_free(x2);
    tg_tensor_free(x5);
    tg_graph_free(g);
}

Test(ops_pool, error_kernel_missing_or_not_positive)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 2, 4, 4));
    expect_error(tg_maxpool2d(g, x, ARGS(.stride = {1, 1})) == NULL, "tg_maxpool2d",
                 "[1, 2, 4, 4]", "kernel [0, 0]");
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {2, -1})) == NULL, "tg_avgpool2d",
                 "[1, 2, 4, 4]", "kernel [2, -1]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_pool, error_negative_stride_padding_dilation)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 1, 6, 6));
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {2, 2}, .stride = {-1, 1})) == NULL,
                 "tg_maxpool2d", "[1, 1, 6, 6]", "stride [-1, 1]");
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {2, 2}, .padding = {0, -1})) == NULL,
                 "tg_avgpool2d", "[1, 1, 6, 6]", "padding [0, -1]");
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {2, 2}, .dilation = {-2, 1})) == NULL,
                 "tg_maxpool2d", "[1, 1, 6, 6]", "dilation [-2, 1]");
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_pool, error_padding_more_than_half_the_kernel)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 1, 6, 6));
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {3, 3}, .padding = {2, 1})) == NULL,
                 "tg_maxpool2d", "[1, 1, 6, 6]", "padding [2, 1]", "kernel [3, 3]",
                 "at most half of effective kernel size");
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {2, 4}, .padding = {1, 3})) == NULL,
                 "tg_avgpool2d", "[1, 1, 6, 6]", "padding [1, 3]", "kernel [2, 4]");
    /* With dilation the limit is half of D(K-1)+1 = 5, rounded down: 2 passes, 3 fails. */
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {3, 1}, .padding = {3, 0},
                                         .dilation = {2, 1})) == NULL,
                 "tg_maxpool2d", "padding [3, 0]", "dilation [2, 1]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_pool, error_output_smaller_than_one)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(2, 3, 2, 5));
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {3, 3})) == NULL, "tg_maxpool2d",
                 "[2, 3, 2, 5]", "kernel [3, 3]", "output size is too small", "[0, 1]");
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {3, 3}, .stride = {1, 1},
                                         .ceil_mode = true)) == NULL,
                 "tg_avgpool2d", "[2, 3, 2, 5]", "kernel [3, 3]", "[0, 3]");
    cr_expect_eq(tg_last_status(), TG_ERR_SHAPE);
    /* Dilation makes the effective kernel 5 > 4. */
    tg_tensor *x3 = new_x(3, SHAPE(1, 4, 4));
    expect_error(tg_maxpool2d(g, x3, ARGS(.kernel = {3, 1}, .dilation = {2, 1})) == NULL,
                 "tg_maxpool2d", "[1, 4, 4]", "dilation [2, 1]");
    tg_tensor_free(x);
    tg_tensor_free(x3);
    tg_graph_free(g);
}

Test(ops_pool, error_empty_non_batch_dim)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 0, 4, 4));
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {2, 2})) == NULL, "tg_maxpool2d",
                 "[1, 0, 4, 4]");
    tg_tensor_free(x);
    tg_graph_free(g);
}

Test(ops_pool, error_avgpool_rejects_dilation)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 1, 8, 8));
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {2, 2}, .dilation = {2, 1})) == NULL,
                 "tg_avgpool2d", "[1, 1, 8, 8]", "dilation [2, 1]");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    /* 0 and 1 both mean no dilation. */
    cr_expect(tg_avgpool2d(g, x, ARGS(.kernel = {2, 2}, .dilation = {1, 0})) != NULL, "%s",
              tg_last_error());
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* Absurd sizes fail with a message instead of overflowing int64. */
Test(ops_pool, error_huge_kernel_or_dilation_overflows)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(1, 1, 1, 1));
    const int64_t big = (int64_t)1 << 40;
    expect_error(tg_avgpool2d(g, x, ARGS(.kernel = {big, big}, .padding = {big / 2, big / 2})) ==
                     NULL,
                 "tg_avgpool2d", "[1, 1, 1, 1]", "overflows");
    cr_expect_eq(tg_last_status(), TG_ERR_OVERFLOW);
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {1, 1}, .dilation = {INT64_MAX, 1})) == NULL,
                 "tg_maxpool2d", "[1, 1, 1, 1]", "overflows");
    expect_error(tg_maxpool2d(g, x, ARGS(.kernel = {big, 2}, .dilation = {big, 1})) == NULL,
                 "tg_maxpool2d", "[1, 1, 1, 1]", "overflows");
    /* A huge kernel is fine for maxpool: only in-input taps are visited. */
    tg_tensor *y = tg_maxpool2d(g, x, ARGS(.kernel = {big, big}, .padding = {big / 2, big / 2}));
    expect_shape(y, 4, SHAPE(1, 1, 1, 1));
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* The op records (ops.def's registry declares them; the unit build has no registry). */
extern const tg_op tg_op_maxpool2d, tg_op_avgpool2d;

Test(ops_pool, print_attrs_lists_the_arguments)
{
    tg_pool2d_args a = {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 0},
                        .dilation = {2, 1}, .ceil_mode = true};
    tg_node n = {.op = &tg_op_maxpool2d, .attrs = &a};
    char buf[200];
    cr_assert(tg_op_maxpool2d.print_attrs != NULL);
    tg_op_maxpool2d.print_attrs(&n, buf, sizeof buf);
    cr_expect_str_eq(buf,
                     "kernel=[3, 2] stride=[2, 1] padding=[1, 0] dilation=[2, 1] ceil_mode=1");
    a.exclude_padding = true;
    tg_op_avgpool2d.print_attrs(&n, buf, sizeof buf);
    cr_expect(strstr(buf, "exclude_padding=1") != NULL, "%s", buf);
}

Test(ops_pool, null_input_propagates_and_keeps_first_error)
{
    tg_graph *g = tg_graph_new();
    tg_error_clear();
    expect_error(tg_maxpool2d(g, NULL, ARGS(.kernel = {2, 2})) == NULL, "tg_maxpool2d",
                 "input 0 is NULL");
    tg_error_clear();
    expect_error(tg_avgpool2d(g, NULL, ARGS(.kernel = {2, 2})) == NULL, "tg_avgpool2d");
    /* A chain: the inner failure's message survives the outer call. */
    tg_tensor *x = new_x(2, SHAPE(3, 3));
    tg_tensor *y = tg_avgpool2d(g, tg_maxpool2d(g, x, ARGS(.kernel = {2, 2})),
                                ARGS(.kernel = {2, 2}));
    expect_error(y == NULL, "tg_maxpool2d", "[3, 3]");
    cr_expect(strstr(tg_last_error(), "tg_avgpool2d") == NULL, "%s", tg_last_error());
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ------------------------------------------------------ other behaviour */

Test(ops_pool, empty_batch_gives_empty_output)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = new_x(4, SHAPE(0, 3, 4, 4));
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = tg_maxpool2d(g, x, ARGS(.kernel = {2, 2}));
    expect_shape(y, 4, SHAPE(0, 3, 2, 2));
    tg_tensor *z = tg_avgpool2d(g, x, ARGS(.kernel = {2, 2}));
    expect_shape(z, 4, SHAPE(0, 3, 2, 2));
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* Backward accumulates into the input's gradient: a second backward on the
 * same graph doubles it. */
Test(ops_pool, backward_accumulates)
{
    for (int op = 0; op < 2; op++) {
        tg_graph *g = tg_graph_new();
        tg_tensor *x = tgt_random(TG_F64, 4, SHAPE(1, 2, 5, 5), -1, 1, 3);
        tg_tensor_set_requires_grad(x, true);
        tg_pool2d_args a = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1},
                            .ceil_mode = true};
        tg_tensor *y = op ? tg_avgpool2d(g, x, a) : tg_maxpool2d(g, x, a);
        cr_assert(y, "%s", tg_last_error());
        tg_tensor *v = tgt_random(TG_F64, 4, tg_tensor_shape(y), -1, 1, 4);
        cr_assert(tg_backward_with(g, y, v) == TG_OK);
        tg_tensor *once = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
        cr_assert(tg_backward_with(g, y, v) == TG_OK);
        double want[50];
        for (int i = 0; i < 50; i++)
            want[i] = 2 * tg_tensor_get(once, i);
        /* Not bit-exact: 2(a + b) and ((a + b) + a) + b round differently. */
        expect_close(tg_tensor_grad(x), want, 1e-15, 1e-14);
        tg_tensor_free(v);
        tg_tensor_free(once);
        tg_tensor_free(x);
        tg_graph_free(g);
    }
}

/* No-grad mode skips the argmax; the values are the same. */
Test(ops_pool, no_grad_forward_matches)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_random(TG_F32, 4, SHAPE(2, 2, 7, 6), -1, 1, 9);
    tg_tensor_set_requires_grad(x, true);
    tg_pool2d_args a = {.kernel = {2, 2}, .ceil_mode = true};
    tg_tensor *y1 = tg_maxpool2d(g, x, a);
    tg_graph_set_no_grad(g, true);
    tg_tensor *y2 = tg_maxpool2d(g, x, a);
    cr_assert(y1 && y2);
    cr_expect(!tg_tensor_requires_grad(y2));
    expect_close_t(y2, y1, 0, 0);
    tg_tensor_free(x);
    tg_graph_free(g);
}

/* ----------------------------------- parameter grid against a reference */

/* One grid point: the input geometry, the arguments and the op (max, avg,
 * avg with exclude_padding). */
typedef struct grid_pt {
    int nd;
    const int64_t *shape;
    int64_t planes, H, W;
    tg_pool2d_args a;
    int op; /* 0 max, 1 avg, 2 avg exclude_padding */
} grid_pt;

/* PyTorch's output size, written the way its pooling_output_shape is. */
static int64_t ref_out(int64_t H, int64_t K, int64_t S, int64_t P, int64_t D, bool ceil)
{
    int64_t num = H + 2 * P - D * (K - 1) - 1 + (ceil ? S - 1 : 0);
    int64_t o = (num >= 0 ? num / S : -((-num + S - 1) / S)) + 1;
    if (ceil && (o - 1) * S >= H + P)
        o--;
    return o;
}

/* Naive pooling written from PyTorch's cpu_max_pool / cpu_avg_pool loops:
 * y and the VJP dx for cotangent v. Returns false when PyTorch (>= 2.0, with
 * the effective-kernel padding check) would reject the arguments. */
static bool ref_pool(const grid_pt *t, const double *x, const double *v, double *y, double *dx,
                     int64_t *n_out)
{
    const tg_pool2d_args *a = &t->a;
    const int64_t H = t->H, W = t->W;
    int64_t K[2], S[2], P[2], D[2], O[2];
    bool valid = t->op == 0 || (a->dilation[0] <= 1 && a->dilation[1] <= 1);
    for (int i = 0; i < 2; i++) {
        K[i] = a->kernel[i];
        S[i] = a->stride[i] ? a->stride[i] : K[i];
        P[i] = a->padding[i];
        D[i] = a->dilation[i] ? a->dilation[i] : 1;
        valid &= P[i] <= (D[i] * (K[i] - 1) + 1) / 2;
        O[i] = ref_out(i ? W : H, K[i], S[i], P[i], D[i], a->ceil_mode);
        valid &= O[i] >= 1;
    }
    *n_out = valid ? t->planes * O[0] * O[1] : 0;
    if (!valid)
        return false;
    for (int64_t i = 0; i < t->planes * H * W; i++)
        dx[i] = 0;
    for (int64_t p = 0; p < t->planes; p++)
        for (int64_t oh = 0; oh < O[0]; oh++)
            for (int64_t ow = 0; ow < O[1]; ow++) {
                const int64_t o = (p * O[0] + oh) * O[1] + ow;
                const double *xp = x + p * H * W;
                double *dxp = dx + p * H * W;
                if (t->op == 0) {
                    double m = -(double)INFINITY;
                    int64_t mi = -1;
                    for (int64_t ky = 0; ky < K[0]; ky++)
                        for (int64_t kx = 0; kx < K[1]; kx++) {
                            int64_t ih = oh * S[0] - P[0] + ky * D[0];
                            int64_t iw = ow * S[1] - P[1] + kx * D[1];
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                continue;
                            if (mi < 0)
                                mi = ih * W + iw;
                            if (xp[ih * W + iw] > m || isnan(xp[ih * W + iw])) {
                                m = xp[ih * W + iw];
                                mi = ih * W + iw;
                            }
                        }
                    y[o] = m;
                    if (mi >= 0)
                        dxp[mi] += v[o];
                } else {
                    int64_t ih0 = oh * S[0] - P[0], iw0 = ow * S[1] - P[1];
                    int64_t ih1 = ih0 + K[0] < H + P[0] ? ih0 + K[0] : H + P[0];
                    int64_t iw1 = iw0 + K[1] < W + P[1] ? iw0 + K[1] : W + P[1];
                    int64_t pool = (ih1 - ih0) * (iw1 - iw0);
                    ih0 = ih0 > 0 ? ih0 : 0;
                    iw0 = iw0 > 0 ? iw0 : 0;
                    ih1 = ih1 < H ? ih1 : H;
                    iw1 = iw1 < W ? iw1 : W;
                    double s = 0, div = (double)(t->op == 2 ? (ih1 - ih0) * (iw1 - iw0) : pool);
                    for (int64_t ih = ih0; ih < ih1; ih++)
                        for (int64_t iw = iw0; iw < iw1; iw++) {
                            s += xp[ih * W + iw];
                            dxp[ih * W + iw] += v[o] / div;
                        }
                    y[o] = s / div;
                }
            }
    return true;
}

/* Values k / 4 for k in [-levels, levels]: exact in float32, so ties resolve
 * the same way in both dtypes and in the reference. Inputs use few levels so
 * that ties at a window's max are common. */
static void grid_values(double *v, int64_t n, uint64_t levels, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 3);
    for (int64_t i = 0; i < n; i++)
        v[i] = ((double)tg_rng_below(&r, 2 * levels + 1) - (double)levels) / 4.0;
}

/* Runs the grid point in one dtype: output and gradient for cotangent v, as
 * float64 copies the caller frees; false if the op failed. */
static bool grid_run(const grid_pt *t, tg_dtype dt, const double *xv, const double *vv,
                     tg_tensor **y_out, tg_tensor **dx_out)
{
    tg_graph *g = tg_graph_new();
    tg_tensor *x = tgt_tensor(dt, t->nd, t->shape, xv);
    tg_tensor_set_requires_grad(x, true);
    tg_tensor *y = t->op == 0 ? tg_maxpool2d(g, x, t->a) : tg_avgpool2d(g, x, t->a);
    *y_out = *dx_out = NULL;
    if (y) {
        tg_tensor *v = tgt_tensor(dt, tg_tensor_ndim(y), tg_tensor_shape(y), vv);
        cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
        *y_out = tg_tensor_copy(y, TG_F64);
        *dx_out = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
        tg_tensor_free(v);
    }
    tg_tensor_free(x);
    tg_graph_free(g);
    return y != NULL;
}

/* Checks one grid point: both dtypes fail exactly when the reference rejects
 * the arguments; else float64 matches the reference (max bit-exactly, avg to
 * rounding) and float32 matches float64. Returns true if the point was valid. */
static bool grid_check(const grid_pt *t, const double *xv, uint64_t seed)
{
    static double vv[1024], ry[1024], rdx[1024];
    const int64_t n_in = t->planes * t->H * t->W;
    const tg_pool2d_args *a = &t->a;
    char what[200], msg[600];
    snprintf(what, sizeof what,
             "%s input %s kernel [%lld, %lld] stride [%lld, %lld] padding [%lld, %lld] "
             "dilation [%lld, %lld] ceil %d",
             t->op == 0 ? "max" : t->op == 1 ? "avg" : "avg-exclude",
             t->nd == 4 ? "4-D" : "3-D", (long long)a->kernel[0], (long long)a->kernel[1],
             (long long)a->stride[0], (long long)a->stride[1], (long long)a->padding[0],
             (long long)a->padding[1], (long long)a->dilation[0], (long long)a->dilation[1],
             (int)a->ceil_mode);
    /* The reference sizes the output first; the cotangent is drawn for it. */
    int64_t n_out;
    bool valid = ref_pool(t, xv, vv, ry, rdx, &n_out);
    cr_assert(n_out <= 1024, "%s", what);
    grid_values(vv, n_out, 64, seed);
    if (valid)
        ref_pool(t, xv, vv, ry, rdx, &n_out);
    tg_tensor *y64, *dx64, *y32, *dx32;
    bool ok64 = grid_run(t, TG_F64, xv, vv, &y64, &dx64);
    bool ok32 = grid_run(t, TG_F32, xv, vv, &y32, &dx32);
    cr_expect(ok64 == valid && ok32 == valid, "%s: valid %d, float64 %d, float32 %d (%s)", what,
              valid, ok64, ok32, tg_last_error());
    if (valid && ok64 && ok32) {
        const double tol64 = t->op == 0 ? 0 : 1e-13, tol32 = t->op == 0 ? 0 : 1e-6;
        cr_expect(tgt_allclose(y64, ry, n_out, tol64, tol64, "y64", msg, sizeof msg), "%s: %s",
                  what, msg);
        cr_expect(tgt_allclose(dx64, rdx, n_in, tol64, tol64, "dx64", msg, sizeof msg), "%s: %s",
                  what, msg);
        cr_expect(tgt_allclose_t(y32, y64, tol32, tol32, "y32", msg, sizeof msg), "%s: %s", what,
                  msg);
        cr_expect(tgt_allclose_t(dx32, dx64, tol32, tol32, "dx32", msg, sizeof msg), "%s: %s",
                  what, msg);
    }
    tg_tensor_free(y64);
    tg_tensor_free(dx64);
    tg_tensor_free(y32);
    tg_tensor_free(dx32);
    return valid;
}

/* Every combination of 3 inputs (4-D, batch > 1, odd sizes, 3-D), 5 kernels,
 * 5 strides (0 = kernel), 3 paddings, 3 dilations, ceil on/off and the three
 * ops: 4050 points, the invalid ones included (they must fail in both dtypes). */
Test(ops_pool, grid_matches_reference_in_both_dtypes, .timeout = 60)
{
    static const int64_t shapes[][4] = {{2, 3, 7, 6}, {1, 2, 5, 5}, {3, 4, 5}};
    static const int nds[] = {4, 4, 3};
    static const int64_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {2, 3}, {3, 1}};
    static const int64_t strides[][2] = {{0, 0}, {1, 1}, {2, 2}, {1, 2}, {3, 2}};
    static const int64_t pads[][2] = {{0, 0}, {1, 1}, {1, 0}};
    static const int64_t dils[][2] = {{0, 0}, {2, 2}, {2, 1}};
    static double xv[1024];
    int n_valid = 0, n_fast = 0;
    uint64_t seed = 99;
    for (size_t si = 0; si < 3; si++) {
        grid_pt t = {.nd = nds[si], .shape = shapes[si]};
        t.planes = t.nd == 4 ? t.shape[0] * t.shape[1] : t.shape[0];
        t.H = t.shape[t.nd - 2];
        t.W = t.shape[t.nd - 1];
        grid_values(xv, t.planes * t.H * t.W, 4, 17 + si);
        for (size_t ki = 0; ki < 5; ki++)
            for (size_t sti = 0; sti < 5; sti++)
                for (size_t pi = 0; pi < 3; pi++)
                    for (size_t di = 0; di < 3; di++)
                        for (int ceil = 0; ceil < 2; ceil++)
                            for (t.op = 0; t.op < 3; t.op++) {
                                t.a = (tg_pool2d_args){
                                    .kernel = {kernels[ki][0], kernels[ki][1]},
                                    .stride = {strides[sti][0], strides[sti][1]},
                                    .padding = {pads[pi][0], pads[pi][1]},
                                    .dilation = {dils[di][0], dils[di][1]},
                                    .ceil_mode = ceil,
                                    .exclude_padding = t.op == 2};
                                if (!grid_check(&t, xv, seed++))
                                    continue;
                                n_valid++;
                                n_fast += ki == 1 && sti <= 2 && sti != 1 && pi == 0 && di == 0;
                            }
    }
    cr_expect(n_valid > 500 && n_fast >= 6, "grid too thin: %d valid, %d on the 2x2/2 path",
              n_valid, n_fast);
}

/* Inputs big enough for the kernels' threads: the results are bitwise the same
 * for 1 and 2 threads (rows or planes are split, never a reduction). */
Test(ops_pool, results_do_not_depend_on_thread_count)
{
    const int64_t shape[4] = {2, 16, 33, 34};
    const tg_pool2d_args cfgs[3] = {{.kernel = {2, 2}, .ceil_mode = true},
                                    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
                                    {.kernel = {3, 2}, .stride = {1, 1}}};
    for (int dt = 0; dt < 2; dt++)
        for (int c = 0; c < 3; c++)
            for (int op = 0; op < 2; op++) {
                tg_tensor *res[2][2];
                for (int t = 0; t < 2; t++) {
                    int old = tg_set_num_threads(t + 1);
                    tg_graph *g = tg_graph_new();
                    tg_tensor *x = tgt_random(dt ? TG_F32 : TG_F64, 4, shape, -1, 1, 21);
                    tg_tensor_set_requires_grad(x, true);
                    tg_tensor *y = op ? tg_avgpool2d(g, x, cfgs[c]) : tg_maxpool2d(g, x, cfgs[c]);
                    cr_assert(y, "%s", tg_last_error());
                    tg_tensor *v =
                        tgt_random(dt ? TG_F32 : TG_F64, 4, tg_tensor_shape(y), -1, 1, 22);
                    cr_assert(tg_backward_with(g, y, v) == TG_OK, "%s", tg_last_error());
                    res[t][0] = tg_tensor_copy(y, TG_F64);
                    res[t][1] = tg_tensor_copy(tg_tensor_grad(x), TG_F64);
                    tg_tensor_free(v);
                    tg_tensor_free(x);
                    tg_graph_free(g);
                    tg_set_num_threads(old);
                }
                expect_close_t(res[1][0], res[0][0], 0, 0);
                expect_close_t(res[1][1], res[0][1], 0, 0);
                for (int t = 0; t < 2; t++) {
                    tg_tensor_free(res[t][0]);
                    tg_tensor_free(res[t][1]);
                }
            }
}
