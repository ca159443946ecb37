/* Elementwise kernels: binary rows (stride 0 or 1 per operand), the VJP rows of
 * a binary operand, and the unary ops with their VJPs, in float32 and float64.
 * The loops are written once as macros and instantiated per dtype; each loop
 * body is a plain expression over restrict pointers so the compiler can
 * vectorise it. No graph types here: see ops/elementwise.c for the ops. */
#include "elementwise.h"

#include <math.h>

/* ------------------------------------------------------------ binary rows */

/* One row of out = a OP b; a repeated operand is read once. */
#define BIN_ROW(T, OP)                                                                             \
    do {                                                                                           \
        if (sa && sb) {                                                                            \
            for (int64_t j = 0; j < n; j++)                                                        \
                out[j] = a[j] OP b[j];                                                             \
        } else if (sa) {                                                                           \
            const T b0 = b[0];                                                                     \
            for (int64_t j = 0; j < n; j++)                                                        \
                out[j] = a[j] OP b0;                                                               \
        } else if (sb) {                                                                           \
            const T a0 = a[0];                                                                     \
            for (int64_t j = 0; j < n; j++)                                                        \
                out[j] = a0 OP b[j];                                                               \
        } else {                                                                                   \
            const T v = a[0] OP b[0];                                                              \
            for (int64_t j = 0; j < n; j++)                                                        \
                out[j] = v;                                                                        \
        }                                                                                          \
    } while (0)

#define DEF_BINARY(SUF, T)                                                                         \
    void tg__ew_binary_##SUF(tg__ew_binop op, int64_t n, T *restrict out,                          \
                             const T *restrict a, int64_t sa, const T *restrict b, int64_t sb)     \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWB_ADD: BIN_ROW(T, +); break;                                                    \
        case TG__EWB_SUB: BIN_ROW(T, -); break;                                                    \
        case TG__EWB_MUL: BIN_ROW(T, *); break;                                                    \
        case TG__EWB_DIV: BIN_ROW(T, /); break;                                                    \
        }                                                                                          \
    }

DEF_BINARY(f32, float)
DEF_BINARY(f64, double)

/* ------------------------------------------------------- binary VJP rows */

/* The local gradients t(g, y, o); see tg__ew_gradop. Unused arguments are
 * not evaluated, so ID and NEG never read y or o. */
#define T_ID(g, y, o) (g)
#define T_NEG(g, y, o) (-(g))
#define T_MUL(g, y, o) ((g) * (y))
#define T_DIV(g, y, o) ((g) / (y))
#define T_DIVB(g, y, o) (-(g) * ((o) / (y)))

/* dst[j * sd] += t(...): elementwise when sd == 1, a double row sum when 0. */
#define GRAD_ROW(TD, F)                                                                            \
    do {                                                                                           \
        if (sd && sy) {                                                                            \
            for (int64_t j = 0; j < n; j++)                                                        \
                dst[j] += (TD)F(g[j], y[j], o[j]);                                                 \
        } else if (sd) {                                                                           \
            for (int64_t j = 0; j < n; j++)                                                        \
                dst[j] += (TD)F(g[j], y[0], o[j]);                                                 \
        } else {                                                                                   \
            double acc = 0.0;                                                                      \
            if (sy) {                                                                              \
                for (int64_t j = 0; j < n; j++)                                                    \
                    acc += (double)F(g[j], y[j], o[j]);                                            \
            } else {                                                                               \
                for (int64_t j = 0; j < n; j++)                                                    \
                    acc += (double)F(g[j], y[0], o[j]);                                            \
            }                                                                                      \
            dst[0] += (TD)acc;                                                                     \
        }                                                                                          \
    } while (0)

#define DEF_BGRAD(SUF, TD, T)                                                                      \
    void tg__ew_bgrad_##SUF(tg__ew_gradop op, int64_t n, TD *restrict dst, int64_t sd,             \
                            const T *restrict g, const T *restrict y, int64_t sy,                  \
                            const T *restrict o)                                                   \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWG_ID: GRAD_ROW(TD, T_ID); break;                                                \
        case TG__EWG_NEG: GRAD_ROW(TD, T_NEG); break;                                              \
        case TG__EWG_MUL: GRAD_ROW(TD, T_MUL); break;                                              \
        case TG__EWG_DIV: GRAD_ROW(TD, T_DIV); break;                                              \
        case TG__EWG_DIVB: GRAD_ROW(TD, T_DIVB); break;                                            \
        }                                                                                          \
    }

DEF_BGRAD(f64, double, double)
DEF_BGRAD(f32, float, float)
DEF_BGRAD(f32d, double, float)

/* ------------------------------------------------------------------ unary */

/* STORE(j, x[j]^q) for j < n, taking torch.pow's special cases (exact
 * products, sqrt, reciprocals; pow otherwise) so that values, signed zeros and
 * infinities at x = 0 match PyTorch's. */
