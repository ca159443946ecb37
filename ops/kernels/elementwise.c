/* Elementwise kernels: binary rows (stride 0 or 1 per operand), the VJP rows of
 * a binary operand, and the unary ops with their VJPs, in float32 and float64.
 * No graph types here: see ops/elementwise.c for the ops.
 *
 * Speed: each loop is written once, as plain C under `omp simd` (TG_SIMD), in
 * macros that are instantiated per dtype and, for float32, per instruction set:
 * AVX-512 and AVX2 copies compiled with target attributes next to the generic
 * (SSE2) copy, picked at run time from the CPU level (tg__cpu(), cpu.h). The
 * copies run the same IEEE operations in the same order (no FMA contraction:
 * ISO C mode for GCC, FP_CONTRACT OFF for clang), so every level gives the
 * same bits. Large calls are cut into fixed chunks of EW_CHUNK elements shared
 * between the OpenMP threads; every output element is written by one thread
 * and every double row sum adds its chunks in a fixed order, so results do not
 * depend on the thread count either. libm calls (exp, log, tanh, pow, the
 * sigmoid's exp) stay scalar; they only get the threads. */
#include "elementwise.h"
#include "cpu.h"
#include "simd.h"
#include "threads.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- dispatch */

/* PICK_F32 (simd.h), but the generic copy for rows shorter than one AVX-512
 * vector (as the [N, 10] + [10] bias add calls it, row by row): there the wide
 * copies only add set-up, and every copy gives the same bits anyway. */
#if TG_HAVE_X86
#define PICK_F32_N(fn, n) ((n) < 16 ? fn##_f32_gen : PICK_F32(fn))
#else
#define PICK_F32_N(fn, n) fn##_f32_gen
#endif

/* ------------------------------------------------------------- chunking */

#define EW_CHUNK 16384      /* elements per work item */
#define EW_PAR_MIN 131072   /* below this, one thread does the whole call */

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Runs CALL with `at` (first element) and `len` over [0, n): in one piece
 * below EW_PAR_MIN or with one thread, else in chunks split between threads.
 * For calls whose elements are independent (any split gives the same bits). */
