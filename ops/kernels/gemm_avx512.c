/* The AVX-512 GEMM path: 8 x 32 float (8 x 16 double) register tiles, two zmm
 * accumulators per row, FMA over the packed slivers; 8 x 8 transposes for the
 * packing of transposed operands. The loop nest is gemm_tmpl.h; dispatch is
 * in gemm.c. Compiled for any x86-64 (target attributes), run only when
 * tg__cpu() says AVX-512. */
#include "gemm_impl.h"
#include "threads.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#if TG_HAVE_X86

#define ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* --------------------------------------------------------- micro-kernels */

#define VT __m512
#define VP(op) _mm512_##op##_ps
TG__GEMM_KERNEL_2V(kernel_f32, TG_TARGET_AVX512, float, 8, ROWS8)
#undef VT
#undef VP
#define VT __m512d
#define VP(op) _mm512_##op##_pd
TG__GEMM_KERNEL_2V(kernel_f64, TG_TARGET_AVX512, double, 8, ROWS8)
#undef VT
#undef VP

/* ---------------------------------------------------------------- packing */

/* The packing routines prefetch the source PF rows ahead: rows of a large
 * operand sit on different pages, where the hardware prefetchers stop. */
#define PF 16
#define PREFETCH(base, off) TG__PREFETCH(base, (off) * (int64_t)sizeof(float))

/* Prefetch distance along a row read in k order (elements). */
#define PFK 128

/* 8 rows of A, each contiguous along k (stride lda) -> dst [kc][8]. */
TG_TARGET_AVX512 static void pack_a8_f32(int64_t kc, const float *src, int64_t lda, float *dst)
{
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        if (k % 16 == 0)
            for (int i = 0; i < 8; i++)
                PREFETCH(src, i * lda + k + PFK);
        tg__tr8x8_ps(src + k, lda, dst + k * 8, 8);
    }
    for (; k < kc; k++)
        for (int i = 0; i < 8; i++)
            dst[k * 8 + i] = src[i * lda + k];
}

/* 32 rows of B (columns of op(B) = B^T), each contiguous along k -> dst [kc][32].
 * Eight rows at a time, each read to the end: few streams for the hardware
 * prefetchers, plus a software prefetch PFK elements ahead. */
TG_TARGET_AVX512 static void pack_b32t_f32(int64_t kc, const float *src, int64_t ldb, float *dst)
{
    const int64_t k8 = kc / 8 * 8;
    for (int jb = 0; jb < 32; jb += 8) {
        const float *s = src + jb * ldb;
        for (int64_t k = 0; k < k8; k += 8) {
            if (k % 16 == 0)
                for (int j = 0; j < 8; j++)
                    PREFETCH(s, j * ldb + k + PFK);
            tg__tr8x8_ps(s + k, ldb, dst + k * 32 + jb, 32);
        }
    }
    for (int64_t k = k8; k < kc; k++)
        for (int j = 0; j < 32; j++)
            dst[k * 32 + j] = src[j * ldb + k];
}

/* 8 columns of op(A) = A^T: 8 contiguous values per k (stride lda) -> dst [kc][8]. */
TG_TARGET_AVX512 static void pack_a8t_f32(int64_t kc, const float *src, int64_t lda, float *dst)
{
    for (int64_t k = 0; k < kc; k++) {
        PREFETCH(src, (k + PF) * lda);
        PREFETCH(src, (k + PF) * lda + 7);
        _mm256_store_ps(dst + k * 8, _mm256_loadu_ps(src + k * lda));
    }
}

/* 32 columns of B: 32 contiguous values per k (stride ldb) -> dst [kc][32]. */
TG_TARGET_AVX512 static void pack_b32n_f32(int64_t kc, const float *src, int64_t ldb, float *dst)
{
    for (int64_t k = 0; k < kc; k++) {
        const float *s = src + k * ldb;
        PREFETCH(s, PF * ldb);
        PREFETCH(s, PF * ldb + 16);
        PREFETCH(s, PF * ldb + 31);
        _mm512_store_ps(dst + k * 32, _mm512_loadu_ps(s));
        _mm512_store_ps(dst + k * 32 + 16, _mm512_loadu_ps(s + 16));
    }
}

