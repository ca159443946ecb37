/* Reduction kernels, graph-free. Every kernel views its input as
 * [outer, A, inner]: A is the reduced axis, outer the product of the dims before
 * it, inner the product of the dims after it (a full reduction is outer = 1,
 * A = numel, inner = 1). Sums accumulate in double for both dtypes. */
#ifndef TG_KERNELS_REDUCE_H
#define TG_KERNELS_REDUCE_H

#include <stdint.h>

/* out[o, i] = (sum_a x[o, a, i]) / div.  div is 1 for a sum, A for a mean
 * (A == 0 then gives 0 / 0 = NaN, as PyTorch's mean of nothing).
 * out: [outer, inner], x: [outer, A, inner]. */
void tg__sum_axis_f32(float *restrict out, const float *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div);
void tg__sum_axis_f64(double *restrict out, const double *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div);

/* VJP of the above: dx[o, a, i] += dout[o, i] * scale (scale = 1 / div).
 * dx: [outer, A, inner], dout: [outer, inner]. */
void tg__sum_axis_backward_f32(float *restrict dx, const float *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale);
void tg__sum_axis_backward_f64(double *restrict dx, const double *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale);

/* out[o, i] = max_a x[o, a, i] and idx[o, i] = the a it came from (A >= 1).
 * Ties go to the first maximum; a NaN beats every number (the first NaN wins),
 * as torch.max(x, dim). idx may be NULL when no backward follows.
 * out, idx: [outer, inner], x: [outer, A, inner]. */
void tg__max_axis_f32(float *restrict out, int64_t *restrict idx, const float *restrict x,
                      int64_t outer, int64_t A, int64_t inner);
void tg__max_axis_f64(double *restrict out, int64_t *restrict idx, const double *restrict x,
                      int64_t outer, int64_t A, int64_t inner);

/* VJP of max: dx[o, idx[o, i], i] += dout[o, i].
 * dx: [outer, A, inner], dout, idx: [outer, inner]. */
void tg__max_axis_backward_f32(float *restrict dx, const float *restrict dout,
                               const int64_t *restrict idx, int64_t outer, int64_t A,
                               int64_t inner);
void tg__max_axis_backward_f64(double *restrict dx, const double *restrict dout,
                               const int64_t *restrict idx, int64_t outer, int64_t A,
                               int64_t inner);

#endif
