/* Batch-norm and dropout kernels (see norm.h): plain loops over NCHW planes.
 * Threads: the per-channel sums split channels (each channel summed over n in
 * order by one thread), the elementwise passes split planes (n, c) or chunks.
 * Reductions accumulate in double with eight independent partial sums; the
 * elementwise passes run in the tensor's own type with per-channel constants.
 * Everything is written so that GCC vectorizes it at -O2 (no -O3, no
 * -ffast-math): fixed 8-wide blocks, restrict pointers, no data-dependent
 * branches.
 * No graph header here: the graph side is ops/norm.c. */
#include "norm.h"
#include "threads.h"

#include <string.h>

/* A loop split between the kernels' threads when `cond` holds; nothing
 * without OpenMP (so OMP=0 builds see no unknown pragma). Every split below
 * gives each output element (or each channel's sum) to one thread, computed
 * in a fixed order, so results do not depend on the thread count. */
#ifdef _OPENMP
#define PRAGMA_(x) _Pragma(#x)
#define OMP_FOR(cond) PRAGMA_(omp parallel for num_threads(tg__threads()) schedule(static) if (cond))
#else
#define OMP_FOR(cond)
#endif
#define PAR_MIN 32768 /* elements below which one thread does the pass */

/* ------------------------------------------------------------ run helpers */

/* Reductions over one contiguous run in double with eight partial sums, one
 * per lane of an 8-wide block: GCC's SLP pass turns a block into packed
 * conversions and adds at -O2 (no -ffast-math needed, since the order of the
 * additions is written out and fixed, so results do not vary between runs). */
#define L8(S) S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7)
#define DECL_A(k) double a##k = 0.0;
#define TOTAL(v) (((v##0 + v##1) + (v##2 + v##3)) + ((v##4 + v##5) + (v##6 + v##7)))

#define TG_RUN_HELPERS(T, SUF)                                                                 \
    /* sum of p[0..n) */                                                                      \
    static double sum_run_##SUF(const T *restrict p, int64_t n)                               \
    {                                                                                          \
        L8(DECL_A)                                                                             \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8) {                                                           \
            L8(SUM_STEP)                                                                       \
        }                                                                                      \
        for (; i < n; i++)                                                                     \
            a0 += (double)p[i];                                                                \
        return TOTAL(a);                                                                       \
    }                                                                                          \
    /* sum of (p - m)^2 */                                                                     \
    static double sqdev_run_##SUF(const T *restrict p, int64_t n, double m)                   \
    {                                                                                          \
        L8(DECL_A)                                                                             \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8) {                                                           \
            L8(SQDEV_STEP)                                                                     \
        }                                                                                      \
        for (; i < n; i++) {                                                                   \
            double d = (double)p[i] - m;                                                       \
            a0 += d * d;                                                                       \
        }                                                                                      \
        return TOTAL(a);                                                                       \
    }                                                                                          \
    /* sum of g * (p - m). (Kept apart from the sum of g: GCC packs a loop with   \
     * one reduction group but not one with two.) */                                          \
    static double devdot_run_##SUF(const T *restrict g, const T *restrict p, int64_t n,       \
                                   double m)                                                   \
    {                                                                                          \
        L8(DECL_A)                                                                             \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8) {                                                           \
            L8(DEVDOT_STEP)                                                                    \
        }                                                                                      \
        for (; i < n; i++)                                                                     \
            a0 += (double)g[i] * ((double)p[i] - m);                                           \
        return TOTAL(a);                                                                       \
    }

#define SUM_STEP(k) a##k += (double)p[i + k];
#define SQDEV_STEP(k) a##k += ((double)p[i + k] - m) * ((double)p[i + k] - m);
#define DEVDOT_STEP(k) a##k += (double)g[i + k] * ((double)p[i + k] - m);

TG_RUN_HELPERS(float, f32)
TG_RUN_HELPERS(double, f64)

/* ------------------------------------------------------------- batch norm */

/* Elementwise passes go in blocks of 8 (a fixed inner loop GCC unrolls and
 * packs at -O2) plus a scalar tail; y and x never alias. */
#define BLOCK8(i, n, STMT)                                                                     \
    do {                                                                                       \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= (n); i += 8)                                                           \
            for (int j_ = 0; j_ < 8; j_++) {                                                   \
                int64_t k_ = i + j_;                                                           \
                STMT(k_);                                                                      \
            }                                                                                  \
        for (; i < (n); i++)                                                                   \
            STMT(i);                                                                           \
    } while (0)

