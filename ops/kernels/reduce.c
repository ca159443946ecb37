/* Reduction loops over [outer, A, inner] views: sum (and mean through its
 * divisor) and max along A, with their VJPs. Both dtypes from one macro body;
 * no graph headers. The ops that call these are in ops/reduce.c.
 *
 * Speed: the loops run under `omp simd` in three float32 copies (AVX-512,
 * AVX2, generic x86-64) picked at run time by tg__cpu(), all doing the same
 * IEEE operations in the same order, so every copy gives the same bits.
 * A contiguous sum (inner == 1) adds 16 lanes in a fixed order (LANE_SUM)
 * within chunks of RED_CHUNK elements and the chunks in order; threads take
 * whole rows, or the chunks of a single long row, so the association, and the
 * result, do not depend on the thread count. */
#include "reduce.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* --------------------------------------------------------- sum helpers */

#define RED_CHUNK 16384   /* elements of a contiguous sum per work item */
#define RED_PAR_MIN 65536 /* elements below which one thread does the call */
#define SUM_STRIP 2048    /* inner > 1: doubles of partial sums kept in L1 */
#define LANES 16
/* The pairwise tree over 16 lanes: lanes k and k + 8 first, then k and k + 4,
 * k and k + 2, then the last two (written out, so it compiles to straight
 * adds). */
#define TREE16(l)                                                                                  \
    ((((l[0] + l[8]) + (l[4] + l[12])) + ((l[2] + l[10]) + (l[6] + l[14]))) +                      \
     (((l[1] + l[9]) + (l[5] + l[13])) + ((l[3] + l[11]) + (l[7] + l[15]))))

/* The kernels of one copy. lane_sum: sum of r[0..n) in double, lane k adding
 * the terms k (mod 16) of the whole blocks, the tail to lane 0, then a
 * pairwise tree. row_sum: the chunks of RED_CHUNK of a row by lane_sum, added
 * in order (one chunk: lane_sum itself). */
