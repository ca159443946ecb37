/* Pooling loops (see pool.h): max and average, forward and VJP, both dtypes
 * from one macro body each. The general path clips each window's taps to the
 * plane once per window; the common 2x2 / stride 2 / no padding case has its
 * own loop over the windows that lie fully inside the plane, and the ceil-mode
 * edge windows fall back to the general path. Threads: forward splits output
 * rows, backward splits planes (windows of one plane may overlap, so one
 * thread owns each plane of dx); every element is computed by one thread in a
 * fixed order, so results do not depend on the thread count.
 *
 * Speed (float32 max pooling, the CNN's case): the 2x2 / stride 2 window is
 * written branch-free (a compare and a select per tap: random data defeats a
 * branch predictor) under `omp simd`, and compiled three times, for AVX-512,
 * AVX2 and generic x86-64, picked at run time (tg__cpu()); every copy does the
 * same comparisons, so all give the same values and argmax. The backward
 * stays the scatter through the saved argmax. No graph code here. */
#include "pool.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A loop split between the kernels' threads when `cond` holds; nothing
 * without OpenMP (so OMP=0 builds see no unknown pragma). */
#ifdef _OPENMP
#define PRAGMA_(x) _Pragma(#x)
#define OMP_FOR(cond)                                                                              \
    PRAGMA_(omp parallel for num_threads(tg__threads()) schedule(static) if (cond))
#else
#define OMP_FOR(cond)
#endif

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* The taps k in [0, K) of a window starting at s with dilation D that land in
 * [0, n): k in [*k0, *k1) (empty when *k0 == *k1). */
static inline void tap_range(int64_t s, int64_t K, int64_t D, int64_t n, int64_t *k0,
                             int64_t *k1)
{
    int64_t lo = s >= 0 ? 0 : (-s + D - 1) / D;
    int64_t hi = n - s <= 0 ? 0 : (n - s + D - 1) / D;
    hi = imin(hi, K);
    *k0 = lo;
    *k1 = imax(hi, lo);
}

/* True for the unrolled 2x2 / stride 2 path (padding 0, dilation 1). */
static inline bool is_2x2s2(const tg__pool2d_geom *g)
{
    return g->KH == 2 && g->KW == 2 && g->SH == 2 && g->SW == 2 && g->PH == 0 && g->PW == 0 &&
           g->DH == 1 && g->DW == 1;
}

/* ------------------------------------------------------------- dispatch */

#if TG_HAVE_X86
#include <immintrin.h>
#endif

/* ------------------------------------------------------------ max forward */

/* One window: the running best is replaced when a tap is greater or NaN.
 * Starting from -inf with the first in-plane tap's index reproduces PyTorch:
 * a window of -inf values routes to its first tap. */