/* ------------------------------------------------------ small products */

/* Small products with op(B) = B skip packing: the kernel broadcasts op(A)
 * straight from A (any strides) and loads B's rows in place, masked at the
 * right edge. Rows past the bottom edge reread the last valid row (never out
 * of bounds) and are not stored. K is not blocked; each element is
 * alpha * sum_k (k ascending, one FMA each) [+ beta * c], as in the packed
 * kernel, and the shape alone decides which path runs. Up to SMALL_WORK
 * multiply-adds (about 200^3) this beats packing here: for the skinny
 * products of a small network, packing costs as much as it saves. */
#define SMALL_WORK 8.0e6
#define SMALL_WORK_PER_THREAD 131072.0

#define SDECL(i)                                                                                   \
    __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();                           \
    const float *a##i = a + ((i) < mr ? (i) : mr - 1) * rsa;
#define SSTEP(i)                                                                                   \
    {                                                                                              \
        __m512 a_ = _mm512_set1_ps(a##i[k * csa]);                                                 \
        c##i##0 = _mm512_fmadd_ps(a_, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(a_, b1, c##i##1);                                                \
    }
#define SSTORE(i)                                                                                  \
    if ((i) < mr) {                                                                                \
        float *cr = c + (i) * ldc;                                                                 \
        if (nr == 32) { /* plain stores: masked ones are slower on some CPUs */                    \
            if (!load_c) {                                                                         \
                _mm512_storeu_ps(cr, _mm512_mul_ps(va, c##i##0));                                  \
                _mm512_storeu_ps(cr + 16, _mm512_mul_ps(va, c##i##1));                             \
            } else {                                                                               \
                __m512 x0 = _mm512_mul_ps(vb, _mm512_loadu_ps(cr));                                \
                __m512 x1 = _mm512_mul_ps(vb, _mm512_loadu_ps(cr + 16));                           \
                _mm512_storeu_ps(cr, _mm512_fmadd_ps(va, c##i##0, x0));                            \
                _mm512_storeu_ps(cr + 16, _mm512_fmadd_ps(va, c##i##1, x1));                       \
            }                                                                                      \
        } else if (!load_c) {                                                                      \
            _mm512_mask_storeu_ps(cr, m0, _mm512_mul_ps(va, c##i##0));                             \
            if (nr > 16)                                                                           \
                _mm512_mask_storeu_ps(cr + 16, m1, _mm512_mul_ps(va, c##i##1));                    \
        } else {                                                                                   \
            __m512 x0 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, cr));                          \
            _mm512_mask_storeu_ps(cr, m0, _mm512_fmadd_ps(va, c##i##0, x0));                       \
            if (nr > 16) {                                                                         \
                __m512 x1 = _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16));                 \
                _mm512_mask_storeu_ps(cr + 16, m1, _mm512_fmadd_ps(va, c##i##1, x1));              \
            }                                                                                      \
        }                                                                                          \
    }

/* One tile of up to 8 x 32: a is op(A)'s first row (element (i, k) at
 * a[i*rsa + k*csa]), b is B's row 0 at the tile's first column. */
TG_TARGET_AVX512 static void small_tile_f32(int64_t K, const float *a, int64_t rsa, int64_t csa,
                                            int mr, const float *b, int64_t ldb, int nr, float *c,
                                            int64_t ldc, float alpha, float beta, bool load_c)
{
    const unsigned u0 = nr >= 16 ? 0xFFFFu : (1u << nr) - 1u;
    const unsigned u1 = nr >= 32 ? 0xFFFFu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u;
    const __mmask16 m0 = (__mmask16)u0, m1 = (__mmask16)u1;
    ROWS8(SDECL)
    if (nr == 32) {
        for (int64_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(b + k * ldb), b1 = _mm512_loadu_ps(b + k * ldb + 16);
            ROWS8(SSTEP)
        }
    } else if (nr > 16) {
        for (int64_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(b + k * ldb);
            __m512 b1 = _mm512_maskz_loadu_ps(m1, b + k * ldb + 16);
            ROWS8(SSTEP)
        }
    } else { /* the second half of the tile is unused (and never addressed) */
        const __m512 b1 = _mm512_setzero_ps();
        for (int64_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, b + k * ldb);
            ROWS8(SSTEP)
        }
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    ROWS8(SSTORE)
}

/* Work unit u of the small path: column sliver u / mg (32 columns) by row
 * group u % mg (up to SMALL_ROWS rows, in tiles of 8 top to bottom, sharing
 * B's columns). */
#define SMALL_ROWS 64
TG_TARGET_AVX512 static void small_unit_f32(const tg__gemm_args_f32 *p, int64_t u, int64_t mg,
                                            int64_t rsa, int64_t csa, bool load_c)
{
    const int64_t j = u / mg * 32, i0 = u % mg * SMALL_ROWS;
    const int64_t i1 = p->M - i0 < SMALL_ROWS ? p->M : i0 + SMALL_ROWS;
    const int nr = p->N - j < 32 ? (int)(p->N - j) : 32;
    for (int64_t i = i0; i < i1; i += 8) {
        const int mr = i1 - i < 8 ? (int)(i1 - i) : 8;
        small_tile_f32(p->K, p->A + i * rsa, rsa, csa, mr, p->B + j, p->ldb, nr,
                       p->C + i * p->ldc + j, p->ldc, p->alpha, p->beta, load_c);
    }
}

TG_TARGET_AVX512 static bool small_f32(const tg__gemm_args_f32 *p, int nt)
{
    const double work = (double)p->M * (double)p->N * (double)p->K;
    if (p->tb || work > SMALL_WORK)
        return false;
    const int64_t rsa = p->ta ? 1 : p->lda, csa = p->ta ? p->lda : 1;
    const int64_t mg = (p->M + SMALL_ROWS - 1) / SMALL_ROWS, units = mg * ((p->N + 31) / 32);
    const bool load_c = p->beta != 0;
    if (nt > 1 && work <= (double)nt * SMALL_WORK_PER_THREAD)
        nt = (int)((work - 1) / SMALL_WORK_PER_THREAD);
    if (nt > units)
        nt = (int)units;
#ifdef _OPENMP
    /* Units are handed out one at a time, so a thread that gets its core late
     * on a busy machine finds less left to do instead of holding the others
     * up; which thread computes a unit does not change its bits. */
    tg__gemm_team team;
    if (tg__gemm_team_begin(&team, nt) > 1) {
        TG_OMP("omp parallel num_threads(nt)")
        {
            TG_OMP("omp for schedule(dynamic, 1) nowait")
            for (int64_t u = 0; u < units; u++)
                small_unit_f32(p, u, mg, rsa, csa, load_c);
            tg__gemm_team_done(&team, omp_get_num_threads());
        }
        tg__gemm_team_end(&team);
        return true;
    }
#endif
    for (int64_t u = 0; u < units; u++)
        small_unit_f32(p, u, mg, rsa, csa, load_c);
    return true;
}

/* ------------------------------------------------------------- instances */

#define GT float
#define GSFX f32_avx512
#define GARGS tg__gemm_args_f32
#define GMR 8
#define GNR 32
#define GKC 320
#define GMC 192
#define GNC 2048
#define GTGT TG_TARGET_AVX512
#define GKERNEL kernel_f32
#define GPACK_A_N pack_a8_f32
#define GPACK_B_T pack_b32t_f32
#define GPACK_A_T pack_a8t_f32
#define GPACK_B_N pack_b32n_f32
#define GSMALL small_f32
#define GSMALL_MNK SMALL_WORK
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

#define GT double
#define GSFX f64_avx512
#define GARGS tg__gemm_args_f64
#define GMR 8
#define GNR 16
#define GKC 256
#define GMC 128
#define GNC 2048
#define GTGT TG_TARGET_AVX512
#define GKERNEL kernel_f64
#define GMIN_WORK 131072.0
#include "gemm_tmpl.h"

#else
typedef int tg__gemm_avx512_unused; /* ISO C wants a non-empty file */
#endif