#define PAR_CHUNKS(n, CALL)                                                                        \
    do {                                                                                           \
        const int64_t n_ = (n);                                                                    \
        const int nt_ = n_ < EW_PAR_MIN ? 1 : tg__threads();                                       \
        if (nt_ < 2) {                                                                             \
            const int64_t at = 0, len = n_;                                                        \
            CALL;                                                                                  \
        } else {                                                                                   \
            const int64_t nc_ = (n_ + EW_CHUNK - 1) / EW_CHUNK;                                    \
            (void)nt_;                                                                             \
            TG_OMP("omp parallel for num_threads(nt_) schedule(static)")                           \
            for (int64_t c_ = 0; c_ < nc_; c_++) {                                                 \
                const int64_t at = c_ * EW_CHUNK, len = min64(EW_CHUNK, n_ - at);                  \
                CALL;                                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* A double sum over [0, n) in a fixed order: chunks of EW_CHUNK, each summed
 * by SUM over [at, at + len) (one thread per chunk), added in chunk order. The same
 * association for any thread count, including one. */
#define SUPER 256 /* chunks whose partial sums sit on the stack at once */
#define CHUNKED_SUM(n, SUM, total)                                                                 \
    do {                                                                                           \
        const int64_t n_ = (n);                                                                    \
        if (n_ <= EW_CHUNK) {                                                                      \
            const int64_t at = 0, len = n_;                                                        \
            (total) = SUM;                                                                         \
            break;                                                                                 \
        }                                                                                          \
        const int nt_ = tg__threads(), par_ = n_ >= EW_PAR_MIN && nt_ > 1;                         \
        double part_[SUPER];                                                                       \
        (total) = 0.0;                                                                             \
        for (int64_t s0_ = 0; s0_ < n_; s0_ += (int64_t)SUPER * EW_CHUNK) {                        \
            const int64_t ns_ = min64(SUPER, (n_ - s0_ + EW_CHUNK - 1) / EW_CHUNK);                \
            (void)nt_;                                                                             \
            (void)par_;                                                                            \
            TG_OMP("omp parallel for num_threads(nt_) schedule(static) if (par_)")                 \
            for (int64_t c_ = 0; c_ < ns_; c_++) {                                                 \
                const int64_t at = s0_ + c_ * EW_CHUNK, len = min64(EW_CHUNK, n_ - at);            \
                part_[c_] = SUM;                                                                   \
            }                                                                                      \
            for (int64_t c_ = 0; c_ < ns_; c_++)                                                   \
                (total) += part_[c_];                                                              \
        }                                                                                          \
    } while (0)

/* sum_{j < n} (double)(E) in the canonical order of every level: 16 lanes,
 * lane k adding the j = k (mod 16) terms of the whole blocks, the tail going
 * to lane 0, then a pairwise tree over the lanes. E may use j. */
#define LANES 16
/* The pairwise tree over 16 lanes: lanes k and k + 8 first, then k and k + 4,
 * k and k + 2, then the last two (written out, so it compiles to straight
 * adds). */
#define TREE16(l)                                                                                  \
    ((((l[0] + l[8]) + (l[4] + l[12])) + ((l[2] + l[10]) + (l[6] + l[14]))) +                      \
     (((l[1] + l[9]) + (l[5] + l[13])) + ((l[3] + l[11]) + (l[7] + l[15]))))
#define LANE_SUM(n, E, out)                                                                        \
    do {                                                                                           \
        double l_[LANES] = {0};                                                                    \
        int64_t j0_ = 0;                                                                           \
        for (; j0_ + LANES <= (n); j0_ += LANES) {                                                 \
            TG_SIMD                                                                                \
            for (int k_ = 0; k_ < LANES; k_++) {                                                   \
                const int64_t j = j0_ + k_;                                                        \
                l_[k_] += (double)(E);                                                             \
            }                                                                                      \
        }                                                                                          \
        for (int64_t j = j0_; j < (n); j++)                                                        \
            l_[0] += (double)(E);                                                                  \
        (out) = TREE16(l_);                                                                        \
    } while (0)

/* ------------------------------------------------------------ binary rows */

#define BIN_LOOP(EXPR)                                                                             \
    TG_SIMD                                                                                        \
    for (int64_t j = 0; j < n; j++)                                                                \
        out[j] = EXPR;

/* One row of out = a OP b; a repeated operand is read once. */
#define BIN_ROW(T, OP)                                                                             \
    do {                                                                                           \
        if (sa && sb) {                                                                            \
            BIN_LOOP(a[j] OP b[j])                                                                 \
        } else if (sa) {                                                                           \
            const T b0 = b[0];                                                                     \
            BIN_LOOP(a[j] OP b0)                                                                   \
        } else if (sb) {                                                                           \
            const T a0 = a[0];                                                                     \
            BIN_LOOP(a0 OP b[j])                                                                   \
        } else {                                                                                   \
            const T v = a[0] OP b[0];                                                              \
            BIN_LOOP(v)                                                                            \
        }                                                                                          \
    } while (0)

#define DEF_BINARY(T, SUF, ATTR)                                                                   \
    ATTR NO_TRAP static void binary_##SUF(tg__ew_binop op, int64_t n, T *restrict out,             \
                                  const T *restrict a, int64_t sa, const T *restrict b,            \
                                  int64_t sb)                                                      \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWB_ADD: BIN_ROW(T, +); break;                                                    \
        case TG__EWB_SUB: BIN_ROW(T, -); break;                                                    \
        case TG__EWB_MUL: BIN_ROW(T, *); break;                                                    \
        case TG__EWB_DIV: BIN_ROW(T, /); break;                                                    \
        }                                                                                          \
    }

