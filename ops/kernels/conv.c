/* Convolution kernels, graph-free: the float64 conv2d forward and VJP as one
 * GEMM per image and group; the float32 paths (blocks of images lowered to
 * GEMMs through im2col / col2im, direct SIMD kernels for one input channel,
 * Winograd F(2x2, 3x3) or F(4x4, 3x3) for 3x3 stride-1 convs; threads over
 * blocks); and the
 * direct float64 reference loops. No graph, no allocation: callers pass the
 * scratch. Shapes, the col layout and the plan are described in conv.h. */
#include "conv.h"

#include "cpu.h"
#include "gemm.h"
#include "threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if TG_HAVE_X86
#define TG_X86 1
#include <immintrin.h>
#endif

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

/* --------------------------------------------- float64 im2col / col2im */

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

void tg__im2col_f64(const tg__conv2d_geom *g, const double *img, double *col)
{
    IM2COL_BODY(double)
}

void tg__col2im_f64(const tg__conv2d_geom *g, const double *col, double *img)
{
    COL2IM_BODY(double)
}

/* ------------------------------------------------ float64 forward and VJP */

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

void tg__conv2d_forward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                            const double *bias, double *out, double *col)
{
    FORWARD_BODY(double, f64)
}

void tg__conv2d_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                             const double *dout, double *dx, double *dw, double *db,
                             double *col)
{
    BACKWARD_BODY(double, f64)
}

/* ============================================================ float32 path */
/* ---------------------------------------------------------- SIMD kernels */

/* The kernels below come in plain C, AVX2 + FMA and AVX-512 versions, chosen
 * by tg__cpu() (ops/kernels/cpu.h: the CPU's level, capped by
 * TG_CPU=generic|avx2|avx512 or tg__cpu_force; the Winograd path is AVX-512
 * only). The levels differ only in rounding (FMA, lane order), never in the
 * result's dependence on the thread count. Each kernel is one macro body
 * instantiated per level with that level's vector type and operations (VW
 * lanes), then once more with the scalar ones for the p tail. */
#define C_LD(p) (*(p))
#define C_ST(p, v) (*(p) = (v))
#define C_SET1(x) (x)
#define C_FMA(a, b, c) ((a) * (b) + (c))
#define C_ZERO 0.0f
#define C_HSUM(v) (v)
#define C_OPS float, 1, C_LD, C_ST, C_SET1, C_FMA, C_ZERO

#ifdef TG_X86
#define TG_AVX2_FN TG_TARGET_AVX2
#define TG_AVX512_FN TG_TARGET_AVX512
#define A2_OPS __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, \
               _mm256_setzero_ps()
#define A5_OPS __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, \
               _mm512_setzero_ps()

TG_AVX2_FN static float hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TG_AVX512_FN static float hsum_avx512(__m512 v)
{
    __m256 s = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return hsum_avx2(s);
}
#endif

/* Eight accumulators, spelled out so that they stay in registers. */
#define X8(M, ...)                                                                             \
    M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__) M(4, __VA_ARGS__)  \
    M(5, __VA_ARGS__) M(6, __VA_ARGS__) M(7, __VA_ARGS__)

/* Direct forward of one image with one input channel, for p in [p, P) by VW:
 * y [O, P] (row stride ldy) = bias [O] (or 0) + w [O, KK] @ col [KK, P]; eight
 * output rows at a time share each load of col. */
#define DFWD_STEP(VT, VW, LD, ST, SET1, FMA, ZERO)                                             \
    for (; p + (VW) <= P; p += (VW)) {                                                         \
        int64_t o = 0;                                                                         \
        for (; o + 8 <= O; o += 8) {                                                           \
            const float *w0 = w + o * KK;                                                      \
            X8(DFWD_INIT, VT, SET1)                                                            \
            for (int64_t k = 0; k < KK; k++) {                                                 \
                VT c = LD(col + k * P + p);                                                    \
                X8(DFWD_FMA, SET1, FMA)                                                        \
            }                                                                                  \
            X8(DFWD_STORE, ST)                                                                 \
        }                                                                                      \
        for (; o < O; o++) {                                                                   \
            VT a0 = SET1(bias ? bias[o] : 0.0f);                                               \
            for (int64_t k = 0; k < KK; k++)                                                   \
                a0 = FMA(SET1(w[o * KK + k]), LD(col + k * P + p), a0);                        \
            ST(y + o * ldy + p, a0);                                                           \
        }                                                                                      \
    }
#define DFWD_INIT(u, VT, SET1) VT a##u = SET1(bias ? bias[o + u] : 0.0f);
#define DFWD_FMA(u, SET1, FMA) a##u = FMA(SET1(w0[u * KK + k]), c, a##u);
#define DFWD_STORE(u, ST) ST(y + (o + u) * ldy + p, a##u);

/* dcol [KK, P] = w^T @ dy, with w [O, KK] and dy [O, P] (row stride ldy, one
 * image), for p in [p, P) by VW; eight dcol rows at a time share each load of
 * dy. */
#define DCOL_STEP(VT, VW, LD, ST, SET1, FMA, ZERO)                                             \
    for (; p + (VW) <= P; p += (VW)) {                                                         \
        int64_t k = 0;                                                                         \
        for (; k + 8 <= KK; k += 8) {                                                          \
            X8(DCOL_INIT, VT, ZERO)                                                            \
            for (int64_t o = 0; o < O; o++) {                                                  \
                VT d = LD(dy + o * ldy + p);                                                   \
                const float *wo = w + o * KK + k;                                              \
                X8(DCOL_FMA, SET1, FMA)                                                        \
            }                                                                                  \
            X8(DCOL_STORE, ST)                                                                 \
        }                                                                                      \
        for (; k < KK; k++) {                                                                  \
            VT a0 = ZERO;                                                                      \
            for (int64_t o = 0; o < O; o++)                                                    \
                a0 = FMA(SET1(w[o * KK + k]), LD(dy + o * ldy + p), a0);                       \
            ST(dcol + k * P + p, a0);                                                          \
        }                                                                                      \
    }
#define DCOL_INIT(u, VT, ZERO) VT a##u = ZERO;
#define DCOL_FMA(u, SET1, FMA) a##u = FMA(SET1(wo[u]), d, a##u);
#define DCOL_STORE(u, ST) ST(dcol + (k + u) * P + p, a##u);

/* dwp [O, KK] += dy [O, P] (row stride ldy) @ col [KK, P]^T (one image): for
 * each o, eight col rows at a time share each load of dy; VW-lane partial
 * sums over p in a fixed pattern, then the scalar tail, then the lanes. */
#define DWK_BODY(VT, VW, LD, ST, SET1, FMA, ZERO, HSUM)                                        \
    const int64_t PV = P - P % (VW);                                                           \
    for (int64_t o = 0; o < O; o++) {                                                          \
        const float *d = dy + o * ldy;                                                         \
        int64_t k = 0;                                                                         \
        for (; k + 8 <= KK; k += 8) {                                                          \
            const float *c = col + k * P;                                                      \
            X8(DCOL_INIT, VT, ZERO)                                                            \
            for (int64_t p = 0; p < PV; p += (VW)) {                                           \
                VT dv = LD(d + p);                                                             \
                X8(DWK_FMA, LD, FMA)                                                           \
            }                                                                                  \
            X8(DWK_STORE, HSUM)                                                                \
        }                                                                                      \
        for (; k < KK; k++) {                                                                  \
            const float *c = col + k * P;                                                      \
            VT a0 = ZERO;                                                                      \
            for (int64_t p = 0; p < PV; p += (VW))                                             \
                a0 = FMA(LD(d + p), LD(c + p), a0);                                            \
            float t = HSUM(a0);                                                                \
            for (int64_t p = PV; p < P; p++)                                                   \
                t += d[p] * c[p];                                                              \
            dwp[o * KK + k] += t;                                                              \
        }                                                                                      \
    }
#define DWK_FMA(u, LD, FMA) a##u = FMA(dv, LD(c + u * P + p), a##u);
#define DWK_STORE(u, HSUM)                                                                     \
    {                                                                                          \
        float t = HSUM(a##u);                                                                  \
        for (int64_t p = PV; p < P; p++)                                                       \
            t += d[p] * c[u * P + p];                                                          \
        dwp[o * KK + k + u] += t;                                                              \
    }

/* d[i] = s[i] + c for i < n (a GEMM block's row plus the bias). */
#define ADDROWS_BODY(VT, VW, LD, ST, SET1, FMA, ZERO)                                          \
    int64_t i = 0;                                                                             \
    VT cv = SET1(c);                                                                           \
    for (; i + (VW) <= n; i += (VW))                                                           \
        ST(d + i, LD(s + i) + cv);                                                             \
    for (; i < n; i++)                                                                         \
        d[i] = s[i] + c;

/* d[i] += c for i < n (the bias). */
#define ADDC_BODY(VT, VW, LD, ST, SET1, FMA, ZERO)                                             \
    int64_t i = 0;                                                                             \
    VT cv = SET1(c);                                                                           \
    for (; i + (VW) <= n; i += (VW))                                                           \
        ST(d + i, LD(d + i) + cv);                                                             \
    for (; i < n; i++)                                                                         \
        d[i] += c;

#define DFWD_ARGS                                                                              \
    int64_t O, int64_t KK, int64_t P, const float *restrict w, const float *restrict bias,    \
        const float *restrict col, float *restrict y, int64_t ldy
#define DCOL_ARGS                                                                              \
    int64_t O, int64_t KK, int64_t P, const float *restrict w, const float *restrict dy,      \
        int64_t ldy, float *restrict dcol
#define DWK_ARGS                                                                               \
    int64_t O, int64_t KK, int64_t P, const float *restrict dy, int64_t ldy,                  \
        const float *restrict col, float *restrict dwp
#define ADDC_ARGS float *d, float c, int64_t n
#define ADDROWS_ARGS float *restrict d, const float *restrict s, float c, int64_t n

/* Expands the level's kernels: NAME_SFX with attribute ATTR. */
#define DEFINE_KERNELS(SFX, ATTR, OPS, HSUM)                                                   \
    ATTR static void dfwd_##SFX(DFWD_ARGS)                                                     \
    {                                                                                          \
        int64_t p = 0;                                                                         \
        DFWD_STEP2(OPS)                                                                        \
        DFWD_STEP2(C_OPS)                                                                      \
    }                                                                                          \
    ATTR static void dcol_##SFX(DCOL_ARGS)                                                     \
    {                                                                                          \
        int64_t p = 0;                                                                         \
        DCOL_STEP2(OPS)                                                                        \
        DCOL_STEP2(C_OPS)                                                                      \
    }                                                                                          \
    ATTR static void dwk_##SFX(DWK_ARGS) { DWK_BODY2(OPS, HSUM) }                              \
    ATTR static void addc_##SFX(ADDC_ARGS) { ADDC_BODY2(OPS) }                                 \
    ATTR static void add_rows_##SFX(ADDROWS_ARGS) { ADDROWS_BODY2(OPS) }
/* One more expansion step so that OPS splits into its arguments. */
#define DFWD_STEP2(...) DFWD_STEP(__VA_ARGS__)
#define DCOL_STEP2(...) DCOL_STEP(__VA_ARGS__)
#define DWK_BODY2(...) DWK_BODY(__VA_ARGS__)
#define ADDC_BODY2(...) ADDC_BODY(__VA_ARGS__)
#define ADDROWS_BODY2(...) ADDROWS_BODY(__VA_ARGS__)

DEFINE_KERNELS(c, , C_OPS, C_HSUM)
#ifdef TG_X86
DEFINE_KERNELS(avx2, TG_AVX2_FN, A2_OPS, hsum_avx2)
DEFINE_KERNELS(avx512, TG_AVX512_FN, A5_OPS, hsum_avx512)
#define DISPATCH(name, ...)                                                                    \
    (tg__cpu() == TG_CPU_AVX512 ? name##_avx512(__VA_ARGS__)                                   \
     : tg__cpu() == TG_CPU_AVX2 ? name##_avx2(__VA_ARGS__)                                     \
                                : name##_c(__VA_ARGS__))
#else
#define DISPATCH(name, ...) name##_c(__VA_ARGS__)
#endif

static void dfwd(DFWD_ARGS) { DISPATCH(dfwd, O, KK, P, w, bias, col, y, ldy); }
static void dcol(DCOL_ARGS) { DISPATCH(dcol, O, KK, P, w, dy, ldy, dcol); }
static void dwk(DWK_ARGS) { DISPATCH(dwk, O, KK, P, dy, ldy, col, dwp); }

/* The sum of a[0..n) in double (db): two vectors of double partial sums over
 * i, then the scalar tail, then the lanes. */
static double sumd_c(const float *a, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (double)a[i];
    return s;
}
#ifdef TG_X86
TG_AVX512_FN static double sumd_avx512(const float *a, int64_t n)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm256_loadu_ps(a + i)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_loadu_ps(a + i + 8)));
    }
    double t = 0.0;
    for (; i < n; i++)
        t += (double)a[i];
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) + t;
}

