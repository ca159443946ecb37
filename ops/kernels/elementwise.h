/* Elementwise kernels, graph-free: one row of a binary op whose operands are
 * each contiguous (stride 1) or one repeated value (stride 0), the VJP
 * accumulation of one binary operand along such a row, and the unary ops over
 * contiguous arrays. ops/broadcast.h cuts a broadcast into rows. */
#ifndef TG_KERNELS_ELEMENTWISE_H
#define TG_KERNELS_ELEMENTWISE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum tg__ew_binop { TG__EWB_ADD, TG__EWB_SUB, TG__EWB_MUL, TG__EWB_DIV } tg__ew_binop;

/* out[j] = a[j * sa] op b[j * sb] for j < n; sa, sb are 0 or 1.
 * out: [n]; a: [n] (sa 1) or [1] (sa 0); b: [n] or [1] likewise. */
void tg__ew_binary_f32(tg__ew_binop op, int64_t n, float *restrict out, const float *restrict a,
                       int64_t sa, const float *restrict b, int64_t sb);
void tg__ew_binary_f64(tg__ew_binop op, int64_t n, double *restrict out, const double *restrict a,
                       int64_t sa, const double *restrict b, int64_t sb);

/* The local gradient t of one operand of a binary op, from the upstream
 * gradient g, a second operand y and the op's output o:
 *   ID: g (add; sub's a)  NEG: -g (sub's b)  MUL: g * y (mul, y = the other operand)
 *   DIV: g / y (div's a, y = b)  DIVB: -g * (o / y) (div's b, y = b, o = a / b) */
typedef enum tg__ew_gradop {
    TG__EWG_ID,
    TG__EWG_NEG,
    TG__EWG_MUL,
    TG__EWG_DIV,
    TG__EWG_DIVB
} tg__ew_gradop;

/* dst[j * sd] += t(g[j], y[j * sy], o[j]) for j < n; sd, sy are 0 or 1. With
 * sd == 0 the row is summed in a double and added to dst[0].
 * dst: [n] or [1]; g, o: [n] (o read by DIVB only); y: [n] or [1] (read by
 * MUL, DIV, DIVB). dst must not overlap g, y or o. */
void tg__ew_bgrad_f64(tg__ew_gradop op, int64_t n, double *restrict dst, int64_t sd,
                      const double *restrict g, const double *restrict y, int64_t sy,
                      const double *restrict o);
void tg__ew_bgrad_f32(tg__ew_gradop op, int64_t n, float *restrict dst, int64_t sd,
                      const float *restrict g, const float *restrict y, int64_t sy,
                      const float *restrict o);
/* float32 operands, double accumulator: the sum-to-shape of a broadcast
 * float32 operand (t is computed in float32, as the float32 op would). */
void tg__ew_bgrad_f32d(tg__ew_gradop op, int64_t n, double *restrict dst, int64_t sd,
                       const float *restrict g, const float *restrict y, int64_t sy,
                       const float *restrict o);

typedef enum tg__ew_unop {
    TG__EWU_NEG,
    TG__EWU_EXP,
    TG__EWU_LOG,
    TG__EWU_SQRT,
    TG__EWU_POW,
    TG__EWU_RELU,
    TG__EWU_SIGMOID,
    TG__EWU_TANH,
    TG__EWU_ABS
} tg__ew_unop;

/* y[j] = f(x[j]) for j < n; p is POW's exponent (ignored by the others).
 * x, y: [n]. */
void tg__ew_unary_f32(tg__ew_unop op, int64_t n, float *restrict y, const float *restrict x,
                      double p);
void tg__ew_unary_f64(tg__ew_unop op, int64_t n, double *restrict y, const double *restrict x,
                      double p);
/* dx[j] += g[j] * f'(x[j]) (acc), or dx[j] = g[j] * f'(x[j]) (!acc: dx is
 * neither read nor needs zeroing), written with the forward's input x or its
 * output y as each VJP needs (exp, sqrt, relu, sigmoid, tanh read y; log, pow,
 * abs read x; neg reads neither). dx, g, x, y: [n]; dx overlaps none of them. */
void tg__ew_unary_grad_f32(tg__ew_unop op, int64_t n, float *restrict dx, const float *restrict g,
                           const float *restrict x, const float *restrict y, double p, bool acc);
void tg__ew_unary_grad_f64(tg__ew_unop op, int64_t n, double *restrict dx,
                           const double *restrict g, const double *restrict x,
                           const double *restrict y, double p, bool acc);

#endif
