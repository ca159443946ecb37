/* Data-movement loops for ops/shape.c: the tiled transpose of two dims and the
 * strided row copies / adds behind concat and reshape. Both dtypes from one
 * macro body; no graph headers.
 *
 * Speed: a float32 transpose with C == 1 (a plain matrix transpose per (a, b))
 * moves 8 x 8 blocks through AVX2 registers (eight row loads, an unpack /
 * shuffle / lane-permute network, eight row stores) when the CPU has AVX2
 * (tg__cpu() >= TG_CPU_AVX2; AVX-512 machines take the same code); other shapes and
 * the generic level stage each tile through an L1 buffer. A transpose only
 * moves (or adds once) each element, so every path gives the same bits. The
 * (a, b, tile row) items are split between OpenMP threads for large inputs;
 * each output element is written by one thread. */
#include "shape.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if TG_HAVE_X86
#include <immintrin.h>
#endif

#define PAR_MIN 65536 /* elements below which one thread does the call */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------- transpose */

/* (p, q) is walked in TILE x TILE blocks, TILE = 64 for float32 and 32 for
 * float64: the C == 1 staging buffer is then 16 KiB or 8 KiB, inside L1. */
#define TILE_F32 64
#define TILE_F64 32

/* One tile [p0, p1) x [q0, q1) of the (a, b) matrix whose x rows start at xs
 * (p stride xp) and out rows at ys (q stride yq). */
#define TRANSPOSE_TILE(T, OP, TILE)                                                                \
    if (C == 1) {                                                                                  \
        /* Through an L1 buffer: each source row piece is read and each                            \
         * destination row piece written in one burst, so power-of-two strides                     \
         * cannot make the lines evict each other between visits. */                               \
        T buf[TILE][TILE];                                                                         \
        for (int64_t p = p0; p < p1; p++)                                                          \
            for (int64_t q = q0; q < q1; q++)                                                      \
                buf[q - q0][p - p0] = xs[p * xp + q];                                              \
        for (int64_t q = q0; q < q1; q++) {                                                        \
            T *d = ys + q * yq;                                                                    \
            const T *s = buf[q - q0];                                                              \
            TG_SIMD                                                                                \
            for (int64_t p = p0; p < p1; p++)                                                      \
                d[p] OP s[p - p0];                                                                 \
        }                                                                                          \
    } else {                                                                                       \
        for (int64_t p = p0; p < p1; p++)                                                          \
            for (int64_t q = q0; q < q1; q++) {                                                    \
                const T *s = xs + p * xp + q * C;                                                  \
                T *d = ys + q * yq + p * C;                                                        \
                TG_SIMD                                                                            \
                for (int64_t c = 0; c < C; c++)                                                    \
                    d[c] OP s[c];                                                                  \
            }                                                                                      \
    }

/* Item it of the (a, b, p-tile) items: every q tile of that strip. */
#define TRANSPOSE_ITEM(T, OP, TILE)                                                                \
    const int64_t npt = (P + TILE - 1) / TILE;                                                     \
    const int64_t ab = it / npt, p0 = (it % npt) * TILE, p1 = min64(p0 + TILE, P);                 \
    const int64_t a = ab / B, b = ab % B;                                                          \
    const int64_t xp = B * Q * C; /* x's stride of p */                                            \
    const int64_t yq = B * P * C; /* out's stride of q */                                          \
    const T *xs = x + (a * P * B + b) * Q * C; /* &x[a, 0, b, 0, 0] */                             \
    T *ys = out + (a * Q * B + b) * P * C;     /* &out[a, 0, b, 0, 0] */                           \
    for (int64_t q0 = 0; q0 < Q; q0 += TILE) {                                                     \
        const int64_t q1 = min64(q0 + TILE, Q);                                                    \
        TRANSPOSE_TILE(T, OP, TILE)                                                                \
    }

#define DEF_TRANSPOSE_ITEM(NAME, T, OP, TILE)                                                      \
    static void NAME(T *restrict out, const T *restrict x, int64_t P, int64_t B, int64_t Q,        \
                     int64_t C, int64_t it)                                                        \
    {                                                                                              \
        TRANSPOSE_ITEM(T, OP, TILE)                                                                \
    }

