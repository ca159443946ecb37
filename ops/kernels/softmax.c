/* Softmax, log-softmax and softmax cross-entropy loops (see softmax.h). Each
 * kernel is written once as a macro over the element type T and its exp, and
 * instantiated for float (sums in double) and double. The graph-side op
 * definitions are in ops/softmax.c and ops/loss.c.
 *
 * Two loop shapes: a softmax over the last axis (inner == 1) walks contiguous
 * rows; over any other axis it walks blocks of up to BLK neighbouring inner
 * positions at once, so the innermost loop is contiguous and no scratch memory
 * is needed beyond the stack.
 *
 * Speed: float32 uses exp_f32 below, a branch-free exp evaluated in double
 * that vectorises (at most 1 ulp from the correctly rounded e^x, exact at 0,
 * +-inf and NaN), instead of libm's scalar expf; float64 keeps libm's exp.
 * The float32 loops run under `omp simd` in three copies (AVX-512, AVX2,
 * generic x86-64) picked at run time by tg__cpu(); all copies do the same
 * IEEE operations in the same order (no FMA contraction), so they give the
 * same bits. Row maxima and row sums use 16 lanes in a fixed order (LANE_*),
 * the same on every copy. Rows are split between OpenMP threads for large
 * inputs, each row computed by one thread, and the loss total adds the rows in
 * order, so results do not depend on the thread count. */
#include "softmax.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BLK 64 /* inner positions processed together on a non-last axis */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

#if TG_HAVE_X86
#include <immintrin.h>
#endif

/* ----------------------------------------------------------- float32 exp */

/* e^x for a float x, in double: n = round(x / ln 2) by the 1.5 * 2^52 trick,
 * r = x - n ln 2 (|r| <= 0.347, error ~1e-16), e^r by its degree-8 Taylor
 * polynomial (truncation < 3e-10 relative; Estrin's scheme), times 2^n built
 * in the exponent bits, rounded once to float. x is first clamped to [-104, 89]: beyond, the
 * float result is 0 or +inf either way (e^-104 < 2^-150, e^89 > FLT_MAX), and
 * the clamp keeps n in range; the compares let NaN through, and NaN stays NaN.
 * Every step is a plain IEEE operation, so the scalar and vector copies agree
 * bit for bit; e^0 is exactly 1. Measured: at most 1 ulp from (float)exp(x)
 * over every 9973rd float32 bit pattern. */
NO_TRAP static inline float exp_f32(float xf)
{
    xf = xf < -104.0f ? -104.0f : xf;
    xf = xf > 89.0f ? 89.0f : xf;
    const double x = (double)xf, magic = 0x1.8p52;
    const double t = x * 0x1.71547652b82fep0 + magic; /* x / ln 2 + 1.5 * 2^52 */
    const double n = t - magic;
    const double r = x - n * 0x1.62e42fefa39efp-1;    /* x - n ln 2 */
    /* Estrin's scheme: the same polynomial in a shallow dependency tree, so a
     * short row is not held up by a long chain of multiply-adds. */
    const double r2 = r * r, r4 = r2 * r2;
    const double p01 = 1.0 + r, p23 = 0.5 + r * (1.0 / 6), p45 = 1.0 / 24 + r * (1.0 / 120);
    const double p67 = 1.0 / 720 + r * (1.0 / 5040);
    const double p = (p01 + r2 * p23) + r4 * ((p45 + r2 * p67) + r4 * (1.0 / 40320));
    uint64_t tb, mb;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&mb, &magic, sizeof mb);
    const uint64_t sb = (tb - mb + 1023u) << 52; /* 2^n, n in [-151, 129] */
    double s;
    memcpy(&s, &sb, sizeof s);
    return (float)(p * s);
}

#define EXP_float exp_f32
#define EXP_double exp

/* ----------------------------------------------------------- row helpers */

/* LANE_MAX: the largest of x[0..C) (-inf for C == 0) over 16 lanes. A NaN
 * anywhere ends up in the sums below, so the whole row becomes NaN either way.
 * LANE_SUM: sum_{c < C} (double)(E) with lane k adding the c = k (mod 16)
 * terms in order (the last, partial block too), then a pairwise tree over the
 * lanes: the same order on every copy, so two calls agree bit for bit.
 * EXP_BLOCK: e[k] = EXP(x[c0 + k] - m) for the 16 positions of the block at
 * c0; in the last, partial block the positions past C are computed from m
 * itself (e = 1, never read or stored), so even short rows take the vector
 * code, not a scalar exp per element. */