#define MAX_WINDOW(T)                                                                              \
    do {                                                                                           \
        int64_t hs = oh * g->SH - g->PH, ws = ow * g->SW - g->PW;                                  \
        int64_t kx0, kx1;                                                                          \
        tap_range(ws, g->KW, g->DW, W, &kx0, &kx1);                                                \
        T best = (T)-INFINITY;                                                                     \
        int64_t bi = -1;                                                                           \
        if (ky0 < ky1 && kx0 < kx1) {                                                              \
            bi = (hs + ky0 * g->DH) * W + ws + kx0 * g->DW;                                        \
            for (int64_t ky = ky0; ky < ky1; ky++) {                                               \
                const int64_t rowi = (hs + ky * g->DH) * W + ws;                                   \
                for (int64_t kx = kx0; kx < kx1; kx++) {                                           \
                    T v = xp[rowi + kx * g->DW];                                                   \
                    if (v > best || isnan(v)) {                                                    \
                        best = v;                                                                  \
                        bi = rowi + kx * g->DW;                                                    \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        yp[oh * OW + ow] = best;                                                                   \
        if (ap)                                                                                    \
            ap[oh * OW + ow] = (int32_t)bi;                                                        \
    } while (0)

/* "v replaces the best m": greater, or NaN (the running best keeps the first
 * of equal maxima and ends on the last NaN). Branch-free in the 2x2 loops. */
#define BEATS(v, m) ((v) > (m) || isnan(v))

/* The 2x2 windows ow in [0, n) of one output row whose top input row is r0
 * (flat index base in its plane) and bottom row r1 = r0 + W: y[ow] and, when
 * a is not NULL, a[ow] = the winner's flat index. Plain C, each tap a compare
 * and a select, so the loop vectorises under omp simd. */
#define MAX2X2_ROW(T)                                                                              \
    do {                                                                                           \
        if (a) {                                                                                   \
            TG_SIMD                                                                                \
            for (int64_t ow = 0; ow < n; ow++) {                                                   \
                const int64_t c = 2 * ow;                                                          \
                T m = r0[c], v;                                                                    \
                int32_t k = 0;                                                                     \
                bool t;                                                                            \
                v = r0[c + 1], t = BEATS(v, m), m = t ? v : m, k = t ? 1 : k;                      \
                v = r1[c], t = BEATS(v, m), m = t ? v : m, k = t ? W : k;                          \
                v = r1[c + 1], t = BEATS(v, m), m = t ? v : m, k = t ? W + 1 : k;                  \
                y[ow] = m;                                                                         \
                a[ow] = base + 2 * (int32_t)ow + k;                                                \
            }                                                                                      \
        } else {                                                                                   \
            TG_SIMD                                                                                \
            for (int64_t ow = 0; ow < n; ow++) {                                                   \
                const int64_t c = 2 * ow;                                                          \
                T m = r0[c], v;                                                                    \
                v = r0[c + 1], m = BEATS(v, m) ? v : m;                                            \
                v = r1[c], m = BEATS(v, m) ? v : m;                                                \
                v = r1[c + 1], m = BEATS(v, m) ? v : m;                                            \
                y[ow] = m;                                                                         \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define DEF_MAX2X2_GEN(T, SUF)                                                                     \
    NO_TRAP static inline void max2x2_row_##SUF(T *restrict y, int32_t *restrict a,               \
                                                const T *restrict r0, const T *restrict r1,        \
                                                int64_t n, int32_t base, int32_t W)                \
    {                                                                                              \
        MAX2X2_ROW(T);                                                                             \
    }
DEF_MAX2X2_GEN(float, f32_gen)
DEF_MAX2X2_GEN(double, f64)

#if TG_HAVE_X86
/* AVX-512: 16 windows per step from two 16-float loads of each input row,
 * split into even and odd columns by a two-source permute; the row's tail is
 * one masked step (masked-off lanes load nothing and store nothing), so the
 * CNN's 14- and 7-wide rows take a single step each. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline)) NO_TRAP
static inline void max2x2_row_f32_avx512(float *restrict y, int32_t *restrict a,
                                         const float *restrict r0, const float *restrict r1,
                                         int64_t n, int32_t base, int32_t W)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i two_iota = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                               28, 30);
    const __m512i k1 = _mm512_set1_epi32(1), kw = _mm512_set1_epi32(W),
                  kw1 = _mm512_set1_epi32(W + 1);
    for (int64_t o = 0; o < n; o += 16) {
        const int64_t left = n - o;
        const __mmask16 mo = (__mmask16)(left >= 16 ? 0xFFFFu : (1u << left) - 1u);
        const int64_t in_lo = left >= 8 ? 16 : 2 * left;
        const int64_t in_hi = left >= 16 ? 16 : left > 8 ? 2 * (left - 8) : 0;
        const __mmask16 ml = (__mmask16)(in_lo >= 16 ? 0xFFFFu : (1u << in_lo) - 1);
        const __mmask16 mh = (__mmask16)(in_hi >= 16 ? 0xFFFFu : (1u << in_hi) - 1);
        const float *p0 = r0 + 2 * o, *p1 = r1 + 2 * o;
        const __m512 a0 = _mm512_maskz_loadu_ps(ml, p0), a1 = _mm512_maskz_loadu_ps(mh, p0 + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(ml, p1), b1 = _mm512_maskz_loadu_ps(mh, p1 + 16);
        __m512 m = _mm512_permutex2var_ps(a0, ev, a1), v;
        __m512i k = _mm512_setzero_si512();
        __mmask16 t;
#define STEP512(VEC, KV)                                                                           \
    v = (VEC);                                                                                     \
    t = (__mmask16)(_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) |                                         \
                    _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));                                       \
    m = _mm512_mask_mov_ps(m, t, v);                                                               \
    k = _mm512_mask_mov_epi32(k, t, (KV));
        STEP512(_mm512_permutex2var_ps(a0, od, a1), k1)
        STEP512(_mm512_permutex2var_ps(b0, ev, b1), kw)
        STEP512(_mm512_permutex2var_ps(b0, od, b1), kw1)
#undef STEP512
        _mm512_mask_storeu_ps(y + o, mo, m);
        if (a) {
            const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * (int32_t)o), two_iota);
            _mm512_mask_storeu_epi32(a + o, mo, _mm512_add_epi32(at, k));
        }
    }
}

/* AVX2: 8 windows per step (shuffle the even / odd columns of two 8-float
 * loads, then restore their order across the 128-bit halves); the row's tail
 * is one step with masked loads and stores (masked-off lanes read and write
 * nothing), so the CNN's 14- and 7-wide rows stay in vector code. */
__attribute__((target("avx2"), always_inline)) NO_TRAP static inline void
max2x2_row_f32_avx2(float *restrict y, int32_t *restrict a, const float *restrict r0,
                    const float *restrict r1, int64_t n, int32_t base, int32_t W)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i two_iota = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i k1 = _mm256_set1_epi32(1), kw = _mm256_set1_epi32(W),
                  kw1 = _mm256_set1_epi32(W + 1);
    for (int64_t o = 0; o < n; o += 8) {
        const int64_t left = n - o;
        const float *p0 = r0 + 2 * o, *p1 = r1 + 2 * o;
        __m256 a0, a1, b0, b1;
        __m256i mo = _mm256_set1_epi32(-1);
        if (left >= 8) {
            a0 = _mm256_loadu_ps(p0), a1 = _mm256_loadu_ps(p0 + 8);
            b0 = _mm256_loadu_ps(p1), b1 = _mm256_loadu_ps(p1 + 8);
        } else { /* input lanes j < 2 left; the second half only if left > 4 */
            const int in = (int)(2 * left);
            const __m256i ml = _mm256_cmpgt_epi32(_mm256_set1_epi32(in), iota);
            a0 = _mm256_maskload_ps(p0, ml), b0 = _mm256_maskload_ps(p1, ml);
            if (in > 8) {
                const __m256i mh = _mm256_cmpgt_epi32(_mm256_set1_epi32(in - 8), iota);
                a1 = _mm256_maskload_ps(p0 + 8, mh), b1 = _mm256_maskload_ps(p1 + 8, mh);
            } else {
                a1 = b1 = _mm256_setzero_ps();
            }
            mo = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), iota);
        }
#define EVEN2(x0, x1)                                                                              \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0x88)), 0xD8))
#define ODD2(x0, x1)                                                                               \
    _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(x0, x1, 0xDD)), 0xD8))
        __m256 m = EVEN2(a0, a1), v, t;
        __m256i k = _mm256_setzero_si256();
#define STEP256(VEC, KV)                                                                           \
    v = (VEC);                                                                                     \
    t = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));          \
    m = _mm256_blendv_ps(m, v, t);                                                                 \
    k = _mm256_castps_si256(                                                                       \
        _mm256_blendv_ps(_mm256_castsi256_ps(k), _mm256_castsi256_ps(KV), t));
        STEP256(ODD2(a0, a1), k1)
        STEP256(EVEN2(b0, b1), kw)
        STEP256(ODD2(b0, b1), kw1)
