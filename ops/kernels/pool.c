/* Pooling loops (see pool.h): max and average, forward and VJP, both dtypes
 * from one macro body each. The general path clips each window's taps to the
 * plane once per window; the common 2x2 / stride 2 / no padding case has an
 * unrolled loop over the windows that lie fully inside the plane, and the
 * ceil-mode edge windows fall back to the general path. Threads: forward
 * splits output rows, backward splits planes (windows of one plane may
 * overlap, so one thread owns each plane of dx); every element is computed by
 * one thread in a fixed order, so results do not depend on the thread count.
 * No graph code here. */
#include "pool.h"
#include "threads.h"

#include <math.h>
#include <stddef.h>

/* A loop split between the kernels' threads when `cond` holds; nothing
 * without OpenMP (so OMP=0 builds see no unknown pragma). */
#ifdef _OPENMP
#define PRAGMA_(x) _Pragma(#x)
#define OMP_FOR(cond)                                                                          \
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

/* ------------------------------------------------------------ max forward */

/* One window: the running best is replaced when a tap is greater or NaN.
 * Starting from -inf with the first in-plane tap's index reproduces PyTorch:
 * a window of -inf values routes to its first tap. */
#define MAX_WINDOW(T)                                                                          \
    do {                                                                                       \
        int64_t hs = oh * g->SH - g->PH, ws = ow * g->SW - g->PW;                              \
        int64_t kx0, kx1;                                                                      \
        tap_range(ws, g->KW, g->DW, W, &kx0, &kx1);                                            \
        T best = (T)-INFINITY;                                                                 \
        int64_t bi = -1;                                                                       \
        if (ky0 < ky1 && kx0 < kx1) {                                                          \
            bi = (hs + ky0 * g->DH) * W + ws + kx0 * g->DW;                                    \
            for (int64_t ky = ky0; ky < ky1; ky++) {                                           \
                const int64_t rowi = (hs + ky * g->DH) * W + ws;                               \
                for (int64_t kx = kx0; kx < kx1; kx++) {                                       \
                    T v = xp[rowi + kx * g->DW];                                               \
                    if (v > best || isnan(v)) {                                                \
                        best = v;                                                              \
                        bi = rowi + kx * g->DW;                                                \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        yp[oh * OW + ow] = best;                                                               \
        if (ap)                                                                                \
            ap[oh * OW + ow] = (int32_t)bi;                                                    \
    } while (0)

/* One 2x2 window at column c of rows r0, r1 (row r0 starts at flat index base). */
#define MAX_2X2(T)                                                                             \
    do {                                                                                       \
        const int64_t c = 2 * ow;                                                              \
        T m = r0[c], v;                                                                        \
        int64_t i = c;                                                                         \
        v = r0[c + 1];                                                                         \
        if (v > m || isnan(v)) {                                                               \
            m = v;                                                                             \
            i = c + 1;                                                                         \
        }                                                                                      \
        v = r1[c];                                                                             \
        if (v > m || isnan(v)) {                                                               \
            m = v;                                                                             \
            i = W + c;                                                                         \
        }                                                                                      \
        v = r1[c + 1];                                                                         \
        if (v > m || isnan(v)) {                                                               \
            m = v;                                                                             \
            i = W + c + 1;                                                                     \
        }                                                                                      \
        yp[oh * OW + ow] = m;                                                                  \
        if (ap)                                                                                \
            ap[oh * OW + ow] = (int32_t)(base + i);                                            \
    } while (0)

#define MAXPOOL_FORWARD(T)                                                                     \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                  \
    const bool fast = is_2x2s2(g);                                                             \
    /* Outputs whose 2x2 window lies inside the plane (ceil mode adds edge ones). */           \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;            \
    OMP_FOR(P * OH * OW > 16384)                                                               \
    for (int64_t row = 0; row < P * OH; row++) {                                               \
        const int64_t p = row / OH, oh = row % OH;                                             \
        const T *xp = x + p * H * W;                                                           \
        T *yp = y + p * OH * OW;                                                               \
        int32_t *ap = argmax ? argmax + p * OH * OW : NULL;                                    \
        int64_t ky0, ky1, ow = 0;                                                              \
        tap_range(oh * g->SH - g->PH, g->KH, g->DH, H, &ky0, &ky1);                            \
        if (oh < fh) {                                                                         \
            const int64_t base = 2 * oh * W;                                                   \
            const T *r0 = xp + base, *r1 = r0 + W;                                             \
            for (; ow < fw; ow++)                                                              \
                MAX_2X2(T);                                                                    \
        }                                                                                      \
        for (; ow < OW; ow++)                                                                  \
            MAX_WINDOW(T);                                                                     \
    }

void tg__maxpool2d_forward_f32(float *y, int32_t *argmax, const float *x, int64_t P,
                               const tg__pool2d_geom *g)
{
    MAXPOOL_FORWARD(float)
}

void tg__maxpool2d_forward_f64(double *y, int32_t *argmax, const double *x, int64_t P,
                               const tg__pool2d_geom *g)
{
    MAXPOOL_FORWARD(double)
}

/* ----------------------------------------------------------- max backward */

#define MAXPOOL_BACKWARD(T)                                                                    \
    const int64_t HW = g->H * g->W, O = g->OH * g->OW;                                         \
    OMP_FOR(P * O > 32768)                                                                     \
    for (int64_t p = 0; p < P; p++) {                                                          \
        T *dxp = dx + p * HW;                                                                  \
        const T *dyp = dy + p * O;                                                             \
        const int32_t *ap = argmax + p * O;                                                    \
        for (int64_t o = 0; o < O; o++)                                                        \
            if (ap[o] >= 0)                                                                    \
                dxp[ap[o]] += dyp[o];                                                          \
    }

void tg__maxpool2d_backward_f32(float *dx, const float *dy, const int32_t *argmax, int64_t P,
                                const tg__pool2d_geom *g)
{
    MAXPOOL_BACKWARD(float)
}

void tg__maxpool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax, int64_t P,
                                const tg__pool2d_geom *g)
{
    MAXPOOL_BACKWARD(double)
}

/* -------------------------------------------------------- average pooling */

/* The window of output (oh, ow): its in-plane rows [h0, h1) and columns
 * [w0, w1), and the divisor. PyTorch: clip to the padded plane, take the
 * count_include_pad size, then clip to the plane. */
#define AVG_WINDOW                                                                             \
    const int64_t hs = oh * g->SH - g->PH, ws = ow * g->SW - g->PW;                            \
    const int64_t he = imin(hs + g->KH, H + g->PH), we = imin(ws + g->KW, W + g->PW);          \
    const int64_t h0 = imax(hs, 0), w0 = imax(ws, 0), h1 = imin(he, H), w1 = imin(we, W);      \
    const int64_t div = exclude_padding ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);

#define AVGPOOL_FORWARD(T)                                                                     \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                  \
    const bool fast = is_2x2s2(g);                                                             \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;            \
    OMP_FOR(P * OH * OW > 16384)                                                               \
    for (int64_t row = 0; row < P * OH; row++) {                                               \
        const int64_t p = row / OH, oh = row % OH;                                             \
        const T *xp = x + p * H * W;                                                           \
        T *yp = y + p * OH * OW;                                                               \
        int64_t ow = 0;                                                                        \
        if (oh < fh) {                                                                         \
            const T *r0 = xp + 2 * oh * W, *r1 = r0 + W;                                       \
            for (; ow < fw; ow++) {                                                            \
                const int64_t c = 2 * ow;                                                      \
                double s = (double)r0[c] + (double)r0[c + 1];                                  \
                s += (double)r1[c];                                                            \
                s += (double)r1[c + 1];                                                        \
                yp[oh * OW + ow] = (T)(s / 4.0);                                               \
            }                                                                                  \
        }                                                                                      \
        for (; ow < OW; ow++) {                                                                \
            AVG_WINDOW                                                                         \
            double s = 0.0;                                                                    \
            for (int64_t ih = h0; ih < h1; ih++)                                               \
                for (int64_t iw = w0; iw < w1; iw++)                                           \
                    s += (double)xp[ih * W + iw];                                              \
            yp[oh * OW + ow] = (h0 < h1 && w0 < w1) ? (T)(s / (double)div) : (T)0;             \
        }                                                                                      \
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

#define AVGPOOL_BACKWARD(T)                                                                    \
    const int64_t H = g->H, W = g->W, OH = g->OH, OW = g->OW;                                  \
    const bool fast = is_2x2s2(g);                                                             \
    const int64_t fh = fast ? imin(OH, H / 2) : 0, fw = fast ? imin(OW, W / 2) : 0;            \
    OMP_FOR(P * OH * OW > 16384)                                                               \
    for (int64_t p = 0; p < P; p++) {                                                          \
        T *dxp = dx + p * H * W;                                                               \
        const T *dyp = dy + p * OH * OW;                                                       \
        for (int64_t oh = 0; oh < OH; oh++) {                                                  \
            int64_t ow = 0;                                                                    \
            if (oh < fh) {                                                                     \
                T *r0 = dxp + 2 * oh * W, *r1 = r0 + W;                                        \
                for (; ow < fw; ow++) {                                                        \
                    const int64_t c = 2 * ow;                                                  \
                    const T d = (T)((double)dyp[oh * OW + ow] / 4.0);                          \
                    r0[c] += d;                                                                \
                    r0[c + 1] += d;                                                            \
                    r1[c] += d;                                                                \
                    r1[c + 1] += d;                                                            \
                }                                                                              \
            }                                                                                  \
            for (; ow < OW; ow++) {                                                            \
                AVG_WINDOW                                                                     \
                if (h0 >= h1 || w0 >= w1)                                                      \
                    continue;                                                                  \
                const T d = (T)((double)dyp[oh * OW + ow] / (double)div);                      \
                for (int64_t ih = h0; ih < h1; ih++)                                           \
                    for (int64_t iw = w0; iw < w1; iw++)                                       \
                        dxp[ih * W + iw] += d;                                                 \
            }                                                                                  \
        }                                                                                      \
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