TG_AVX2_FN static double sumd_avx2(const float *a, int64_t n)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(a + i)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(a + i + 4)));
    }
    double t = 0.0;
    for (; i < n; i++)
        t += (double)a[i];
    __m256d v = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h))) + t;
}
#endif
static double sumd(const float *a, int64_t n) { return DISPATCH(sumd, a, n); }
static void addc(ADDC_ARGS) { DISPATCH(addc, d, c, n); }
static void add_rows(ADDROWS_ARGS) { DISPATCH(add_rows, d, s, c, n); }

/* ------------------------------------------------- batched im2col / col2im */

/* Row segments of n floats: zero, copy, add. Plain C here; the AVX-512 ones
 * use one masked load/store for the tail, so short image rows (14, 28 pixels)
 * cost a few instructions instead of a library call. */
static inline void zero_n_c(float *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = 0;
}

static inline void copy_n_c(float *restrict d, const float *restrict s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] = s[i];
}

static inline void add_n_c(float *restrict d, const float *restrict s, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        d[i] += s[i];
}

#ifdef TG_X86
static inline __mmask16 tail_mask(int64_t n) { return (__mmask16)((1u << n) - 1u); }

TG_AVX512_FN static inline void zero_n_avx512(float *d, int64_t n)
{
    if (n <= 16) { /* the common short case: no loop, no library call */
        _mm512_mask_storeu_ps(d, tail_mask(n), _mm512_setzero_ps());
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_setzero_ps());
    if (i < n)
        _mm512_mask_storeu_ps(d + i, tail_mask(n - i), _mm512_setzero_ps());
}

TG_AVX512_FN static inline void copy_n_avx512(float *restrict d, const float *restrict s,
                                              int64_t n)
{
    if (n <= 16) {
        __mmask16 m = tail_mask(n);
        _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
    }
}

TG_AVX512_FN static inline void add_n_avx512(float *restrict d, const float *restrict s,
                                             int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(d + i, _mm512_add_ps(_mm512_loadu_ps(d + i), _mm512_loadu_ps(s + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + i), _mm512_maskz_loadu_ps(m, s + i));
        _mm512_mask_storeu_ps(d + i, m, v);
    }
}
#endif

/* im2col / col2im of one channel xc [H, W] for the output rows [r0, r1) (a
 * row band; [0, OH) for a whole image): col rows [KH*KW] with row stride ld,
 * output row oh at columns (oh - r0)*OW. */

/* The row walk: output row oh of col row (i, j) reads input row oh*SH + off_h
 * at columns ow*SW + off_w for ow in [ow_lo, ow_hi) and is zero elsewhere.
 * The source pointer is only formed for in-image pixels. */
#define IM2COL_CHAN_BODY(ZERO_N, COPY_N)                                                       \
    const int64_t OW = g->OW;                                                                  \
    for (int64_t i = 0; i < g->KH; i++) {                                                      \
        int64_t off_h = i * g->DH - g->PT, oh_lo, oh_hi;                                       \
        valid_range(off_h, g->SH, g->H, g->OH, &oh_lo, &oh_hi);                                \
        oh_lo = oh_lo < r0 ? r0 : oh_lo > r1 ? r1 : oh_lo;                                     \
        oh_hi = oh_hi < oh_lo ? oh_lo : oh_hi > r1 ? r1 : oh_hi;                               \
        for (int64_t j = 0; j < g->KW; j++) {                                                  \
            int64_t off_w = j * g->DW - g->PL, ow_lo, ow_hi;                                   \
            valid_range(off_w, g->SW, g->W, OW, &ow_lo, &ow_hi);                               \
            float *r = col + (i * g->KW + j) * ld;                                             \
            ZERO_N(r, (oh_lo - r0) * OW);                                                      \
            ZERO_N(r + (oh_hi - r0) * OW, (r1 - oh_hi) * OW);                                  \
            for (int64_t oh = oh_lo; oh < oh_hi; oh++) {                                       \
                float *ro = r + (oh - r0) * OW;                                                \
                const float *src = xc + (oh * g->SH + off_h) * g->W;                           \
                ZERO_N(ro, ow_lo);                                                             \
                ZERO_N(ro + ow_hi, OW - ow_hi);                                                \
                if (ow_hi <= ow_lo)                                                            \
                    continue;                                                                  \
                if (g->SW == 1)                                                                \
                    COPY_N(ro + ow_lo, src + ow_lo + off_w, ow_hi - ow_lo);                    \
                else                                                                           \
                    for (int64_t ow = ow_lo; ow < ow_hi; ow++)                                 \
                        ro[ow] = src[ow * g->SW + off_w];                                      \
            }                                                                                  \
        }                                                                                      \
    }

/* The adjoint: dxc += the band's col rows scattered back; each pixel receives
 * its terms in (i, j) order. */
#define COL2IM_CHAN_BODY(ADD_N)                                                                \
    const int64_t OW = g->OW;                                                                  \
    for (int64_t i = 0; i < g->KH; i++) {                                                      \
        int64_t off_h = i * g->DH - g->PT, oh_lo, oh_hi;                                       \
        valid_range(off_h, g->SH, g->H, g->OH, &oh_lo, &oh_hi);                                \
        oh_lo = oh_lo < r0 ? r0 : oh_lo;                                                       \
        oh_hi = oh_hi > r1 ? r1 : oh_hi;                                                       \
        for (int64_t j = 0; j < g->KW; j++) {                                                  \
            int64_t off_w = j * g->DW - g->PL, ow_lo, ow_hi;                                   \
            valid_range(off_w, g->SW, g->W, OW, &ow_lo, &ow_hi);                               \
            if (ow_hi <= ow_lo)                                                                \
                continue;                                                                      \
            const float *r = col + (i * g->KW + j) * ld;                                       \
            for (int64_t oh = oh_lo; oh < oh_hi; oh++) {                                       \
                const float *ro = r + (oh - r0) * OW;                                          \
                float *dst = dxc + (oh * g->SH + off_h) * g->W;                                \
                if (g->SW == 1)                                                                \
                    ADD_N(dst + ow_lo + off_w, ro + ow_lo, ow_hi - ow_lo);                     \
                else                                                                           \
                    for (int64_t ow = ow_lo; ow < ow_hi; ow++)                                 \
                        dst[ow * g->SW + off_w] += ro[ow];                                     \
            }                                                                                  \
        }                                                                                      \
    }

/* Stride-1 rows (any dilation) go through a zero-padded copy of the rows the
 * band reads, on the stack: pad [Hb, Wp], pad row pr holds input row
 * r0*SH + pr - PT, input column iw at iw + PL, zeros around. Then col row
 * (i, j), output row oh is the plain copy of OW floats at pad row
 * (oh - r0)*SH + i*DH, column j*DW: no tests for the padding. col2im
 * accumulates into a zeroed pad the same way and adds its in-image part to
 * dx. Larger bands (or SW > 1) take the row walk. */
#define PAD_MAX 8192 /* floats of the stack copy (32 KiB) */

static bool padded_dims(const tg__conv2d_geom *g, int64_t r0, int64_t r1, int64_t *Hb,
                        int64_t *Wp)
{
    *Hb = (r1 - r0 - 1) * g->SH + (g->KH - 1) * g->DH + 1;
    *Wp = (g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1;
    return g->SW == 1 && *Hb * *Wp <= PAD_MAX;
}

/* The in-image columns of a pad row: [lo, lo + n) holds input columns [0, n). */
#define PAD_COLS                                                                               \
    const int64_t lo = g->PL < Wp ? g->PL : Wp, n = Wp - lo < g->W ? Wp - lo : g->W;

#define PAD_FILL(ZERO_N, COPY_N)                                                               \
    for (int64_t pr = 0; pr < Hb; pr++) {                                                      \
        float *prow = pad + pr * Wp;                                                           \
        int64_t ih = r0 * g->SH + pr - g->PT;                                                  \
        if (ih < 0 || ih >= g->H || n <= 0) {                                                  \
            ZERO_N(prow, Wp);                                                                  \
            continue;                                                                          \
        }                                                                                      \
        ZERO_N(prow, lo);                                                                      \
        COPY_N(prow + lo, xc + ih * g->W, n);                                                  \
        ZERO_N(prow + lo + n, Wp - lo - n);                                                    \
    }

#define PADDED_IM2COL_BODY(ZERO_N, COPY_N)                                                     \
    _Alignas(64) float pad[PAD_MAX];                                                           \
    PAD_COLS                                                                                   \
    PAD_FILL(ZERO_N, COPY_N)                                                                   \
    for (int64_t i = 0; i < g->KH; i++)                                                        \
        for (int64_t j = 0; j < g->KW; j++) {                                                  \
            const float *s0 = pad + i * g->DH * Wp + j * g->DW;                                \
            float *r = col + (i * g->KW + j) * ld;                                             \
            for (int64_t oh = 0; oh < r1 - r0; oh++)                                           \
                COPY_N(r + oh * g->OW, s0 + oh * g->SH * Wp, g->OW);                           \
        }

#define PADDED_COL2IM_BODY(ZERO_N, ADD_N)                                                      \
    _Alignas(64) float pad[PAD_MAX];                                                           \
    PAD_COLS                                                                                   \
    ZERO_N(pad, Hb * Wp);                                                                      \
    for (int64_t i = 0; i < g->KH; i++)                                                        \
        for (int64_t j = 0; j < g->KW; j++) {                                                  \
            float *s0 = pad + i * g->DH * Wp + j * g->DW;                                      \
            const float *r = col + (i * g->KW + j) * ld;                                       \
            for (int64_t oh = 0; oh < r1 - r0; oh++)                                           \
                ADD_N(s0 + oh * g->SH * Wp, r + oh * g->OW, g->OW);                            \
        }                                                                                      \
    for (int64_t pr = 0; pr < Hb && n > 0; pr++) {                                             \
        int64_t ih = r0 * g->SH + pr - g->PT;                                                  \
        if (ih >= 0 && ih < g->H)                                                              \
            ADD_N(dxc + ih * g->W, pad + pr * Wp + lo, n);                                     \
    }

#define CHAN_ARGS const tg__conv2d_geom *g, const float *xc, float *col, int64_t ld, int64_t r0, \
                  int64_t r1
#define CHAN_ARGS_T const tg__conv2d_geom *g, const float *col, int64_t ld, float *dxc,        \
                    int64_t r0, int64_t r1

static void im2col_chan_c(CHAN_ARGS)
{
    int64_t Hb, Wp;
    if (padded_dims(g, r0, r1, &Hb, &Wp)) {
        PADDED_IM2COL_BODY(zero_n_c, copy_n_c)
    } else {
        IM2COL_CHAN_BODY(zero_n_c, copy_n_c)
    }
}

static void col2im_chan_c(CHAN_ARGS_T)
{
    int64_t Hb, Wp;
    if (padded_dims(g, r0, r1, &Hb, &Wp)) {
        PADDED_COL2IM_BODY(zero_n_c, add_n_c)
    } else {
        COL2IM_CHAN_BODY(add_n_c)
    }
}

#ifdef TG_X86
TG_AVX512_FN static void im2col_chan_avx512(CHAN_ARGS)
{
    int64_t Hb, Wp;
    if (padded_dims(g, r0, r1, &Hb, &Wp) && g->OW <= 16) {
        /* Rows of at most 16: one load and one masked store each (the pad
         * has 16 zeros of slack for the loads). */
        _Alignas(64) float pad[PAD_MAX + 16];
        PAD_COLS
        PAD_FILL(zero_n_avx512, copy_n_avx512)
        zero_n_avx512(pad + Hb * Wp, 16);
        const __mmask16 m = tail_mask(g->OW);
        const int64_t OW = g->OW, step = g->SH * Wp;
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j = 0; j < g->KW; j++) {
                const float *sp = pad + i * g->DH * Wp + j * g->DW;
                float *r = col + (i * g->KW + j) * ld;
                for (int64_t oh = r0; oh < r1; oh++, sp += step, r += OW)
                    _mm512_mask_storeu_ps(r, m, _mm512_loadu_ps(sp));
            }
    } else if (padded_dims(g, r0, r1, &Hb, &Wp)) {
        PADDED_IM2COL_BODY(zero_n_avx512, copy_n_avx512)
    } else {
        IM2COL_CHAN_BODY(zero_n_avx512, copy_n_avx512)
    }
}