#define DEF_SUM_COPY(T, SUF, ATTR)                                                                 \
    ATTR NO_TRAP static double lane_sum_##SUF(const T *restrict r, int64_t n)                      \
    {                                                                                              \
        double l[LANES] = {0};                                                                     \
        int64_t a0 = 0;                                                                            \
        for (; a0 + LANES <= n; a0 += LANES) {                                                     \
            TG_SIMD                                                                                \
            for (int k = 0; k < LANES; k++)                                                        \
                l[k] += (double)r[a0 + k];                                                         \
        }                                                                                          \
        for (int64_t a = a0; a < n; a++)                                                           \
            l[0] += (double)r[a];                                                                  \
        return TREE16(l);                                                                          \
    }                                                                                              \
    ATTR NO_TRAP static double row_sum_##SUF(const T *restrict r, int64_t n)                       \
    {                                                                                              \
        if (n <= RED_CHUNK)                                                                        \
            return lane_sum_##SUF(r, n);                                                           \
        double s = 0.0;                                                                            \
        for (int64_t at = 0; at < n; at += RED_CHUNK)                                              \
            s += lane_sum_##SUF(r + at, min64(RED_CHUNK, n - at));                                 \
        return s;                                                                                  \
    }                                                                                              \
    /* out[o] = row_sum / div for rows [o0, o1) (inner == 1) */                                    \
    ATTR NO_TRAP static void sum_rows_##SUF(T *restrict out, const T *restrict x, int64_t o0,      \
                                            int64_t o1, int64_t A, double div)                     \
    {                                                                                              \
        for (int64_t o = o0; o < o1; o++)                                                          \
            out[o] = (T)(row_sum_##SUF(x + o * A, A) / div);                                       \
    }                                                                                              \
    /* inner > 1: one strip [i0, i0 + w) of output row o: the A rows added                         \
     * element-wise into doubles, in order of a. */                                                \
    ATTR NO_TRAP static void sum_strip_##SUF(T *restrict out, const T *restrict x, int64_t o,      \
                                             int64_t i0, int64_t w, int64_t A, int64_t inner,      \
                                             double div)                                           \
    {                                                                                              \
        double acc[SUM_STRIP];                                                                     \
        for (int64_t i = 0; i < w; i++)                                                            \
            acc[i] = 0.0;                                                                          \
        for (int64_t a = 0; a < A; a++) {                                                          \
            const T *r = x + (o * A + a) * inner + i0;                                             \
            TG_SIMD                                                                                \
            for (int64_t i = 0; i < w; i++)                                                        \
                acc[i] += (double)r[i];                                                            \
        }                                                                                          \
        T *y = out + o * inner + i0;                                                               \
        TG_SIMD                                                                                    \
        for (int64_t i = 0; i < w; i++)                                                            \
            y[i] = (T)(acc[i] / div);                                                              \
    }                                                                                              \
    /* VJP rows [r0, r1) of the o * A + a rows: dx row += dout[o] * s. */                          \
    ATTR NO_TRAP static void sum_bwd_rows_##SUF(T *restrict dx, const T *restrict dout,            \
                                                int64_t r0, int64_t r1, int64_t A,                 \
                                                int64_t inner, T s)                                \
    {                                                                                              \
        for (int64_t rr = r0; rr < r1; rr++) {                                                     \
            T *r = dx + rr * inner;                                                                \
            const T *d = dout + (rr / A) * inner;                                                  \
            TG_SIMD                                                                                \
            for (int64_t i = 0; i < inner; i++)                                                    \
                r[i] += d[i] * s;                                                                  \
        }                                                                                          \
    }                                                                                              \
    /* inner == 1 VJP over elements [e0, e1) of the flat [outer * A]: each gets                    \
     * dout[o] * s, computed once per row. */                                                      \
    ATTR NO_TRAP static void sum_bwd_flat_##SUF(T *restrict dx, const T *restrict dout,            \
                                                int64_t e0, int64_t e1, int64_t A, T s)            \
    {                                                                                              \
        int64_t e = e0;                                                                            \
        while (e < e1) {                                                                           \
            const int64_t o = e / A, end = min64(e1, (o + 1) * A);                                 \
            const T gr = dout[o] * s;                                                              \
            T *r = dx;                                                                             \
            TG_SIMD                                                                                \
            for (int64_t i = e; i < end; i++)                                                      \
                r[i] += gr;                                                                        \
            e = end;                                                                               \
        }                                                                                          \
    }

F32_COPIES(DEF_SUM_COPY)
DEF_SUM_COPY(double, f64, ATTR_gen)

/* ------------------------------------------------------------------- sum */

/* inner == 1: rows to threads (one row: its chunks to threads, each chunk's
 * lane_sum by one thread, added in order as row_sum does). inner > 1: the
 * (row, strip) items to threads. */
#define SUM_AXIS(T, LANE_SUM, SUM_ROWS, SUM_STRIP_FN)                                              \
    const int nt = tg__threads();                                                                  \
    const bool par = nt > 1 && outer * A * inner >= RED_PAR_MIN;                                   \
    (void)nt;                                                                                      \
    if (inner == 1) {                                                                              \
        if (outer == 1 && A > RED_CHUNK) {                                                         \
            const int64_t nc = (A + RED_CHUNK - 1) / RED_CHUNK;                                    \
            double s = 0.0, part[256];                                                             \
            for (int64_t c0 = 0; c0 < nc; c0 += 256) {                                             \
                const int64_t c1 = min64(nc, c0 + 256);                                            \
                TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")               \
                for (int64_t c = c0; c < c1; c++)                                                  \
                    part[c - c0] =                                                                 \
                        LANE_SUM(x + c * RED_CHUNK, min64(RED_CHUNK, A - c * RED_CHUNK));          \
                for (int64_t c = c0; c < c1; c++)                                                  \
                    s += part[c - c0];                                                             \
            }                                                                                      \
            out[0] = (T)(s / div);                                                                 \
            return;                                                                                \
        }                                                                                          \
        const int64_t per = par ? (outer + nt - 1) / nt : outer;                                   \
        const int64_t nb = (outer + per - 1) / per;                                                \
        TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par && nb > 1)")             \
        for (int64_t b = 0; b < nb; b++)                                                           \
            SUM_ROWS(out, x, b * per, min64(outer, (b + 1) * per), A, div);                        \
        return;                                                                                    \
    }                                                                                              \
    const int64_t ns = (inner + SUM_STRIP - 1) / SUM_STRIP;                                        \
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par && outer * ns > 1)")         \
    for (int64_t it = 0; it < outer * ns; it++) {                                                  \
        const int64_t o = it / ns, i0 = (it % ns) * SUM_STRIP;                                     \
        SUM_STRIP_FN(out, x, o, i0, min64(SUM_STRIP, inner - i0), A, inner, div);                  \
    }

