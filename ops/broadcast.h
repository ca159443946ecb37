/* Broadcasting for two-operand ops (NumPy/PyTorch rule): the output shape, a
 * plan that collapses the dims into as few as possible, row-by-row iteration
 * over the output, and sum-to-shape (the VJP of a broadcast). Internal and
 * header-only; the elementwise family uses it and other families may.
 *
 * The rule: align the shapes at their trailing dims (a missing leading dim
 * counts as 1); two sizes fit when they are equal or one of them is 1, and the
 * output takes the other (so 1 with 0 gives 0). A rank-0 scalar fits anything.
 *
 * The plan: dims of output size 1 are dropped and neighbouring dims are merged
 * whenever both operands step through them contiguously (or both repeat them),
 * so the common cases need no odometer at all:
 *   equal shapes          -> 1 dim,  strides (1, 1)   one row (TG__BCAST_FLAT)
 *   a scalar operand      -> 1 dim,  strides (1, 0)   one row (TG__BCAST_FLAT)
 *   [N, C] + [C]          -> 2 dims, b strides (0, 1) N rows of C (TG__BCAST_ROWS)
 *   [N, 1] + [N, C]       -> 2 dims, a strides (1, 0) N rows of C (TG__BCAST_ROWS)
 *   [N, C, H, W] + [C, 1, 1] -> [N, C, H*W], b strides (0, 1, 0) (TG__BCAST_ND)
 * The innermost collapsed dim is the "row"; each operand's stride along it is
 * 0 (repeated) or 1 (contiguous), which is what the row kernels accept. */
#ifndef TG_OPS_BROADCAST_H
#define TG_OPS_BROADCAST_H

#include "internal.h"

#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------ shape rule */

/* The broadcast shape of da [na] with db [nb] into dims (max(na, nb) entries,
 * written to *nd). False when some pair of sizes differs and neither is 1. */
static inline bool tg__bcast_dims(int na, const int64_t *da, int nb, const int64_t *db, int *nd,
                                  int64_t *dims)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) { /* i counts from the trailing dim */
        int64_t x = i < na ? da[na - 1 - i] : 1;
        int64_t y = i < nb ? db[nb - 1 - i] : 1;
        if (x != y && x != 1 && y != 1)
            return false;
        dims[n - 1 - i] = x == 1 ? y : x;
    }
    *nd = n;
    return true;
}

/* Shape rule of a binary broadcasting op: fills out->ndim and out->dims, or
 * returns TG_ERR_SHAPE with "shapes do not broadcast: a [2, 3] and b [4]"
 * (tg_apply adds the "tg_<op>: " prefix). */
static inline int tg__bcast_shape(const tg_tensor *a, const tg_tensor *b, tg_shape *out)
{
    if (!tg__bcast_dims(tg_tensor_ndim(a), tg_tensor_shape(a), tg_tensor_ndim(b),
                        tg_tensor_shape(b), &out->ndim, out->dims))
        return tg_set_error(TG_ERR_SHAPE, "shapes do not broadcast: a %s and b %s", TG_SHP(a),
                            TG_SHP(b));
    return TG_OK;
}

/* ------------------------------------------------------------------ plan */

typedef enum tg__bcast_kind {
    TG__BCAST_FLAT = 0, /* one row: equal shapes, a scalar operand, or an empty output */
    TG__BCAST_ROWS,     /* two collapsed dims: row r starts at r * st[k][0] */
    TG__BCAST_ND        /* three or more: rows follow an odometer */
} tg__bcast_kind;

typedef struct tg__bcast {
    int ndim;                   /* collapsed rank, 1..TG_MAX_DIMS */
    int64_t dims[TG_MAX_DIMS];  /* collapsed output dims, row-major */
    int64_t st[2][TG_MAX_DIMS]; /* element strides of operand 0 and 1; 0 = repeated */
    int64_t numel;              /* output elements */
    int64_t inner;              /* dims[ndim - 1]: the row length */
    int64_t rows;               /* numel / inner; 0 for an empty output */
    tg__bcast_kind kind;
} tg__bcast;

/* Plans out = f(a, b) for shapes that broadcast (check with tg__bcast_dims
 * first; the shape rule has). */
