/* Softmax, log-softmax and softmax cross-entropy kernels, graph-free.
 * A softmax "along an axis" views the tensor as [outer, C, inner] (C the axis,
 * inner the product of the dims after it); the cross-entropy kernels take
 * contiguous rows [N, C]. Every kernel subtracts the row maximum before exp.
 * Each comes in a float32 (fast path: a vectorised exp, at most 1 ulp from
 * the correctly rounded e^x; sums in double) and a float64 (libm exp)
 * version. Gradient kernels accumulate (+=) into dx / dt. Per-row statistics
 * are double arrays of length N (mx = row max, inv = 1 / sum_c exp(x - mx)
 * rounded to the element type, logsum = log sum_c exp(x - mx)), so a backward
 * recomputes exactly the probabilities softmax_forward writes. */
#ifndef TG_KERNELS_SOFTMAX_H
#define TG_KERNELS_SOFTMAX_H

#include <stdint.h>

/* y = exp(x - max) / sum exp(x - max) along C.  y, x: [outer, C, inner]. */
void tg__softmax_forward_f32(float *y, const float *x, int64_t outer, int64_t C, int64_t inner);
void tg__softmax_forward_f64(double *y, const double *x, int64_t outer, int64_t C, int64_t inner);

/* y = (x - max) - log sum exp(x - max) along C.  y, x: [outer, C, inner]. */
void tg__log_softmax_forward_f32(float *y, const float *x, int64_t outer, int64_t C,
                                 int64_t inner);
void tg__log_softmax_forward_f64(double *y, const double *x, int64_t outer, int64_t C,
                                 int64_t inner);

/* Softmax VJP: dx += y * (dy - sum_C dy * y).  dx, y (the softmax output), dy:
 * [outer, C, inner]. */
void tg__softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                              int64_t C, int64_t inner);
void tg__softmax_backward_f64(double *dx, const double *y, const double *dy, int64_t outer,
                              int64_t C, int64_t inner);

/* Log-softmax VJP: dx += dy - exp(y) * sum_C dy.  dx, y (the log-softmax
 * output), dy: [outer, C, inner]. */
void tg__log_softmax_backward_f32(float *dx, const float *y, const float *dy, int64_t outer,
                                  int64_t C, int64_t inner);
void tg__log_softmax_backward_f64(double *dx, const double *y, const double *dy, int64_t outer,
                                  int64_t C, int64_t inner);

/* Hard-label cross-entropy: loss_i = logsumexp(x_i) - x[i, labels[i]].
 * Returns sum_i loss_i (double). loss: [N] (written, as the element type) or
 * NULL; mx, inv: [N] (written) or NULL; x: [N, C]; labels: [N], each in [0, C). */
double tg__xent_forward_f32(float *loss, double *mx, double *inv, const float *x,
                            const int64_t *labels, int64_t N, int64_t C);
double tg__xent_forward_f64(double *loss, double *mx, double *inv, const double *x,
                            const int64_t *labels, int64_t N, int64_t C);

/* dx[i, c] += g_i * (p[i, c] - (c == labels[i])) with p = exp(x - mx[i]) * inv[i]
 * and g_i = g[i * g_stride] * scale (g_stride 0: one g for every row).
 * dx, x: [N, C]; mx, inv, labels: [N]; g: [N] or [1]. */
void tg__xent_backward_f32(float *dx, const float *x, const double *mx, const double *inv,
                           const int64_t *labels, const float *g, int64_t g_stride, float scale,
                           int64_t N, int64_t C);
void tg__xent_backward_f64(double *dx, const double *x, const double *mx, const double *inv,
                           const int64_t *labels, const double *g, int64_t g_stride,
                           double scale, int64_t N, int64_t C);

/* Soft-target cross-entropy: loss_i = sum_c t[i, c] * (logsumexp(x_i) - x[i, c]).
 * Returns sum_i loss_i. loss: [N] or NULL; mx, inv, logsum: [N] (written) or
 * NULL; x, t: [N, C]. */
double tg__xent_soft_forward_f32(float *loss, double *mx, double *inv, double *logsum,
                                 const float *x, const float *t, int64_t N, int64_t C);
double tg__xent_soft_forward_f64(double *loss, double *mx, double *inv, double *logsum,
                                 const double *x, const double *t, int64_t N, int64_t C);

/* With g_i as in tg__xent_backward and T_i = sum_c t[i, c]:
 * dx[i, c] += g_i * (p[i, c] * T_i - t[i, c])            (dx may be NULL)
 * dt[i, c] += -g_i * ((x[i, c] - mx[i]) - logsum[i])     (dt may be NULL)
 * dx, dt, x, t: [N, C]; mx, inv, logsum: [N]; g: [N] or [1]. */
void tg__xent_soft_backward_f32(float *dx, float *dt, const float *x, const float *t,
                                const double *mx, const double *inv, const double *logsum,
                                const float *g, int64_t g_stride, float scale, int64_t N,
                                int64_t C);
void tg__xent_soft_backward_f64(double *dx, double *dt, const double *x, const double *t,
                                const double *mx, const double *inv, const double *logsum,
                                const double *g, int64_t g_stride, double scale, int64_t N,
                                int64_t C);

#endif