#define LANES 16
/* The pairwise tree over 16 lanes: lanes k and k + 8 first, then k and k + 4,
 * k and k + 2, then the last two (written out, so it compiles to straight
 * adds). */
#define TREE16(l)                                                                                  \
    ((((l[0] + l[8]) + (l[4] + l[12])) + ((l[2] + l[10]) + (l[6] + l[14]))) +                      \
     (((l[1] + l[9]) + (l[5] + l[13])) + ((l[3] + l[11]) + (l[7] + l[15]))))
#define LANE_MAX(T, x, C, out, PADLOAD)                                                            \
    do {                                                                                           \
        T l_[LANES];                                                                               \
        for (int k_ = 0; k_ < LANES; k_++)                                                         \
            l_[k_] = (T)-INFINITY;                                                                 \
        int64_t c0_ = 0;                                                                           \
        for (; c0_ + LANES <= (C); c0_ += LANES) {                                                 \
            VSIMD                                                                                  \
            for (int k_ = 0; k_ < LANES; k_++)                                                     \
                l_[k_] = (x)[c0_ + k_] > l_[k_] ? (x)[c0_ + k_] : l_[k_];                          \
        }                                                                                          \
        if (c0_ < (C)) {                                                                           \
            T t_[LANES];                                                                           \
            PADLOAD(t_, (x) + c0_, (C) - c0_, (T)-INFINITY);                                       \
            VSIMD                                                                                  \
            for (int k_ = 0; k_ < LANES; k_++)                                                     \
                l_[k_] = t_[k_] > l_[k_] ? t_[k_] : l_[k_];                                        \
        }                                                                                          \
        for (int k_ = 0; k_ < 8; k_++)                                                             \
            l_[k_] = l_[k_ + 8] > l_[k_] ? l_[k_ + 8] : l_[k_];                                    \
        for (int k_ = 0; k_ < 4; k_++)                                                             \
            l_[k_] = l_[k_ + 4] > l_[k_] ? l_[k_ + 4] : l_[k_];                                    \
        for (int k_ = 0; k_ < 2; k_++)                                                             \
            l_[k_] = l_[k_ + 2] > l_[k_] ? l_[k_ + 2] : l_[k_];                                    \
        (out) = l_[1] > l_[0] ? l_[1] : l_[0];                                                     \
    } while (0)

#define LANE_SUM(C, E, out)                                                                        \
    do {                                                                                           \
        double l_[LANES] = {0};                                                                    \
        int64_t c0_ = 0;                                                                           \
        for (; c0_ + LANES <= (C); c0_ += LANES) {                                                 \
            VSIMD                                                                                  \
            for (int k_ = 0; k_ < LANES; k_++) {                                                   \
                const int64_t c = c0_ + k_;                                                        \
                l_[k_] += (double)(E);                                                             \
            }                                                                                      \
        }                                                                                          \
        for (int64_t c = c0_; c < (C); c++)                                                        \
            l_[c - c0_] += (double)(E);                                                            \
        (out) = TREE16(l_);                                                                        \
    } while (0)

#define EXP_BLOCK(T, EXP, e, x, m, c0, C, PADLOAD)                                                 \
    do {                                                                                           \
        if ((c0) + LANES <= (C)) {                                                                 \
            VSIMD                                                                                  \
            for (int k_ = 0; k_ < LANES; k_++)                                                     \
                (e)[k_] = EXP((x)[(c0) + k_] - (m));                                               \
        } else {                                                                                   \
            T t_[LANES];                                                                           \
            PADLOAD(t_, (x) + (c0), (C) - (c0), (m));                                              \
            VSIMD                                                                                  \
            for (int k_ = 0; k_ < LANES; k_++)                                                     \
                (e)[k_] = EXP(t_[k_] - (m));                                                       \
        }                                                                                          \
    } while (0)

/* PADLOAD(t, x, n, pad): t[k] = x[k] for k < n (n < 16), pad beyond, without
 * reading past x[n - 1]. The vector copies use one masked load and full
 * vector stores, so the loop that reads t next does not stall on a store
 * buffer of 16 scalar stores (store-to-load forwarding cannot merge them):
 * short rows such as the 10 logits of a classifier depend on it. */
