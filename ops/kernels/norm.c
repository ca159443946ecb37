/* Batch-norm and dropout kernels (see norm.h): plain loops over NCHW planes.
 * Threads: the per-channel sums split channels (each channel summed over n in
 * order by one thread), the elementwise passes split planes (n, c) or chunks.
 * Reductions accumulate in double with eight partial sums in a fixed order;
 * the elementwise passes run in the tensor's own type with per-channel
 * constants. No graph header here: the graph side is ops/norm.c.
 *
 * Speed: every loop runs under `omp simd`, in three float32 copies (AVX-512,
 * AVX2, generic x86-64) picked at run time by tg__cpu(); all copies do the
 * same IEEE operations in the same order (the eight partial sums are eight
 * vector lanes), so they give the same bits. The backward's two sums over a
 * plane (dy, and dy times the centred x) share one pass over memory. */
#include "norm.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PAR_MIN 32768 /* elements below which one thread does the pass */
#define DO_CHUNK 8192 /* dropout elements per thread work item */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ------------------------------------------------------------- threads */

/* A loop split between the kernels' threads when `cond` holds (each item by
 * one thread, so results do not depend on the thread count). */
#define PAR_FOR(cond)                                                                              \
    const int nt_ = tg__threads();                                                                 \
    const bool par_ = nt_ > 1 && (cond);                                                           \
    (void)nt_;                                                                                     \
    (void)par_;                                                                                    \
    TG_OMP("omp parallel for num_threads(nt_) schedule(static) if (par_)")

/* ------------------------------------------------------------ run helpers */

/* Sums over one contiguous run in double: lane k of eight adds the terms
 * k (mod 8) of the whole blocks, the tail goes to lane 0, and the lanes are
 * added as ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)). */
#define L8_TOTAL(l) (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])))
#define L8_LOOP(n, STEP, TAIL)                                                                     \
    int64_t i0 = 0;                                                                                \
    for (; i0 + 8 <= (n); i0 += 8) {                                                               \
        TG_SIMD                                                                                    \
        for (int k = 0; k < 8; k++) {                                                              \
            const int64_t i = i0 + k;                                                              \
            STEP;                                                                                  \
        }                                                                                          \
    }                                                                                              \
    for (int64_t i = i0; i < (n); i++) {                                                           \
        const int k = 0;                                                                           \
        TAIL;                                                                                      \
    }