TG_AVX512_FN static void col2im_chan_avx512(CHAN_ARGS_T)
{
    int64_t Hb, Wp;
    if (g->SW == 1 && g->OW <= 16 && g->W <= 16 && g->KW <= 16) {
        /* Rows of at most 16, gathered: each dx row the band reaches sums its
         * (i, j) terms in registers (a col row loaded whole, its lanes moved
         * to dx columns by a permute; two partial sums, even and odd i), then
         * one read-modify-write of dx. */
        const int64_t OW = g->OW, W = g->W;
        const __mmask16 mrow = tail_mask(OW), mdx = tail_mask(W);
        const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        __m512i idx[16];
        __mmask16 mj[16];
        for (int64_t j = 0; j < g->KW; j++) {
            /* dx column c reads col column c + off (lanes mod 16). */
            int64_t off = g->PL - j * g->DW;
            int64_t lo = off < 0 ? -off : 0, hi = OW - off < W ? OW - off : W;
            mj[j] = lo < hi ? (__mmask16)(tail_mask(hi) & ~tail_mask(lo)) : 0;
            idx[j] = _mm512_add_epi32(iota, _mm512_set1_epi32((int)(off % 16)));
        }
        int64_t ih0 = r0 * g->SH - g->PT, ih1 = (r1 - 1) * g->SH - g->PT + (g->KH - 1) * g->DH + 1;
        ih0 = ih0 < 0 ? 0 : ih0;
        ih1 = ih1 > g->H ? g->H : ih1;
        for (int64_t ih = ih0; ih < ih1; ih++) {
            __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int64_t i = 0; i < g->KH; i++) {
                int64_t oh = ih + g->PT - i * g->DH;
                if (g->SH > 1) {
                    if (oh < 0 || oh % g->SH)
                        continue;
                    oh /= g->SH;
                }
                if (oh < r0 || oh >= r1)
                    continue;
                const float *r = col + i * g->KW * ld + (oh - r0) * OW;
                __m512 a = acc[i & 1];
                for (int64_t j = 0; j < g->KW; j++, r += ld)
                    if (mj[j]) {
                        __m512 v = _mm512_maskz_loadu_ps(mrow, r);
                        a = _mm512_add_ps(a, _mm512_maskz_permutexvar_ps(mj[j], idx[j], v));
                    }
                acc[i & 1] = a;
            }
            float *d = dxc + ih * W;
            __m512 sum = _mm512_add_ps(acc[0], acc[1]);
            _mm512_mask_storeu_ps(d, mdx, _mm512_add_ps(_mm512_maskz_loadu_ps(mdx, d), sum));
        }
    } else if (padded_dims(g, r0, r1, &Hb, &Wp)) {
        PADDED_COL2IM_BODY(zero_n_avx512, add_n_avx512)
    } else {
        COL2IM_CHAN_BODY(add_n_avx512)
    }
}
#define DISPATCH512(name, ...)                                                                 \
    (tg__cpu() == TG_CPU_AVX512 ? name##_avx512(__VA_ARGS__) : name##_c(__VA_ARGS__))
#else
#define DISPATCH512(name, ...) name##_c(__VA_ARGS__)
#endif

static void im2col_chan(CHAN_ARGS) { DISPATCH512(im2col_chan, g, xc, col, ld, r0, r1); }

static void col2im_chan(CHAN_ARGS_T) { DISPATCH512(col2im_chan, g, col, ld, dxc, r0, r1); }

/* col [Kc, nb*bP] from images [n0, n0 + nb), group gi, output rows [r0, r1)
 * (bP = (r1 - r0)*OW; image nl's columns at nl*bP); tasks (image, channel)
 * over nti threads. */
static void im2col_block(const tg__conv2d_geom *g, const float *x, int64_t n0, int64_t nb,
                         int64_t gi, int64_t r0, int64_t r1, float *col, int nti)
{
    const int64_t Cg = g->C / g->groups, KK = g->KH * g->KW, bP = (r1 - r0) * g->OW;
    const int64_t HW = g->H * g->W, ld = nb * bP, tasks = nb * Cg;
    (void)nti;
    TG_OMP("omp parallel for num_threads(nti) schedule(static) if (nti > 1)")
    for (int64_t t = 0; t < tasks; t++) {
        int64_t nl = t / Cg, c = t % Cg;
        im2col_chan(g, x + ((n0 + nl) * g->C + gi * Cg + c) * HW, col + c * KK * ld + nl * bP,
                    ld, r0, r1);
    }
}

/* dx images [n0, n0 + nb), group gi += col2im of dcol [Kc, nb*bP] (rows
 * [r0, r1)); tasks (image, channel) over nti threads, each dx pixel by one of
 * them. */
static void col2im_block(const tg__conv2d_geom *g, const float *dcol, int64_t n0, int64_t nb,
                         int64_t gi, int64_t r0, int64_t r1, float *dx, int nti)
{
    const int64_t Cg = g->C / g->groups, KK = g->KH * g->KW, bP = (r1 - r0) * g->OW;
    const int64_t HW = g->H * g->W, ld = nb * bP, tasks = nb * Cg;
    (void)nti;
    TG_OMP("omp parallel for num_threads(nti) schedule(static) if (nti > 1)")
    for (int64_t t = 0; t < tasks; t++) {
        int64_t nl = t / Cg, c = t % Cg;
        col2im_chan(g, dcol + c * KK * ld + nl * bP, ld,
                    dx + ((n0 + nl) * g->C + gi * Cg + c) * HW, r0, r1);
    }
}

/* ------------------------------------------------- Winograd F(2x2, 3x3) */

/* A 3x3, stride 1, dilation 1 correlation computed as Winograd's F(2x2, 3x3)
 * (Lavin and Gray 2015): each 2x2 output tile is A^T [(G k G^T) . (B^T d B)] A
 * for its 4x4 input patch d, which takes 16 multiplies per tile and channel
 * pair instead of 36. With the 16 transformed filters U [16][Co][Ci] and the
 * transformed patches V [Ci][16][tiles], the multiplies are 16 GEMMs
 * M [Co][16][tiles] = U @ V (V and M channel-major: a channel's transform
 * writes, or reads, one contiguous run; the GEMMs take the row stride
 * 16 * tiles). The forward is such a correlation of x with w;
 * dx is one of dy with w flipped and transposed (k'[c, o, i, j] = w[o, c,
 * 2 - i, 2 - j]). AVX-512 only: the transforms work on 16 tiles of a tile row
 * at a time. The transforms only add and subtract (and halve, for G), so the
 * results stay within a few ulps of the direct sums. */

/* out[co, oh, ow] = sum over ci, i, j of src[ci, oh + r0 + i, ow + c0 + j] *
 * k[co, ci, i, j] (zero outside src), per image. */
typedef struct wino_geom {
    int64_t Ci, Co; /* channels in and out (one group) */
    int64_t Hs, Ws; /* source image */
    int64_t Ho, Wo; /* output image */
    int64_t r0, c0; /* source row and column of output (0, 0)'s first tap */
    int64_t m;      /* output tile side: 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)) */
    int64_t XN;     /* products per tile and channel pair: (m + 2)^2 */
    int64_t TH, TW; /* tiles: ceil(Ho / 2), ceil(Wo / 2); for m = 4, 4 per row
                     * and ceil(Ho / 4) rounded up to a multiple of 4 */
} wino_geom;

/* The variant for q's sizes: F(4x4, 3x3) when source and output rows fit
 * one vector (at most 16 floats) and it takes under 0.85 of F(2x2, 3x3)'s
 * multiplies (its transforms cost more per tile), else F(2x2, 3x3). */
static void wino_tiles(wino_geom *q)
{
    const int64_t th2 = (q->Ho + 1) / 2, tw2 = (q->Wo + 1) / 2;
    const int64_t th4 = ((q->Ho + 3) / 4 + 3) / 4 * 4;
    if (q->Ws <= 16 && q->Wo <= 16 && 100 * 36 * th4 * 4 < 85 * 16 * th2 * tw2) {
        q->m = 4, q->XN = 36, q->TH = th4, q->TW = 4;
    } else {
        q->m = 2, q->XN = 16, q->TH = th2, q->TW = tw2;
    }
}


#ifdef TG_X86
/* G for F(2x2, 3x3) [4][3] and for F(4x4, 3x3) [6][3]. */
static const float wino_g2[12] = {1, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, 1};
static const float wino_g4[18] = {0.25f,        0,           0,           -1.0f / 6,
                                  -1.0f / 6,    -1.0f / 6,   -1.0f / 6,   1.0f / 6,
                                  -1.0f / 6,    1.0f / 24,   1.0f / 12,   1.0f / 6,
                                  1.0f / 24,    -1.0f / 12,  1.0f / 6,    0,
                                  0,            1};
/* 16 floats of a source row as the zero-padded row sees them: lane l holds
 * row[col + l], zero outside [0, n) or for a padding row (row NULL). Only
 * in-row addresses are formed; a left edge is shifted in by a permute. */
TG_AVX512_FN static inline __m512 load_padded(const float *row, int64_t col, int64_t n)
{
    if (!row || col >= n || col <= -16)
        return _mm512_setzero_ps();
    if (col >= 0)
        return _mm512_maskz_loadu_ps(tail_mask(n - col < 16 ? n - col : 16), row + col);
    const int64_t sh = -col, k = n < 16 - sh ? n : 16 - sh; /* lanes [sh, sh + k) */
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512 v = _mm512_maskz_loadu_ps(tail_mask(k), row);
    __mmask16 m = (__mmask16)(tail_mask(sh + k) & ~tail_mask(sh));
    return _mm512_maskz_permutexvar_ps(m, _mm512_sub_epi32(iota, _mm512_set1_epi32((int)sh)), v);
}

/* Source row sr of channel sc, or NULL outside the image. */
static inline const float *wino_row(const wino_geom *q, const float *sc, int64_t sr)
{
    return sr >= 0 && sr < q->Hs ? sc + sr * q->Ws : NULL;
}

/* The input transform of 16 lanes, one patch row k at a time (few live
 * registers): LOAD(k, a, b, c, d) sets a, b to the row's padded columns for
 * the lanes (32 floats: a the first 16, b the next 16) and c, d to the same
 * two columns on; the even and odd columns are split by permutes, the row's
 * horizontal transform h = (d0 - d2, d1 + d2, d2 - d1, d1 - d3) goes into the
 * vertical one as it comes: OUT[xi*4 + nu] = B^T h B. Spelled out (no loops)
 * so that OUT and h stay in registers. */
#define WINO_IN_LANES(LOAD, IDX_E, IDX_O, OUT)                                                 \
    WINO_IN_ROW(0, LOAD, IDX_E, IDX_O, OUT)                                                    \
    WINO_IN_ROW(1, LOAD, IDX_E, IDX_O, OUT)                                                    \
    WINO_IN_ROW(2, LOAD, IDX_E, IDX_O, OUT)                                                    \
    WINO_IN_ROW(3, LOAD, IDX_E, IDX_O, OUT)
#define WINO_IN_ROW(K, LOAD, IDX_E, IDX_O, OUT)                                                \
    {                                                                                          \
        __m512 a_, b_, c_, d_;                                                                 \
        LOAD(K, a_, b_, c_, d_);                                                               \
        __m512 e_ = _mm512_permutex2var_ps(a_, IDX_E, b_);                                     \
        __m512 o_ = _mm512_permutex2var_ps(a_, IDX_O, b_);                                     \
        __m512 e2_ = _mm512_permutex2var_ps(c_, IDX_E, d_);                                    \
        __m512 o2_ = _mm512_permutex2var_ps(c_, IDX_O, d_);                                    \
        __m512 h_[4] = {_mm512_sub_ps(e_, e2_), _mm512_add_ps(o_, e2_), _mm512_sub_ps(e2_, o_), \
                        _mm512_sub_ps(o_, o2_)};                                               \
        X4(WINO_IN_ACC##K, OUT, h_)                                                            \
    }
#define X4(M, ...) M(0, __VA_ARGS__) M(1, __VA_ARGS__) M(2, __VA_ARGS__) M(3, __VA_ARGS__)
#define WINO_IN_ACC0(nu, OUT, h) OUT[nu] = h[nu];
#define WINO_IN_ACC1(nu, OUT, h)                                                               \
    OUT[4 + nu] = h[nu];                                                                       \
    OUT[8 + nu] = _mm512_sub_ps(_mm512_setzero_ps(), h[nu]);                                   \
    OUT[12 + nu] = h[nu];
#define WINO_IN_ACC2(nu, OUT, h)                                                               \
    OUT[nu] = _mm512_sub_ps(OUT[nu], h[nu]);                                                   \
    OUT[4 + nu] = _mm512_add_ps(OUT[4 + nu], h[nu]);                                           \
    OUT[8 + nu] = _mm512_add_ps(OUT[8 + nu], h[nu]);
#define WINO_IN_ACC3(nu, OUT, h) OUT[12 + nu] = _mm512_sub_ps(OUT[12 + nu], h[nu]);

/* V[xn][t0 + (th - th0)*TW + tw] (row stride vs) = B^T d B of tile (th, tw) of
 * source channel sc for tile rows [th0, th1), B^T = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]; the patch of tile (th, tw) starts at source row
 * 2th + r0, column 2tw + c0. Rows of at most 8 tiles go two tile rows per
 * vector (lanes 0-7 and 8-15), longer ones 16 tiles of one row at a time;
 * the even and odd columns are split by permutes. The source is read in
 * place (no padded copy: a masked store and a load of the same line would
 * stall store forwarding). */
TG_AVX512_FN static void wino_in_chan(const wino_geom *q, const float *sc, int64_t th0,
                                      int64_t th1, float *V, int64_t vs, int64_t t0)
{
    const int64_t TW = q->TW, Ws = q->Ws, c0 = q->c0;
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    __m512 v[16];
    if (TW <= 8) {
        const __mmask8 m8 = (__mmask8)((1u << TW) - 1u);
        /* Padding 1 with rows of at most 16 floats (LeNet's 14x14 layer, both
         * ways): each source row is one masked load, and the columns from -1
         * and from 1 are that vector shifted one lane either way (a zero
         * shifted in), instead of four loads with edge permutes. */
        const bool pad1 = c0 == -1 && Ws <= 16;
        const __mmask16 mw = tail_mask(Ws < 16 ? Ws : 16);
        const __m512i zi = _mm512_setzero_si512();
        for (int64_t th = th0; th < th1; th += 2) {
            const bool two = th + 1 < th1;
            /* Lanes 0-7: tile row th (a, c), 8-15: tile row th + 1 (b, d). */
#define LOAD_ROW_SHIFTS(r, lo, hi)                                                             \
    do {                                                                                       \
        const __m512i v_ = r ? _mm512_castps_si512(_mm512_maskz_loadu_ps(mw, r)) : zi;         \
        lo = _mm512_castsi512_ps(_mm512_alignr_epi32(v_, zi, 15));                             \
        hi = _mm512_castsi512_ps(_mm512_alignr_epi32(zi, v_, 1));                              \
    } while (0)
#define LOAD_TWO(k, a, b, c, d)                                                                \
    do {                                                                                       \
        const float *ra = wino_row(q, sc, 2 * th + q->r0 + (k));                               \
        const float *rb = two ? wino_row(q, sc, 2 * th + 2 + q->r0 + (k)) : NULL;              \
        if (pad1) {                                                                            \
            LOAD_ROW_SHIFTS(ra, a, c);                                                         \
            LOAD_ROW_SHIFTS(rb, b, d);                                                         \
        } else {                                                                               \
            a = load_padded(ra, c0, Ws);                                                       \
            c = load_padded(ra, c0 + 2, Ws);                                                   \
            b = load_padded(rb, c0, Ws);                                                       \
            d = load_padded(rb, c0 + 2, Ws);                                                   \
        }                                                                                      \
    } while (0)
            WINO_IN_LANES(LOAD_TWO, ie, io, v);
#undef LOAD_TWO
#undef LOAD_ROW_SHIFTS
            float *d = V + t0 + (th - th0) * TW;
            _Pragma("GCC unroll 16") for (int xn = 0; xn < 16; xn++) {
                _mm256_mask_storeu_ps(d + xn * vs, m8, _mm512_castps512_ps256(v[xn]));
                if (two)
                    _mm256_mask_storeu_ps(d + xn * vs + TW, m8, _mm512_extractf32x8_ps(v[xn], 1));
            }
        }
        return;
    }
    for (int64_t th = th0; th < th1; th++)
        for (int64_t tw = 0; tw < TW; tw += 16) {
            const int64_t col = 2 * tw + c0;
#define LOAD_ONE(k, a, b, c, d)                                                                \
    do {                                                                                       \
        const float *r = wino_row(q, sc, 2 * th + q->r0 + (k));                                \
        a = load_padded(r, col, Ws);                                                           \
        b = load_padded(r, col + 16, Ws);                                                      \
        c = load_padded(r, col + 2, Ws);                                                       \
        d = load_padded(r, col + 18, Ws);                                                      \
    } while (0)
            WINO_IN_LANES(LOAD_ONE, ie, io, v);
#undef LOAD_ONE
            const __mmask16 m = tail_mask(TW - tw < 16 ? TW - tw : 16);
            float *d = V + t0 + (th - th0) * TW + tw;
            _Pragma("GCC unroll 16") for (int xn = 0; xn < 16; xn++)
                _mm512_mask_storeu_ps(d + xn * vs, m, v[xn]);
        }
}

/* The output transform of 16 lanes: LOAD(xn) the product xn of the lanes'
 * tiles, y[r][c] the outputs (r, c): A^T m A, A^T = [1 1 1 0; 0 1 -1 -1];
 * the products are loaded one column nu at a time (few live registers). */
#define WINO_OUT_LANES(LOAD, y)                                                                \
    do {                                                                                       \
        __m512 s0_[4], s1_[4];                                                                 \
        _Pragma("GCC unroll 4") for (int nu_ = 0; nu_ < 4; nu_++) {                            \
            __m512 m0_ = LOAD(0 + nu_), m1_ = LOAD(4 + nu_), m2_ = LOAD(8 + nu_);              \
            __m512 m3_ = LOAD(12 + nu_);                                                       \
            s0_[nu_] = _mm512_add_ps(_mm512_add_ps(m0_, m1_), m2_);                            \
            s1_[nu_] = _mm512_sub_ps(_mm512_sub_ps(m1_, m2_), m3_);                            \
        }                                                                                      \
        y[0][0] = _mm512_add_ps(_mm512_add_ps(s0_[0], s0_[1]), s0_[2]);                        \
        y[0][1] = _mm512_sub_ps(_mm512_sub_ps(s0_[1], s0_[2]), s0_[3]);                        \
        y[1][0] = _mm512_add_ps(_mm512_add_ps(s1_[0], s1_[1]), s1_[2]);                        \
        y[1][1] = _mm512_sub_ps(_mm512_sub_ps(s1_[1], s1_[2]), s1_[3]);                        \
    } while (0)

/* n <= 16 floats at d: v + bias (acc false), or d + v (acc true). */
TG_AVX512_FN static inline void wino_put(float *d, int64_t n, __m512 v, __m512 bias, bool acc)
{
    const __mmask16 m = tail_mask(n);
    v = acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), v) : _mm512_add_ps(v, bias);
    _mm512_mask_storeu_ps(d, m, v);
}