void tg__sum_axis_f32(float *restrict out, const float *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div)
{
    if (outer <= 0 || inner <= 0)
        return;
    double (*lane_sum)(const float *restrict, int64_t) = PICK_F32(lane_sum);
    void (*rows)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, double) =
        PICK_F32(sum_rows);
    void (*strip)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, int64_t,
                  int64_t, double) = PICK_F32(sum_strip);
    SUM_AXIS(float, lane_sum, rows, strip)
}

void tg__sum_axis_f64(double *restrict out, const double *restrict x, int64_t outer, int64_t A,
                      int64_t inner, double div)
{
    if (outer <= 0 || inner <= 0)
        return;
    SUM_AXIS(double, lane_sum_f64, sum_rows_f64, sum_strip_f64)
}

/* Any split of dx between threads gives the same bits (each element gets one
 * addition); chunks of RED_CHUNK elements. */
#define SUM_AXIS_BACKWARD(T, FLAT, ROWS)                                                           \
    const int nt = tg__threads();                                                                  \
    const int64_t n = outer * A * inner;                                                           \
    const bool par = nt > 1 && n >= RED_PAR_MIN;                                                   \
    (void)nt;                                                                                      \
    const T s = (T)scale;                                                                          \
    if (inner == 1) {                                                                              \
        const int64_t nc = (n + RED_CHUNK - 1) / RED_CHUNK;                                        \
        TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")                       \
        for (int64_t c = 0; c < nc; c++)                                                           \
            FLAT(dx, dout, c * RED_CHUNK, min64(n, (c + 1) * RED_CHUNK), A, s);                    \
        return;                                                                                    \
    }                                                                                              \
    const int64_t R = outer * A, per = imax64(1, RED_CHUNK / inner), nb = (R + per - 1) / per;     \
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")                           \
    for (int64_t b = 0; b < nb; b++)                                                               \
        ROWS(dx, dout, b * per, min64(R, (b + 1) * per), A, inner, s);

static inline int64_t imax64(int64_t a, int64_t b) { return a > b ? a : b; }

void tg__sum_axis_backward_f32(float *restrict dx, const float *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale)
{
    if (outer <= 0 || A <= 0 || inner <= 0)
        return;
    void (*flat)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, float) =
        PICK_F32(sum_bwd_flat);
    void (*rows)(float *restrict, const float *restrict, int64_t, int64_t, int64_t, int64_t,
                 float) = PICK_F32(sum_bwd_rows);
    SUM_AXIS_BACKWARD(float, flat, rows)
}

void tg__sum_axis_backward_f64(double *restrict dx, const double *restrict dout, int64_t outer,
                               int64_t A, int64_t inner, double scale)
{
    if (outer <= 0 || A <= 0 || inner <= 0)
        return;
    SUM_AXIS_BACKWARD(double, sum_bwd_flat_f64, sum_bwd_rows_f64)
}

