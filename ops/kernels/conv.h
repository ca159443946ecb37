/* Convolution kernels, graph-free: im2col / col2im for both dtypes, the
 * conv2d forward and VJP lowered to GEMM per image and per group, and a direct
 * float64 reference loop (forward and VJP) that the tests use as an
 * independent check. Layouts are PyTorch's: x [N, C, H, W], w [O, C/groups,
 * KH, KW], bias [O], out [N, O, OH, OW], all contiguous row-major.
 *
 * The column matrix of one image and one group is col [Cg*KH*KW, OH*OW]
 * (Cg = C/groups): row (c*KH + i)*KW + j, column oh*OW + ow holds
 * x[c, oh*SH - PT + i*DH, ow*SW - PL + j*DW], or 0 where that falls in the
 * zero padding. Its row order is w's [Cg, KH, KW] order, so one group's
 * output is the plain product w_g [Og, Cg*KH*KW] @ col. */
#ifndef TG_KERNELS_CONV_H
#define TG_KERNELS_CONV_H

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

/* Elements of the col scratch that forward and backward need: Cg*KH*KW*OH*OW,
 * or 0 when im2col would be the identity (1x1 kernel, stride 1, no padding),
 * in which case x is used as the column matrix directly. */
int64_t tg__conv2d_col_elems(const tg__conv2d_geom *g);

/* col: [Cg*KH*KW, OH*OW] written from one image's group, x: [Cg, H, W]
 * (Cg = C/groups channels, each H x W contiguous). */
void tg__im2col_f32(const tg__conv2d_geom *g, const float *x, float *col);
void tg__im2col_f64(const tg__conv2d_geom *g, const double *x, double *col);
/* The adjoint of im2col: dx [Cg, H, W] += the entries of col [Cg*KH*KW,
 * OH*OW] scattered back to the pixels they were read from (padding dropped). */
void tg__col2im_f32(const tg__conv2d_geom *g, const float *col, float *dx);
void tg__col2im_f64(const tg__conv2d_geom *g, const double *col, double *dx);

/* out [N, O, OH, OW] = conv2d(x [N, C, H, W], w [O, C/groups, KH, KW]) + bias
 * [O] (bias may be NULL). col: scratch of tg__conv2d_col_elems(g) elements
 * (may be NULL when that is 0). */
void tg__conv2d_forward_f32(const tg__conv2d_geom *g, const float *x, const float *w,
                            const float *bias, float *out, float *col);
void tg__conv2d_forward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                            const double *bias, double *out, double *col);

/* The VJP given dout [N, O, OH, OW]; each of dx [N, C, H, W], dw [O, C/groups,
 * KH, KW], db [O] is accumulated (+=) when not NULL. x is read only for dw,
 * w only for dx. col: scratch as for forward. db sums in double. */
void tg__conv2d_backward_f32(const tg__conv2d_geom *g, const float *x, const float *w,
                             const float *dout, float *dx, float *dw, float *db, float *col);
void tg__conv2d_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                             const double *dout, double *dx, double *dw, double *db,
                             double *col);

/* Reference: the textbook seven-deep loop in float64, no im2col, no GEMM.
 * out [N, O, OH, OW] = bias[o] + sum_{c, i, j} x[n, gc, ih, iw] * w[o, c, i, j]. */
void tg__conv2d_ref_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                        const double *bias, double *out);
/* Reference VJP: the same loop scattering dout into dx, dw, db (each +=, each
 * may be NULL). */
void tg__conv2d_ref_backward_f64(const tg__conv2d_geom *g, const double *x, const double *w,
                                 const double *dout, double *dx, double *dw, double *db);

#endif