/* Output channel oc [Ho, Wo], tile rows [th0, th1), from M[xn][t0 + (th -
 * th0)*TW + tw] (row stride ms): A^T m A plus bias (acc false: written) or
 * added to what oc holds (acc true). Lanes as in wino_in_chan. */
TG_AVX512_FN static void wino_out_chan(const wino_geom *q, const float *M, int64_t ms, int64_t t0,
                                       int64_t th0, int64_t th1, float *oc, float bias, bool acc)
{
    const int64_t TW = q->TW, Wo = q->Wo, Ho = q->Ho;
    const __m512i lo_idx =
        _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi_idx =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 bv = _mm512_set1_ps(bias);
    if (TW <= 8) {
        const __mmask8 m8 = (__mmask8)((1u << TW) - 1u);
        for (int64_t th = th0; th < th1; th += 2) {
            const bool two = th + 1 < th1;
            const float *mp = M + t0 + (th - th0) * TW;
            __m512 y[2][2];
            /* Lanes 0-7: tile row th, 8-15: tile row th + 1. */
#define LOAD_TWO(xn)                                                                           \
    _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(m8, mp + (xn) * ms)),       \
                       two ? _mm256_maskz_loadu_ps(m8, mp + (xn) * ms + TW)                    \
                           : _mm256_setzero_ps(),                                              \
                       1)
            WINO_OUT_LANES(LOAD_TWO, y);
#undef LOAD_TWO
#pragma GCC unroll 2
            for (int r = 0; r < 2; r++) {
                if (2 * th + r < Ho)
                    wino_put(oc + (2 * th + r) * Wo, Wo,
                             _mm512_permutex2var_ps(y[r][0], lo_idx, y[r][1]), bv, acc);
                if (two && 2 * th + 2 + r < Ho)
                    wino_put(oc + (2 * th + 2 + r) * Wo, Wo,
                             _mm512_permutex2var_ps(y[r][0], hi_idx, y[r][1]), bv, acc);
            }
        }
        return;
    }
    for (int64_t th = th0; th < th1; th++)
        for (int64_t tw = 0; tw < TW; tw += 16) {
            const __mmask16 mt = tail_mask(TW - tw < 16 ? TW - tw : 16);
            const float *mp = M + t0 + (th - th0) * TW + tw;
            __m512 y[2][2];
#define LOAD_ONE(xn) _mm512_maskz_loadu_ps(mt, mp + (xn) * ms)
            WINO_OUT_LANES(LOAD_ONE, y);
#undef LOAD_ONE
            const int64_t col = 2 * tw, n = Wo - col < 32 ? Wo - col : 32;
#pragma GCC unroll 2
            for (int r = 0; r < 2; r++) {
                if (2 * th + r >= Ho)
                    break;
                float *d = oc + (2 * th + r) * Wo + col;
                wino_put(d, n < 16 ? n : 16, _mm512_permutex2var_ps(y[r][0], lo_idx, y[r][1]),
                         bv, acc);
                if (n > 16)
                    wino_put(d + 16, n - 16, _mm512_permutex2var_ps(y[r][0], hi_idx, y[r][1]),
                             bv, acc);
            }
        }
}