#define DEF_PADLOAD_SCALAR(T, SUF)                                                                 \
    NO_TRAP static inline void padload_##SUF(T *restrict t, const T *restrict x, int64_t n,        \
                                             T pad)                                                \
    {                                                                                              \
        for (int k = 0; k < LANES; k++)                                                            \
            t[k] = k < n ? x[k] : pad;                                                             \
    }
DEF_PADLOAD_SCALAR(float, f32_gen)
DEF_PADLOAD_SCALAR(double, f64)

#if TG_HAVE_X86
ATTR_avx512 NO_TRAP static inline void padload_f32_avx512(float *restrict t,
                                                          const float *restrict x, int64_t n,
                                                          float pad)
{
    const __mmask16 k = (__mmask16)((1u << n) - 1u);
    _mm512_storeu_ps(t, _mm512_mask_loadu_ps(_mm512_set1_ps(pad), k, x));
}

ATTR_avx2 NO_TRAP static inline void padload_f32_avx2(float *restrict t, const float *restrict x,
                                                      int64_t n, float pad)
{
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 p = _mm256_set1_ps(pad);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), iota);
    _mm256_storeu_ps(t, _mm256_blendv_ps(p, _mm256_maskload_ps(x, m0), _mm256_castsi256_ps(m0)));
    if (n > 8) {
        const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n - 8), iota);
        _mm256_storeu_ps(t + 8, _mm256_blendv_ps(p, _mm256_maskload_ps(x + 8, m1),
                                                 _mm256_castsi256_ps(m1)));
    } else {
        _mm256_storeu_ps(t + 8, p);
    }
}
#endif

/* The kernels of one copy: T the element type, SUF its name, ATTR its target,
 * EXP its exp. Each *_rows function does rows [r0, r1) of the outer (or N)
 * dimension; the public functions below split rows between threads. */
