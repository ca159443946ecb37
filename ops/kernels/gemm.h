/* GEMM kernels, graph-free: row-major C[M x N] = alpha * op(A) op(B) + beta * C,
 * op(A) = A [M x K] or A^T (A stored [K x M]); op(B) = B [K x N] or B^T (B
 * stored [N x K]). lda, ldb, ldc are row strides in elements; pointers need no
 * particular alignment. beta == 0 means C is written, never read (NaN in C
 * does not leak through). K == 0 or alpha == 0 gives C = beta * C.
 *
 * Results are bitwise identical for any thread count (each element of C is
 * computed by one thread, summing over K in a fixed order), but they may
 * differ in the last bits between CPU paths (tg__cpu: generic, AVX2,
 * AVX-512), which block and fuse differently. The design is described in
 * docs/performance.md. */
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

/* Strided batch of independent products: for b in [0, batch),
 *   C + b*stride_c = alpha * op(A + b*stride_a) op(B + b*stride_b) + beta * (C + b*stride_c).
 * A stride of 0 reuses one operand for every product. The C matrices must not
 * overlap, except stride_c == 0, which runs the products one after the other
 * into the same C (with beta == 1 that accumulates over the batch in order).
 * Small products run in parallel over the batch, large ones one at a time with
 * threads inside each; results are the same as calling tg__gemm_* per item. */
void tg__gemm_batch_f32(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, int64_t stride_a, const float *B,
                        int64_t ldb, int64_t stride_b, float beta, float *C, int64_t ldc,
                        int64_t stride_c);
void tg__gemm_batch_f64(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                        double alpha, const double *A, int64_t lda, int64_t stride_a,
                        const double *B, int64_t ldb, int64_t stride_b, double beta, double *C,
                        int64_t ldc, int64_t stride_c);

/* The blocking a CPU path uses (for tests and benchmarks): micro-tile mr x nr,
 * cache blocks kc (depth), mc (rows of op(A)), nc (columns of op(B)), and
 * small_mnk: products with M*N*K up to this (and op(B) = B) take the unpacked
 * small-product path (0: the path has none). level is a tg__cpu_level; f64
 * selects the float64 kernels. */
typedef struct tg__gemm_blocking {
    int mr, nr, kc, mc, nc;
    double small_mnk;
} tg__gemm_blocking;
tg__gemm_blocking tg__gemm_blocking_of(int level, bool f64);

/* Ends a back-off (for tests): the next product may use threads again. On a
 * busy machine, when a team's last thread finishes far behind its first,
 * products run on one thread for a while (docs/performance.md); results are
 * the same either way. */
void tg__gemm_backoff_reset(void);

#endif