/* ------------------------------------------------- Winograd F(4x4, 3x3) */

/* Rows of at most 16 floats both ways (LeNet's 14x14 layer): each 4x4 output
 * tile is A^T [(G k G^T) . (B^T d B)] A for its 6x6 input patch d, 36
 * multiplies per tile and channel pair where F(2x2, 3x3) takes 64 for the
 * same 16 outputs. Lavin and Gray's matrices (points 0, 1, -1, 2, -2):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 *          0 2 -1 -2 1 0; 0 4 0 -5 0 1],
 *   G = wino_g4, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
 * A row holds 4 tiles (TW = 4) and a vector 4 tile rows: lane 4a + tw is tile
 * (th + a, tw). The factors 2 to 8 make its rounding error larger than
 * F(2x2)'s: about 1e-6 of the output's magnitude with 32 channels. */

/* h = B^T d for six vectors. */
TG_AVX512_FN static inline void wino4_bt(const __m512 d[6], __m512 h[6])
{
    const __m512 f2 = _mm512_set1_ps(2), f4 = _mm512_set1_ps(4), f5 = _mm512_set1_ps(5);
    const __m512 t1 = _mm512_fnmadd_ps(f4, d[2], d[4]), t2 = _mm512_fnmadd_ps(f4, d[1], d[3]);
    const __m512 t3 = _mm512_sub_ps(d[4], d[2]), s = _mm512_sub_ps(d[3], d[1]);
    h[0] = _mm512_fmadd_ps(f4, d[0], _mm512_fnmadd_ps(f5, d[2], d[4]));
    h[1] = _mm512_add_ps(t1, t2);
    h[2] = _mm512_sub_ps(t1, t2);
    h[3] = _mm512_fmadd_ps(f2, s, t3);
    h[4] = _mm512_fnmadd_ps(f2, s, t3);
    h[5] = _mm512_fmadd_ps(f4, d[1], _mm512_fnmadd_ps(f5, d[3], d[5]));
}

/* y = A^T m: four vectors from six. */
TG_AVX512_FN static inline void wino4_at(const __m512 m[6], __m512 y[4])
{
    const __m512 s1 = _mm512_add_ps(m[1], m[2]), d1 = _mm512_sub_ps(m[1], m[2]);
    const __m512 s2 = _mm512_add_ps(m[3], m[4]), d2 = _mm512_sub_ps(m[3], m[4]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s1), s2);
    y[1] = _mm512_fmadd_ps(_mm512_set1_ps(2), d2, d1);
    y[2] = _mm512_fmadd_ps(_mm512_set1_ps(4), s2, s1);
    y[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8), d2, d1), m[5]);
}

/* z = A d: six vectors from four (the adjoint of wino4_at). */
TG_AVX512_FN static inline void wino4_a(const __m512 d[4], __m512 z[6])
{
    const __m512 f2 = _mm512_set1_ps(2), f4 = _mm512_set1_ps(4);
    const __m512 e = _mm512_add_ps(d[0], d[2]), o = _mm512_add_ps(d[1], d[3]);
    const __m512 e4 = _mm512_fmadd_ps(f4, d[2], d[0]), o4 = _mm512_fmadd_ps(f4, d[3], d[1]);
    z[0] = d[0];
    z[1] = _mm512_add_ps(e, o);
    z[2] = _mm512_sub_ps(e, o);
    z[3] = _mm512_fmadd_ps(f2, o4, e4);
    z[4] = _mm512_fnmadd_ps(f2, o4, e4);
    z[5] = d[3];
}

/* Permute tables between rows (lane = column) and tile lanes (4a + tw) for a
 * 4x4 block of outputs: with Y_c the vector of column c of every tile and O_a
 * output row a, O_a[4tw + c] = Y_c[4a + tw]. Two rounds of two-source
 * permutes: wino4_iz pairs columns (lane 8a + 2tw + c of a pair holds
 * column c of tile (a, tw), a < 2; + 8 for a = 2, 3), wino4_io takes a row
 * from two pairs (+ 8 for odd a). wino4_jw and wino4_jd go the other way
 * (+ 2 for columns 2, 3; + 8 for odd columns). */
static const int32_t wino4_iz[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const int32_t wino4_io[16] = {0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23};
static const int32_t wino4_jw[16] = {0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29};
static const int32_t wino4_jd[16] = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};

TG_AVX512_FN static inline __m512i wino4_idx(const int32_t *t, int add)
{
    return _mm512_add_epi32(_mm512_loadu_si512(t), _mm512_set1_epi32(add));
}

/* V[xn][t0 + (th - th0)*4 + l] (row stride vs) = B^T d B of the tiles of
 * source channel sc in tile rows [th0, th1) (a multiple of 4 apart); the
 * patch of tile (th, tw) starts at source row 4th + r0, column 4tw + c0. The
 * vertical transform runs on whole source rows (one vector each), then
 * permutes take column 4tw + c0 + j of four tile rows' results into the
 * lanes (zero outside the row) for the horizontal one. */
TG_AVX512_FN static void wino4_in_chan(const wino_geom *q, const float *sc, int64_t th0,
                                       int64_t th1, float *V, int64_t vs, int64_t t0)
{
    const __mmask16 mw = tail_mask(q->Ws);
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    /* Lane 4a' + tw (< 8) of a pair of tile rows a': column 4tw (+ 16 for a' = 1). */
    const __m512i col4 = _mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(3)), 2);
    const __m512i pair = _mm512_slli_epi32(_mm512_and_si512(lane, _mm512_set1_epi32(4)), 2);
    __m512i idx[6];
    __mmask16 mj[6];
    for (int j = 0; j < 6; j++) {
        const __m512i col = _mm512_add_epi32(col4, _mm512_set1_epi32((int)q->c0 + j));
        mj[j] = (__mmask16)(_mm512_cmpge_epi32_mask(col, _mm512_setzero_si512()) &
                            _mm512_cmplt_epi32_mask(col, _mm512_set1_epi32(16)) & 0xFFu);
        idx[j] = _mm512_add_epi32(col, pair);
    }
    for (int64_t th = th0; th < th1; th += 4) {
        __m512 T[4][6];
#pragma GCC unroll 4
        for (int a = 0; a < 4; a++) {
            __m512 d[6];
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) {
                const float *r = wino_row(q, sc, 4 * (th + a) + q->r0 + k);
                d[k] = r ? _mm512_maskz_loadu_ps(mw, r) : _mm512_setzero_ps();
            }
            wino4_bt(d, T[a]);
        }
        float *dst = V + t0 + (th - th0) * 4;
#pragma GCC unroll 6
        for (int xi = 0; xi < 6; xi++) {
            __m512 d[6], h[6];
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++)
                d[j] = _mm512_shuffle_f32x4(
                    _mm512_maskz_permutex2var_ps(mj[j], T[0][xi], idx[j], T[1][xi]),
                    _mm512_maskz_permutex2var_ps(mj[j], T[2][xi], idx[j], T[3][xi]), 0x44);
            wino4_bt(d, h);
#pragma GCC unroll 6
            for (int nu = 0; nu < 6; nu++)
                _mm512_storeu_ps(dst + (xi * 6 + nu) * vs, h[nu]);
        }
    }
}

/* Output channel oc [Ho, Wo], tile rows [th0, th1), from M[xn][t0 + (th -
 * th0)*4 + l] (row stride ms): A^T m A plus bias (acc false: written) or
 * added to what oc holds (acc true). */
TG_AVX512_FN static void wino4_out_chan(const wino_geom *q, const float *M, int64_t ms,
                                        int64_t t0, int64_t th0, int64_t th1, float *oc,
                                        float bias, bool acc)
{
    const int64_t Ho = q->Ho, Wo = q->Wo;
    const __m512i iz = wino4_idx(wino4_iz, 0), izh = wino4_idx(wino4_iz, 8);
    const __m512i io = wino4_idx(wino4_io, 0), ioh = wino4_idx(wino4_io, 8);
    const __m512 bv = _mm512_set1_ps(bias);
    for (int64_t th = th0; th < th1 && 4 * th < Ho; th += 4) {
        const float *mp = M + t0 + (th - th0) * 4;
        __m512 t[6][4], y[4][4];
#pragma GCC unroll 6
        for (int xi = 0; xi < 6; xi++) {
            __m512 m[6];
#pragma GCC unroll 6
            for (int nu = 0; nu < 6; nu++)
                m[nu] = _mm512_loadu_ps(mp + (xi * 6 + nu) * ms);
            wino4_at(m, t[xi]);
        }
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512 col[6] = {t[0][c], t[1][c], t[2][c], t[3][c], t[4][c], t[5][c]}, r[4];
            wino4_at(col, r);
            y[0][c] = r[0], y[1][c] = r[1], y[2][c] = r[2], y[3][c] = r[3];
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m512 z01 = _mm512_permutex2var_ps(y[r][0], iz, y[r][1]);
            const __m512 z01h = _mm512_permutex2var_ps(y[r][0], izh, y[r][1]);
            const __m512 z23 = _mm512_permutex2var_ps(y[r][2], iz, y[r][3]);
            const __m512 z23h = _mm512_permutex2var_ps(y[r][2], izh, y[r][3]);
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++) {
                const int64_t row = 4 * (th + a) + r;
                if (row < Ho)
                    wino_put(oc + row * Wo, Wo,
                             _mm512_permutex2var_ps(a < 2 ? z01 : z01h, a % 2 ? ioh : io,
                                                    a < 2 ? z23 : z23h),
                             bv, acc);
            }
        }
    }
}

/* Y[xn][t0 + (th - th0)*4 + l] (row stride ys) = A dy A^T of the output tiles
 * of channel dc [Ho, Wo] in tile rows [th0, th1) (zero past the edges). */
TG_AVX512_FN static void wino4_dy_chan(const wino_geom *q, const float *dc, int64_t th0,
                                       int64_t th1, float *Y, int64_t ys, int64_t t0)
{
    const int64_t Ho = q->Ho, Wo = q->Wo;
    const __mmask16 mo = tail_mask(Wo);
    const __m512i jw = wino4_idx(wino4_jw, 0), jwh = wino4_idx(wino4_jw, 2);
    const __m512i jd = wino4_idx(wino4_jd, 0), jdh = wino4_idx(wino4_jd, 8);
    for (int64_t th = th0; th < th1; th += 4) {
        __m512 z[4][6];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512 R[4], d[4];
#pragma GCC unroll 4
            for (int a = 0; a < 4; a++) {
                const int64_t row = 4 * (th + a) + r;
                R[a] = row < Ho ? _mm512_maskz_loadu_ps(mo, dc + row * Wo) : _mm512_setzero_ps();
            }
            const __m512 w01 = _mm512_permutex2var_ps(R[0], jw, R[1]);
            const __m512 w01h = _mm512_permutex2var_ps(R[0], jwh, R[1]);
            const __m512 w23 = _mm512_permutex2var_ps(R[2], jw, R[3]);
            const __m512 w23h = _mm512_permutex2var_ps(R[2], jwh, R[3]);
            d[0] = _mm512_permutex2var_ps(w01, jd, w23);
            d[1] = _mm512_permutex2var_ps(w01, jdh, w23);
            d[2] = _mm512_permutex2var_ps(w01h, jd, w23h);
            d[3] = _mm512_permutex2var_ps(w01h, jdh, w23h);
            wino4_a(d, z[r]);
        }
        float *dst = Y + t0 + (th - th0) * 4;
#pragma GCC unroll 6
        for (int nu = 0; nu < 6; nu++) {
            __m512 d[4] = {z[0][nu], z[1][nu], z[2][nu], z[3][nu]}, o[6];
            wino4_a(d, o);
#pragma GCC unroll 6
            for (int xi = 0; xi < 6; xi++)
                _mm512_storeu_ps(dst + (xi * 6 + nu) * ys, o[xi]);
        }
    }
}