DEF_TRANSPOSE_ITEM(tr_item_f32, float, =, TILE_F32)
DEF_TRANSPOSE_ITEM(tr_item_f64, double, =, TILE_F64)
DEF_TRANSPOSE_ITEM(tr_add_item_f32, float, +=, TILE_F32)
DEF_TRANSPOSE_ITEM(tr_add_item_f64, double, +=, TILE_F64)

#if TG_HAVE_X86
/* The 8 x 8 block at s (row stride ss) transposed into d (row stride ds),
 * stored (add = false) or added (add = true). */
__attribute__((target("avx2"))) static inline void tr8x8_avx2(float *d, int64_t ds,
                                                              const float *s, int64_t ss, bool add)
{
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + ss);
    __m256 r2 = _mm256_loadu_ps(s + 2 * ss), r3 = _mm256_loadu_ps(s + 3 * ss);
    __m256 r4 = _mm256_loadu_ps(s + 4 * ss), r5 = _mm256_loadu_ps(s + 5 * ss);
    __m256 r6 = _mm256_loadu_ps(s + 6 * ss), r7 = _mm256_loadu_ps(s + 7 * ss);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    __m256 o[8];
    o[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    o[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    o[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    o[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
    for (int k = 0; k < 8; k++) {
        float *dk = d + k * ds;
        _mm256_storeu_ps(dk, add ? _mm256_add_ps(_mm256_loadu_ps(dk), o[k]) : o[k]);
    }
}

/* An item (a, b, p tile of 64) of a C == 1 float32 transpose: 8 x 8 blocks
 * through registers, the ragged edges element by element. */
__attribute__((target("avx2"))) static void tr_item_f32_avx2(float *restrict out,
                                                             const float *restrict x, int64_t P,
                                                             int64_t B, int64_t Q, int64_t it,
                                                             bool add)
{
    const int64_t npt = (P + TILE_F32 - 1) / TILE_F32;
    const int64_t ab = it / npt, p0 = (it % npt) * TILE_F32, p1 = min64(p0 + TILE_F32, P);
    const int64_t a = ab / B, b = ab % B, xp = B * Q, yq = B * P;
    const float *xs = x + (a * P * B + b) * Q;
    float *ys = out + (a * Q * B + b) * P;
    const int64_t p8 = p0 + (p1 - p0) / 8 * 8, q8 = Q / 8 * 8;
    for (int64_t q0 = 0; q0 < Q; q0 += TILE_F32) {
        const int64_t q1 = min64(q0 + TILE_F32, Q), q1v = min64(q1, q8);
        for (int64_t p = p0; p < p8; p += 8) {
            int64_t q = q0;
            for (; q < q1v; q += 8)
                tr8x8_avx2(ys + q * yq + p, yq, xs + p * xp + q, xp, add);
            for (; q < q1; q++) /* columns past the last whole block */
                for (int64_t k = p; k < p + 8; k++) {
                    const float v = xs[k * xp + q];
                    ys[q * yq + k] = add ? ys[q * yq + k] + v : v;
                }
        }
        for (int64_t p = p8; p < p1; p++) /* rows past the last whole block */
            for (int64_t q = q0; q < q1; q++) {
                const float v = xs[p * xp + q];
                ys[q * yq + p] = add ? ys[q * yq + p] + v : v;
            }
    }
}
#endif

/* The items to threads when the tensor is large; each writes its own tile
 * rows of out. */
#define TRANSPOSE_RUN(TILE, CALL)                                                                  \
    if (A <= 0 || P <= 0 || B <= 0 || Q <= 0 || C <= 0)                                            \
        return;                                                                                    \
    const int64_t n_items = A * B * ((P + TILE - 1) / TILE);                                       \
    const int nt = tg__threads();                                                                  \
    const bool par = nt > 1 && n_items > 1 && A * P * B * Q * C >= PAR_MIN;                        \
    (void)nt;                                                                                      \
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")                           \
    for (int64_t it = 0; it < n_items; it++)                                                       \
        CALL;

static void transpose_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                          int64_t B, int64_t Q, int64_t C, bool add)
{
#if TG_HAVE_X86
    if (C == 1 && tg__cpu() >= TG_CPU_AVX2) {
        TRANSPOSE_RUN(TILE_F32, tr_item_f32_avx2(out, x, P, B, Q, it, add))
        return;
    }
#endif
    if (add) {
        TRANSPOSE_RUN(TILE_F32, tr_add_item_f32(out, x, P, B, Q, C, it))
    } else {
        TRANSPOSE_RUN(TILE_F32, tr_item_f32(out, x, P, B, Q, C, it))
    }
}

void tg__transpose_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C)
{
    transpose_f32(out, x, A, P, B, Q, C, false);
}

void tg__transpose_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_RUN(TILE_F64, tr_item_f64(out, x, P, B, Q, C, it))
}