F32_COPIES(DEF_BINARY)
DEF_BINARY(double, f64, ATTR_gen)

void tg__ew_binary_f32(tg__ew_binop op, int64_t n, float *restrict out, const float *restrict a,
                       int64_t sa, const float *restrict b, int64_t sb)
{
    if (n <= 0)
        return;
    void (*f)(tg__ew_binop, int64_t, float *restrict, const float *restrict, int64_t,
              const float *restrict, int64_t) = PICK_F32_N(binary, n);
    PAR_CHUNKS(n, f(op, len, out + at, a + at * sa, sa, b + at * sb, sb));
}

void tg__ew_binary_f64(tg__ew_binop op, int64_t n, double *restrict out, const double *restrict a,
                       int64_t sa, const double *restrict b, int64_t sb)
{
    if (n <= 0)
        return;
    PAR_CHUNKS(n, binary_f64(op, len, out + at, a + at * sa, sa, b + at * sb, sb));
}

/* ------------------------------------------------------- binary VJP rows */

/* The local gradients t(g, y, o); see tg__ew_gradop. Unused arguments are
 * not evaluated, so ID and NEG never read y or o. */
#define T_ID(g, y, o) (g)
#define T_NEG(g, y, o) (-(g))
#define T_MUL(g, y, o) ((g) * (y))
#define T_DIV(g, y, o) ((g) / (y))
#define T_DIVB(g, y, o) (-(g) * ((o) / (y)))

/* dst[j] += t(...) along a row (sd == 1); y repeated or not. */
#define GRAD_ROW(TD, F)                                                                            \
    do {                                                                                           \
        if (sy) {                                                                                  \
            TG_SIMD                                                                                \
            for (int64_t j = 0; j < n; j++)                                                        \
                dst[j] += (TD)F(g[j], y[j], o[j]);                                                 \
        } else {                                                                                   \
            TG_SIMD                                                                                \
            for (int64_t j = 0; j < n; j++)                                                        \
                dst[j] += (TD)F(g[j], y[0], o[j]);                                                 \
        }                                                                                          \
    } while (0)

/* sum_j t(...) in double, in the canonical lane order. */
#define GRAD_SUM(F)                                                                                \
    do {                                                                                           \
        if (sy)                                                                                    \
            LANE_SUM(n, F(g[j], y[j], o[j]), s);                                                   \
        else                                                                                       \
            LANE_SUM(n, F(g[j], y[0], o[j]), s);                                                   \
    } while (0)

#define DEF_BGRAD(T, SUF, ATTR, TD)                                                                \
    ATTR NO_TRAP static void bgrad_##SUF(tg__ew_gradop op, int64_t n, TD *restrict dst,            \
                                 const T *restrict g, const T *restrict y, int64_t sy,             \
                                 const T *restrict o)                                              \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWG_ID: GRAD_ROW(TD, T_ID); break;                                                \
        case TG__EWG_NEG: GRAD_ROW(TD, T_NEG); break;                                              \
        case TG__EWG_MUL: GRAD_ROW(TD, T_MUL); break;                                              \
        case TG__EWG_DIV: GRAD_ROW(TD, T_DIV); break;                                              \
        case TG__EWG_DIVB: GRAD_ROW(TD, T_DIVB); break;                                            \
        }                                                                                          \
    }                                                                                              \
    ATTR NO_TRAP static double bsum_##SUF(tg__ew_gradop op, int64_t n, const T *restrict g,        \
                                  const T *restrict y, int64_t sy, const T *restrict o)            \
    {                                                                                              \
        double s = 0.0;                                                                            \
        switch (op) {                                                                              \
        case TG__EWG_ID: GRAD_SUM(T_ID); break;                                                    \
        case TG__EWG_NEG: GRAD_SUM(T_NEG); break;                                                  \
        case TG__EWG_MUL: GRAD_SUM(T_MUL); break;                                                  \
        case TG__EWG_DIV: GRAD_SUM(T_DIV); break;                                                  \
        case TG__EWG_DIVB: GRAD_SUM(T_DIVB); break;                                                \
        }                                                                                          \
        return s;                                                                                  \
    }