/* The correlation for images [0, nb) from src (image stride sn, channel
 * stride Hs*Ws) into out (image stride on, channel stride Ho*Wo), tile rows
 * [th0, th1): transforms into V [Ci][XN][NT] and M [Co][XN][NT] (NT = nb *
 * (th1 - th0) * TW), then the XN GEMMs. bias: [Co] or NULL; acc: add into out
 * instead of writing. */
TG_AVX512_FN static void wino_block(const wino_geom *q, const float *src, int64_t sn,
                                    const float *U, float *out, int64_t on, const float *bias,
                                    bool acc, int64_t nb, int64_t th0, int64_t th1, float *V,
                                    float *M)
{
    const int64_t Ci = q->Ci, Co = q->Co, nth = th1 - th0, NT = nb * nth * q->TW, XT = q->XN * NT;
    const int64_t HWs = q->Hs * q->Ws, HWo = q->Ho * q->Wo;
    void (*in_chan)(const wino_geom *, const float *, int64_t, int64_t, float *, int64_t,
                    int64_t) = q->m == 4 ? wino4_in_chan : wino_in_chan;
    void (*out_chan)(const wino_geom *, const float *, int64_t, int64_t, int64_t, int64_t,
                     float *, float, bool) = q->m == 4 ? wino4_out_chan : wino_out_chan;
    for (int64_t nl = 0; nl < nb; nl++)
        for (int64_t ci = 0; ci < Ci; ci++)
            in_chan(q, src + nl * sn + ci * HWs, th0, th1, V + ci * XT, NT, nl * nth * q->TW);
    tg__gemm_batch_f32(false, false, q->XN, Co, NT, Ci, 1, U, Ci, Co * Ci, V, XT, NT, 0, M, XT,
                       NT);
    for (int64_t nl = 0; nl < nb; nl++)
        for (int64_t co = 0; co < Co; co++)
            out_chan(q, M + co * XT, NT, nl * nth * q->TW, th0, th1,
                          out + nl * on + co * HWo, bias ? bias[co] : 0.0f, acc);
}

/* The VJP's dw through the same transforms: with y = A^T [U . V] A and
 * U = G k G^T, dL/dU = (A dy A^T) . V for each tile, so
 *   dw[o, c] = G^T (sum over tiles of (A dy_o A^T) . V_c) G,
 * A = [1 0; 1 1; 1 -1; 0 -1] (dy zero past the output's edge). The sums over
 * tiles are 16 GEMMs S [16][Og][Cg] += Y [Og][16][NT] @ V [Cg][16][NT]^T
 * (36 for F(4x4)). */

/* Y[xn][t0 + (th - th0)*TW + tw] (row stride ys) = A dy A^T of output tile
 * (th, tw) of channel dc [Ho, Wo], tile rows [th0, th1). */
TG_AVX512_FN static void wino_dy_chan(const wino_geom *q, const float *dc, int64_t th0,
                                      int64_t th1, float *Y, int64_t ys, int64_t t0)
{
    const int64_t TW = q->TW, Wo = q->Wo, Ho = q->Ho;
    const __m512i ie = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i io = _mm512_add_epi32(ie, _mm512_set1_epi32(1));
    const bool two_rows = TW <= 8;
    for (int64_t th = th0; th < th1; th += two_rows ? 2 : 1)
        for (int64_t tw = 0; tw < TW; tw += 16) {
            /* Rows 2th + r (r < 2) of the lanes' tiles: lanes 0-7 tile row th
             * and 8-15 tile row th + 1 for short rows, else 16 tiles of row th. */
            const bool two = two_rows && th + 1 < th1;
            __m512 e[2], o[2];
#pragma GCC unroll 2
            for (int r = 0; r < 2; r++) {
                __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
                int64_t ra = 2 * th + r, rb = two_rows ? 2 * th + 2 + r : ra;
                int64_t ca = two_rows ? 0 : 2 * tw, cb = two_rows ? 0 : 2 * tw + 16;
                if (ra < Ho && ca < Wo)
                    a = _mm512_maskz_loadu_ps(tail_mask(Wo - ca < 16 ? Wo - ca : 16),
                                              dc + ra * Wo + ca);
                if ((!two_rows || two) && rb < Ho && cb < Wo)
                    b = _mm512_maskz_loadu_ps(tail_mask(Wo - cb < 16 ? Wo - cb : 16),
                                              dc + rb * Wo + cb);
                e[r] = _mm512_permutex2var_ps(a, ie, b);
                o[r] = _mm512_permutex2var_ps(a, io, b);
            }
            /* A d A^T: rows (d0, d0 + d1, d0 - d1, -d1), the same for columns. */
            __m512 hr[4][2]; /* [xi][column: even, odd] */
#pragma GCC unroll 2
            for (int c = 0; c < 2; c++) {
                __m512 d0 = c ? o[0] : e[0], d1 = c ? o[1] : e[1];
                hr[0][c] = d0;
                hr[1][c] = _mm512_add_ps(d0, d1);
                hr[2][c] = _mm512_sub_ps(d0, d1);
                hr[3][c] = _mm512_sub_ps(_mm512_setzero_ps(), d1);
            }
            float *d = Y + t0 + (th - th0) * TW + (two_rows ? 0 : tw);
            const __mmask16 m = tail_mask(two_rows ? 16 : TW - tw < 16 ? TW - tw : 16);
            const __mmask8 m8 = (__mmask8)((1u << (TW < 8 ? TW : 8)) - 1u);
#pragma GCC unroll 4
            for (int xi = 0; xi < 4; xi++) {
                __m512 c0 = hr[xi][0], c1 = hr[xi][1], v[4];
                v[0] = c0;
                v[1] = _mm512_add_ps(c0, c1);
                v[2] = _mm512_sub_ps(c0, c1);
                v[3] = _mm512_sub_ps(_mm512_setzero_ps(), c1);
#pragma GCC unroll 4
                for (int nu = 0; nu < 4; nu++) {
                    float *dst = d + (xi * 4 + nu) * ys;
                    if (!two_rows) {
                        _mm512_mask_storeu_ps(dst, m, v[nu]);
                        continue;
                    }
                    _mm256_mask_storeu_ps(dst, m8, _mm512_castps512_ps256(v[nu]));
                    if (two)
                        _mm256_mask_storeu_ps(dst + TW, m8, _mm512_extractf32x8_ps(v[nu], 1));
                }
            }
            if (two_rows)
                break; /* one vector covers the whole tile row */
        }
}

/* u[a][b] = sum over i, j of G[a][i] k[i][j] G[b][j] for 16 channels' 3x3
 * kernels k[i*3 + j] (a, b < A = m + 2), lanes past the mask zero. */
TG_AVX512_FN static void wino_gkg(int64_t m, const __m512 k[9], __m512 u[36])
{
    const int A = (int)m + 2;
    const float *G = m == 4 ? wino_g4 : wino_g2;
    __m512 t[6][3];
    for (int a = 0; a < A; a++)
        for (int j = 0; j < 3; j++) {
            t[a][j] = _mm512_setzero_ps();
            for (int i = 0; i < 3; i++)
                if (G[a * 3 + i] != 0)
                    t[a][j] = _mm512_fmadd_ps(_mm512_set1_ps(G[a * 3 + i]), k[i * 3 + j], t[a][j]);
        }
    for (int a = 0; a < A; a++)
        for (int b = 0; b < A; b++) {
            __m512 v = _mm512_setzero_ps();
            for (int j = 0; j < 3; j++)
                if (G[b * 3 + j] != 0)
                    v = _mm512_fmadd_ps(_mm512_set1_ps(G[b * 3 + j]), t[a][j], v);
            u[a * A + b] = v;
        }
}

/* U [XN][Co][Ci] = G k G^T, with k[co][ci][i][j] at w[co*sco + ci*sci + i*si +
 * j*sj] (G: wino_g2 or wino_g4 for m = 2 or 4); 16 input channels at a time. */
TG_AVX512_FN static void wino_filter(int64_t m, int64_t Co, int64_t Ci, const float *w,
                                     int64_t sco, int64_t sci, int64_t si, int64_t sj, float *U)
{
    const int64_t XN = (m + 2) * (m + 2);
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i vidx = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)sci));
    for (int64_t co = 0; co < Co; co++)
        for (int64_t c0 = 0; c0 < Ci; c0 += 16) {
            const __mmask16 mk = tail_mask(Ci - c0 < 16 ? Ci - c0 : 16);
            __m512 k[9], u[36];
            for (int e = 0; e < 9; e++)
                k[e] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, vidx,
                                                w + co * sco + c0 * sci + e / 3 * si + e % 3 * sj,
                                                4);
            wino_gkg(m, k, u);
            for (int64_t xn = 0; xn < XN; xn++)
                _mm512_mask_storeu_ps(U + (xn * Co + co) * Ci + c0, mk, u[xn]);
        }
}

/* dw [Og, Cg, 3, 3] += G^T S_oc G for each (o, c), S [XN][Og][Cg]; 16 input
 * channels at a time. */
TG_AVX512_FN static void wino_dw_out(int64_t m, int64_t Og, int64_t Cg, const float *S, float *dw)
{
    const int A = (int)m + 2;
    const float *G = m == 4 ? wino_g4 : wino_g2;
    for (int64_t o = 0; o < Og; o++)
        for (int64_t c0 = 0; c0 < Cg; c0 += 16) {
            const int64_t n = Cg - c0 < 16 ? Cg - c0 : 16;
            const __mmask16 mk = tail_mask(n);
            __m512 t[3][6];
            for (int i = 0; i < 3; i++)
                for (int b = 0; b < A; b++) {
                    t[i][b] = _mm512_setzero_ps();
                    for (int a = 0; a < A; a++)
                        if (G[a * 3 + i] != 0)
                            t[i][b] = _mm512_fmadd_ps(
                                _mm512_set1_ps(G[a * 3 + i]),
                                _mm512_maskz_loadu_ps(mk, S + ((a * A + b) * Og + o) * Cg + c0),
                                t[i][b]);
                }
            for (int e = 0; e < 9; e++) {
                __m512 v = _mm512_setzero_ps();
                for (int b = 0; b < A; b++)
                    if (G[b * 3 + e % 3] != 0)
                        v = _mm512_fmadd_ps(_mm512_set1_ps(G[b * 3 + e % 3]), t[e / 3][b], v);
                float r[16];
                _mm512_storeu_ps(r, v);
                for (int64_t l = 0; l < n; l++)
                    dw[(o * Cg + c0 + l) * 9 + e] += r[l];
            }
        }
}
#endif

/* ------------------------------------------------------------------ plan */

/* Work is split into blocks of `chunk` images whose column matrix fits the
 * budget (about the L2 cache: writing and re-reading a whole-batch col from
 * memory cost more than rebuilding blocks, measured in docs/performance.md).
 * An image whose col alone is over the budget is cut into bands of `rows`
 * output rows (the GEMMs then read and write y and dy in place, with row
 * stride OH*OW). Threads take whole blocks, each with its own scratch, and
 * run the GEMMs inside their block single-threaded (a nested OpenMP region).
 * Blocks are handed out one at a time (dynamic schedule): on a busy machine a
 * thread that starts late takes fewer, and which thread computes a block
 * changes nothing in its result. The VJP's dw and db are sums over blocks:
 * block b adds into partial sum b % slots in block (and band) order, one
 * thread per slot, and the slots are added in slot order at the end, so the
 * result depends on the shape (and the budget) only. */
#define DEFAULT_BUDGET ((int64_t)1 << 20) /* bytes of one thread's col block */
#define PAR_MIN_MACS 1048576.0            /* smallest conv given several threads */
#define MIN_BAND 256                      /* fewest columns of a band */
#define MAX_SLOTS 8
static int64_t budget_bytes = DEFAULT_BUDGET;

