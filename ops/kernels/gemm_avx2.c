/* The AVX2 GEMM path: 6 x 16 float (6 x 8 double) register tiles, two ymm
 * accumulators per row, FMA over the packed slivers; 8 x 8 transposes for
 * packing a transposed op(B). The loop nest is gemm_tmpl.h; dispatch is in
 * gemm.c. Compiled for any x86-64 (target attributes), run only when
 * tg__cpu() says AVX2 or is forced to it. */
#include "gemm_impl.h"
#include "threads.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#if TG_HAVE_X86

#define ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* --------------------------------------------------------- micro-kernels */

#define VT __m256
#define VP(op) _mm256_##op##_ps
TG__GEMM_KERNEL_2V(kernel_f32, TG_TARGET_AVX2, float, 6, ROWS6)
#undef VT
#undef VP
#define VT __m256d
#define VP(op) _mm256_##op##_pd
TG__GEMM_KERNEL_2V(kernel_f64, TG_TARGET_AVX2, double, 6, ROWS6)
#undef VT
#undef VP

/* ---------------------------------------------------------------- packing */

/* Prefetch distances: PF rows ahead for row-by-row copies, PFK elements ahead
 * along a row read in k order (see gemm_avx512.c). */
#define PF 16
#define PFK 128
#define PREFETCH(base, off) TG__PREFETCH(base, (off) * (int64_t)sizeof(float))

/* 16 rows of B (columns of op(B) = B^T), each contiguous along k -> dst [kc][16],
 * eight rows at a time. */
TG_TARGET_AVX2 static void pack_b16t_f32(int64_t kc, const float *src, int64_t ldb, float *dst)
{
    const int64_t k8 = kc / 8 * 8;
    for (int jb = 0; jb < 16; jb += 8) {
        const float *s = src + jb * ldb;
        for (int64_t k = 0; k < k8; k += 8) {
            if (k % 16 == 0)
                for (int j = 0; j < 8; j++)
                    PREFETCH(s, j * ldb + k + PFK);
            tg__tr8x8_ps(s + k, ldb, dst + k * 16 + jb, 16);
        }
    }
    for (int64_t k = k8; k < kc; k++)
        for (int j = 0; j < 16; j++)
            dst[k * 16 + j] = src[j * ldb + k];
}

/* 16 columns of B: 16 contiguous values per k (stride ldb) -> dst [kc][16]. */
TG_TARGET_AVX2 static void pack_b16n_f32(int64_t kc, const float *src, int64_t ldb, float *dst)
{
    for (int64_t k = 0; k < kc; k++) {
        const float *s = src + k * ldb;
        PREFETCH(s, PF * ldb);
        PREFETCH(s, PF * ldb + 15);
        _mm256_store_ps(dst + k * 16, _mm256_loadu_ps(s));
        _mm256_store_ps(dst + k * 16 + 8, _mm256_loadu_ps(s + 8));
    }
}

/* ------------------------------------------------------------- instances */

#define GT float
#define GSFX f32_avx2
#define GARGS tg__gemm_args_f32
#define GMR 6
#define GNR 16
#define GKC 256
#define GMC 192
#define GNC 4096
#define GTGT TG_TARGET_AVX2
#define GKERNEL kernel_f32
#define GPACK_B_T pack_b16t_f32
#define GPACK_B_N pack_b16n_f32
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

#define GT double
#define GSFX f64_avx2
#define GARGS tg__gemm_args_f64
#define GMR 6
#define GNR 8
#define GKC 256
#define GMC 96
#define GNC 2048
#define GTGT TG_TARGET_AVX2
#define GKERNEL kernel_f64
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

#else
typedef int tg__gemm_avx2_unused; /* ISO C wants a non-empty file */
#endif