#define DEF_SOFTMAX_COPY(T, SUF, ATTR, EXP, PADLOAD)                                               \
    /* m = row max; s = sum exp(x - m) (LANE_SUM's order), storing each exp in y                   \
     * if not NULL. */                                                                             \
    ATTR NO_TRAP static double expsum_##SUF(T *restrict y, const T *restrict x, T m,               \
                                            int64_t C)                                             \
    {                                                                                              \
        double l[LANES] = {0};                                                                     \
        for (int64_t c0 = 0; c0 < C; c0 += LANES) {                                                \
            T e[LANES];                                                                            \
            EXP_BLOCK(T, EXP, e, x, m, c0, C, PADLOAD);                                            \
            if (c0 + LANES <= C) {                                                                 \
                VSIMD                                                                              \
                for (int k = 0; k < LANES; k++)                                                    \
                    l[k] += (double)e[k];                                                          \
                if (y) {                                                                           \
                    VSIMD                                                                          \
                    for (int k = 0; k < LANES; k++)                                                \
                        y[c0 + k] = e[k];                                                          \
                }                                                                                  \
            } else { /* adding +0.0 leaves a lane (a sum of exps, >= +0) as it is */               \
                const int64_t n = C - c0;                                                          \
                VSIMD                                                                              \
                for (int k = 0; k < LANES; k++)                                                    \
                    l[k] += k < n ? (double)e[k] : 0.0;                                            \
                if (y)                                                                             \
                    for (int64_t k = 0; k < n; k++)                                                \
                        y[c0 + k] = e[k];                                                          \
            }                                                                                      \
        }                                                                                          \
        return TREE16(l);                                                                          \
    }                                                                                              \
    ATTR NO_TRAP static T rowmax_##SUF(const T *restrict x, int64_t C)                             \
    {                                                                                              \
        T m;                                                                                       \
        LANE_MAX(T, x, C, m, PADLOAD);                                                             \
        return m;                                                                                  \
    }                                                                                              \
                                                                                                   \
    ATTR NO_TRAP static void softmax_rows_##SUF(T *restrict y, const T *restrict x,                \
                                                int64_t r0, int64_t r1, int64_t C,                 \
                                                int64_t inner)                                     \
    {                                                                                              \
        if (inner == 1) {                                                                          \
            for (int64_t o = r0; o < r1; o++) {                                                    \
                const T *xr = x + o * C;                                                           \
                T *yr = y + o * C;                                                                 \
                const T inv = (T)(1.0 / expsum_##SUF(yr, xr, rowmax_##SUF(xr, C), C));             \
                VSIMD                                                                              \
                for (int64_t c = 0; c < C; c++)                                                    \
                    yr[c] *= inv;                                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = r0; o < r1; o++) {                                                        \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                          \
                const int64_t w = min64(BLK, inner - j0);                                          \
                const T *xb = x + o * C * inner + j0;                                              \
                T *yb = y + o * C * inner + j0;                                                    \
                T m[BLK], inv[BLK];                                                                \
                double s[BLK];                                                                     \
                for (int64_t j = 0; j < w; j++) {                                                  \
                    m[j] = C > 0 ? xb[j] : (T)-INFINITY;                                           \
                    s[j] = 0.0;                                                                    \
                }                                                                                  \
                for (int64_t c = 1; c < C; c++) {                                                  \
                    const T *xc = xb + c * inner;                                                  \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        m[j] = xc[j] > m[j] ? xc[j] : m[j];                                        \
                }                                                                                  \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *xc = xb + c * inner;                                                  \
                    T *yc = yb + c * inner;                                                        \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++) {                                              \
                        const T e = EXP(xc[j] - m[j]);                                             \
                        yc[j] = e;                                                                 \
                        s[j] += (double)e;                                                         \
                    }                                                                              \
                }                                                                                  \
                for (int64_t j = 0; j < w; j++)                                                    \
                    inv[j] = (T)(1.0 / s[j]);                                                      \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    T *yc = yb + c * inner;                                                        \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        yc[j] *= inv[j];                                                           \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    ATTR NO_TRAP static void log_softmax_rows_##SUF(T *restrict y, const T *restrict x,            \
                                                    int64_t r0, int64_t r1, int64_t C,             \
                                                    int64_t inner)                                 \
    {                                                                                              \
        if (inner == 1) {                                                                          \
            for (int64_t o = r0; o < r1; o++) {                                                    \
                const T *xr = x + o * C;                                                           \
                T *yr = y + o * C;                                                                 \
                const T m = rowmax_##SUF(xr, C);                                                   \
                const T ls = (T)log(expsum_##SUF(NULL, xr, m, C));                                 \
                VSIMD                                                                              \
                for (int64_t c = 0; c < C; c++)                                                    \
                    yr[c] = (xr[c] - m) - ls;                                                      \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = r0; o < r1; o++) {                                                        \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                          \
                const int64_t w = min64(BLK, inner - j0);                                          \
                const T *xb = x + o * C * inner + j0;                                              \
                T *yb = y + o * C * inner + j0;                                                    \
                T m[BLK], ls[BLK];                                                                 \
                double s[BLK];                                                                     \
                for (int64_t j = 0; j < w; j++) {                                                  \
                    m[j] = C > 0 ? xb[j] : (T)-INFINITY;                                           \
                    s[j] = 0.0;                                                                    \
                }                                                                                  \
                for (int64_t c = 1; c < C; c++) {                                                  \
                    const T *xc = xb + c * inner;                                                  \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        m[j] = xc[j] > m[j] ? xc[j] : m[j];                                        \
                }                                                                                  \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *xc = xb + c * inner;                                                  \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        s[j] += (double)EXP(xc[j] - m[j]);                                         \
                }                                                                                  \
                for (int64_t j = 0; j < w; j++)                                                    \
                    ls[j] = (T)log(s[j]);                                                          \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *xc = xb + c * inner;                                                  \
                    T *yc = yb + c * inner;                                                        \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        yc[j] = (xc[j] - m[j]) - ls[j];                                            \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* dx += y * (dy - sum dy * y) */                                                              \
    ATTR NO_TRAP static void softmax_bwd_rows_##SUF(T *restrict dx, const T *restrict y,           \
                                                    const T *restrict dy, int64_t r0,              \
                                                    int64_t r1, int64_t C, int64_t inner)          \
    {                                                                                              \
        if (inner == 1) {                                                                          \
            for (int64_t o = r0; o < r1; o++) {                                                    \
                const T *yr = y + o * C, *dyr = dy + o * C;                                        \
                T *dxr = dx + o * C;                                                               \
                double dot;                                                                        \
                LANE_SUM(C, (double)dyr[c] * (double)yr[c], dot);                                  \
                const T d = (T)dot;                                                                \
                VSIMD                                                                              \
                for (int64_t c = 0; c < C; c++)                                                    \
                    dxr[c] += yr[c] * (dyr[c] - d);                                                \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = r0; o < r1; o++) {                                                        \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                          \
                const int64_t w = min64(BLK, inner - j0), base = o * C * inner + j0;               \
                double dot[BLK];                                                                   \
                T d[BLK];                                                                          \
                for (int64_t j = 0; j < w; j++)                                                    \
                    dot[j] = 0.0;                                                                  \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;              \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        dot[j] += (double)dyc[j] * (double)yc[j];                                  \
                }                                                                                  \
                for (int64_t j = 0; j < w; j++)                                                    \
                    d[j] = (T)dot[j];                                                              \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;              \
                    T *dxc = dx + base + c * inner;                                                \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        dxc[j] += yc[j] * (dyc[j] - d[j]);                                         \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* dx += dy - exp(y) * sum dy */                                                               \
    ATTR NO_TRAP static void log_softmax_bwd_rows_##SUF(T *restrict dx, const T *restrict y,       \
                                                        const T *restrict dy, int64_t r0,          \
                                                        int64_t r1, int64_t C, int64_t inner)      \
    {                                                                                              \
        if (inner == 1) {                                                                          \
            for (int64_t o = r0; o < r1; o++) {                                                    \
                const T *yr = y + o * C, *dyr = dy + o * C;                                        \
                T *dxr = dx + o * C;                                                               \
                double sd;                                                                         \
                LANE_SUM(C, dyr[c], sd);                                                           \
                const T s = (T)sd;                                                                 \
                for (int64_t c0 = 0; c0 < C; c0 += LANES) {                                        \
                    T e[LANES];                                                                    \
                    EXP_BLOCK(T, EXP, e, yr, (T)0, c0, C, PADLOAD);                                \
                    const int64_t n = min64(LANES, C - c0);                                        \
                    VSIMD                                                                          \
                    for (int64_t k = 0; k < n; k++)                                                \
                        dxr[c0 + k] += dyr[c0 + k] - e[k] * s;                                     \
                }                                                                                  \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        for (int64_t o = r0; o < r1; o++) {                                                        \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                          \
                const int64_t w = min64(BLK, inner - j0), base = o * C * inner + j0;               \
                double sd[BLK];                                                                    \
                T s[BLK];                                                                          \
                for (int64_t j = 0; j < w; j++)                                                    \
                    sd[j] = 0.0;                                                                   \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *dyc = dy + base + c * inner;                                          \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        sd[j] += (double)dyc[j];                                                   \
                }                                                                                  \
                for (int64_t j = 0; j < w; j++)                                                    \
                    s[j] = (T)sd[j];                                                               \
                for (int64_t c = 0; c < C; c++) {                                                  \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;              \
                    T *dxc = dx + base + c * inner;                                                \
                    VSIMD                                                                          \
                    for (int64_t j = 0; j < w; j++)                                                \
                        dxc[j] += dyc[j] - EXP(yc[j]) * s[j];                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* Hard labels. li[i - r0] = (mx - x[label]) + log sum exp(x - mx): the                        \
     * subtraction of two logits comes first, so huge logits (1e300) lose                          \
     * nothing to the log term. */                                                                 \
    ATTR NO_TRAP static void xent_rows_##SUF(double *restrict li, T *restrict loss,                \
                                             double *restrict mx, double *restrict inv,            \
                                             const T *restrict x,                                  \
                                             const int64_t *restrict labels, int64_t r0,           \
                                             int64_t r1, int64_t C)                                \
    {                                                                                              \
        for (int64_t i = r0; i < r1; i++) {                                                        \
            const T *xr = x + i * C;                                                               \
            const T m = rowmax_##SUF(xr, C);                                                       \
            const double s = expsum_##SUF(NULL, xr, m, C);                                         \
            const double l = ((double)m - (double)xr[labels[i]]) + log(s);                         \
            if (loss)                                                                              \
                loss[i] = (T)l;                                                                    \
            if (mx) {                                                                              \
                mx[i] = (double)m;                                                                 \
                inv[i] = (double)(T)(1.0 / s);                                                     \
            }                                                                                      \
            li[i - r0] = l;                                                                        \
        }                                                                                          \
    }                                                                                              \
    ATTR NO_TRAP static void xent_bwd_rows_##SUF(T *restrict dx, const T *restrict x,              \
                                                 const double *restrict mx,                        \
                                                 const double *restrict inv,                       \
                                                 const int64_t *restrict labels,                   \
                                                 const T *restrict g, int64_t g_stride,            \
                                                 T scale, int64_t r0, int64_t r1, int64_t C)       \
    {                                                                                              \
        for (int64_t i = r0; i < r1; i++) {                                                        \
            const T *xr = x + i * C;                                                               \
            T *dr = dx + i * C;                                                                    \
            const T gi = g[i * g_stride] * scale, m = (T)mx[i], iv = (T)inv[i];                    \
            for (int64_t c0 = 0; c0 < C; c0 += LANES) {                                            \
                T e[LANES];                                                                        \
                EXP_BLOCK(T, EXP, e, xr, m, c0, C, PADLOAD);                                       \
                const int64_t n = min64(LANES, C - c0);                                            \
                VSIMD                                                                              \
                for (int64_t k = 0; k < n; k++)                                                    \
                    dr[c0 + k] += gi * (e[k] * iv);                                                \
            }                                                                                      \
            dr[labels[i]] -= gi;                                                                   \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* Soft targets: li = sum_c t[c] * ((mx - x[c]) + log sum exp(x - mx)). */                     \
    ATTR NO_TRAP static void xent_soft_rows_##SUF(double *restrict li, T *restrict loss,           \
                                                  double *restrict mx, double *restrict inv,       \
                                                  double *restrict logsum,                         \
                                                  const T *restrict x, const T *restrict t,        \
                                                  int64_t r0, int64_t r1, int64_t C)               \
    {                                                                                              \
        for (int64_t i = r0; i < r1; i++) {                                                        \
            const T *xr = x + i * C, *tr = t + i * C;                                              \
            const T m = rowmax_##SUF(xr, C);                                                       \
            const double s = expsum_##SUF(NULL, xr, m, C), ls = log(s);                            \
            double l;                                                                              \
            LANE_SUM(C, (double)tr[c] * (((double)m - (double)xr[c]) + ls), l);                    \
            if (loss)                                                                              \
                loss[i] = (T)l;                                                                    \
            if (mx) {                                                                              \
                mx[i] = (double)m;                                                                 \
                inv[i] = (double)(T)(1.0 / s);                                                     \
                logsum[i] = ls;                                                                    \
            }                                                                                      \
            li[i - r0] = l;                                                                        \
        }                                                                                          \
    }                                                                                              \
    ATTR NO_TRAP static void xent_soft_bwd_rows_##SUF(                                             \
        T *restrict dx, T *restrict dt, const T *restrict x, const T *restrict t,                  \
        const double *restrict mx, const double *restrict inv, const double *restrict logsum,      \
        const T *restrict g, int64_t g_stride, T scale, int64_t r0, int64_t r1, int64_t C)         \
    {                                                                                              \
        for (int64_t i = r0; i < r1; i++) {                                                        \
            const T *xr = x + i * C, *tr = t + i * C;                                              \
            const T gi = g[i * g_stride] * scale, m = (T)mx[i], iv = (T)inv[i];                    \
            if (dx) {                                                                              \
                T *dr = dx + i * C;                                                                \
                double ts;                                                                         \
                LANE_SUM(C, tr[c], ts);                                                            \
                const T tsum = (T)ts;                                                              \
                for (int64_t c0 = 0; c0 < C; c0 += LANES) {                                        \
                    T e[LANES];                                                                    \
                    EXP_BLOCK(T, EXP, e, xr, m, c0, C, PADLOAD);                                   \
                    const int64_t n = min64(LANES, C - c0);                                        \
                    VSIMD                                                                          \
                    for (int64_t k = 0; k < n; k++)                                                \
                        dr[c0 + k] += gi * (e[k] * iv * tsum - tr[c0 + k]);                        \
                }                                                                                  \
            }                                                                                      \
            if (dt) {                                                                              \
                T *dr = dt + i * C;                                                                \
                const T ls = (T)logsum[i];                                                         \
                VSIMD                                                                              \
                for (int64_t c = 0; c < C; c++)                                                    \
                    dr[c] -= gi * ((xr[c] - m) - ls);                                              \
            }                                                                                      \
        }                                                                                          \
    }

/* VSIMD marks the loops to vectorise in the float32 copies; the float64 copy
 * calls libm's exp, which does not vectorise, so it leaves them plain (clang
 * warns about an omp simd loop it cannot vectorise). */
#define VSIMD TG_SIMD
#if TG_HAVE_X86
DEF_SOFTMAX_COPY(float, f32_avx512, ATTR_avx512, EXP_float, padload_f32_avx512)
DEF_SOFTMAX_COPY(float, f32_avx2, ATTR_avx2, EXP_float, padload_f32_avx2)
#endif
DEF_SOFTMAX_COPY(float, f32_gen, ATTR_gen, EXP_float, padload_f32_gen)
#undef VSIMD
#define VSIMD
DEF_SOFTMAX_COPY(double, f64, ATTR_gen, EXP_double, padload_f64)
#undef VSIMD

/* The float32 copy of kernel `fn` for this CPU. */
/* ------------------------------------------------------------ threading */

#define PAR_MIN 65536 /* elements below which one thread does the call */
#define ROW_BLK 256   /* rows per block of the loss total */

/* CALL(r0, r1) over rows [0, rows), split between threads in contiguous
 * ranges when rows * cost elements are many. */
#define PAR_ROWS(rows, cost, CALL)                                                                 \
    do {                                                                                           \
        const int64_t rows_ = (rows);                                                              \
        const int nt_ = tg__threads();                                                             \
        if (rows_ < 2 || nt_ < 2 || rows_ * (cost) < PAR_MIN) {                                    \
            const int64_t r0 = 0, r1 = rows_;                                                      \
            CALL;                                                                                  \
        } else {                                                                                   \
            const int64_t per_ = (rows_ + nt_ - 1) / nt_;                                          \
            TG_OMP("omp parallel for num_threads(nt_) schedule(static)")                           \
            for (int t_ = 0; t_ < nt_; t_++) {                                                     \
                const int64_t r0 = min64(rows_, (int64_t)t_ * per_),                               \
                              r1 = min64(rows_, r0 + per_);                                        \
                if (r0 < r1)                                                                       \
                    CALL;                                                                          \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* The loss kernels: per-row losses of blocks of ROW_BLK rows into li (rows
 * split between threads), then added in row order. */
#define LOSS_TOTAL(N, C, CALL)                                                                     \
    do {                                                                                           \
        double li[ROW_BLK];                                                                        \
        for (int64_t b0 = 0; b0 < (N); b0 += ROW_BLK) {                                            \
            const int64_t b1 = min64((N), b0 + ROW_BLK);                                           \
            PAR_ROWS(b1 - b0, (C), CALL);                                                          \
            for (int64_t i = 0; i < b1 - b0; i++)                                                  \
                total += li[i];                                                                    \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ public API */

void tg__softmax_forward_f32(float *y, const float *x, int64_t outer, int64_t C, int64_t inner)
{
    void (*f)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, int64_t) =
        PICK_F32(softmax_rows);
    PAR_ROWS(outer, C * inner, f(y, x, r0, r1, C, inner));
}

void tg__softmax_forward_f64(double *y, const double *x, int64_t outer, int64_t C, int64_t inner)
{
    PAR_ROWS(outer, C * inner, softmax_rows_f64(y, x, r0, r1, C, inner));
}

void tg__log_softmax_forward_f32(float *y, const float *x, int64_t outer, int64_t C,
                                 int64_t inner)
{
    void (*f)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, int64_t) =
        PICK_F32(log_softmax_rows);
    PAR_ROWS(outer, C * inner, f(y, x, r0, r1, C, inner));
}

void tg__log_softmax_forward_f64(double *y, const double *x, int64_t outer, int64_t C,
                                 int64_t inner)
{
    PAR_ROWS(outer, C * inner, log_softmax_rows_f64(y, x, r0, r1, C, inner));
}

void tg__softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                              int64_t C, int64_t inner)
{
    void (*f)(float *restrict, const float *restrict, const float *restrict, int64_t, int64_t,
              int64_t, int64_t) = PICK_F32(softmax_bwd_rows);
    PAR_ROWS(outer, C * inner, f(dx, y, dy, r0, r1, C, inner));
}

void tg__softmax_backward_f64(double *dx, const double *y, const double *dy, int64_t outer,
                              int64_t C, int64_t inner)
{
    PAR_ROWS(outer, C * inner, softmax_bwd_rows_f64(dx, y, dy, r0, r1, C, inner));
}

void tg__log_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                                  int64_t C, int64_t inner)
{
    void (*f)(float *restrict, const float *restrict, const float *restrict, int64_t, int64_t,
              int64_t, int64_t) = PICK_F32(log_softmax_bwd_rows);
    PAR_ROWS(outer, C * inner, f(dx, y, dy, r0, r1, C, inner));
}

void tg__log_softmax_backward_f64(double *dx, const double *y, const double *dy, int64_t outer,
                                  int64_t C, int64_t inner)
{
    PAR_ROWS(outer, C * inner, log_softmax_bwd_rows_f64(dx, y, dy, r0, r1, C, inner));
}

double tg__xent_forward_f32(float *loss, double *mx, double *inv, const float *x,
                            const int64_t *labels, int64_t N, int64_t C)
{
    void (*f)(double *restrict, float *restrict, double *restrict, double *restrict,
              const float *restrict, const int64_t *restrict, int64_t, int64_t, int64_t) =
        PICK_F32(xent_rows);
    double total = 0.0;
    LOSS_TOTAL(N, C, f(li + r0, loss, mx, inv, x, labels, b0 + r0, b0 + r1, C));
    return total;
}

double tg__xent_forward_f64(double *loss, double *mx, double *inv, const double *x,
                            const int64_t *labels, int64_t N, int64_t C)
{
    double total = 0.0;
    LOSS_TOTAL(N, C, xent_rows_f64(li + r0, loss, mx, inv, x, labels, b0 + r0, b0 + r1, C));
    return total;
}

void tg__xent_backward_f32(float *dx, const float *x, const double *mx, const double *inv,
                           const int64_t *labels, const float *g, int64_t g_stride, float scale,
                           int64_t N, int64_t C)
{
    void (*f)(float *restrict, const float *restrict, const double *restrict,
              const double *restrict, const int64_t *restrict, const float *restrict, int64_t,
              float, int64_t, int64_t, int64_t) = PICK_F32(xent_bwd_rows);
    PAR_ROWS(N, C, f(dx, x, mx, inv, labels, g, g_stride, scale, r0, r1, C));
}

void tg__xent_backward_f64(double *dx, const double *x, const double *mx, const double *inv,
                           const int64_t *labels, const double *g, int64_t g_stride,
                           double scale, int64_t N, int64_t C)
{
    PAR_ROWS(N, C, xent_bwd_rows_f64(dx, x, mx, inv, labels, g, g_stride, scale, r0, r1, C));
}

double tg__xent_soft_forward_f32(float *loss, double *mx, double *inv, double *logsum,
                                 const float *x, const float *t, int64_t N, int64_t C)
{
    void (*f)(double *restrict, float *restrict, double *restrict, double *restrict,
              double *restrict, const float *restrict, const float *restrict, int64_t, int64_t,
              int64_t) = PICK_F32(xent_soft_rows);
    double total = 0.0;
    LOSS_TOTAL(N, C, f(li + r0, loss, mx, inv, logsum, x, t, b0 + r0, b0 + r1, C));
    return total;
}

double tg__xent_soft_forward_f64(double *loss, double *mx, double *inv, double *logsum,
                                 const double *x, const double *t, int64_t N, int64_t C)
{
    double total = 0.0;
    LOSS_TOTAL(N, C,
               xent_soft_rows_f64(li + r0, loss, mx, inv, logsum, x, t, b0 + r0, b0 + r1, C));
    return total;
}

void tg__xent_soft_backward_f32(float *dx, float *dt, const float *x, const float *t,
                                const double *mx, const double *inv, const double *logsum,
                                const float *g, int64_t g_stride, float scale, int64_t N,
                                int64_t C)
{
    void (*f)(float *restrict, float *restrict, const float *restrict, const float *restrict,
              const double *restrict, const double *restrict, const double *restrict,
              const float *restrict, int64_t, float, int64_t, int64_t, int64_t) =
        PICK_F32(xent_soft_bwd_rows);
    PAR_ROWS(N, C, f(dx, dt, x, t, mx, inv, logsum, g, g_stride, scale, r0, r1, C));
}

void tg__xent_soft_backward_f64(double *dx, double *dt, const double *x, const double *t,
                                const double *mx, const double *inv, const double *logsum,
                                const double *g, int64_t g_stride, double scale, int64_t N,
                                int64_t C)
{
    PAR_ROWS(N, C,
             xent_soft_bwd_rows_f64(dx, dt, x, t, mx, inv, logsum, g, g_stride, scale, r0, r1,
                                    C));
}