/* float32 operands with a float32 (bgrad_f32_*) or double (bgrad_f32d_*)
 * destination; the row sum is the same function for both. */
#define DEF_BGRAD_F32(T, SUF, ATTR)                                                                \
    DEF_BGRAD(T, SUF, ATTR, float)                                                                 \
    ATTR NO_TRAP static void bgradd_##SUF(tg__ew_gradop op, int64_t n, double *restrict dst,       \
                                  const T *restrict g, const T *restrict y, int64_t sy,            \
                                  const T *restrict o)                                             \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWG_ID: GRAD_ROW(double, T_ID); break;                                            \
        case TG__EWG_NEG: GRAD_ROW(double, T_NEG); break;                                          \
        case TG__EWG_MUL: GRAD_ROW(double, T_MUL); break;                                          \
        case TG__EWG_DIV: GRAD_ROW(double, T_DIV); break;                                          \
        case TG__EWG_DIVB: GRAD_ROW(double, T_DIVB); break;                                        \
        }                                                                                          \
    }

F32_COPIES(DEF_BGRAD_F32)
DEF_BGRAD(double, f64, ATTR_gen, double)

/* o and y advance with the row only where they are arrays (y: sy; o is read
 * by DIVB only and may be NULL otherwise). */
#define OFS(p, at) ((p) ? (p) + (at) : (p))

void tg__ew_bgrad_f64(tg__ew_gradop op, int64_t n, double *restrict dst, int64_t sd,
                      const double *restrict g, const double *restrict y, int64_t sy,
                      const double *restrict o)
{
    if (n <= 0)
        return;
    if (sd) {
        PAR_CHUNKS(n, bgrad_f64(op, len, dst + at, g + at, OFS(y, at * sy), sy, OFS(o, at)));
    } else {
        double s;
        CHUNKED_SUM(n, bsum_f64(op, len, g + at, OFS(y, at * sy), sy, OFS(o, at)), s);
        dst[0] += s;
    }
}

void tg__ew_bgrad_f32(tg__ew_gradop op, int64_t n, float *restrict dst, int64_t sd,
                      const float *restrict g, const float *restrict y, int64_t sy,
                      const float *restrict o)
{
    if (n <= 0)
        return;
    if (sd) {
        void (*f)(tg__ew_gradop, int64_t, float *restrict, const float *restrict,
                  const float *restrict, int64_t, const float *restrict) = PICK_F32_N(bgrad, n);
        PAR_CHUNKS(n, f(op, len, dst + at, g + at, OFS(y, at * sy), sy, OFS(o, at)));
    } else {
        double (*f)(tg__ew_gradop, int64_t, const float *restrict, const float *restrict,
                    int64_t, const float *restrict) = PICK_F32(bsum);
        double s;
        CHUNKED_SUM(n, f(op, len, g + at, OFS(y, at * sy), sy, OFS(o, at)), s);
        dst[0] += (float)s;
    }
}

void tg__ew_bgrad_f32d(tg__ew_gradop op, int64_t n, double *restrict dst, int64_t sd,
                       const float *restrict g, const float *restrict y, int64_t sy,
                       const float *restrict o)
{
    if (n <= 0)
        return;
    if (sd) {
        void (*f)(tg__ew_gradop, int64_t, double *restrict, const float *restrict,
                  const float *restrict, int64_t, const float *restrict) = PICK_F32_N(bgradd, n);
        PAR_CHUNKS(n, f(op, len, dst + at, g + at, OFS(y, at * sy), sy, OFS(o, at)));
    } else {
        double (*f)(tg__ew_gradop, int64_t, const float *restrict, const float *restrict,
                    int64_t, const float *restrict) = PICK_F32(bsum);
        double s;
        CHUNKED_SUM(n, f(op, len, g + at, OFS(y, at * sy), sy, OFS(o, at)), s);
        dst[0] += s;
    }
}

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
#define SET_DX_POW(j, v) (dx[j] = g[j] * (pt * (v)))