#define DEF_NORM_COPY(T, SUF, ATTR)                                                                \
    /* sum of p[0..n) and sum of (p - m)^2 */                                                      \
    ATTR NO_TRAP static double sum_run_##SUF(const T *restrict p, int64_t n)                       \
    {                                                                                              \
        double l[8] = {0};                                                                         \
        L8_LOOP(n, l[k] += (double)p[i], l[k] += (double)p[i])                                     \
        return L8_TOTAL(l);                                                                        \
    }                                                                                              \
    ATTR NO_TRAP static double sqdev_run_##SUF(const T *restrict p, int64_t n, double m)           \
    {                                                                                              \
        double l[8] = {0};                                                                         \
        L8_LOOP(n, const double d = (double)p[i] - m; l[k] += d * d,                               \
                const double d = (double)p[i] - m; l[k] += d * d)                                  \
        return L8_TOTAL(l);                                                                        \
    }                                                                                              \
    /* sum of g and sum of g * (p - m), in one pass */                                             \
    ATTR NO_TRAP static void sum_devdot_run_##SUF(const T *restrict g, const T *restrict p,        \
                                                  int64_t n, double m, double *sg,                 \
                                                  double *sgd)                                     \
    {                                                                                              \
        double l[8] = {0}, q[8] = {0};                                                             \
        L8_LOOP(n, l[k] += (double)g[i]; q[k] += (double)g[i] * ((double)p[i] - m),                \
                l[k] += (double)g[i]; q[k] += (double)g[i] * ((double)p[i] - m))                   \
        *sg = L8_TOTAL(l);                                                                         \
        *sgd = L8_TOTAL(q);                                                                        \
    }                                                                                              \
                                                                                                   \
    /* channels [c0, c1): mean and biased variance over (N, HW), two passes */                     \
    ATTR NO_TRAP static void bn_stats_ch_##SUF(double *mean, double *var, const T *x,              \
                                               int64_t N, int64_t C, int64_t HW, int64_t c)        \
    {                                                                                              \
        const double M = (double)(N * HW);                                                         \
        double s = 0.0, q = 0.0;                                                                   \
        for (int64_t n = 0; n < N; n++)                                                            \
            s += sum_run_##SUF(x + (n * C + c) * HW, HW);                                          \
        const double mu = N * HW > 0 ? s / M : 0.0;                                                \
        for (int64_t n = 0; n < N; n++)                                                            \
            q += sqdev_run_##SUF(x + (n * C + c) * HW, HW, mu);                                    \
        mean[c] = mu;                                                                              \
        var[c] = N * HW > 0 ? q / M : 0.0;                                                         \
    }                                                                                              \
    /* plane p = (n, c): y = (x - m) * s + sh in T */                                              \
    ATTR NO_TRAP static void bn_fwd_plane_##SUF(T *restrict y, const T *restrict x,                \
                                                const double *mean, const double *invstd,          \
                                                const T *w, const T *b, int64_t C,                 \
                                                int64_t HW, int64_t p)                             \
    {                                                                                              \
        const int64_t c = p % C;                                                                   \
        const T m = (T)mean[c];                                                                    \
        const T s = (T)(invstd[c] * (w ? (double)w[c] : 1.0));                                     \
        const T sh = b ? b[c] : (T)0;                                                              \
        T *restrict yp = y + p * HW;                                                               \
        const T *restrict xp = x + p * HW;                                                         \
        TG_SIMD                                                                                    \
        for (int64_t i = 0; i < HW; i++)                                                           \
            yp[i] = (xp[i] - m) * s + sh;                                                          \
    }                                                                                              \
    ATTR NO_TRAP static void bn_sums_ch_##SUF(double *sum_dy, double *sum_dy_xhat,                 \
                                              const T *dy, const T *x, const double *mean,         \
                                              const double *invstd, int64_t N, int64_t C,          \
                                              int64_t HW, int64_t c)                               \
    {                                                                                              \
        double sg = 0.0, sgd = 0.0;                                                                \
        for (int64_t n = 0; n < N; n++) {                                                          \
            const int64_t at = (n * C + c) * HW;                                                   \
            double a, b;                                                                           \
            sum_devdot_run_##SUF(dy + at, x + at, HW, mean[c], &a, &b);                            \
            sg += a;                                                                               \
            sgd += b;                                                                              \
        }                                                                                          \
        sum_dy[c] = sg;                                                                            \
        sum_dy_xhat[c] = sgd * invstd[c];                                                          \
    }                                                                                              \
    ATTR NO_TRAP static void bn_bwd_plane_##SUF(T *restrict dx, const T *restrict dy,              \
                                                const T *restrict x, const double *mean,           \
                                                const double *invstd, const T *w,                  \
                                                const double *sum_dy,                              \
                                                const double *sum_dy_xhat, int training,           \
                                                int64_t N, int64_t C, int64_t HW, int64_t p)       \
    {                                                                                              \
        const double M = (double)(N * HW);                                                         \
        const int64_t c = p % C;                                                                   \
        const T k = (T)(invstd[c] * (w ? (double)w[c] : 1.0));                                     \
        T *restrict dp = dx + p * HW;                                                              \
        const T *restrict gp = dy + p * HW;                                                        \
        if (training) {                                                                            \
            const T m = (T)mean[c];                                                                \
            const T a = (T)(sum_dy[c] / M);                                                        \
            const T s = (T)(invstd[c] * sum_dy_xhat[c] / M);                                       \
            const T *restrict xp = x + p * HW;                                                     \
            TG_SIMD                                                                                \
            for (int64_t i = 0; i < HW; i++)                                                       \
                dp[i] += k * (gp[i] - a - (xp[i] - m) * s);                                        \
        } else {                                                                                   \
            TG_SIMD                                                                                \
            for (int64_t i = 0; i < HW; i++)                                                       \
                dp[i] += k * gp[i];                                                                \
        }                                                                                          \
    }