#undef STEP256
#undef EVEN2
#undef ODD2
        const __m256i at = _mm256_add_epi32(
            _mm256_add_epi32(_mm256_set1_epi32(base + 2 * (int32_t)o), two_iota), k);
        if (left >= 8) {
            _mm256_storeu_ps(y + o, m);
            if (a)
                _mm256_storeu_si256((__m256i *)(void *)(a + o), at);
        } else {
            _mm256_maskstore_ps(y + o, mo, m);
            if (a)
                _mm256_maskstore_epi32((int *)(void *)(a + o), mo, at);
        }
    }
}
#endif

/* Output rows [r0, r1) of the P * OH rows: the fully inside 2x2 windows of a
 * row through ROW2X2, the rest (other geometries, ceil-mode edges) window by
 * window. */
#define MAXPOOL_ROWS(T, ROW2X2)                                                                    \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                      \
    const bool fast = is_2x2s2(g);                                                                 \
    /* Outputs whose 2x2 window lies inside the plane (ceil mode adds edge ones). */               \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;                \
    int64_t p = row0 / OH, oh = row0 % OH;                                                         \
    for (int64_t row = row0; row < row1; row++) {                                                  \
        const T *xp = x + p * H * W;                                                               \
        T *yp = y + p * OH * OW;                                                                   \
        int32_t *ap = argmax ? argmax + p * OH * OW : NULL;                                        \
        int64_t ow = 0;                                                                            \
        if (oh < fh) {                                                                             \
            const int64_t base = 2 * oh * W;                                                       \
            ROW2X2(yp + oh * OW, ap ? ap + oh * OW : NULL, xp + base, xp + base + W, fw,           \
                   (int32_t)base, (int32_t)W);                                                     \
            ow = fw;                                                                               \
        }                                                                                          \
        if (ow < OW) {                                                                             \
            int64_t ky0, ky1;                                                                      \
            tap_range(oh * g->SH - g->PH, g->KH, g->DH, H, &ky0, &ky1);                            \
            for (; ow < OW; ow++)                                                                  \
                MAX_WINDOW(T);                                                                     \
        }                                                                                          \
        if (++oh == OH) {                                                                          \
            oh = 0;                                                                                \
            p++;                                                                                   \
        }                                                                                          \
    }

