/* Data-movement kernels for the shape ops, graph-free: a blocked transpose of
 * two dims and strided row copies / adds (concat, reshape). */
#ifndef TG_KERNELS_SHAPE_H
#define TG_KERNELS_SHAPE_H

#include <stdint.h>

/* Swaps the P and Q dims: out[a, q, b, p, c] = x[a, p, b, q, c].
 * x: [A, P, B, Q, C], out: [A, Q, B, P, C]. P and Q are walked in square tiles
 * (staged through an L1 buffer when C == 1) so the reads and the writes both
 * touch whole cache lines, whatever the strides. */
void tg__transpose_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C);
void tg__transpose_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C);
/* Same index map, accumulating: out[a, q, b, p, c] += x[a, p, b, q, c]. */
void tg__transpose_add_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C);
void tg__transpose_add_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C);

/* Row copy: dst[o * dst_stride + k] = src[o * src_stride + k] for o < rows,
 * k < len. dst: rows of dst_stride, src: rows of src_stride (both >= len). */
void tg__copy_rows_f32(float *restrict dst, int64_t dst_stride, const float *restrict src,
                       int64_t src_stride, int64_t rows, int64_t len);
void tg__copy_rows_f64(double *restrict dst, int64_t dst_stride, const double *restrict src,
                       int64_t src_stride, int64_t rows, int64_t len);
/* Row add, as above with dst[...] += src[...]. */
void tg__add_rows_f32(float *restrict dst, int64_t dst_stride, const float *restrict src,
                      int64_t src_stride, int64_t rows, int64_t len);
void tg__add_rows_f64(double *restrict dst, int64_t dst_stride, const double *restrict src,
                      int64_t src_stride, int64_t rows, int64_t len);

#endif
