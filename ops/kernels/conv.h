/* Convolution kernels, graph-free: the float64 conv2d forward and VJP lowered
 * to one GEMM per image and group, the float32 fast path (blocks of images
 * lowered to GEMMs, direct SIMD kernels for one input channel, threads over
 * blocks), and a direct float64 reference loop (forward and VJP) that the
 * tests use as an independent check. Layouts are PyTorch's: x [N, C, H, W], w [O, C/groups,
 * KH, KW], bias [O], out [N, O, OH, OW], all contiguous row-major.
 *
 * The column matrix of one image and one group is col [Cg*KH*KW, OH*OW]
 * (Cg = C/groups): row (c*KH + i)*KW + j, column oh*OW + ow holds
 * x[c, oh*SH - PT + i*DH, ow*SW - PL + j*DW], or 0 where that falls in the
 * zero padding. Its row order is w's [Cg, KH, KW] order, so one group's
 * output is the plain product w_g [Og, Cg*KH*KW] @ col. */
#ifndef TG_KERNELS_CONV_H
#define TG_KERNELS_CONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The geometry of one conv2d; every field is >= 1 except N, PT, PL (>= 0).
 * The bottom and right padding are implied by OH and OW. */
typedef struct tg__conv2d_geom {
    int64_t N, C, H, W; /* x: [N, C, H, W] */
    int64_t O, KH, KW;  /* w: [O, C/groups, KH, KW] */
    int64_t OH, OW;     /* out: [N, O, OH, OW] */
    int64_t SH, SW;     /* stride */
    int64_t PT, PL;     /* zero rows above / columns left of the image */
    int64_t DH, DW;     /* dilation */
    int64_t groups;     /* divides C and O */
} tg__conv2d_geom;

/* ------------------------------------------------------------- float64 */

/* Elements of the col scratch that the float64 forward and backward need:
 * Cg*KH*KW*OH*OW (one image and group), or 0 when im2col would be the
 * identity (1x1 kernel, stride 1, no padding), in which case x is used as the
 * column matrix directly. */
int64_t tg__conv2d_col_elems(const tg__conv2d_geom *g);

/* col: [Cg*KH*KW, OH*OW] written from one image's group, x: [Cg, H, W]
 * (Cg = C/groups channels, each H x W contiguous). */
void tg__im2col_f64(const tg__conv2d_geom *g, const double *x, double *col);
/* The adjoint of im2col: dx [Cg, H, W] += the entries of col [Cg*KH*KW,
 * OH*OW] scattered back to the pixels they were read from (padding dropped). */
void tg__col2im_f64(const tg__conv2d_geom *g, const double *col, double *dx);

/* float64 (the reference-speed path): one GEMM per image and group.
 * out [N, O, OH, OW] = conv2d(x [N, C, H, W], w [O, C/groups, KH, KW]) + bias
 * [O] (bias may be NULL). col: scratch of tg__conv2d_col_elems(g) elements
 * (may be NULL when that is 0). */
void tg__conv2d_forward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                            const double *bias, double *out, double *col);
/* The VJP given dout [N, O, OH, OW]; each of dx [N, C, H, W], dw [O, C/groups,
 * KH, KW], db [O] is accumulated (+=) when not NULL. x is read only for dw,
 * w only for dx. col: scratch as for forward. db sums in double. */
void tg__conv2d_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                             const double *dout, double *dx, double *dw, double *db,
                             double *col);

/* ------------------------------------------------------------- float32 */

