/* Portable blocked GEMM (plain C, both dtypes). Loop order keeps the innermost
 * loop contiguous over C's row; K is blocked so a panel of B stays in cache.
 * Rows of C are split between OpenMP threads: each element is computed by one
 * thread in a fixed order, so results do not depend on the thread count. The
 * SIMD, packed SGEMM is the speed issue's work. */
#include "gemm.h"
#include "threads.h"

#define KB 256

#define GEMM_BODY(T)                                                                          \
    for (int64_t i = 0; i < M; i++) {                                                         \
        T *c = C + i * ldc;                                                                   \
        if (beta == 0)                                                                        \
            for (int64_t j = 0; j < N; j++)                                                   \
                c[j] = 0;                                                                     \
        else if (beta != 1)                                                                   \
            for (int64_t j = 0; j < N; j++)                                                   \
                c[j] *= beta;                                                                 \
    }                                                                                         \
    if (K == 0 || alpha == 0)                                                                 \
        return;                                                                               \
    int nt = tg__threads();                                                                   \
    (void)nt; /* unused without OpenMP */                                                     \
    for (int64_t k0 = 0; k0 < K; k0 += KB) {                                                  \
        int64_t k1 = k0 + KB < K ? k0 + KB : K;                                               \
        TG_OMP("omp parallel for num_threads(nt) schedule(static) if (M * N * (k1 - k0) > 32768)") \
        for (int64_t i = 0; i < M; i++) {                                                     \
            T *c = C + i * ldc;                                                               \
            for (int64_t k = k0; k < k1; k++) {                                               \
                T a = alpha * (trans_a ? A[k * lda + i] : A[i * lda + k]);                    \
                if (!trans_b) {                                                               \
                    const T *b = B + k * ldb;                                                 \
                    for (int64_t j = 0; j < N; j++)                                           \
                        c[j] += a * b[j];                                             \
                } else {                                                                      \
                    for (int64_t j = 0; j < N; j++)                                           \
                        c[j] += a * B[j * ldb + k];                                           \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

void tg__gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc)
{
    GEMM_BODY(float)
}

void tg__gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
                  const double *A, int64_t lda, const double *B, int64_t ldb, double beta,
                  double *C, int64_t ldc)
{
    GEMM_BODY(double)
}
