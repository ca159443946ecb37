/* Data-movement loops for ops/shape.c: the tiled transpose of two dims and the
 * strided row copies / adds behind concat and reshape. Both dtypes from one
 * macro body; no graph headers. */
#include "shape.h"

#include <string.h>

/* (p, q) is walked in TILE x TILE blocks, TILE = 64 for float32 and 32 for
 * float64: the C == 1 staging buffer is then 16 KiB or 8 KiB, inside L1. */
#define TILE_F32 64
#define TILE_F64 32

#define TRANSPOSE_BODY(T, OP, TILE)                                                                \
    const int64_t xp = B * Q * C; /* x's stride of p */                                            \
    const int64_t yq = B * P * C; /* out's stride of q */                                          \
    T buf[TILE][TILE];                                                                             \
    for (int64_t a = 0; a < A; a++) {                                                              \
        for (int64_t b = 0; b < B; b++) {                                                          \
            const T *xs = x + (a * P * B + b) * Q * C;  /* &x[a, 0, b, 0, 0] */                    \
            T *ys = out + (a * Q * B + b) * P * C;      /* &out[a, 0, b, 0, 0] */                  \
            for (int64_t p0 = 0; p0 < P; p0 += TILE) {                                             \
                const int64_t p1 = p0 + TILE < P ? p0 + TILE : P;                                  \
                for (int64_t q0 = 0; q0 < Q; q0 += TILE) {                                         \
                    const int64_t q1 = q0 + TILE < Q ? q0 + TILE : Q;                              \
                    if (C == 1) {                                                                  \
                        /* Through an L1 buffer: each source row piece is read and                 \
                         * each destination row piece written in one burst, so                     \
                         * power-of-two strides cannot make the lines evict each                   \
                         * other between visits. */                                                \
                        for (int64_t p = p0; p < p1; p++)                                          \
                            for (int64_t q = q0; q < q1; q++)                                      \
                                buf[q - q0][p - p0] = xs[p * xp + q];                              \
                        for (int64_t q = q0; q < q1; q++)                                          \
                            for (int64_t p = p0; p < p1; p++)                                      \
                                ys[q * yq + p] OP buf[q - q0][p - p0];                             \
                    } else {                                                                       \
                        for (int64_t p = p0; p < p1; p++)                                          \
                            for (int64_t q = q0; q < q1; q++) {                                    \
                                const T *s = xs + p * xp + q * C;                                  \
                                T *d = ys + q * yq + p * C;                                        \
                                for (int64_t c = 0; c < C; c++)                                    \
                                    d[c] OP s[c];                                                  \
                            }                                                                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

void tg__transpose_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_BODY(float, =, TILE_F32)
}

void tg__transpose_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                       int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_BODY(double, =, TILE_F64)
}

void tg__transpose_add_f32(float *restrict out, const float *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_BODY(float, +=, TILE_F32)
}

void tg__transpose_add_f64(double *restrict out, const double *restrict x, int64_t A, int64_t P,
                           int64_t B, int64_t Q, int64_t C)
{
    TRANSPOSE_BODY(double, +=, TILE_F64)
}

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

#define ADD_ROWS_BODY(T)                                                                           \
    for (int64_t o = 0; o < rows; o++) {                                                           \
        T *d = dst + o * dst_stride;                                                               \
        const T *s = src + o * src_stride;                                                         \
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
