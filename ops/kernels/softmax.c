/* Softmax, log-softmax and softmax cross-entropy loops (see softmax.h). Each
 * kernel is written once as a macro over the element type T and its exp, and
 * instantiated for float (expf, sums in double) and double. The graph-side op
 * definitions are in ops/softmax.c and ops/loss.c.
 *
 * Two loop shapes: a softmax over the last axis (inner == 1) walks contiguous
 * rows; over any other axis it walks blocks of up to BLK neighbouring inner
 * positions at once, so the innermost loop is contiguous and no scratch memory
 * is needed beyond the stack. */
#include "softmax.h"

#include <math.h>
#include <stddef.h>

#define BLK 64 /* inner positions processed together on a non-last axis */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ----------------------------------------------------------- row helpers */

/* row_max: the largest of x[0..C) (-inf for C == 0). A NaN anywhere ends up
 * in the sums below, so the whole row becomes NaN either way.
 * row_expsum: sum_c exp(x[c] - m) in double, storing each exp in y if y is
 * not NULL. The summation order is fixed, so two calls agree bit for bit. */
#define ROW_HELPERS(SUF, T, EXP)                                                               \
    static inline T row_max_##SUF(const T *x, int64_t C)                                       \
    {                                                                                          \
        T m = C > 0 ? x[0] : (T)-INFINITY;                                                     \
        for (int64_t c = 1; c < C; c++)                                                        \
            m = x[c] > m ? x[c] : m;                                                           \
        return m;                                                                              \
    }                                                                                          \
    static inline double row_expsum_##SUF(T *y, const T *x, T m, int64_t C)                    \
    {                                                                                          \
        double s = 0.0;                                                                        \
        if (y) {                                                                               \
            for (int64_t c = 0; c < C; c++) {                                                  \
                T e = EXP(x[c] - m);                                                           \
                y[c] = e;                                                                      \
                s += (double)e;                                                                \
            }                                                                                  \
        } else {                                                                               \
            for (int64_t c = 0; c < C; c++)                                                    \
                s += (double)EXP(x[c] - m);                                                    \
        }                                                                                      \
        return s;                                                                              \
    }                                                                                          \
    /* Block version: m[j] = max over c of x[c * inner + j], j < w. */                          \
    static inline void block_max_##SUF(T *m, const T *x, int64_t C, int64_t inner, int64_t w) \
    {                                                                                          \
        for (int64_t j = 0; j < w; j++)                                                        \
            m[j] = C > 0 ? x[j] : (T)-INFINITY;                                                \
        for (int64_t c = 1; c < C; c++) {                                                      \
            const T *xc = x + c * inner;                                                       \
            for (int64_t j = 0; j < w; j++)                                                    \
                m[j] = xc[j] > m[j] ? xc[j] : m[j];                                            \
        }                                                                                      \
    }

ROW_HELPERS(f32, float, expf)
ROW_HELPERS(f64, double, exp)

/* ------------------------------------------------------- softmax forward */