F32_COPIES(DEF_NORM_COPY)
DEF_NORM_COPY(double, f64, ATTR_gen)

/* ------------------------------------------------------------- batch norm */

void tg__bn2d_stats_f32(double *mean, double *var, const float *x, int64_t N, int64_t C,
                        int64_t HW)
{
    void (*f)(double *, double *, const float *, int64_t, int64_t, int64_t, int64_t) =
        PICK_F32(bn_stats_ch);
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        f(mean, var, x, N, C, HW, c);
}

void tg__bn2d_stats_f64(double *mean, double *var, const double *x, int64_t N, int64_t C,
                        int64_t HW)
{
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        bn_stats_ch_f64(mean, var, x, N, C, HW, c);
}

void tg__bn2d_forward_f32(float *restrict y, const float *restrict x, const double *mean,
                          const double *invstd, const float *w, const float *b, int64_t N,
                          int64_t C, int64_t HW)
{
    void (*f)(float *restrict, const float *restrict, const double *, const double *,
              const float *, const float *, int64_t, int64_t, int64_t) = PICK_F32(bn_fwd_plane);
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t p = 0; p < N * C; p++)
        f(y, x, mean, invstd, w, b, C, HW, p);
}

void tg__bn2d_forward_f64(double *restrict y, const double *restrict x, const double *mean,
                          const double *invstd, const double *w, const double *b, int64_t N,
                          int64_t C, int64_t HW)
{
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t p = 0; p < N * C; p++)
        bn_fwd_plane_f64(y, x, mean, invstd, w, b, C, HW, p);
}

void tg__bn2d_sums_f32(double *sum_dy, double *sum_dy_xhat, const float *dy, const float *x,
                       const double *mean, const double *invstd, int64_t N, int64_t C,
                       int64_t HW)
{
    void (*f)(double *, double *, const float *, const float *, const double *, const double *,
              int64_t, int64_t, int64_t, int64_t) = PICK_F32(bn_sums_ch);
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        f(sum_dy, sum_dy_xhat, dy, x, mean, invstd, N, C, HW, c);
}

void tg__bn2d_sums_f64(double *sum_dy, double *sum_dy_xhat, const double *dy, const double *x,
                       const double *mean, const double *invstd, int64_t N, int64_t C,
                       int64_t HW)
{
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t c = 0; c < C; c++)
        bn_sums_ch_f64(sum_dy, sum_dy_xhat, dy, x, mean, invstd, N, C, HW, c);
}

void tg__bn2d_backward_x_f32(float *restrict dx, const float *restrict dy,
                             const float *restrict x, const double *mean, const double *invstd,
                             const float *w, const double *sum_dy, const double *sum_dy_xhat,
                             int training, int64_t N, int64_t C, int64_t HW)
{
    void (*f)(float *restrict, const float *restrict, const float *restrict, const double *,
              const double *, const float *, const double *, const double *, int, int64_t,
              int64_t, int64_t, int64_t) = PICK_F32(bn_bwd_plane);
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t p = 0; p < N * C; p++)
        f(dx, dy, x, mean, invstd, w, sum_dy, sum_dy_xhat, training, N, C, HW, p);
}

void tg__bn2d_backward_x_f64(double *restrict dx, const double *restrict dy,
                             const double *restrict x, const double *mean,
                             const double *invstd, const double *w, const double *sum_dy,
                             const double *sum_dy_xhat, int training, int64_t N, int64_t C,
                             int64_t HW)
{
    PAR_FOR(N * C * HW > PAR_MIN)
    for (int64_t p = 0; p < N * C; p++)
        bn_bwd_plane_f64(dx, dy, x, mean, invstd, w, sum_dy, sum_dy_xhat, training, N, C, HW,
                         p);
}

/* ---------------------------------------------------------------- dropout */

/* Branch-free select: a random mask makes a branch mispredict half the time.
 * The mask byte (0 or 1) becomes an all-zeros or all-ones word that is ANDed
 * with the bits of v, so a dropped element is +0.0 whatever x holds. */