/* A vectorisable loop and a libm loop (kept scalar: glibc's vector variants
 * need -ffast-math, and sqrt may set errno, so it does not vectorise either;
 * clang warns about an omp simd loop it cannot vectorise). */
#define VLOOP(STMT)                                                                                \
    TG_SIMD                                                                                        \
    for (int64_t j = 0; j < n; j++)                                                                \
        STMT;
#define SLOOP(STMT)                                                                                \
    for (int64_t j = 0; j < n; j++)                                                                \
        STMT;

/* keep(v, k): v when k is 1, +0.0 when k is 0, by masking v's bits: the
 * select of relu's VJP in a form even SSE2 vectorises (it has no blend), and
 * the same bits as "k ? v : 0". */
NO_TRAP static inline float keep_f32(float v, int k)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u &= 0u - (uint32_t)k;
    memcpy(&v, &u, sizeof v);
    return v;
}

NO_TRAP static inline double keep_f64(double v, int k)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    u &= (uint64_t)0 - (uint64_t)k;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* The math library per element type. */
#define EXP_float expf
#define LOG_float logf
#define SQRT_float sqrtf
#define POW_float powf
#define TANH_float tanhf
#define FABS_float fabsf
#define KEEP_float keep_f32
#define EXP_double exp
#define LOG_double log
#define SQRT_double sqrt
#define POW_double pow
#define TANH_double tanh
#define FABS_double fabs
#define KEEP_double keep_f64
#define M_(name, T) name##_##T
#define M(name, T) M_(name, T)

#define DEF_UNARY(T, SUF, ATTR)                                                                    \
    ATTR NO_TRAP static void unary_##SUF(tg__ew_unop op, int64_t n, T *restrict y,                 \
                                         const T *restrict x, double p)                            \
    {                                                                                              \
        switch (op) {                                                                              \
        case TG__EWU_NEG: VLOOP(y[j] = -x[j]) break;                                               \
        case TG__EWU_EXP: SLOOP(y[j] = M(EXP, T)(x[j])) break;                                     \
        case TG__EWU_LOG: SLOOP(y[j] = M(LOG, T)(x[j])) break;                                     \
        case TG__EWU_SQRT: SLOOP(y[j] = M(SQRT, T)(x[j])) break;                                   \
        case TG__EWU_POW: POW_CASES(T, M(SQRT, T), M(POW, T), p, STORE_Y); break;                  \
        /* NaN and -0 pass through, as torch.relu (one max instruction) */                         \
        case TG__EWU_RELU: VLOOP(y[j] = x[j] < (T)0 ? (T)0 : x[j]) break;                          \
        case TG__EWU_SIGMOID:                                                                      \
            /* e = exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below. */        \
            for (int64_t j = 0; j < n; j++) {                                                      \
                const T e = M(EXP, T)(-M(FABS, T)(x[j]));                                          \
                y[j] = (x[j] >= (T)0 ? (T)1 : e) / ((T)1 + e);                                     \
            }                                                                                      \
            break;                                                                                 \
        case TG__EWU_TANH: SLOOP(y[j] = M(TANH, T)(x[j])) break;                                   \
        case TG__EWU_ABS: VLOOP(y[j] = M(FABS, T)(x[j])) break;                                    \
        }                                                                                          \
    }

/* The VJPs as dx[j] AS <contribution>, AS being += (accumulate) or = (the
 * first contribution: no zero-fill, no read of dx). */
