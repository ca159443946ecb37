/* GEMM kernels, graph-free: row-major C[M x N] = alpha * op(A) op(B) + beta * C,
 * op(A) = A [M x K] or A^T (A stored [K x M]); op(B) = B [K x N] or B^T (B
 * stored [N x K]). lda, ldb, ldc are row strides in elements. beta == 0 means C
 * is written, never read (NaN in C does not leak through). */
#ifndef TG_KERNELS_GEMM_H
#define TG_KERNELS_GEMM_H

#include <stdbool.h>
#include <stdint.h>

void tg__gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc);
void tg__gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                  double *C, int64_t ldc);

#endif