/* One plane or chunk of each elementwise pass, as a function of its own: GCC
 * packs these, but not the same loops written inside an OpenMP body. */
#define TG_ROWS(T, SUF)                                                                        \
    static void bn_fwd_row_##SUF(T *restrict yp, const T *restrict xp, int64_t n, T m, T s,    \
                                 T sh)                                                         \
    {                                                                                          \
        BLOCK8(i, n, BN_FWD_STEP);                                                             \
    }                                                                                          \
    static void bn_bwd_row_##SUF(T *restrict dp, const T *restrict gp, const T *restrict xp,   \
                                 int64_t n, T k, T m, T a, T s)                                \
    {                                                                                          \
        BLOCK8(i, n, BN_BWD_STEP);                                                             \
    }                                                                                          \
    static void bn_bwd_eval_row_##SUF(T *restrict dp, const T *restrict gp, int64_t n, T k)    \
    {                                                                                          \
        BLOCK8(i, n, BN_BWD_EVAL_STEP);                                                        \
    }

#define BN_FWD_STEP(i) yp[i] = (xp[i] - m) * s + sh
#define BN_BWD_STEP(i) dp[i] += k * (gp[i] - a - (xp[i] - m) * s)
#define BN_BWD_EVAL_STEP(i) dp[i] += k * gp[i]

TG_ROWS(float, f32)
TG_ROWS(double, f64)

#define TG_BN2D_KERNELS(T, SUF)                                                                \
    void tg__bn2d_stats_##SUF(double *mean, double *var, const T *x, int64_t N, int64_t C,      \
                              int64_t HW)                                                      \
    {                                                                                          \
        double M = (double)(N * HW);                                                           \
        OMP_FOR(N * C * HW > PAR_MIN)                                                          \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double s = 0.0, q = 0.0;                                                           \
            for (int64_t n = 0; n < N; n++)                                                    \
                s += sum_run_##SUF(x + (n * C + c) * HW, HW);                                  \
            double mu = N * HW > 0 ? s / M : 0.0;                                              \
            for (int64_t n = 0; n < N; n++)                                                    \
                q += sqdev_run_##SUF(x + (n * C + c) * HW, HW, mu);                            \
            mean[c] = mu;                                                                      \
            var[c] = N * HW > 0 ? q / M : 0.0;                                                 \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void tg__bn2d_forward_##SUF(T *restrict y, const T *restrict x, const double *mean,        \
                                const double *invstd, const T *w, const T *b, int64_t N,       \
                                int64_t C, int64_t HW)                                         \
    {                                                                                          \
        OMP_FOR(N * C * HW > PAR_MIN)                                                          \
        for (int64_t p = 0; p < N * C; p++) { /* plane p = (n, c) */                           \
            int64_t c = p % C;                                                                 \
            const T m = (T)mean[c];                                                            \
            const T s = (T)(invstd[c] * (w ? (double)w[c] : 1.0));                             \
            const T sh = b ? b[c] : (T)0;                                                      \
            bn_fwd_row_##SUF(y + p * HW, x + p * HW, HW, m, s, sh);                            \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void tg__bn2d_sums_##SUF(double *sum_dy, double *sum_dy_xhat, const T *dy, const T *x,      \
                             const double *mean, const double *invstd, int64_t N, int64_t C,   \
                             int64_t HW)                                                       \
    {                                                                                          \
        OMP_FOR(N * C * HW > PAR_MIN)                                                          \
        for (int64_t c = 0; c < C; c++) {                                                      \
            double sg = 0.0, sgd = 0.0;                                                        \
            for (int64_t n = 0; n < N; n++) {                                                  \
                int64_t at = (n * C + c) * HW;                                                 \
                sg += sum_run_##SUF(dy + at, HW);                                              \
                sgd += devdot_run_##SUF(dy + at, x + at, HW, mean[c]);                         \
            }                                                                                  \
            sum_dy[c] = sg;                                                                    \
            sum_dy_xhat[c] = sgd * invstd[c];                                                  \
        }                                                                                      \
    }                                                                                          \
                                                                                               \
    void tg__bn2d_backward_x_##SUF(T *restrict dx, const T *restrict dy, const T *restrict x,  \
                                   const double *mean, const double *invstd, const T *w,       \
                                   const double *sum_dy, const double *sum_dy_xhat,            \
                                   int training, int64_t N, int64_t C, int64_t HW)             \
    {                                                                                          \
        double M = (double)(N * HW);                                                           \
        OMP_FOR(N * C * HW > PAR_MIN)                                                          \
        for (int64_t p = 0; p < N * C; p++) { /* plane p = (n, c) */                           \
            int64_t c = p % C;                                                                 \
            const T k = (T)(invstd[c] * (w ? (double)w[c] : 1.0));                             \
            const T m = (T)mean[c];                                                            \
            const T a = training ? (T)(sum_dy[c] / M) : (T)0;                                  \
            const T s = training ? (T)(invstd[c] * sum_dy_xhat[c] / M) : (T)0;                 \
            if (training)                                                                      \
                bn_bwd_row_##SUF(dx + p * HW, dy + p * HW, x + p * HW, HW, k, m, a, s);         \
            else                                                                               \
                bn_bwd_eval_row_##SUF(dx + p * HW, dy + p * HW, HW, k);                        \
        }                                                                                      \
    }