#define SOFTMAX_FORWARD(SUF, T, EXP)                                                           \
    void tg__softmax_forward_##SUF(T *y, const T *x, int64_t outer, int64_t C, int64_t inner)  \
    {                                                                                          \
        if (inner == 1) {                                                                      \
            for (int64_t o = 0; o < outer; o++) {                                              \
                const T *xr = x + o * C;                                                       \
                T *yr = y + o * C;                                                             \
                T m = row_max_##SUF(xr, C);                                                    \
                T inv = (T)(1.0 / row_expsum_##SUF(yr, xr, m, C));                             \
                for (int64_t c = 0; c < C; c++)                                                \
                    yr[c] *= inv;                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t o = 0; o < outer; o++) {                                                  \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                      \
                int64_t w = min64(BLK, inner - j0);                                            \
                const T *xb = x + o * C * inner + j0;                                          \
                T *yb = y + o * C * inner + j0;                                                \
                T m[BLK], inv[BLK];                                                            \
                double s[BLK];                                                                 \
                block_max_##SUF(m, xb, C, inner, w);                                           \
                for (int64_t j = 0; j < w; j++)                                                \
                    s[j] = 0.0;                                                                \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *xc = xb + c * inner;                                              \
                    T *yc = yb + c * inner;                                                    \
                    for (int64_t j = 0; j < w; j++) {                                          \
                        T e = EXP(xc[j] - m[j]);                                               \
                        yc[j] = e;                                                             \
                        s[j] += (double)e;                                                     \
                    }                                                                          \
                }                                                                              \
                for (int64_t j = 0; j < w; j++)                                                \
                    inv[j] = (T)(1.0 / s[j]);                                                  \
                for (int64_t c = 0; c < C; c++) {                                              \
                    T *yc = yb + c * inner;                                                    \
                    for (int64_t j = 0; j < w; j++)                                            \
                        yc[j] *= inv[j];                                                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

SOFTMAX_FORWARD(f32, float, expf)
SOFTMAX_FORWARD(f64, double, exp)

/* --------------------------------------------------- log-softmax forward */

#define LOG_SOFTMAX_FORWARD(SUF, T, EXP)                                                       \
    void tg__log_softmax_forward_##SUF(T *y, const T *x, int64_t outer, int64_t C,             \
                                       int64_t inner)                                          \
    {                                                                                          \
        if (inner == 1) {                                                                      \
            for (int64_t o = 0; o < outer; o++) {                                              \
                const T *xr = x + o * C;                                                       \
                T *yr = y + o * C;                                                             \
                T m = row_max_##SUF(xr, C);                                                    \
                T ls = (T)log(row_expsum_##SUF(NULL, xr, m, C));                               \
                for (int64_t c = 0; c < C; c++)                                                \
                    yr[c] = (xr[c] - m) - ls;                                                  \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t o = 0; o < outer; o++) {                                                  \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                      \
                int64_t w = min64(BLK, inner - j0);                                            \
                const T *xb = x + o * C * inner + j0;                                          \
                T *yb = y + o * C * inner + j0;                                                \
                T m[BLK], ls[BLK];                                                             \
                double s[BLK];                                                                 \
                block_max_##SUF(m, xb, C, inner, w);                                           \
                for (int64_t j = 0; j < w; j++)                                                \
                    s[j] = 0.0;                                                                \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *xc = xb + c * inner;                                              \
                    for (int64_t j = 0; j < w; j++)                                            \
                        s[j] += (double)EXP(xc[j] - m[j]);                                     \
                }                                                                              \
                for (int64_t j = 0; j < w; j++)                                                \
                    ls[j] = (T)log(s[j]);                                                      \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *xc = xb + c * inner;                                              \
                    T *yc = yb + c * inner;                                                    \
                    for (int64_t j = 0; j < w; j++)                                            \
                        yc[j] = (xc[j] - m[j]) - ls[j];                                        \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

LOG_SOFTMAX_FORWARD(f32, float, expf)
LOG_SOFTMAX_FORWARD(f64, double, exp)

/* ------------------------------------------------------ softmax backward */

#define SOFTMAX_BACKWARD(SUF, T)                                                               \
    void tg__softmax_backward_##SUF(T *dx, const T *y, const T *dy, int64_t outer, int64_t C,  \
                                    int64_t inner)                                             \
    {                                                                                          \
        if (inner == 1) {                                                                      \
            for (int64_t o = 0; o < outer; o++) {                                              \
                const T *yr = y + o * C, *dyr = dy + o * C;                                    \
                T *dxr = dx + o * C;                                                           \
                double dot = 0.0;                                                              \
                for (int64_t c = 0; c < C; c++)                                                \
                    dot += (double)dyr[c] * (double)yr[c];                                     \
                T d = (T)dot;                                                                  \
                for (int64_t c = 0; c < C; c++)                                                \
                    dxr[c] += yr[c] * (dyr[c] - d);                                            \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t o = 0; o < outer; o++) {                                                  \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                      \
                int64_t w = min64(BLK, inner - j0), base = o * C * inner + j0;                 \
                double dot[BLK];                                                               \
                T d[BLK];                                                                      \
                for (int64_t j = 0; j < w; j++)                                                \
                    dot[j] = 0.0;                                                              \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;          \
                    for (int64_t j = 0; j < w; j++)                                            \
                        dot[j] += (double)dyc[j] * (double)yc[j];                              \
                }                                                                              \
                for (int64_t j = 0; j < w; j++)                                                \
                    d[j] = (T)dot[j];                                                          \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;          \
                    T *dxc = dx + base + c * inner;                                            \
                    for (int64_t j = 0; j < w; j++)                                            \
                        dxc[j] += yc[j] * (dyc[j] - d[j]);                                     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

SOFTMAX_BACKWARD(f32, float)
SOFTMAX_BACKWARD(f64, double)

/* -------------------------------------------------- log-softmax backward */

#define LOG_SOFTMAX_BACKWARD(SUF, T, EXP)                                                      \
    void tg__log_softmax_backward_##SUF(T *dx, const T *y, const T *dy, int64_t outer,         \
                                        int64_t C, int64_t inner)                              \
    {                                                                                          \
        if (inner == 1) {                                                                      \
            for (int64_t o = 0; o < outer; o++) {                                              \
                const T *yr = y + o * C, *dyr = dy + o * C;                                    \
                T *dxr = dx + o * C;                                                           \
                double sd = 0.0;                                                               \
                for (int64_t c = 0; c < C; c++)                                                \
                    sd += (double)dyr[c];                                                      \
                T s = (T)sd;                                                                   \
                for (int64_t c = 0; c < C; c++)                                                \
                    dxr[c] += dyr[c] - EXP(yr[c]) * s;                                         \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t o = 0; o < outer; o++) {                                                  \
            for (int64_t j0 = 0; j0 < inner; j0 += BLK) {                                      \
                int64_t w = min64(BLK, inner - j0), base = o * C * inner + j0;                 \
                double sd[BLK];                                                                \
                T s[BLK];                                                                      \
                for (int64_t j = 0; j < w; j++)                                                \
                    sd[j] = 0.0;                                                               \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *dyc = dy + base + c * inner;                                      \
                    for (int64_t j = 0; j < w; j++)                                            \
                        sd[j] += (double)dyc[j];                                               \
                }                                                                              \
                for (int64_t j = 0; j < w; j++)                                                \
                    s[j] = (T)sd[j];                                                           \
                for (int64_t c = 0; c < C; c++) {                                              \
                    const T *yc = y + base + c * inner, *dyc = dy + base + c * inner;          \
                    T *dxc = dx + base + c * inner;                                            \
                    for (int64_t j = 0; j < w; j++)                                            \
                        dxc[j] += dyc[j] - EXP(yc[j]) * s[j];                                  \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

LOG_SOFTMAX_BACKWARD(f32, float, expf)
LOG_SOFTMAX_BACKWARD(f64, double, exp)

/* ---------------------------------------------- hard-label cross-entropy */

/* loss_i = (mx - x[label]) + log sum exp(x - mx): the subtraction of two
 * logits comes first, so huge logits (1e300) lose nothing to the log term. */
#define XENT(SUF, T, EXP)                                                                      \
    double tg__xent_forward_##SUF(T *loss, double *mx, double *inv, const T *x,                \
                                  const int64_t *labels, int64_t N, int64_t C)                 \
    {                                                                                          \
        double total = 0.0;                                                                    \
        for (int64_t i = 0; i < N; i++) {                                                      \
            const T *xr = x + i * C;                                                           \
            T m = row_max_##SUF(xr, C);                                                        \
            double s = row_expsum_##SUF(NULL, xr, m, C);                                       \
            double li = ((double)m - (double)xr[labels[i]]) + log(s);                          \
            if (loss)                                                                          \
                loss[i] = (T)li;                                                               \
            if (mx) {                                                                          \
                mx[i] = (double)m;                                                             \
                inv[i] = (double)(T)(1.0 / s);                                                 \
            }                                                                                  \
            total += li;                                                                       \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    void tg__xent_backward_##SUF(T *dx, const T *x, const double *mx, const double *inv,       \
                                 const int64_t *labels, const T *g, int64_t g_stride, T scale, \
                                 int64_t N, int64_t C)                                         \
    {                                                                                          \
        for (int64_t i = 0; i < N; i++) {                                                      \
            const T *xr = x + i * C;                                                           \
            T *dr = dx + i * C;                                                                \
            T gi = g[i * g_stride] * scale, m = (T)mx[i], iv = (T)inv[i];                      \
            for (int64_t c = 0; c < C; c++)                                                    \
                dr[c] += gi * (EXP(xr[c] - m) * iv);                                           \
            dr[labels[i]] -= gi;                                                               \
        }                                                                                      \
    }

XENT(f32, float, expf)
XENT(f64, double, exp)

/* ---------------------------------------------- soft-target cross-entropy */

#define XENT_SOFT(SUF, T, EXP)                                                                 \
    double tg__xent_soft_forward_##SUF(T *loss, double *mx, double *inv, double *logsum,       \
                                       const T *x, const T *t, int64_t N, int64_t C)           \
    {                                                                                          \
        double total = 0.0;                                                                    \
        for (int64_t i = 0; i < N; i++) {                                                      \
            const T *xr = x + i * C, *tr = t + i * C;                                          \
            T m = row_max_##SUF(xr, C);                                                        \
            double s = row_expsum_##SUF(NULL, xr, m, C), ls = log(s), li = 0.0;                \
            for (int64_t c = 0; c < C; c++)                                                    \
                li += (double)tr[c] * (((double)m - (double)xr[c]) + ls);                      \
            if (loss)                                                                          \
                loss[i] = (T)li;                                                               \
            if (mx) {                                                                          \
                mx[i] = (double)m;                                                             \
                inv[i] = (double)(T)(1.0 / s);                                                 \
                logsum[i] = ls;                                                                \
            }                                                                                  \
            total += li;                                                                       \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    void tg__xent_soft_backward_##SUF(T *dx, T *dt, const T *x, const T *t, const double *mx,  \
                                      const double *inv, const double *logsum, const T *g,     \
                                      int64_t g_stride, T scale, int64_t N, int64_t C)         \
    {                                                                                          \
        for (int64_t i = 0; i < N; i++) {                                                      \
            const T *xr = x + i * C, *tr = t + i * C;                                          \
            T gi = g[i * g_stride] * scale, m = (T)mx[i], iv = (T)inv[i];                      \
            if (dx) {                                                                          \
                T *dr = dx + i * C;                                                            \
                double ts = 0.0;                                                               \
                for (int64_t c = 0; c < C; c++)                                                \
                    ts += (double)tr[c];                                                       \
                T tsum = (T)ts;                                                                \
                for (int64_t c = 0; c < C; c++)                                                \
                    dr[c] += gi * (EXP(xr[c] - m) * iv * tsum - tr[c]);                        \
            }                                                                                  \
            if (dt) {                                                                          \
                T *dr = dt + i * C;                                                            \
                T ls = (T)logsum[i];                                                           \
                for (int64_t c = 0; c < C; c++)                                                \
                    dr[c] -= gi * ((xr[c] - m) - ls);                                          \
            }                                                                                  \
        }                                                                                      \
    }

XENT_SOFT(f32, float, expf)
XENT_SOFT(f64, double, exp)
