/* Batch-norm and dropout kernels, graph-free. Layout NCHW with HW = H * W;
 * per-channel statistics are double arrays of length C. Each kernel comes in
 * a float32 (the fast path) and a float64 (reference) version; both
 * accumulate sums in double. Gradient kernels accumulate (+=) into dx.
 * Outputs (y, dx) must not overlap the inputs (restrict). */
#ifndef TG_KERNELS_NORM_H
#define TG_KERNELS_NORM_H

#include <stdint.h>

/* Per-channel mean and biased variance over (N, H, W), two passes in double.
 * mean, var: [C] (written); x: [N, C, HW]. For N * HW == 0 writes 0. */
void tg__bn2d_stats_f32(double *mean, double *var, const float *x, int64_t N, int64_t C,
                        int64_t HW);
void tg__bn2d_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C,
                        int64_t HW);

/* y = (x - mean[c]) * invstd[c] * w[c] + b[c]; w == NULL means 1, b == NULL 0.
 * y, x: [N, C, HW]; mean, invstd: [C]; w, b: [C] or NULL. */
void tg__bn2d_forward_f32(float *restrict y, const float *restrict x, const double *mean,
                          const double *invstd, const float *w, const float *b, int64_t N,
                          int64_t C, int64_t HW);
void tg__bn2d_forward_f64(double *restrict y, const double *restrict x, const double *mean,
                          const double *invstd, const double *w, const double *b, int64_t N,
                          int64_t C, int64_t HW);

/* Per-channel sums for backward, in double (written):
 * sum_dy[c] = sum dy, sum_dy_xhat[c] = sum dy * (x - mean[c]) * invstd[c].
 * sum_dy, sum_dy_xhat, mean, invstd: [C]; dy, x: [N, C, HW]. */
void tg__bn2d_sums_f32(double *sum_dy, double *sum_dy_xhat, const float *dy, const float *x,
                       const double *mean, const double *invstd, int64_t N, int64_t C,
                       int64_t HW);
void tg__bn2d_sums_f64(double *sum_dy, double *sum_dy_xhat, const double *dy, const double *x,
                       const double *mean, const double *invstd, int64_t N, int64_t C,
                       int64_t HW);

/* dx += k[c] * (dy - a[c] - (x - mean[c]) * s[c]), with k = w * invstd and, in
 * training (batch statistics), a = sum_dy / M, s = invstd * sum_dy_xhat / M,
 * M = N * HW; in eval (fixed statistics) a = s = 0 (sum_dy, sum_dy_xhat unread,
 * may be NULL). dx, dy, x: [N, C, HW]; mean, invstd, sum_dy, sum_dy_xhat: [C];
 * w: [C] or NULL (1). */
void tg__bn2d_backward_x_f32(float *restrict dx, const float *restrict dy,
                             const float *restrict x, const double *mean,
                             const double *invstd, const float *w, const double *sum_dy,
                             const double *sum_dy_xhat, int training, int64_t N, int64_t C,
                             int64_t HW);
void tg__bn2d_backward_x_f64(double *restrict dx, const double *restrict dy,
                             const double *restrict x, const double *mean,
                             const double *invstd, const double *w, const double *sum_dy,
                             const double *sum_dy_xhat, int training, int64_t N, int64_t C,
                             int64_t HW);

/* Dropout with a keep mask (1 keep, 0 drop) and keep probability q = 1 - p > 0:
 * forward y = mask ? x / q : 0 (dropped elements are exactly 0);
 * backward dx += mask ? dy / q : 0. y, x, dx, dy, mask: [n]. */
void tg__dropout_forward_f32(float *restrict y, const float *restrict x,
                             const uint8_t *restrict mask, float q, int64_t n);
void tg__dropout_forward_f64(double *restrict y, const double *restrict x,
                             const uint8_t *restrict mask, double q, int64_t n);
void tg__dropout_backward_f32(float *restrict dx, const float *restrict dy,
                              const uint8_t *restrict mask, float q, int64_t n);
void tg__dropout_backward_f64(double *restrict dx, const double *restrict dy,
                              const uint8_t *restrict mask, double q, int64_t n);

#endif