/* ------------------------------------------------------------------- max */

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
    for (; a + 8 <= A; a += 8) {                                                                   \
        TG_SIMD                                                                                    \
        for (int j = 0; j < 8; j++) {                                                              \
            T v = r[a + j];                                                                        \
            m[j] = v > m[j] ? v : m[j];                                                            \
            u[j] += v - v;                                                                         \
        }                                                                                          \
    }                                                                                              \
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

/* Rows [o0, o1). inner == 1: one row at a time (row_argmax). inner > 1: whole
 * rows of `inner` compared element-wise against the running max, a loop over
 * contiguous memory. */
#define DEF_MAX_COPY(T, SUF, ATTR)                                                                 \
    ATTR NO_TRAP static int64_t row_argmax_##SUF(const T *restrict r, int64_t A)                   \
    {                                                                                              \
        ROW_ARGMAX_BODY(T)                                                                         \
    }                                                                                              \
    ATTR NO_TRAP static void max_rows_##SUF(T *restrict out, int64_t *restrict idx,                \
                                            const T *restrict x, int64_t o0, int64_t o1,           \
                                            int64_t A, int64_t inner)                              \
    {                                                                                              \
        for (int64_t o = o0; o < o1; o++) {                                                        \
            const T *xo = x + o * A * inner;                                                       \
            T *y = out + o * inner;                                                                \
            int64_t *k = idx ? idx + o * inner : NULL;                                             \
            if (inner == 1) {                                                                      \
                const int64_t at = row_argmax_##SUF(xo, A);                                        \
                y[0] = xo[at];                                                                     \
                if (k)                                                                             \
                    k[0] = at;                                                                     \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t i = 0; i < inner; i++)                                                    \
                y[i] = xo[i];                                                                      \
            if (k)                                                                                 \
                for (int64_t i = 0; i < inner; i++)                                                \
                    k[i] = 0;                                                                      \
            for (int64_t a = 1; a < A; a++) {                                                      \
                const T *r = xo + a * inner;                                                       \
                if (k) {                                                                           \
                    TG_SIMD                                                                        \
                    for (int64_t i = 0; i < inner; i++) {                                          \
                        const bool w = BEATS(r[i], y[i]);                                          \
                        y[i] = w ? r[i] : y[i];                                                    \
                        k[i] = w ? a : k[i];                                                       \
                    }                                                                              \
                } else {                                                                           \
                    TG_SIMD                                                                        \
                    for (int64_t i = 0; i < inner; i++)                                            \
                        y[i] = BEATS(r[i], y[i]) ? r[i] : y[i];                                    \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

F32_COPIES(DEF_MAX_COPY)
DEF_MAX_COPY(double, f64, ATTR_gen)

/* Rows of the outer dim to threads (each output element by one thread). */
#define MAX_AXIS(CALL)                                                                             \
    const int nt = tg__threads();                                                                  \
    const bool par = nt > 1 && outer > 1 && outer * A * inner >= RED_PAR_MIN;                      \
    const int64_t per = par ? (outer + nt - 1) / nt : outer, nb = (outer + per - 1) / per;         \
    (void)nt;                                                                                      \
    TG_OMP("omp parallel for num_threads(nt) schedule(static) if (par)")                           \
    for (int64_t b = 0; b < nb; b++)                                                               \
        CALL;

void tg__max_axis_f32(float *restrict out, int64_t *restrict idx, const float *restrict x,
                      int64_t outer, int64_t A, int64_t inner)
{
    if (outer <= 0 || inner <= 0)
        return;
    void (*f)(float *restrict, int64_t *restrict, const float *restrict, int64_t, int64_t,
              int64_t, int64_t) = PICK_F32(max_rows);
    MAX_AXIS(f(out, idx, x, b * per, min64(outer, (b + 1) * per), A, inner))
}

void tg__max_axis_f64(double *restrict out, int64_t *restrict idx, const double *restrict x,
                      int64_t outer, int64_t A, int64_t inner)
{
    if (outer <= 0 || inner <= 0)
        return;
    MAX_AXIS(max_rows_f64(out, idx, x, b * per, min64(outer, (b + 1) * per), A, inner))
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