/* The float32 path takes one of three routes, chosen by the plan from the
 * shape and the CPU level (docs/performance.md has the measurements):
 * - im2col + GEMM on blocks of `chunk` images, with Kc = Cg*KH*KW, P = OH*OW
 *   and the block's column matrix col [Kc, chunk*P] (image n's columns at
 *   n*P), one group at a time:
 *     forward  y [Og, chunk*P]    = w_g [Og, Kc] @ col, into NCHW plus bias
 *     VJP      dy' [O, chunk*P]   = the block's dy, permuted
 *              dw_g [Og, Kc]     += dy'_g @ col^T               (K = chunk*P)
 *              dcol [Kc, chunk*P] = w_g^T @ dy'_g, col2im into dx
 *   A block's col fits the budget (about L2); an image whose col does not is
 *   cut into bands of `rows` output rows.
 * - One input channel (C = 1): direct kernels, one image per block: the
 *   forward and dcol products are short sums over KH*KW or O kept in SIMD
 *   registers, and dw is a fixed-order correlation of x with dy.
 * - 3x3, stride 1, no dilation, 4+ channels per group each way, AVX-512:
 *   Winograd for the forward, dx and dw: F(4x4, 3x3) when the rows fit one
 *   vector (at most 16 floats, LeNet's 14x14 layer), else F(2x2, 3x3).
 * Threads take whole blocks (GEMMs inside a block run single-threaded); dw
 * and db are summed per slot (block b into slot b % slots, in block order)
 * and the slots in slot order, db in double, so results do not depend on the
 * thread count. The plan depends on the shape, the CPU level, the budget and
 * (only for the parallelism and the scratch sizes) the thread count. */
typedef struct tg__conv2d_plan {
    bool direct;       /* C == 1: direct kernels */
    int nt;            /* threads for this conv (1 when it is small) */
    bool outer;        /* threads take blocks (else blocks in turn, threads inside) */
    int nt_outer;      /* threads over blocks (one scratch block each) */
    int nt_inner;      /* threads inside a block (im2col, GEMM, col2im) */
    int64_t chunk;     /* images per block (>= 1) */
    int64_t rows;      /* output rows per band (OH: whole images; < OH: chunk 1) */
    int64_t n_chunks;  /* blocks */
    int64_t slots;     /* partial sums of dw and db (>= 1) */
    int64_t col_elems; /* floats of col scratch (nt blocks) */
    int64_t yt_elems;  /* floats of y / dy' block scratch (nt blocks; 0 for one image) */
    int64_t dwp_elems; /* floats of dw partial sums */
    int64_t dbp_elems; /* doubles of db partial sums */
    bool wino;         /* 3x3 stride 1: everything by Winograd */
    int wino_m[2];     /* its output tiles, 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)):
                        * forward (and dw), dx */
    int64_t u_elems;   /* floats of the transformed filters (wino) */
    int64_t wv_elems;  /* floats of Winograd block scratch (nt blocks; wino) */
} tg__conv2d_plan;

void tg__conv2d_plan_f32(const tg__conv2d_geom *g, tg__conv2d_plan *p);

/* Scratch, sized by the plan. Forward: u and wv when p->wino, else col and yt
 * (when yt_elems > 0). VJP: col when dw (or dx without wino), yt when
 * yt_elems > 0, dwp when dw, dbp when db (with p->wino: db and dw), u and wv
 * when dx and p->wino.
 * Unused ones may be NULL. */
typedef struct tg__conv2d_scratch {
    float *col;
    float *yt;
    float *dwp;
    double *dbp;
    float *u;
    float *wv;
} tg__conv2d_scratch;

/* Forward. */
void tg__conv2d_forward_f32(const tg__conv2d_geom *g, const tg__conv2d_plan *p, const float *x,
                            const float *w, const float *bias, float *out,
                            const tg__conv2d_scratch *s);

/* VJP: each of dx, dw, db += when not NULL; dx is overwritten instead when
 * dx_acc is false (a first contribution: its contents are not read). */
void tg__conv2d_backward_f32(const tg__conv2d_geom *g, const tg__conv2d_plan *p, const float *x,
                             const float *w, const float *dout, float *dx, bool dx_acc, float *dw,
                             float *db, const tg__conv2d_scratch *s);

/* Testing hook (internal; the SIMD level is tg__cpu_force in cpu.h): the
 * column block budget in bytes (0 restores the default); plans made
 * afterwards use it. Returns the old value. */
int64_t tg__conv2d_budget_force(int64_t bytes);

/* Reference: the textbook seven-deep loop in float64, no im2col, no GEMM.
 * out [N, O, OH, OW] = bias[o] + sum_{c, i, j} x[n, gc, ih, iw] * w[o, c, i, j]. */
void tg__conv2d_ref_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                        const double *bias, double *out);
/* Reference VJP: the same loop scattering dout into dx, dw, db (each +=, each
 * may be NULL). */
void tg__conv2d_ref_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                                 const double *dout, double *dx, double *dw, double *db);

#endif
