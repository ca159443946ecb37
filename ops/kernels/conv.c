/* Convolution kernels: im2col / col2im, the conv2d forward and VJP as one GEMM
 * per image and group (both dtypes from one macro body), and the direct float64
 * reference loops. No graph, no allocation: callers pass the col scratch.
 * Shapes and the col layout are described in conv.h. */
#include "conv.h"

#include "gemm.h"

#include <stdbool.h>
#include <string.h>

/* ----------------------------------------------------------------- ranges */

/* The output positions o in [*lo, *hi) whose input index o*S + off lies in
 * [0, n_in); the rest read zero padding. Both bounds are clamped to [0, n_out]. */
static void valid_range(int64_t off, int64_t S, int64_t n_in, int64_t n_out, int64_t *lo,
                        int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + S - 1) / S;
    int64_t h = n_in - off <= 0 ? 0 : (n_in - off + S - 1) / S;
    if (h > n_out)
        h = n_out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

static bool is_identity(const tg__conv2d_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PT == 0 && g->PL == 0 &&
           g->OH == g->H && g->OW == g->W;
}

int64_t tg__conv2d_col_elems(const tg__conv2d_geom *g)
{
    if (is_identity(g))
        return 0;
    return g->C / g->groups * g->KH * g->KW * g->OH * g->OW;
}

/* ------------------------------------------------------- im2col / col2im */

/* One loop nest for both directions: for each col row (c, i, j) and output row
 * oh, the in-image part [ow_lo, ow_hi) of the row maps to x's row ih at columns
 * ow*SW + off_w (x index base + ow*SW). PAD_ROW runs for rows that lie wholly
 * in the vertical padding, the trailing block for the others. */