static inline void tg__bcast_plan(tg__bcast *p, int na, const int64_t *da, int nb,
                                  const int64_t *db)
{
    int64_t od[TG_MAX_DIMS], s[2][TG_MAX_DIMS];
    int nd = 0;
    memset(p, 0, sizeof *p);
    (void)tg__bcast_dims(na, da, nb, db, &nd, od);
    int64_t numel = 1;
    for (int i = 0; i < nd; i++)
        numel *= od[i];
    p->numel = numel;
    p->ndim = 1;
    p->kind = TG__BCAST_FLAT;
    if (numel == 0)
        return; /* dims[0] = inner = rows = 0: nothing to visit */

    /* Each operand's stride over every output dim: contiguous where it has the
     * dim at full size, 0 where it is missing or of size 1. */
    const int64_t *dk[2] = {da, db};
    const int nk[2] = {na, nb};
    for (int k = 0; k < 2; k++) {
        int64_t stride = 1;
        for (int i = nd - 1; i >= 0; i--) {
            int j = i - (nd - nk[k]);
            int64_t size = j >= 0 ? dk[k][j] : 1;
            s[k][i] = size == 1 ? 0 : stride;
            stride *= size;
        }
    }
    /* Drop size-1 dims; merge a dim into the previous kept one when both
     * operands step through the pair as one dim. */
    int m = 0;
    for (int i = 0; i < nd; i++) {
        if (od[i] == 1)
            continue;
        if (m > 0 && p->st[0][m - 1] == s[0][i] * od[i] && p->st[1][m - 1] == s[1][i] * od[i]) {
            p->dims[m - 1] *= od[i];
            p->st[0][m - 1] = s[0][i];
            p->st[1][m - 1] = s[1][i];
        } else {
            p->dims[m] = od[i];
            p->st[0][m] = s[0][i];
            p->st[1][m] = s[1][i];
            m++;
        }
    }
    if (m == 0) { /* one element in all: both operands hold one element */
        p->dims[0] = 1;
        m = 1;
    }
    p->ndim = m;
    p->inner = p->dims[m - 1];
    p->rows = numel / p->inner;
    p->kind = m == 1 ? TG__BCAST_FLAT : m == 2 ? TG__BCAST_ROWS : TG__BCAST_ND;
}

/* The plan of a binary op from its two input tensors. */
static inline void tg__bcast_plan_t(tg__bcast *p, const tg_tensor *a, const tg_tensor *b)
{
    tg__bcast_plan(p, tg_tensor_ndim(a), tg_tensor_shape(a), tg_tensor_ndim(b),
                   tg_tensor_shape(b));
}

/* ------------------------------------------------------------- iteration */

/* Position at the start of a row: the output offset is row * inner; off[k] is
 * operand k's element offset. Use:
 *     tg__bcast_it it;
 *     for (tg__bcast_begin(&p, &it); it.row < p.rows; tg__bcast_next(&p, &it))
 *         row_kernel(p.inner, out + it.row * p.inner,
 *                    a + it.off[0], p.st[0][p.ndim - 1], b + it.off[1], p.st[1][p.ndim - 1]); */
typedef struct tg__bcast_it {
    int64_t row;
    int64_t off[2];
    int64_t idx[TG_MAX_DIMS]; /* odometer over the outer dims (ND plans only) */
} tg__bcast_it;

static inline void tg__bcast_begin(const tg__bcast *p, tg__bcast_it *it)
{
    (void)p;
    memset(it, 0, sizeof *it);
}

static inline void tg__bcast_next(const tg__bcast *p, tg__bcast_it *it)
{
    it->row++;
    if (p->kind == TG__BCAST_ROWS) { /* no odometer: one outer dim */
        it->off[0] += p->st[0][0];
        it->off[1] += p->st[1][0];
        return;
    }
    for (int d = p->ndim - 2; d >= 0; d--) {
        it->off[0] += p->st[0][d];
        it->off[1] += p->st[1][d];
        if (++it->idx[d] < p->dims[d])
            return;
        it->off[0] -= p->st[0][d] * p->dims[d];
        it->off[1] -= p->st[1][d] * p->dims[d];
        it->idx[d] = 0;
    }
}

/* ---------------------------------------------------------- sum-to-shape */

/* dst (operand k's shape) += src (the output's shape) summed over the dims
 * operand k was broadcast across: the VJP of the broadcast itself. Each row
 * that collapses to one element is summed in a double before it is added. */
static inline void tg__bcast_sum_to_f64(const tg__bcast *p, int k, double *dst, const double *src)
{
    const int64_t n = p->inner, sd = p->st[k][p->ndim - 1];
    tg__bcast_it it;
    for (tg__bcast_begin(p, &it); it.row < p->rows; tg__bcast_next(p, &it)) {
        double *d = dst + it.off[k];
        const double *s = src + it.row * n;
        if (sd) {
            for (int64_t j = 0; j < n; j++)
                d[j] += s[j];
        } else {
            double acc = 0.0;
            for (int64_t j = 0; j < n; j++)
                acc += s[j];
            d[0] += acc;
        }
    }
}

/* The float32 version accumulates into a double buffer of operand k's shape
 * (acc); the caller adds acc into the float32 gradient, so a sum over many
 * rows keeps double precision. */
static inline void tg__bcast_sum_to_f32(const tg__bcast *p, int k, double *acc, const float *src)
{
    const int64_t n = p->inner, sd = p->st[k][p->ndim - 1];
    tg__bcast_it it;
    for (tg__bcast_begin(p, &it); it.row < p->rows; tg__bcast_next(p, &it)) {
        double *d = acc + it.off[k];
        const float *s = src + it.row * n;
        if (sd) {
            for (int64_t j = 0; j < n; j++)
                d[j] += (double)s[j];
        } else {
            double sum = 0.0;
            for (int64_t j = 0; j < n; j++)
                sum += (double)s[j];
            d[0] += sum;
        }
    }
}

#endif