/* The rows of one copy, with its 2x2 row kernel inlined (its constants are
 * then set up once per block of rows, not once per 7- or 14-wide row). */
#define DEF_MAXPOOL_ROWS(T, SUF, ATTR, ROW2X2)                                                     \
    ATTR NO_TRAP static void maxpool_rows_##SUF(T *y, int32_t *argmax, const T *x,                 \
                                                const tg__pool2d_geom *g, int64_t row0,            \
                                                int64_t row1)                                      \
    {                                                                                              \
        MAXPOOL_ROWS(T, ROW2X2)                                                                    \
    }

#if TG_HAVE_X86
DEF_MAXPOOL_ROWS(float, f32_avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))),
                 max2x2_row_f32_avx512)
DEF_MAXPOOL_ROWS(float, f32_avx2, __attribute__((target("avx2"))), max2x2_row_f32_avx2)
#endif
DEF_MAXPOOL_ROWS(float, f32_gen, , max2x2_row_f32_gen)
DEF_MAXPOOL_ROWS(double, f64, , max2x2_row_f64)

typedef void (*maxpool_rows_fn_f32)(float *, int32_t *, const float *, const tg__pool2d_geom *,
                                    int64_t, int64_t);

static maxpool_rows_fn_f32 pick_maxpool_rows_f32(void)
{
#if TG_HAVE_X86
    const tg__cpu_level l = tg__cpu();
    if (l == TG_CPU_AVX512)
        return maxpool_rows_f32_avx512;
    if (l == TG_CPU_AVX2)
        return maxpool_rows_f32_avx2;
#endif
    return maxpool_rows_f32_gen;
}

/* Output rows go to threads in blocks of about 4096 outputs. */
#define MAXPOOL_FORWARD(CALL)                                                                      \
    const int64_t R = P * g->OH, blk = imax(1, 4096 / g->OW), nb = (R + blk - 1) / blk;            \
    OMP_FOR(P * g->OH * g->OW > 16384)                                                             \
    for (int64_t b = 0; b < nb; b++)                                                               \
        CALL;

void tg__maxpool2d_forward_f32(float *y, int32_t *argmax, const float *x, int64_t P,
                               const tg__pool2d_geom *g)
{
    const maxpool_rows_fn_f32 f = pick_maxpool_rows_f32();
    MAXPOOL_FORWARD(f(y, argmax, x, g, b * blk, imin(R, (b + 1) * blk)))
}

void tg__maxpool2d_forward_f64(double *y, int32_t *argmax, const double *x, int64_t P,
                               const tg__pool2d_geom *g)
{
    MAXPOOL_FORWARD(maxpool_rows_f64(y, argmax, x, g, b * blk, imin(R, (b + 1) * blk)))
}

/* ----------------------------------------------------------- max backward */

/* The scatter dx[argmax[o]] += dy[o], plane by plane in output order; for a
 * first contribution (!acc) each plane is zeroed just before its scatter,
 * while it sits in L1, instead of in a separate pass over all of dx. (A
 * gather over each 2x2 window's taps vectorises, but the CNN's rows are only
 * 14 and 7 windows wide, and it measured slower than this loop.) */
#define MAXPOOL_BACKWARD(T)                                                                        \
    const int64_t HW = g->H * g->W, O = g->OH * g->OW;                                             \
    OMP_FOR(P * O > 32768)                                                                         \
    for (int64_t p = 0; p < P; p++) {                                                              \
        T *dxp = dx + p * HW;                                                                      \
        const T *dyp = dy + p * O;                                                                 \
        const int32_t *ap = argmax + p * O;                                                        \
        if (!acc)                                                                                  \
            memset(dxp, 0, (size_t)HW * sizeof *dxp);                                              \
        for (int64_t o = 0; o < O; o++)                                                            \
            if (ap[o] >= 0)                                                                        \
                dxp[ap[o]] += dyp[o];                                                              \
    }

void tg__maxpool2d_backward_f32(float *dx, const float *dy, const int32_t *argmax, int64_t P,
                                const tg__pool2d_geom *g, bool acc)
{
    MAXPOOL_BACKWARD(float)
}

void tg__maxpool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax, int64_t P,
                                const tg__pool2d_geom *g, bool acc)
{
    MAXPOOL_BACKWARD(double)
}

/* -------------------------------------------------------- average pooling */

