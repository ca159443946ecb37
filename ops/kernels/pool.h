/* Pooling kernels, graph-free: 2-D max and average pooling over a stack of
 * planes (N * C of them, each H x W, contiguous row-major), forward and VJP,
 * float32 and float64. The geometry is validated by the caller (ops/pool.c);
 * these loops trust it. A window's taps are rows oh*SH - PH + ky*DH and columns
 * ow*SW - PW + kx*DW; taps outside the plane are padding. */
#ifndef TG_KERNELS_POOL_H
#define TG_KERNELS_POOL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tg__pool2d_geom {
    int64_t H, W;   /* input plane */
    int64_t OH, OW; /* output plane */
    int64_t KH, KW; /* kernel */
    int64_t SH, SW; /* stride */
    int64_t PH, PW; /* padding (each side) */
    int64_t DH, DW; /* dilation (1 for avgpool) */
} tg__pool2d_geom;

/* Max pooling. y[o] = max over the window's in-plane taps, scanned row-major;
 * a later tap replaces the best when it is greater or NaN (PyTorch's CPU rule:
 * ties keep the first, NaN wins, among several NaNs the last). argmax[o] is the
 * flat in-plane index (ih * W + iw) of the winner, or -1 for a window with no
 * in-plane tap (then y[o] = -inf). argmax may be NULL (no gradient needed).
 * Requires H * W <= INT32_MAX. */
void tg__maxpool2d_forward_f32(float *y,             /* [P, OH, OW] */
                               int32_t *argmax,      /* [P, OH, OW] or NULL */
                               const float *x,       /* [P, H, W] */
                               int64_t P,            /* planes: N * C */
                               const tg__pool2d_geom *g);
void tg__maxpool2d_forward_f64(double *y, int32_t *argmax, const double *x, int64_t P,
                               const tg__pool2d_geom *g);
/* dx[argmax[o]] += dy[o], plane by plane (entries with argmax -1 are
 * skipped); with acc false dx is overwritten (zero where no window chose). */
void tg__maxpool2d_backward_f32(float *dx,             /* [P, H, W], accumulated if acc */
                                const float *dy,       /* [P, OH, OW] */
                                const int32_t *argmax, /* [P, OH, OW] */
                                int64_t P, const tg__pool2d_geom *g, bool acc);
void tg__maxpool2d_backward_f64(double *dx, const double *dy, const int32_t *argmax, int64_t P,
                                const tg__pool2d_geom *g, bool acc);

/* Average pooling (dilation ignored: always 1). The window [h0, h0 + KH) is
 * first clipped to the padded plane [-PH, H + PH) (giving PyTorch's
 * count_include_pad divisor), then to the plane [0, H) for the sum;
 * exclude_padding divides by the in-plane count instead. Sums accumulate in
 * double for both dtypes. */
void tg__avgpool2d_forward_f32(float *y,       /* [P, OH, OW] */
                               const float *x, /* [P, H, W] */
                               int64_t P, const tg__pool2d_geom *g, bool exclude_padding);
void tg__avgpool2d_forward_f64(double *y, const double *x, int64_t P, const tg__pool2d_geom *g,
                               bool exclude_padding);
/* dx[i] += dy[o] / divisor(o) for every in-plane tap i of window o. */
void tg__avgpool2d_backward_f32(float *dx,       /* [P, H, W], accumulated */
                                const float *dy, /* [P, OH, OW] */
                                int64_t P, const tg__pool2d_geom *g, bool exclude_padding);
void tg__avgpool2d_backward_f64(double *dx, const double *dy, int64_t P,
                                const tg__pool2d_geom *g, bool exclude_padding);

#endif
