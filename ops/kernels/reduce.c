/* Reduction loops over [outer, A, inner] views: sum (and mean through its
 * divisor) and max along A, with their VJPs. Plain C, both dtypes from one
 * macro body; no graph headers. The ops that call these are in ops/reduce.c. */
#include "reduce.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

/* Partial sums for one strip of `inner`, on the stack (16 KiB of doubles, so
 * a strip stays in L1 while the A rows stream through it, each read in runs of
 * up to 8 KiB of float32). */
#define SUM_STRIP 2048

/* inner == 1: each row is contiguous; four partial sums break the add chain
 * (the order is fixed, so results do not depend on the machine).
 * inner > 1: rows of `inner` are added element-wise into a strip of doubles,
 * a loop the compiler vectorises. */
#define SUM_AXIS_BODY(T)                                                                           \
    if (inner == 1) {                                                                              \
        for (int64_t o = 0; o < outer; o++) {                                                      \
            const T *r = x + o * A;                                                                \
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;                                         \
            int64_t a = 0;                                                                         \
            for (; a + 4 <= A; a += 4) {                                                           \
                s0 += (double)r[a];                                                                \
                s1 += (double)r[a + 1];                                                            \
                s2 += (double)r[a + 2];                                                            \
                s3 += (double)r[a + 3];                                                            \
            }                                                                                      \
            for (; a < A; a++)                                                                     \
                s0 += (double)r[a];                                                                \
            out[o] = (T)(((s0 + s1) + (s2 + s3)) / div);                                           \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    double acc[SUM_STRIP];                                                                         \
    for (int64_t o = 0; o < outer; o++) {                                                          \
        for (int64_t i0 = 0; i0 < inner; i0 += SUM_STRIP) {                                        \
            int64_t w = inner - i0 < SUM_STRIP ? inner - i0 : SUM_STRIP;                           \
            for (int64_t i = 0; i < w; i++)                                                        \
                acc[i] = 0.0;                                                                      \
            for (int64_t a = 0; a < A; a++) {                                                      \
                const T *r = x + (o * A + a) * inner + i0;                                         \
                for (int64_t i = 0; i < w; i++)                                                    \
                    acc[i] += (double)r[i];                                                        \
            }                                                                                      \
            T *y = out + o * inner + i0;                                                           \
            for (int64_t i = 0; i < w; i++)                                                        \
                y[i] = (T)(acc[i] / div);                                                          \
        }                                                                                          \
    }

void tg__sum_axis_f32(float *restrict out, const float *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div)
{
    SUM_AXIS_BODY(float)
}

void tg__sum_axis_f64(double *restrict out, const double *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div)
{
    SUM_AXIS_BODY(double)
}

#define SUM_AXIS_BACKWARD_BODY(T)                                                                  \
    const T s = (T)scale;                                                                          \
    for (int64_t o = 0; o < outer; o++) {                                                          \
        const T *d = dout + o * inner;                                                             \
        if (inner == 1) {                                                                          \
            const T gr = d[0] * s;                                                                 \
            T *r = dx + o * A;                                                                     \
            for (int64_t a = 0; a < A; a++)                                                        \
                r[a] += gr;                                                                        \
            continue;                                                                              \
        }                                                                                          \
        for (int64_t a = 0; a < A; a++) {                                                          \
            T *r = dx + (o * A + a) * inner;                                                       \
            for (int64_t i = 0; i < inner; i++)                                                    \
                r[i] += d[i] * s;                                                                  \
        }                                                                                          \
    }

void tg__sum_axis_backward_f32(float *restrict dx, const float *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale)
{
    SUM_AXIS_BACKWARD_BODY(float)
}

void tg__sum_axis_backward_f64(double *restrict dx, const double *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale)
{
    SUM_AXIS_BACKWARD_BODY(double)
}

/* "v beats the best so far": strictly greater (so the first of equal maxima
 * stays), or v is the first NaN. */
#define BEATS(v, b) ((v) > (b) || (isnan(v) && !isnan(b)))

/* The first index of the max of row r[0..A) (A >= 1), by BEATS. Fast path:
 * eight lanes of "v > m ? v : m" (one vector max instruction) plus a lane sum
 * of v - v, which stays 0 unless a NaN or an infinity went by; then the first
 * index equal to the max. A row with NaN or inf takes the plain scan. */
#define ROW_ARGMAX_BODY(T)                                                                         \
    T m[8], u[8];                                                                                  \
    for (int j = 0; j < 8; j++) {                                                                  \
        m[j] = r[0];                                                                               \
        u[j] = 0;                                                                                  \
    }                                                                                              \
    int64_t a = 0;                                                                                 \
    for (; a + 8 <= A; a += 8)                                                                     \
        for (int j = 0; j < 8; j++) {                                                              \
            T v = r[a + j];                                                                        \
            m[j] = v > m[j] ? v : m[j];                                                            \
            u[j] += v - v;                                                                         \
        }                                                                                          \
    for (; a < A; a++) {                                                                           \
        T v = r[a];                                                                                \
        m[0] = v > m[0] ? v : m[0];                                                                \
        u[0] += v - v;                                                                             \
    }                                                                                              \
    T best = m[0], bad = u[0];                                                                     \
    for (int j = 1; j < 8; j++) {                                                                  \
        best = m[j] > best ? m[j] : best;                                                          \
        bad += u[j];                                                                               \
    }                                                                                              \
    if (bad == 0) {                                                                                \
        for (a = 0; r[a] != best; a++)                                                             \
            ;                                                                                      \
        return a;                                                                                  \
    }                                                                                              \
    T b = r[0];                                                                                    \
    int64_t at = 0;                                                                                \
    for (a = 1; a < A && !isnan(b); a++) {                                                         \
        if (BEATS(r[a], b)) {                                                                      \
            b = r[a];                                                                              \
            at = a;                                                                                \
        }                                                                                          \
    }                                                                                              \
    return at;

static int64_t row_argmax_f32(const float *r, int64_t A) { ROW_ARGMAX_BODY(float) }
static int64_t row_argmax_f64(const double *r, int64_t A) { ROW_ARGMAX_BODY(double) }

/* inner == 1: one row at a time (row_argmax). inner > 1: whole rows of
 * `inner` compared element-wise against the running max, a loop over
 * contiguous memory. */
#define MAX_AXIS_BODY(T, ROW_ARGMAX)                                                               \
    for (int64_t o = 0; o < outer; o++) {                                                          \
        const T *xo = x + o * A * inner;                                                           \
        T *y = out + o * inner;                                                                    \
        int64_t *k = idx ? idx + o * inner : NULL;                                                 \
        if (inner == 1) {                                                                          \
            int64_t at = ROW_ARGMAX(xo, A);                                                        \
            y[0] = xo[at];                                                                         \
            if (k)                                                                                 \
                k[0] = at;                                                                         \
            continue;                                                                              \
        }                                                                                          \
        for (int64_t i = 0; i < inner; i++)                                                        \
            y[i] = xo[i];                                                                          \
        if (k)                                                                                     \
            for (int64_t i = 0; i < inner; i++)                                                    \
                k[i] = 0;                                                                          \
        for (int64_t a = 1; a < A; a++) {                                                          \
            const T *r = xo + a * inner;                                                           \
            if (k) {                                                                               \
                for (int64_t i = 0; i < inner; i++) {                                              \
                    const bool w = BEATS(r[i], y[i]);                                              \
                    y[i] = w ? r[i] : y[i];                                                        \
                    k[i] = w ? a : k[i];                                                           \
                }                                                                                  \
            } else {                                                                               \
                for (int64_t i = 0; i < inner; i++)                                                \
                    y[i] = BEATS(r[i], y[i]) ? r[i] : y[i];                                        \
            }                                                                                      \
        }                                                                                          \
    }

void tg__max_axis_f32(float *restrict out, int64_t *restrict idx, const float *restrict x,
                      int64_t outer, int64_t A, int64_t inner)
{
    MAX_AXIS_BODY(float, row_argmax_f32)
}

void tg__max_axis_f64(double *restrict out, int64_t *restrict idx, const double *restrict x,
                      int64_t outer, int64_t A, int64_t inner)
{
    MAX_AXIS_BODY(double, row_argmax_f64)
}

#define MAX_AXIS_BACKWARD_BODY()                                                                   \
    for (int64_t o = 0; o < outer; o++) {                                                          \
        const int64_t *k = idx + o * inner;                                                        \
        const int64_t base = o * A * inner;                                                        \
        for (int64_t i = 0; i < inner; i++)                                                        \
            dx[base + k[i] * inner + i] += dout[o * inner + i];                                    \
    }

void tg__max_axis_backward_f32(float *restrict dx, const float *restrict dout,
                               const int64_t *restrict idx, int64_t outer, int64_t A, int64_t inner)
{
    MAX_AXIS_BACKWARD_BODY()
}

void tg__max_axis_backward_f64(double *restrict dx, const double *restrict dout,
                               const int64_t *restrict idx, int64_t outer, int64_t A, int64_t inner)
{
    MAX_AXIS_BACKWARD_BODY()
}