int64_t tg__conv2d_budget_force(int64_t bytes)
{
    int64_t old = budget_bytes;
    budget_bytes = bytes > 0 ? bytes : DEFAULT_BUDGET;
    return old;
}

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() omp_get_thread_num()
#else
#define THREAD_ID() 0
#endif

/* The forward's and dx's correlations of one group. */
static void wino_geoms(const tg__conv2d_geom *g, wino_geom *f, wino_geom *d)
{
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    *f = (wino_geom){.Ci = Cg, .Co = Og, .Hs = g->H, .Ws = g->W, .Ho = g->OH, .Wo = g->OW,
                     .r0 = -g->PT, .c0 = -g->PL};
    *d = (wino_geom){.Ci = Og, .Co = Cg, .Hs = g->OH, .Ws = g->OW, .Ho = g->H, .Wo = g->W,
                     .r0 = g->PT - 2, .c0 = g->PL - 2};
    wino_tiles(f);
    wino_tiles(d);
}

/* Blocks of the correlation: *nb images, or one image in bands of *rows tile
 * rows, so that V and M (XN * (Ci + Co) floats per tile) and the transformed
 * filters U (XN * Ci * Co floats, reread by every block) fit in 3/4 of the
 * budget (at least one tile row, or four for F(4x4)): the rest of the cache
 * holds the source and output rows passing through. Returns the floats of V
 * and M. */
static int64_t wino_blocking(const wino_geom *q, int64_t N, int64_t *nb, int64_t *rows)
{
    const int64_t per_tile = q->XN * (q->Ci + q->Co), T = q->TH * q->TW;
    const int64_t row_step = q->m == 4 ? 4 : 1; /* F(4x4): 4 tile rows per vector */
    int64_t nt = (budget_bytes / 4 * 3 / 4 - q->XN * q->Ci * q->Co) / per_tile;
    if (nt < row_step * q->TW)
        nt = row_step * q->TW;
    *nb = 1;
    *rows = q->TH;
    if (T <= nt) {
        *nb = nt / T < N ? nt / T : N;
        if (*nb < 1)
            *nb = 1;
    } else {
        *rows = nt / q->TW / row_step * row_step;
    }
    return per_tile * *nb * *rows * q->TW;
}

void tg__conv2d_plan_f32(const tg__conv2d_geom *g, tg__conv2d_plan *p)
{
    const int64_t Cg = g->C / g->groups, KK = g->KH * g->KW, OW = g->OW, P = g->OH * OW;
    p->direct = g->C == 1;
    const int64_t Kc = Cg * KK, rowk = (p->direct ? KK : Kc) * OW; /* col floats per row */
    const int64_t fit = budget_bytes / 4; /* floats */
    int64_t chunk = p->direct ? 1 : fit / (rowk * g->OH), rows = g->OH;
    if (chunk < 1) {
        chunk = 1;
        rows = fit / rowk;
        if (rows * OW < MIN_BAND)
            rows = (MIN_BAND + OW - 1) / OW;
        if (rows < 1)
            rows = 1;
        if (rows > g->OH)
            rows = g->OH;
    }
    if (chunk > g->N)
        chunk = g->N;
    if (chunk < 1)
        chunk = 1;
    p->chunk = chunk;
    p->rows = rows;
    p->n_chunks = (g->N + chunk - 1) / chunk;
    p->slots = p->n_chunks < MAX_SLOTS ? p->n_chunks : MAX_SLOTS;
    if (p->slots < 1)
        p->slots = 1;
    /* Threads over blocks (outer) when there are enough blocks to share,
     * else blocks in turn with threads inside (im2col, GEMM, col2im). A conv
     * of fewer than PAR_MIN_MACS multiply-adds runs on one thread: a
     * parallel region would cost more than it saves. */
    const double macs = (double)g->N * (double)g->O * (double)P * (double)Kc;
    int nt = macs < PAR_MIN_MACS ? 1 : tg__threads();
    p->nt = nt;
    p->outer = p->direct || p->slots >= 2 * nt;
    p->nt_outer = !p->outer ? 1 : nt < p->n_chunks ? nt : (int)(p->n_chunks > 0 ? p->n_chunks : 1);
    p->nt_inner = p->outer ? 1 : nt;
    p->col_elems = p->nt_outer * rowk * rows * chunk;
    p->yt_elems = p->direct || chunk == 1 ? 0 : p->nt_outer * g->O * chunk * P;
    p->dwp_elems = p->slots * g->O * Kc;
    p->dbp_elems = p->slots * g->O;
    /* Winograd for the forward and the whole VJP: 3x3, stride 1, no dilation,
     * AVX-512, at least 4 channels per group each way; F(2x2) or F(4x4) for
     * each of the forward and dx (wino_tiles), dw as the forward. Its dw
     * partial sums are XN * O * Cg floats per slot, one slot per block up to
     * MAX_SLOTS. */
    const int64_t Og = g->O / g->groups;
    p->wino = !p->direct && tg__cpu() == TG_CPU_AVX512 && g->KH == 3 && g->KW == 3 &&
              g->SH == 1 && g->SW == 1 && g->DH == 1 && g->DW == 1 && Cg >= 4 && Og >= 4;
    p->u_elems = p->wv_elems = 0;
    p->wino_m[0] = p->wino_m[1] = 0;
    if (p->wino) {
        wino_geom qf, qd;
        wino_geoms(g, &qf, &qd);
        p->wino_m[0] = (int)qf.m;
        p->wino_m[1] = (int)qd.m;
        int64_t nbf, rf, nbd, rd;
        const int64_t vf = wino_blocking(&qf, g->N, &nbf, &rf);
        const int64_t vd = wino_blocking(&qd, g->N, &nbd, &rd);
        const int64_t units = (g->N + nbf - 1) / nbf * ((qf.TH + rf - 1) / rf);
        p->u_elems = (qf.XN > qd.XN ? qf.XN : qd.XN) * g->O * Cg;
        p->wv_elems = (int64_t)nt * (vf > vd ? vf : vd);
        p->slots = units < MAX_SLOTS ? (units > 0 ? units : 1) : MAX_SLOTS;
        p->dwp_elems = p->slots * qf.XN * g->O * Cg;
        p->dbp_elems = p->slots * g->O;
        p->col_elems = p->yt_elems = 0;
    }
}

/* ------------------------------------------------------ Winograd driver */

/* The forward (dx_pass false: y = corr(x, w) + bias) or the VJP's dx (dx +=
 * corr(dy, w flipped and transposed), or = when acc is false) through
 * Winograd. U: p->u_elems floats
 * for the transformed filters; wv: p->wv_elems floats. Blocks of images (or
 * bands of tile rows of one image) go to threads when there are at least two
 * per thread, else they run in turn with the GEMMs threaded inside. Every
 * output element is written by one block. */
static void wino_run(const tg__conv2d_geom *g, const tg__conv2d_plan *pl, bool dx_pass, bool acc,
                     const float *src, const float *w, const float *bias, float *out, float *U,
                     float *wv)
{
#ifdef TG_X86
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups, G = g->groups;
    wino_geom qf, qd;
    wino_geoms(g, &qf, &qd);
    const wino_geom q = dx_pass ? qd : qf;
    int64_t nb, rows;
    const int64_t blk = wino_blocking(&q, g->N, &nb, &rows);
    const int64_t n_bands = (q.TH + rows - 1) / rows, units = (g->N + nb - 1) / nb * n_bands;
    const int64_t v_elems = q.XN * q.Ci * nb * rows * q.TW, ug = q.XN * Og * Cg;
    for (int64_t gi = 0; gi < G; gi++) {
        const float *wg = w + gi * Og * Cg * 9;
        if (dx_pass)
            wino_filter(q.m, Cg, Og, wg + 8, 9, Cg * 9, -3, -1, U + gi * ug);
        else
            wino_filter(q.m, Og, Cg, wg, Cg * 9, 9, 3, 1, U + gi * ug);
    }
    /* Source and output strides: image, and the group's first channel. */
    const int64_t sn = (dx_pass ? g->O : g->C) * q.Hs * q.Ws, sg = q.Ci * q.Hs * q.Ws;
    const int64_t on = (dx_pass ? g->C : g->O) * q.Ho * q.Wo, og = q.Co * q.Ho * q.Wo;
    int nt = units >= 2 * pl->nt ? pl->nt : 1;
    TG_OMP("omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)")
    for (int64_t u = 0; u < units; u++) {
        const int64_t n0 = u / n_bands * nb, nbb = g->N - n0 < nb ? g->N - n0 : nb;
        const int64_t th0 = u % n_bands * rows, th1 = th0 + rows < q.TH ? th0 + rows : q.TH;
        float *V = wv + THREAD_ID() * blk, *M = V + v_elems;
        for (int64_t gi = 0; gi < G; gi++)
            wino_block(&q, src + n0 * sn + gi * sg, sn, U + gi * ug,
                       out + n0 * on + gi * og, on, bias ? bias + gi * Og : NULL, acc, nbb, th0,
                       th1, V, M);
    }
#else
    (void)g, (void)pl, (void)dx_pass, (void)acc, (void)src, (void)w, (void)bias, (void)out,
        (void)U, (void)wv;
#endif
}

/* The VJP's dw through Winograd (see wino_dy_chan): blocks as for the
 * forward, each adding into partial sum S_(b % slots) in block order (one
 * thread per slot); the slots are added in slot order and transformed into
 * dw. wv: p->wv_elems floats; S: p->dwp_elems floats (slots * XN * O * Cg).
 * With db (else NULL), each dy channel's sum (in double) goes into partial
 * sum B_(b % slots) [O] while the channel is in L1 after its transform, and
 * db += the slots in slot order. */
static void wino_dw_run(const tg__conv2d_geom *g, const tg__conv2d_plan *pl, const float *x,
                        const float *dout, float *dw, float *db, float *wv, float *S, double *B)
{
#ifdef TG_X86
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups, G = g->groups;
    wino_geom q, qd;
    wino_geoms(g, &q, &qd);
    int64_t nb, rows;
    const int64_t blk = wino_blocking(&q, g->N, &nb, &rows);
    const int64_t n_bands = (q.TH + rows - 1) / rows, units = (g->N + nb - 1) / nb * n_bands;
    const int64_t slots = pl->slots, XN = q.XN, s_elems = XN * g->O * Cg;
    void (*in_chan)(const wino_geom *, const float *, int64_t, int64_t, float *, int64_t,
                    int64_t) = q.m == 4 ? wino4_in_chan : wino_in_chan;
    void (*dy_chan)(const wino_geom *, const float *, int64_t, int64_t, float *, int64_t,
                    int64_t) = q.m == 4 ? wino4_dy_chan : wino_dy_chan;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    int nt = slots >= 2 * pl->nt ? pl->nt : 1;
    TG_OMP("omp parallel for num_threads(nt) schedule(dynamic, 1) if (nt > 1)")
    for (int64_t sl = 0; sl < slots; sl++) {
        float *V = wv + THREAD_ID() * blk, *Sl = S + sl * s_elems;
        double *Bl = db ? B + sl * g->O : NULL;
        memset(Sl, 0, (size_t)s_elems * sizeof *Sl);
        for (int64_t o = 0; Bl && o < g->O; o++)
            Bl[o] = 0.0;
        for (int64_t u = sl; u < units; u += slots) {
            const int64_t n0 = u / n_bands * nb, nbb = g->N - n0 < nb ? g->N - n0 : nb;
            const int64_t th0 = u % n_bands * rows, th1 = th0 + rows < q.TH ? th0 + rows : q.TH;
            const int64_t nth = th1 - th0, NT = nbb * nth * q.TW;
            float *Y = V + XN * Cg * NT;
            for (int64_t gi = 0; gi < G; gi++) {
                for (int64_t nl = 0; nl < nbb; nl++) {
                    const int64_t t0 = nl * nth * q.TW;
                    for (int64_t c = 0; c < Cg; c++)
                        in_chan(&q, x + ((n0 + nl) * g->C + gi * Cg + c) * HW, th0, th1,
                                V + c * XN * NT, NT, t0);
                    for (int64_t o = 0; o < Og; o++) {
                        const float *dc = dout + ((n0 + nl) * g->O + gi * Og + o) * P;
                        dy_chan(&q, dc, th0, th1, Y + o * XN * NT, NT, t0);
                        if (Bl && th0 == 0) /* once per image: its first band */
                            Bl[gi * Og + o] += sumd(dc, P);
                    }
                }
                tg__gemm_batch_f32(false, true, XN, Og, Cg, NT, 1, Y, XN * NT, NT, V, XN * NT,
                                   NT, 1, Sl + gi * XN * Og * Cg, Cg, Og * Cg);
            }
        }
    }
    /* The slots in slot order (each element's sum in the same order as one
     * slot at a time, vectorised along the elements). */
    for (int64_t sl = 1; sl < slots; sl++)
        for (int64_t k = 0; k < s_elems; k++)
            S[k] += S[sl * s_elems + k];
    for (int64_t gi = 0; gi < G; gi++)
        wino_dw_out(q.m, Og, Cg, S + gi * XN * Og * Cg, dw + gi * Og * Cg * 9);
    for (int64_t o = 0; db && o < g->O; o++) {
        double t = B[o];
        for (int64_t sl = 1; sl < slots; sl++)
            t += B[sl * g->O + o];
        db[o] += (float)t;
    }
#else
    (void)g, (void)pl, (void)x, (void)dout, (void)dw, (void)db, (void)wv, (void)S, (void)B;
#endif
}

