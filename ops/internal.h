/* Helpers shared by the op family files (not installed): axis normalisation,
 * shape strings for error messages, and the dtype of a node. Ops otherwise use
 * only the public API, the same as a user's custom op. */
#ifndef TG_OPS_INTERNAL_H
#define TG_OPS_INTERNAL_H

#include "ops.h"

#include <stdio.h>

/* A shape as text, by value, so it can sit inside a call's arguments:
 * tg_set_error(TG_ERR_SHAPE, "a %s @ b %s", TG_SHP(a), TG_SHP(b)). */
typedef struct tg__shape_str {
    char s[TG_SHAPE_STR_MAX];
} tg__shape_str;

static inline tg__shape_str tg__shape_of(const tg_tensor *t)
{
    tg__shape_str r;
    tg_shape_format(r.s, sizeof r.s, tg_tensor_ndim(t), tg_tensor_shape(t));
    return r;
}
#define TG_SHP(t) (tg__shape_of(t).s)

/* Maps a PyTorch-style axis (negative counts from the end) into 0..ndim-1.
 * A rank-0 tensor accepts axis 0 and -1 as PyTorch does (ndim treated as 1).
 * Returns 0, or TG_ERR_ARG with "axis A is out of range for shape S". */
static inline int tg__norm_axis(int axis, const tg_tensor *x, int *out)
{
    int nd = tg_tensor_ndim(x);
    int lim = nd ? nd : 1;
    if (axis < -lim || axis >= lim)
        return tg_set_error(TG_ERR_ARG, "axis %d is out of range for shape %s (%d dims)", axis,
                            TG_SHP(x), nd);
    *out = axis < 0 ? axis + lim : axis;
    return TG_OK;
}

#endif