#define POW_CASES(T, SQRT, POW, q, STORE)                                                          \
    do {                                                                                           \
        if ((q) == 0.0) {                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, (T)1);                                                                    \
        } else if ((q) == 1.0) {                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, x[j]);                                                                    \
        } else if ((q) == 2.0) {                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, x[j] * x[j]);                                                             \
        } else if ((q) == 3.0) {                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, x[j] * x[j] * x[j]);                                                      \
        } else if ((q) == 0.5) {                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, SQRT(x[j]));                                                              \
        } else if ((q) == -0.5) {                                                                  \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, (T)1 / SQRT(x[j]));                                                       \
        } else if ((q) == -1.0) {                                                                  \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, (T)1 / x[j]);                                                             \
        } else if ((q) == -2.0) {                                                                  \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, (T)1 / (x[j] * x[j]));                                                    \
        } else {                                                                                   \
            const T qt = (T)(q);                                                                   \
            for (int64_t j = 0; j < n; j++)                                                        \
                STORE(j, POW(x[j], qt));                                                           \
        }                                                                                          \
    } while (0)

#define STORE_Y(j, v) (y[j] = (v))
#define STORE_DX_POW(j, v) (dx[j] += g[j] * (pt * (v)))

#define DEF_UNARY(SUF, T, EXP, LOG, SQRT, POW, TANH, FABS)                                         \
    void tg__ew_unary_##SUF(tg__ew_unop op, int64_t n, T *restrict y, const T *restrict x,         \
                            double p)                                                              \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWU_NEG:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = -x[j];                                                                      \
            break;                                                                                 \
        case TG__EWU_EXP:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = EXP(x[j]);                                                                  \
            break;                                                                                 \
        case TG__EWU_LOG:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = LOG(x[j]);                                                                  \
            break;                                                                                 \
        case TG__EWU_SQRT:                                                                         \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = SQRT(x[j]);                                                                 \
            break;                                                                                 \
        case TG__EWU_POW:                                                                          \
            POW_CASES(T, SQRT, POW, p, STORE_Y);                                                   \
            break;                                                                                 \
        case TG__EWU_RELU: /* NaN and -0 pass through, as torch.relu */                            \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = x[j] < (T)0 ? (T)0 : x[j];                                                  \
            break;                                                                                 \
        case TG__EWU_SIGMOID:                                                                      \
            /* e = exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below. */        \
            for (int64_t j = 0; j < n; j++) {                                                      \
                const T e = EXP(-FABS(x[j]));                                                      \
                y[j] = (x[j] >= (T)0 ? (T)1 : e) / ((T)1 + e);                                     \
            }                                                                                      \
            break;                                                                                 \
        case TG__EWU_TANH:                                                                         \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = TANH(x[j]);                                                                 \
            break;                                                                                 \
        case TG__EWU_ABS:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                y[j] = FABS(x[j]);                                                                 \
            break;                                                                                 \
        }                                                                                          \
    }

#define DEF_UNARY_GRAD(SUF, T, SQRT, POW)                                                          \
    void tg__ew_unary_grad_##SUF(tg__ew_unop op, int64_t n, T *restrict dx,                        \
                                 const T *restrict g, const T *restrict x,                         \
                                 const T *restrict y, double p)                                    \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWU_NEG:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] -= g[j];                                                                     \
            break;                                                                                 \
        case TG__EWU_EXP:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] * y[j];                                                              \
            break;                                                                                 \
        case TG__EWU_LOG:                                                                          \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] / x[j];                                                              \
            break;                                                                                 \
        case TG__EWU_SQRT:                                                                         \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] / ((T)2 * y[j]);                                                     \
            break;                                                                                 \
        case TG__EWU_POW:                                                                          \
            if (p != 0.0) { /* x^0 is constant: gradient 0 everywhere, even at x = 0 */            \
                const T pt = (T)p;                                                                 \
                POW_CASES(T, SQRT, POW, p - 1.0, STORE_DX_POW);                                    \
            }                                                                                      \
            break;                                                                                 \
        case TG__EWU_RELU: /* from the output, as PyTorch: 0 where y <= 0 */                       \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += y[j] <= (T)0 ? (T)0 : g[j];                                               \
            break;                                                                                 \
        case TG__EWU_SIGMOID:                                                                      \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] * ((T)1 - y[j]) * y[j];                                              \
            break;                                                                                 \
        case TG__EWU_TANH:                                                                         \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] * ((T)1 - y[j] * y[j]);                                              \
            break;                                                                                 \
        case TG__EWU_ABS: /* g * sign(x), sign(0) = 0 */                                           \
            for (int64_t j = 0; j < n; j++)                                                        \
                dx[j] += g[j] * (T)((x[j] > (T)0) - (x[j] < (T)0));                                \
            break;                                                                                 \
        }                                                                                          \
    }

DEF_UNARY(f32, float, expf, logf, sqrtf, powf, tanhf, fabsf)
DEF_UNARY(f64, double, exp, log, sqrt, pow, tanh, fabs)
DEF_UNARY_GRAD(f32, float, sqrtf, powf)
DEF_UNARY_GRAD(f64, double, sqrt, pow)