#define UNARY_GRAD_CASES(T, AS, STORE_POW)                                                         \
    switch (op) {                                                                                  \
    case TG__EWU_NEG: VLOOP(dx[j] AS - g[j]) break;                                                \
    case TG__EWU_EXP: VLOOP(dx[j] AS g[j] * y[j]) break;                                           \
    case TG__EWU_LOG: VLOOP(dx[j] AS g[j] / x[j]) break;                                           \
    case TG__EWU_SQRT: VLOOP(dx[j] AS g[j] / ((T)2 * y[j])) break;                                 \
    case TG__EWU_POW:                                                                              \
        if (p != 0.0) {                                                                            \
            const T pt = (T)p;                                                                     \
            POW_CASES(T, M(SQRT, T), M(POW, T), p - 1.0, STORE_POW);                               \
        } else { /* x^0 is constant: gradient 0 everywhere, even at x = 0 */                       \
            VLOOP(dx[j] AS(T) 0)                                                                   \
        }                                                                                          \
        break;                                                                                     \
    /* from the output, as PyTorch: 0 where y <= 0 */                                              \
    case TG__EWU_RELU: VLOOP(dx[j] AS M(KEEP, T)(g[j], !(y[j] <= (T)0))) break;                    \
    case TG__EWU_SIGMOID: VLOOP(dx[j] AS g[j] * ((T)1 - y[j]) * y[j]) break;                       \
    case TG__EWU_TANH: VLOOP(dx[j] AS g[j] * ((T)1 - y[j] * y[j])) break;                          \
    /* g * sign(x), sign(0) = 0 */                                                                 \
    case TG__EWU_ABS: VLOOP(dx[j] AS g[j] * (T)((x[j] > (T)0) - (x[j] < (T)0))) break;             \
    }

#define DEF_UNARY_GRAD(T, SUF, ATTR)                                                               \
    ATTR NO_TRAP static void unary_grad_##SUF(tg__ew_unop op, int64_t n, T *restrict dx,           \
                                              const T *restrict g, const T *restrict x,            \
                                              const T *restrict y, double p, bool acc)             \
    {                                                                                              \
        if (acc)                                                                                   \
            UNARY_GRAD_CASES(T, +=, STORE_DX_POW)                                                  \
        else                                                                                       \
            UNARY_GRAD_CASES(T, =, SET_DX_POW)                                                     \
    }

F32_COPIES(DEF_UNARY)
F32_COPIES(DEF_UNARY_GRAD)
DEF_UNARY(double, f64, ATTR_gen)
DEF_UNARY_GRAD(double, f64, ATTR_gen)

void tg__ew_unary_f32(tg__ew_unop op, int64_t n, float *restrict y, const float *restrict x,
                      double p)
{
    if (n <= 0)
        return;
    void (*f)(tg__ew_unop, int64_t, float *restrict, const float *restrict, double) =
        PICK_F32_N(unary, n);
    PAR_CHUNKS(n, f(op, len, y + at, x + at, p));
}

void tg__ew_unary_f64(tg__ew_unop op, int64_t n, double *restrict y, const double *restrict x,
                      double p)
{
    if (n <= 0)
        return;
    PAR_CHUNKS(n, unary_f64(op, len, y + at, x + at, p));
}

void tg__ew_unary_grad_f32(tg__ew_unop op, int64_t n, float *restrict dx, const float *restrict g,
                           const float *restrict x, const float *restrict y, double p, bool acc)
{
    if (n <= 0)
        return;
    void (*f)(tg__ew_unop, int64_t, float *restrict, const float *restrict,
              const float *restrict, const float *restrict, double, bool) =
        PICK_F32_N(unary_grad, n);
    PAR_CHUNKS(n, f(op, len, dx + at, g + at, x + at, y + at, p, acc));
}

void tg__ew_unary_grad_f64(tg__ew_unop op, int64_t n, double *restrict dx,
                           const double *restrict g, const double *restrict x,
                           const double *restrict y, double p, bool acc)
{
    if (n <= 0)
        return;
    PAR_CHUNKS(n, unary_grad_f64(op, len, dx + at, g + at, x + at, y + at, p, acc));
}