/* The window of output (oh, ow): its in-plane rows [h0, h1) and columns
 * [w0, w1), and the divisor. PyTorch: clip to the padded plane, take the
 * count_include_pad size, then clip to the plane. */
#define AVG_WINDOW                                                                                 \
    const int64_t hs = oh * g->SH - g->PH, ws = ow * g->SW - g->PW;                                \
    const int64_t he = imin(hs + g->KH, H + g->PH), we = imin(ws + g->KW, W + g->PW);              \
    const int64_t h0 = imax(hs, 0), w0 = imax(ws, 0), h1 = imin(he, H), w1 = imin(we, W);          \
    const int64_t div = exclude_padding ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);

#define AVGPOOL_FORWARD(T)                                                                         \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                      \
    const bool fast = is_2x2s2(g);                                                                 \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;                \
    OMP_FOR(P * OH * OW > 16384)                                                                   \
    for (int64_t row = 0; row < P * OH; row++) {                                                   \
        const int64_t p = row / OH, oh = row % OH;                                                 \
        const T *xp = x + p * H * W;                                                               \
        T *yp = y + p * OH * OW;                                                                   \
        int64_t ow = 0;                                                                            \
        if (oh < fh) {                                                                             \
            const T *r0 = xp + 2 * oh * W, *r1 = r0 + W;                                           \
            for (; ow < fw; ow++) {                                                                \
                const int64_t c = 2 * ow;                                                          \
                double s = (double)r0[c] + (double)r0[c + 1];                                      \
                s += (double)r1[c];                                                                \
                s += (double)r1[c + 1];                                                            \
                yp[oh * OW + ow] = (T)(s / 4.0);                                                   \
            }                                                                                      \
        }                                                                                          \
        for (; ow < OW; ow++) {                                                                    \
            AVG_WINDOW                                                                             \
            double s = 0.0;                                                                        \
            for (int64_t ih = h0; ih < h1; ih++)                                                   \
                for (int64_t iw = w0; iw < w1; iw++)                                               \
                    s += (double)xp[ih * W + iw];                                                  \
            yp[oh * OW + ow] = (h0 < h1 && w0 < w1) ? (T)(s / (double)div) : (T)0;                 \
        }                                                                                          \
    }

void tg__avgpool2d_forward_f32(float *y, const float *x, int64_t P, const tg__pool2d_geom *g,
                               bool exclude_padding)
{
    AVGPOOL_FORWARD(float)
}

void tg__avgpool2d_forward_f64(double *y, const double *x, int64_t P, const tg__pool2d_geom *g,
                               bool exclude_padding)
{
    AVGPOOL_FORWARD(double)
}

#define AVGPOOL_BACKWARD(T)                                                                        \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                      \
    const bool fast = is_2x2s2(g);                                                                 \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;                \
    OMP_FOR(P * OH * OW > 16384)                                                                   \
    for (int64_t p = 0; p < P; p++) {                                                              \
        T *dxp = dx + p * H * W;                                                                   \
        const T *dyp = dy + p * OH * OW;                                                           \
        for (int64_t oh = 0; oh < OH; oh++) {                                                      \
            int64_t ow = 0;                                                                        \
            if (oh < fh) {                                                                         \
                T *r0 = dxp + 2 * oh * W, *r1 = r0 + W;                                            \
                for (; ow < fw; ow++) {                                                            \
                    const int64_t c = 2 * ow;                                                      \
                    const T d = (T)((double)dyp[oh * OW + ow] / 4.0);                              \
                    r0[c] += d;                                                                    \
                    r0[c + 1] += d;                                                                \
                    r1[c] += d;                                                                    \
                    r1[c + 1] += d;                                                                \
                }                                                                                  \
            }                                                                                      \
            for (; ow < OW; ow++) {                                                                \
                AVG_WINDOW                                                                         \
                if (h0 >= h1 || w0 >= w1)                                                          \
                    continue;                                                                      \
                const T d = (T)((double)dyp[oh * OW + ow] / (double)div);                          \
                for (int64_t ih = h0; ih < h1; ih++)                                               \
                    for (int64_t iw = w0; iw < w1; iw++)                                           \
                        dxp[ih * W + iw] += d;                                                     \
            }                                                                                      \
        }                                                                                          \
    }

void tg__avgpool2d_backward_f32(float *dx, const float *dy, int64_t P, const tg__pool2d_geom *g,
                                bool exclude_padding)
{
    AVGPOOL_BACKWARD(float)
}

void tg__avgpool2d_backward_f64(double *dx, const double *dy, int64_t P,
                                const tg__pool2d_geom *g, bool exclude_padding)
{
    AVGPOOL_BACKWARD(double)
}
