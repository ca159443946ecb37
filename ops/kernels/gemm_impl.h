/* Internals shared by the GEMM files (gemm.c: front end, generic path;
 * gemm_avx2.c, gemm_avx512.c: SIMD paths): the argument block, the per-path
 * entry points, the packing scratch, the thread split, and the register-tile
 * micro-kernel written once for every SIMD width. Not part of the kernel API. */
#ifndef TG_KERNELS_GEMM_IMPL_H
#define TG_KERNELS_GEMM_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "gemm.h"

/* One call's arguments; M, N, K >= 1 and alpha != 0 when a path runs. */
#define TG__GEMM_ARGS(T)                                                                           \
    struct {                                                                                       \
        bool ta, tb;                                                                               \
        int64_t M, N, K;                                                                           \
        T alpha, beta;                                                                             \
        const T *A, *B;                                                                            \
        T *C;                                                                                      \
        int64_t lda, ldb, ldc;                                                                     \
    }
typedef TG__GEMM_ARGS(float) tg__gemm_args_f32;
typedef TG__GEMM_ARGS(double) tg__gemm_args_f64;

/* Each path computes the product with up to nt threads (fewer when the product
 * is small). They return false only when the packing scratch cannot be
 * allocated; the caller then falls back to a plain loop. */
bool tg__gemm_run_f32_generic(const tg__gemm_args_f32 *p, int nt);
bool tg__gemm_run_f64_generic(const tg__gemm_args_f64 *p, int nt);
bool tg__gemm_run_f32_avx2(const tg__gemm_args_f32 *p, int nt);
bool tg__gemm_run_f64_avx2(const tg__gemm_args_f64 *p, int nt);
bool tg__gemm_run_f32_avx512(const tg__gemm_args_f32 *p, int nt);
bool tg__gemm_run_f64_avx512(const tg__gemm_args_f64 *p, int nt);
tg__gemm_blocking tg__gemm_blocking_f32_generic(void);
tg__gemm_blocking tg__gemm_blocking_f64_generic(void);
tg__gemm_blocking tg__gemm_blocking_f32_avx2(void);
tg__gemm_blocking tg__gemm_blocking_f64_avx2(void);
tg__gemm_blocking tg__gemm_blocking_f32_avx512(void);
tg__gemm_blocking tg__gemm_blocking_f64_avx512(void);

/* The calling thread's packing scratch, 64-byte aligned, at least bytes long;
 * NULL if it cannot grow. Grown (never shrunk) and reused for every later call
 * on the same thread, and freed when the thread exits: the pointer lives in
 * thread-local storage, so it stays reachable (no leak report) and is never
 * shared between user threads. */
void *tg__gemm_scratch(size_t bytes);

/* A team of threads for one product, and what keeps teams from hurting on a
 * busy machine. A fork needs every thread of the team on a core: when other
 * processes hold the cores, a team mate can start milliseconds late, and
 * OpenMP's own join spins without yielding meanwhile. So:
 *   nt = tg__gemm_team_begin(&team, nt);   before the fork (may return 1)
 *   tg__gemm_team_done(&team, n);          by each of the n threads when done
 *   tg__gemm_team_end(&team);              after the join
 * team_done waits for the others spinning briefly, then yielding, then in
 * short naps (freeing the core for a team mate that waits for one).
 * team_end checks whether the last thread finished much later than the first
 * (later than the first took to do its share, plus 100 us): then threads cost
 * more than they gave, and the following products run on one thread for a
 * back-off time (2 ms, doubling while it repeats, at most 0.5 s; reset by a
 * team that was on time). The thread count never changes a result. */
typedef struct tg__gemm_team {
    atomic_int done;
    _Atomic int64_t t_first; /* ns: when the first thread was done (0: not yet) */
    int64_t t_start;         /* ns: fork time */
} tg__gemm_team;
int tg__gemm_team_begin(tg__gemm_team *team, int nt);
void tg__gemm_team_done(tg__gemm_team *team, int n);
void tg__gemm_team_end(tg__gemm_team *team);

/* The thread grid tm x tn (tm * tn = nt) for an M x N output cut into tiles
 * of mr x nr: thread t takes row range t / tn (of tm) and column range t % tn
 * (of tn), in whole tiles. Chosen to minimise one thread's multiply-adds plus
 * its packing (each thread packs the rows of op(A) and the columns of op(B)
 * its block needs). */