/* --------------------------------------------------------------- forward */

/* y[n0 + nl, gi*Og + o, :] = yb [Og, nb*P] (image nl's columns at nl*P) +
 * bias[o]; tasks o over nti threads. */
static void scatter_block(const tg__conv2d_geom *g, const float *yb, const float *bias,
                          int64_t n0, int64_t nb, int64_t gi, float *out, int nti)
{
    const int64_t Og = g->O / g->groups, P = g->OH * g->OW;
    (void)nti;
    TG_OMP("omp parallel for num_threads(nti) schedule(static) if (nti > 1)")
    for (int64_t o = 0; o < Og; o++)
        for (int64_t nl = 0; nl < nb; nl++)
            add_rows(out + ((n0 + nl) * g->O + gi * Og + o) * P, yb + o * nb * P + nl * P,
                     bias ? bias[o] : 0.0f, P);
}

void tg__conv2d_forward_f32(const tg__conv2d_geom *g, const tg__conv2d_plan *pl, const float *x,
                            const float *w, const float *bias, float *out,
                            const tg__conv2d_scratch *s)
{
    if (pl->wino) {
        wino_run(g, pl, false, false, x, w, bias, out, s->u, s->wv);
        return;
    }
    float *col = s->col, *yt = s->yt;
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups, KK = g->KH * g->KW;
    const int64_t Kc = Cg * KK, P = g->OH * g->OW, HW = g->H * g->W, O = g->O;
    const int64_t chunk = pl->chunk, n_chunks = pl->n_chunks, rows = pl->rows;
    const int64_t blk = pl->col_elems / pl->nt_outer, yblk = O * chunk * P;
    const bool ident = is_identity(g);
    const int nto = pl->nt_outer, nti = pl->nt_inner;
    (void)nto;
    TG_OMP("omp parallel for num_threads(nto) schedule(dynamic, 1) if (nto > 1)")
    for (int64_t b = 0; b < n_chunks; b++) {
        const int64_t n0 = b * chunk, nb = g->N - n0 < chunk ? g->N - n0 : chunk;
        float *cb = col + THREAD_ID() * blk;
        float *yb = yt ? yt + THREAD_ID() * yblk : NULL;
        for (int64_t r0 = 0; r0 < g->OH; r0 += rows) {
            const int64_t r1 = r0 + rows < g->OH ? r0 + rows : g->OH, bP = (r1 - r0) * g->OW;
            if (pl->direct) {
                im2col_chan(g, x + n0 * HW, cb, bP, r0, r1);
                dfwd(O, KK, bP, w, bias, cb, out + n0 * O * P + r0 * g->OW, P);
                continue;
            }
            for (int64_t gi = 0; gi < g->groups; gi++) {
                const float *wg = w + gi * Og * Kc;
                if (!ident)
                    im2col_block(g, x, n0, nb, gi, r0, r1, cb, nti);
                if (nb > 1 && !ident) {
                    /* One GEMM for the block, then y (NCHW) = its columns + bias. */
                    tg__gemm_f32(false, false, Og, nb * P, Kc, 1, wg, Kc, cb, nb * P, 0, yb,
                                 nb * P);
                    scatter_block(g, yb, bias ? bias + gi * Og : NULL, n0, nb, gi, out, nti);
                    continue;
                }
                for (int64_t nl = 0; nl < nb; nl++) {
                    float *yg = out + ((n0 + nl) * O + gi * Og) * P + r0 * g->OW;
                    if (ident)
                        tg__gemm_f32(false, false, Og, bP, Kc, 1, wg, Kc,
                                     x + ((n0 + nl) * g->C + gi * Cg) * HW + r0 * g->OW, P, 0,
                                     yg, P);
                    else
                        tg__gemm_f32(false, false, Og, bP, Kc, 1, wg, Kc, cb + nl * bP,
                                     nb * bP, 0, yg, P);
                    if (bias)
                        for (int64_t o = 0; o < Og; o++)
                            addc(yg + o * P, bias[gi * Og + o], bP);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------- VJP */

/* db[o] += the sum of dy[n, o, :] over every image, in double; one thread per
 * o. (For a VJP that needs neither dx nor dw.) */
static void bias_grad(const tg__conv2d_geom *g, int nt, const float *dout, float *db)
{
    const int64_t P = g->OH * g->OW, O = g->O, N = g->N;
    (void)nt;
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (nt > 1)")
    for (int64_t o = 0; o < O; o++) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++)
            s += sumd(dout + (n * O + o) * P, P);
        db[o] += (float)s;
    }
}

/* One block's VJP: images [n0, n0 + nb) (one image when cut into bands).
 * dwp, dbp: the slot's partial sums (NULL when not wanted). The direct path
 * (C = 1) correlates x with dy for dw and sums w^T dy for dx; the GEMM path
 * takes dy' from dy (a copy only for blocks of several images). */
static void block_vjp(const tg__conv2d_geom *g, const tg__conv2d_plan *pl, const float *x,
                      const float *w, const float *dout, float *dx, float *dwp, double *dbp,
                      int64_t n0, int64_t nb, float *cb, float *dyt)
{
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups, KK = g->KH * g->KW;
    const int64_t Kc = Cg * KK, P = g->OH * g->OW, O = g->O, OW = g->OW, HW = g->H * g->W;
    const int nti = pl->nt_inner;
    /* db, and dy' [O, nb*P] (row o holds dy[n, o, :] of the block's images)
     * for blocks of several images; one image's dy is that matrix already. */
    const float *dys = dout + n0 * O * P;
    int64_t lda = P;
    (void)nti;
    TG_OMP("omp parallel for num_threads(nti) schedule(static) if (nti > 1)")
    for (int64_t o = 0; o < O; o++) {
        for (int64_t nl = 0; nl < nb; nl++) {
            const float *src = dout + ((n0 + nl) * O + o) * P;
            if (nb > 1)
                memcpy(dyt + o * nb * P + nl * P, src, (size_t)P * sizeof *src);
            if (dbp)
                dbp[o] += sumd(src, P);
        }
    }
    if (nb > 1) {
        dys = dyt;
        lda = nb * P;
    }
    if (!dx && !dwp)
        return;
    for (int64_t r0 = 0; r0 < g->OH; r0 += pl->rows) {
        const int64_t r1 = r0 + pl->rows < g->OH ? r0 + pl->rows : g->OH, bP = (r1 - r0) * OW;
        const int64_t ld = nb * bP;
        const float *dyb = dys + r0 * OW; /* nb > 1 only without bands: r0 == 0 */
        if (pl->direct) {
            if (dwp) {
                im2col_chan(g, x + n0 * HW, cb, bP, r0, r1);
                dwk(O, KK, bP, dyb, P, cb, dwp);
            }
            if (dx) {
                dcol(O, KK, bP, w, dyb, P, cb);
                col2im_chan(g, cb, bP, dx + n0 * HW, r0, r1);
            }
            continue;
        }
        for (int64_t gi = 0; gi < g->groups; gi++) {
            const float *dyg = dyb + gi * Og * lda, *wg = w + gi * Og * Kc;
            if (dwp) {
                im2col_block(g, x, n0, nb, gi, r0, r1, cb, nti);
                tg__gemm_f32(false, true, Og, Kc, ld, 1, dyg, lda, cb, ld, 1, dwp + gi * Og * Kc,
                             Kc);
            }
            if (dx) {
                tg__gemm_f32(true, false, Kc, ld, Og, 1, wg, Kc, dyg, lda, 0, cb, ld);
                col2im_block(g, cb, n0, nb, gi, r0, r1, dx, nti);
            }
        }
    }
}

void tg__conv2d_backward_f32(const tg__conv2d_geom *g, const tg__conv2d_plan *pl, const float *x,
                             const float *w, const float *dout, float *dx, bool dx_acc, float *dw,
                             float *db, const tg__conv2d_scratch *s)
{
    const int64_t Kc = g->C / g->groups * g->KH * g->KW, O = g->O, P = g->OH * g->OW;
    const int64_t chunk = pl->chunk, n_chunks = pl->n_chunks, slots = pl->slots;
    const int nt = pl->nt, nto = pl->nt_outer;
    if (!dx && !dw) {
        if (db)
            bias_grad(g, nt, dout, db);
        return;
    }
    if (pl->wino) {
        if (dx) /* Winograd writes or adds each dx element once: no zero-fill */
            wino_run(g, pl, true, dx_acc, dout, w, NULL, dx, s->u, s->wv);
        if (dw)
            wino_dw_run(g, pl, x, dout, dw, db, s->wv, s->dwp, s->dbp);
        else if (db)
            bias_grad(g, nt, dout, db);
        return;
    }
    if (dx && !dx_acc) /* col2im and the direct dx add into dx */
        memset(dx, 0, (size_t)(g->N * g->C * g->H * g->W) * sizeof *dx);
    const int64_t blk = pl->col_elems / nto, dblk = O * chunk * P;
    (void)nto;
    TG_OMP("omp parallel for num_threads(nto) schedule(dynamic, 1) if (nto > 1)")
    for (int64_t sl = 0; sl < slots; sl++) {
        float *cb = s->col + THREAD_ID() * blk;
        float *dyt = s->yt ? s->yt + THREAD_ID() * dblk : NULL; /* NULL: chunk 1 */
        float *dwp = dw ? s->dwp + sl * O * Kc : NULL;
        double *dbp = db ? s->dbp + sl * O : NULL;
        if (dbp)
            for (int64_t o = 0; o < O; o++)
                dbp[o] = 0.0;
        if (dwp)
            memset(dwp, 0, (size_t)(O * Kc) * sizeof *dwp);
        for (int64_t b = sl; b < n_chunks; b += slots) {
            const int64_t n0 = b * chunk, nb = g->N - n0 < chunk ? g->N - n0 : chunk;
            block_vjp(g, pl, x, w, dout, dx, dwp, dbp, n0, nb, cb, dyt);
        }
    }
    /* The slots, in slot order. */
    if (dw) {
        const int64_t n_dw = O * Kc;
        TG_OMP("omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n_dw > 4096)")
        for (int64_t k = 0; k < n_dw; k++) {
            float t = s->dwp[k];
            for (int64_t sl = 1; sl < slots; sl++)
                t += s->dwp[sl * n_dw + k];
            dw[k] += t;
        }
    }
    if (db)
        for (int64_t o = 0; o < O; o++) {
            double t = s->dbp[o];
            for (int64_t sl = 1; sl < slots; sl++)
                t += s->dbp[sl * O + o];
            db[o] += (float)t;
        }
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