void tg__transpose_add_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C)
{
    transpose_f32(out, x, A, P, B, Q, C, true);
}

void tg__transpose_add_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_RUN(TILE_F64, tr_add_item_f64(out, x, P, B, Q, C, it))
}

/* ------------------------------------------------------------ row copies */

#define COPY_ROWS_BODY(T)                                                                          \
    if (len <= 0 || rows <= 0)                                                                     \
        return;                                                                                    \
    if (dst_stride == len && src_stride == len) {                                                  \
        memcpy(dst, src, (size_t)(rows * len) * sizeof(T));                                        \
        return;                                                                                    \
    }                                                                                              \
    for (int64_t o = 0; o < rows; o++)                                                             \
        memcpy(dst + o * dst_stride, src + o * src_stride, (size_t)len * sizeof(T));

void tg__copy_rows_f32(float *restrict dst, int64_t dst_stride, const float *restrict src,
                       int64_t src_stride, int64_t rows, int64_t len)
{
    COPY_ROWS_BODY(float)
}

void tg__copy_rows_f64(double *restrict dst, int64_t dst_stride, const double *restrict src,
                       int64_t src_stride, int64_t rows, int64_t len)
{
    COPY_ROWS_BODY(double)
}

/* Rows to threads for large adds (each element gets one addition, so any
 * split gives the same bits); a contiguous block is cut into pieces of
 * ADD_PIECE elements first so that it can be split too. */
#define ADD_PIECE 16384
#define ADD_ROWS_BODY(T)                                                                           \
    if (len <= 0 || rows <= 0)                                                                     \
        return;                                                                                    \
    const int nt = tg__threads();                                                                  \
    const bool par = nt > 1 && rows * len >= PAR_MIN;                                              \
    (void)nt;                                                                                      \
    if (dst_stride == len && src_stride == len && rows * len > ADD_PIECE) {                        \
        const int64_t total = rows * len, np = (total + ADD_PIECE - 1) / ADD_PIECE;                \
        TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")                       \
        for (int64_t o = 0; o < np; o++) {                                                         \
            T *d = dst + o * ADD_PIECE;                                                            \
            const T *s = src + o * ADD_PIECE;                                                      \
            const int64_t m = min64(ADD_PIECE, total - o * ADD_PIECE);                             \
            TG_SIMD                                                                                \
            for (int64_t k = 0; k < m; k++)                                                        \
                d[k] += s[k];                                                                      \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par && rows > 1)")               \
    for (int64_t o = 0; o < rows; o++) {                                                           \
        T *d = dst + o * dst_stride;                                                               \
        const T *s = src + o * src_stride;                                                         \
        TG_SIMD                                                                                    \
        for (int64_t k = 0; k < len; k++)                                                          \
            d[k] += s[k];                                                                          \
    }

void tg__add_rows_f32(float *restrict dst, int64_t dst_stride, const float *restrict src,
                      int64_t src_stride, int64_t rows, int64_t len)
{
    ADD_ROWS_BODY(float)
}

void tg__add_rows_f64(double *restrict dst, int64_t dst_stride, const double *restrict src,
                      int64_t src_stride, int64_t rows, int64_t len)
{
    ADD_ROWS_BODY(double)
}