void tg__gemm_split(int64_t M, int64_t N, int64_t K, int mr, int nr, int nt, int *tm, int *tn);

/* ------------------------------------------------ SIMD register micro-kernel */

/* A micro-kernel over a tile of ROWS(X)-many rows by two vectors:
 *   a: [kc][MR] packed op(A) sliver, b: [kc][2*VL] packed op(B) sliver (aligned),
 *   c: the tile, row stride ldc.
 * acc = sum over k of a[k][i] * b[k][j] (one FMA per k, k ascending), then
 *   load_c false: c = alpha * acc          (C not read: beta == 0, first K block)
 *   load_c true:  c = alpha * acc + beta * c   (fused: fma(alpha, acc, beta * c))
 * Before expanding, define VT (vector type) and VP(op) (intrinsic name, e.g.
 * _mm512_##op##_ps); T is the element type. */
#define TG__KDECL(i) VT c##i##0 = VP(setzero)(), c##i##1 = VP(setzero)();
#define TG__KPREFETCH(i)                                                                           \
    {                                                                                              \
        const char *cr_ = (const char *)(c + (i) * ldc);                                           \
        _mm_prefetch(cr_, _MM_HINT_T0);                                                            \
        _mm_prefetch(cr_ + 2 * sizeof(VT) - 1, _MM_HINT_T0);                                       \
    }
#define TG__KSTEP(i)                                                                               \
    {                                                                                              \
        VT a_ = VP(set1)(a[i]);                                                                    \
        c##i##0 = VP(fmadd)(a_, b0, c##i##0);                                                      \
        c##i##1 = VP(fmadd)(a_, b1, c##i##1);                                                      \
    }
#define TG__KSTORE(i)                                                                              \
    {                                                                                              \
        kelem *cr = c + (i) * ldc;                                                                 \
        if (!load_c) {                                                                             \
            VP(storeu)(cr, VP(mul)(va, c##i##0));                                                  \
            VP(storeu)(cr + vl, VP(mul)(va, c##i##1));                                             \
        } else {                                                                                   \
            VT x0 = VP(mul)(vb, VP(loadu)(cr)), x1 = VP(mul)(vb, VP(loadu)(cr + vl));              \
            VP(storeu)(cr, VP(fmadd)(va, c##i##0, x0));                                            \
            VP(storeu)(cr + vl, VP(fmadd)(va, c##i##1, x1));                                       \
        }                                                                                          \
    }
#define TG__GEMM_KERNEL_2V(NAME, TGT, T, MR, ROWS)                                                 \
    TGT static void NAME(int64_t kc, const T *restrict a, const T *restrict b, T *restrict c,      \
                         int64_t ldc, T alpha, T beta, bool load_c)                                \
    {                                                                                              \
        typedef T kelem;                                                                           \
        enum { vl = (int)(sizeof(VT) / sizeof(T)) };                                               \
        ROWS(TG__KDECL)                                                                            \
        ROWS(TG__KPREFETCH)                                                                        \
        for (int64_t k = 0; k < kc; k++) {                                                         \
            VT b0 = VP(load)(b), b1 = VP(load)(b + vl);                                            \
            ROWS(TG__KSTEP)                                                                        \
            a += (MR);                                                                             \
            b += 2 * vl;                                                                           \
        }                                                                                          \
        VT va = VP(set1)(alpha), vb = VP(set1)(beta);                                              \
        ROWS(TG__KSTORE)                                                                           \
    }

/* -------------------------------------------------- 8 x 8 float transpose */

#if TG_HAVE_X86
#include <immintrin.h>

/* Prefetches the line at byte offset off from base into L1. Integer
 * arithmetic: the address may lie past the end of an operand (a prefetch
 * never faults, but such a pointer would be undefined behaviour). */
#define TG__PREFETCH(base, off)                                                                    \
    _mm_prefetch((const char *)((uintptr_t)(base) + (uintptr_t)(int64_t)(off)), _MM_HINT_T0)

/* dst[r][c] = src[c][r] for an 8 x 8 float block; row strides in elements. */
TG_TARGET_AVX2 static inline void tg__tr8x8_ps(const float *src, int64_t lds, float *dst,
                                               int64_t ldd)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds);
    __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
    __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
    __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(s1, s5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(s2, s6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(s3, s7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(s0, s4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(s1, s5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(s2, s6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

#endif