NO_TRAP static inline float keep_f32(float v, uint8_t m)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u &= 0u - (uint32_t)m;
    memcpy(&v, &u, sizeof v);
    return v;
}

NO_TRAP static inline double keep_f64(double v, uint8_t m)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u &= (uint64_t)0 - (uint64_t)m;
    memcpy(&v, &u, sizeof v);
    return v;
}

#define KEEP_float keep_f32
#define KEEP_double keep_f64
#define KEEP_(T) KEEP_##T
#define KEEP(T) KEEP_(T)

/* One chunk [at, at + len): y = keep(x / q) and dx += keep(dy / q). */
#define DEF_DROPOUT_COPY(T, SUF, ATTR)                                                             \
    ATTR NO_TRAP static void do_fwd_##SUF(T *restrict y, const T *restrict x,                      \
                                          const uint8_t *restrict mask, T q, int64_t at,           \
                                          int64_t len)                                             \
    {                                                                                              \
        T *restrict yp = y + at;                                                                   \
        const T *restrict xp = x + at;                                                             \
        const uint8_t *restrict mp = mask + at;                                                    \
        TG_SIMD                                                                                    \
        for (int64_t i = 0; i < len; i++)                                                          \
            yp[i] = KEEP(T)(xp[i] / q, mp[i]);                                                     \
    }                                                                                              \
    ATTR NO_TRAP static void do_bwd_##SUF(T *restrict dx, const T *restrict dy,                    \
                                          const uint8_t *restrict mask, T q, int64_t at,           \
                                          int64_t len)                                             \
    {                                                                                              \
        T *restrict dp = dx + at;                                                                  \
        const T *restrict gp = dy + at;                                                            \
        const uint8_t *restrict mp = mask + at;                                                    \
        TG_SIMD                                                                                    \
        for (int64_t i = 0; i < len; i++)                                                          \
            dp[i] += KEEP(T)(gp[i] / q, mp[i]);                                                    \
    }

F32_COPIES(DEF_DROPOUT_COPY)
DEF_DROPOUT_COPY(double, f64, ATTR_gen)

#define DROPOUT_RUN(CALL)                                                                          \
    if (n <= 0)                                                                                    \
        return;                                                                                    \
    const int64_t nc = (n + DO_CHUNK - 1) / DO_CHUNK;                                              \
    PAR_FOR(n > PAR_MIN)                                                                           \
    for (int64_t ci = 0; ci < nc; ci++)                                                            \
        CALL(ci * DO_CHUNK, min64(DO_CHUNK, n - ci * DO_CHUNK));

void tg__dropout_forward_f32(float *restrict y, const float *restrict x,
                             const uint8_t *restrict mask, float q, int64_t n)
{
    void (*f)(float *restrict, const float *restrict, const uint8_t *restrict, float, int64_t,
              int64_t) = PICK_F32(do_fwd);
#define CALL_(at, len) f(y, x, mask, q, at, len)
    DROPOUT_RUN(CALL_)
#undef CALL_
}

void tg__dropout_forward_f64(double *restrict y, const double *restrict x,
                             const uint8_t *restrict mask, double q, int64_t n)
{
#define CALL_(at, len) do_fwd_f64(y, x, mask, q, at, len)
    DROPOUT_RUN(CALL_)
#undef CALL_
}

void tg__dropout_backward_f32(float *restrict dx, const float *restrict dy,
                              const uint8_t *restrict mask, float q, int64_t n)
{
    void (*f)(float *restrict, const float *restrict, const uint8_t *restrict, float, int64_t,
              int64_t) = PICK_F32(do_bwd);
#define CALL_(at, len) f(dx, dy, mask, q, at, len)
    DROPOUT_RUN(CALL_)
#undef CALL_
}

void tg__dropout_backward_f64(double *restrict dx, const double *restrict dy,
                              const uint8_t *restrict mask, double q, int64_t n)
{
#define CALL_(at, len) do_bwd_f64(dx, dy, mask, q, at, len)
    DROPOUT_RUN(CALL_)
#undef CALL_
}