TG_BN2D_KERNELS(float, f32)
TG_BN2D_KERNELS(double, f64)

/* ---------------------------------------------------------------- dropout */

/* Branch-free select: a random mask makes a branch mispredict half the time.
 * The mask byte (0 or 1) becomes an all-zeros or all-ones word that is ANDed
 * with the bits of v, so a dropped element is +0.0 whatever x holds. */
static inline float keep_f32(float v, uint8_t m)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u &= 0u - (uint32_t)m;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline double keep_f64(double v, uint8_t m)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u &= (uint64_t)0 - (uint64_t)m;
    memcpy(&v, &u, sizeof v);
    return v;
}

#define TG_DROPOUT_ROWS(T, SUF)                                                                \
    static void do_fwd_row_##SUF(T *restrict yp, const T *restrict xp,                         \
                                 const uint8_t *restrict mp, T q, int64_t n)                   \
    {                                                                                          \
        BLOCK8(i, n, DO_FWD_STEP_##SUF);                                                       \
    }                                                                                          \
    static void do_bwd_row_##SUF(T *restrict dp, const T *restrict gp,                         \
                                 const uint8_t *restrict mp, T q, int64_t n)                   \
    {                                                                                          \
        BLOCK8(i, n, DO_BWD_STEP_##SUF);                                                       \
    }

#define DO_CHUNK 8192 /* elements per thread work item */
#define DO_FWD_STEP_f32(i) yp[i] = keep_f32(xp[i] / q, mp[i])
#define DO_FWD_STEP_f64(i) yp[i] = keep_f64(xp[i] / q, mp[i])
#define DO_BWD_STEP_f32(i) dp[i] += keep_f32(gp[i] / q, mp[i])
#define DO_BWD_STEP_f64(i) dp[i] += keep_f64(gp[i] / q, mp[i])

TG_DROPOUT_ROWS(float, f32)
TG_DROPOUT_ROWS(double, f64)

#define TG_DROPOUT_KERNELS(T, SUF)                                                             \
    void tg__dropout_forward_##SUF(T *restrict y, const T *restrict x,                         \
                                   const uint8_t *restrict mask, T q, int64_t n)               \
    {                                                                                          \
        OMP_FOR(n > PAR_MIN)                                                                   \
        for (int64_t at = 0; at < n; at += DO_CHUNK) {                                         \
            int64_t len = n - at < DO_CHUNK ? n - at : DO_CHUNK;                               \
            do_fwd_row_##SUF(y + at, x + at, mask + at, q, len);                               \
        }                                                                                      \
    }                                                                                          \
    void tg__dropout_backward_##SUF(T *restrict dx, const T *restrict dy,                      \
                                    const uint8_t *restrict mask, T q, int64_t n)              \
    {                                                                                          \
        OMP_FOR(n > PAR_MIN)                                                                   \
        for (int64_t at = 0; at < n; at += DO_CHUNK) {                                         \
            int64_t len = n - at < DO_CHUNK ? n - at : DO_CHUNK;                               \
            do_bwd_row_##SUF(dx + at, dy + at, mask + at, q, len);                             \
        }                                                                                      \
    }

TG_DROPOUT_KERNELS(float, f32)
TG_DROPOUT_KERNELS(double, f64)