#define COL_WALK(CT, PAD_ROW, ...)                                                             \
    const int64_t Cg = g->C / g->groups, P = g->OH * g->OW, HW = g->H * g->W;                  \
    for (int64_t c = 0; c < Cg; c++) {                                                         \
        for (int64_t i = 0; i < g->KH; i++) {                                                  \
            int64_t off_h = i * g->DH - g->PT, oh_lo, oh_hi;                                   \
            valid_range(off_h, g->SH, g->H, g->OH, &oh_lo, &oh_hi);                            \
            for (int64_t j = 0; j < g->KW; j++) {                                              \
                int64_t off_w = j * g->DW - g->PL, ow_lo, ow_hi;                               \
                valid_range(off_w, g->SW, g->W, g->OW, &ow_lo, &ow_hi);                        \
                CT *row = col + ((c * g->KH + i) * g->KW + j) * P;                             \
                for (int64_t oh = 0; oh < g->OH; oh++) {                                       \
                    CT *r = row + oh * g->OW;                                                  \
                    if (oh < oh_lo || oh >= oh_hi) {                                           \
                        PAD_ROW;                                                               \
                        continue;                                                              \
                    }                                                                          \
                    int64_t base = c * HW + (oh * g->SH + off_h) * g->W + off_w;               \
                    __VA_ARGS__                                                                \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

#define IM2COL_BODY(T)                                                                         \
    COL_WALK(T, memset(r, 0, (size_t)g->OW * sizeof(T)), {                                     \
        for (int64_t ow = 0; ow < ow_lo; ow++)                                                 \
            r[ow] = 0;                                                                         \
        for (int64_t ow = ow_lo; ow < ow_hi; ow++)                                             \
            r[ow] = img[base + ow * g->SW];                                                    \
        for (int64_t ow = ow_hi; ow < g->OW; ow++)                                             \
            r[ow] = 0;                                                                         \
    })

#define COL2IM_BODY(T)                                                                         \
    COL_WALK(const T, (void)r, {                                                               \
        for (int64_t ow = ow_lo; ow < ow_hi; ow++)                                             \
            img[base + ow * g->SW] += r[ow];                                                   \
    })

void tg__im2col_f32(const tg__conv2d_geom *g, const float *img, float *col)
{
    IM2COL_BODY(float)
}

void tg__im2col_f64(const tg__conv2d_geom *g, const double *img, double *col)
{
    IM2COL_BODY(double)
}

void tg__col2im_f32(const tg__conv2d_geom *g, const float *col, float *img)
{
    COL2IM_BODY(float)
}

void tg__col2im_f64(const tg__conv2d_geom *g, const double *col, double *img)
{
    COL2IM_BODY(double)
}

/* -------------------------------------------------------- forward and VJP */

/* Per image n and group gi, with Kc = Cg*KH*KW and P = OH*OW:
 *   forward  y_g [Og, P]   = w_g [Og, Kc] @ col [Kc, P]  (+ bias, preloaded)
 *   VJP      dw_g [Og, Kc] += dy_g [Og, P] @ col^T
 *            dcol [Kc, P]   = w_g^T @ dy_g, then col2im into dx_g
 *            db [O]        += sum over n, oh, ow of dy
 * When im2col is the identity, col is x_g itself and dcol is added straight
 * into dx_g by the GEMM (beta = 1). */
#define FORWARD_BODY(T, SFX)                                                                   \
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;                                \
    const int64_t Kc = Cg * g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;                \
    const bool ident = is_identity(g);                                                         \
    for (int64_t n = 0; n < g->N; n++) {                                                       \
        for (int64_t gi = 0; gi < g->groups; gi++) {                                           \
            const T *xg = x + (n * g->C + gi * Cg) * HW;                                       \
            const T *wg = w + gi * Og * Kc;                                                    \
            T *yg = out + (n * g->O + gi * Og) * P;                                            \
            const T *B = xg;                                                                   \
            if (!ident) {                                                                      \
                tg__im2col_##SFX(g, xg, col);                                                  \
                B = col;                                                                       \
            }                                                                                  \
            if (bias)                                                                          \
                for (int64_t o = 0; o < Og; o++)                                               \
                    for (int64_t p = 0; p < P; p++)                                            \
                        yg[o * P + p] = bias[gi * Og + o];                                     \
            tg__gemm_##SFX(false, false, Og, P, Kc, 1, wg, Kc, B, P, bias ? 1 : 0, yg, P);     \
        }                                                                                      \
    }

#define BACKWARD_BODY(T, SFX)                                                                  \
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;                                \
    const int64_t Kc = Cg * g->KH * g->KW, P = g->OH * g->OW, HW = g->H * g->W;                \
    const bool ident = is_identity(g);                                                         \
    if (db) {                                                                                  \
        for (int64_t o = 0; o < g->O; o++) {                                                   \
            double s = 0.0;                                                                    \
            for (int64_t n = 0; n < g->N; n++) {                                               \
                const T *d = dout + (n * g->O + o) * P;                                        \
                for (int64_t p = 0; p < P; p++)                                                \
                    s += (double)d[p];                                                         \
            }                                                                                  \
            db[o] += (T)s;                                                                     \
        }                                                                                      \
    }                                                                                          \
    if (!dx && !dw)                                                                            \
        return;                                                                                \
    for (int64_t n = 0; n < g->N; n++) {                                                       \
        for (int64_t gi = 0; gi < g->groups; gi++) {                                           \
            const T *dyg = dout + (n * g->O + gi * Og) * P;                                    \
            const T *wg = w + gi * Og * Kc;                                                    \
            if (dw) {                                                                          \
                const T *xg = x + (n * g->C + gi * Cg) * HW;                                   \
                const T *B = xg;                                                               \
                if (!ident) {                                                                  \
                    tg__im2col_##SFX(g, xg, col);                                              \
                    B = col;                                                                   \
                }                                                                              \
                tg__gemm_##SFX(false, true, Og, Kc, P, 1, dyg, P, B, P, 1, dw + gi * Og * Kc,  \
                               Kc);                                                            \
            }                                                                                  \
            if (dx) {                                                                          \
                T *dxg = dx + (n * g->C + gi * Cg) * HW;                                       \
                if (ident) {                                                                   \
                    tg__gemm_##SFX(true, false, Kc, P, Og, 1, wg, Kc, dyg, P, 1, dxg, P);      \
                } else {                                                                       \
                    tg__gemm_##SFX(true, false, Kc, P, Og, 1, wg, Kc, dyg, P, 0, col, P);      \
                    tg__col2im_##SFX(g, col, dxg);                                             \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

void tg__conv2d_forward_f32(const tg__conv2d_geom *g, const float *x, const float *w,
                            const float *bias, float *out, float *col)
{
    FORWARD_BODY(float, f32)
}

void tg__conv2d_forward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                            const double *bias, double *out, double *col)
{
    FORWARD_BODY(double, f64)
}

void tg__conv2d_backward_f32(const tg__conv2d_geom *g, const float *x, const float *w,
                             const float *dout, float *dx, float *dw, float *db, float *col)
{
    BACKWARD_BODY(float, f32)
}

void tg__conv2d_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                             const double *dout, double *dx, double *dw, double *db,
                             double *col)
{
    BACKWARD_BODY(double, f64)
}

/* -------------------------------------------------------------- reference */

/* The direct definition, written independently of im2col: output (n, o, oh, ow)
 * reads input pixel (oh*SH - PT + i*DH, ow*SW - PL + j*DW) of channel
 * (o / Og) * Cg + c, skipping pixels in the padding. */
#define REF_LOOP(BODY)                                                                         \
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;                                \
    for (int64_t n = 0; n < g->N; n++)                                                         \
        for (int64_t o = 0; o < g->O; o++)                                                     \
            for (int64_t oh = 0; oh < g->OH; oh++)                                             \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                       \
                    int64_t yi = ((n * g->O + o) * g->OH + oh) * g->OW + ow;                   \
                    for (int64_t c = 0; c < Cg; c++)                                           \
                        for (int64_t i = 0; i < g->KH; i++)                                    \
                            for (int64_t j = 0; j < g->KW; j++) {                              \
                                int64_t ih = oh * g->SH - g->PT + i * g->DH;                   \
                                int64_t iw = ow * g->SW - g->PL + j * g->DW;                   \
                                if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W)              \
                                    continue;                                                  \
                                int64_t xi =                                                   \
                                    ((n * g->C + (o / Og) * Cg + c) * g->H + ih) * g->W + iw;  \
                                int64_t wi = ((o * Cg + c) * g->KH + i) * g->KW + j;           \
                                BODY                                                           \
                            }                                                                  \
                }

void tg__conv2d_ref_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                        const double *bias, double *out)
{
    int64_t n_out = g->N * g->O * g->OH * g->OW;
    for (int64_t k = 0; k < n_out; k++)
        out[k] = bias ? bias[(k / (g->OH * g->OW)) % g->O] : 0.0;
    REF_LOOP(out[yi] += x[xi] * w[wi];)
}

void tg__conv2d_ref_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                                 const double *dout, double *dx, double *dw, double *db)
{
    int64_t n_out = g->N * g->O * g->OH * g->OW;
    if (db)
        for (int64_t k = 0; k < n_out; k++)
            db[(k / (g->OH * g->OW)) % g->O] += dout[k];
    REF_LOOP(if (dx) dx[xi] += dout[yi] * w[wi]; if (dw) dw[wi] += dout[yi] * x[xi];)
}
