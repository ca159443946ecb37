/* Heap leaf tensors: creation, accessors, element access and shape formatting.
 * Arena tensors (op outputs) are made in graph.c; both share struct tg_tensor. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tg_dtype_size(tg_dtype dtype) { return dtype == TG_F64 ? 8 : 4; }

const char *tg_dtype_name(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return "float32";
    case TG_F64: return "float64";
    default: return "invalid-dtype";
    }
}

char *tg_shape_format(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t at = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    at += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < size)
        snprintf(buf + at, size - at, "]");
    return buf;
}

int tg__check_shape(const char *who, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_set_error(TG_ERR_ARG, "%s: ndim %d is outside 0..%d", who, ndim, TG_MAX_DIMS);
    if (ndim > 0 && !shape)
        return tg_set_error(TG_ERR_NULL, "%s: shape is NULL for ndim %d", who, ndim);
    int64_t n = 1;
    /* Limit element counts so that byte sizes (x8) and index arithmetic fit. */
    const int64_t limit = INT64_MAX / 64;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char s[TG_SHAPE_STR_MAX];
            return tg_set_error(TG_ERR_SHAPE, "%s: negative dimension %d in shape %s", who, i,
                                tg_shape_format(s, sizeof s, ndim, shape));
        }
        if (shape[i] != 0 && n > limit / shape[i]) {
            char s[TG_SHAPE_STR_MAX];
            return tg_set_error(TG_ERR_OVERFLOW, "%s: element count of shape %s overflows", who,
                                tg_shape_format(s, sizeof s, ndim, shape));
        }
        n *= shape[i];
    }
    *numel = n;
    return TG_OK;
}

static void *aligned_zalloc(size_t bytes)
{
    size_t rounded = (bytes + TG_ALIGN - 1) / TG_ALIGN * TG_ALIGN;
    if (rounded == 0)
        rounded = TG_ALIGN;
    void *p = aligned_alloc(TG_ALIGN, rounded);
    if (p)
        memset(p, 0, rounded);
    return p;
}

static tg_tensor *heap_tensor(const char *who, tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel;
    if (dtype != TG_F32 && dtype != TG_F64) {
        tg_set_error(TG_ERR_DTYPE, "%s: unknown dtype %d", who, (int)dtype);
        return NULL;
    }
    if (tg__check_shape(who, ndim, shape, &numel))
        return NULL;
    tg_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        tg_set_error(TG_ERR_NOMEM, "%s: out of memory", who);
        return NULL;
    }
    t->data = aligned_zalloc((size_t)numel * tg_dtype_size(dtype));
    if (!t->data) {
        free(t);
        char s[TG_SHAPE_STR_MAX];
        tg_set_error(TG_ERR_NOMEM, "%s: out of memory for %s %s", who, tg_dtype_name(dtype),
                     tg_shape_format(s, sizeof s, ndim, shape));
        return NULL;
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    return t;
}

tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape)
{
    return heap_tensor("tg_tensor_new", dtype, ndim, shape);
}

tg_tensor *tg_tensor_from(tg_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    tg_tensor *t = heap_tensor("tg_tensor_from", dtype, ndim, shape);
    if (!t)
        return NULL;
    if (!data && t->numel > 0) {
        tg_tensor_free(t);
        tg_set_error(TG_ERR_NULL, "tg_tensor_from: data is NULL");
        return NULL;
    }
    if (t->numel > 0)
        memcpy(t->data, data, (size_t)t->numel * tg_dtype_size(dtype));
    return t;
}

tg_tensor *tg_tensor_copy(const tg_tensor *src, tg_dtype dtype)
{
    if (!src) {
        tg_set_error(TG_ERR_NULL, "tg_tensor_copy: tensor is NULL");
        return NULL;
    }
    tg_tensor *t = heap_tensor("tg_tensor_copy", dtype, src->ndim, src->shape);
    if (!t)
        return NULL;
    if (src->dtype == dtype) {
        memcpy(t->data, src->data, (size_t)src->numel * tg_dtype_size(dtype));
    } else {
        for (int64_t i = 0; i < src->numel; i++)
            tg_tensor_set(t, i, tg_tensor_get(src, i));
    }
    return t;
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || t->graph)
        return;
    if (t->grad) {
        free(t->grad->data);
        free(t->grad);
    }
    free(t->data);
    free(t);
}

int tg_tensor_ndim(const tg_tensor *t) { return t ? t->ndim : 0; }
const int64_t *tg_tensor_shape(const tg_tensor *t) { return t ? t->shape : NULL; }
int64_t tg_tensor_numel(const tg_tensor *t) { return t ? t->numel : 0; }
tg_dtype tg_tensor_dtype(const tg_tensor *t) { return t ? t->dtype : TG_F32; }
void *tg_tensor_data(const tg_tensor *t) { return t ? t->data : NULL; }
tg_tensor *tg_tensor_grad(const tg_tensor *t) { return t ? t->grad : NULL; }
bool tg_tensor_requires_grad(const tg_tensor *t) { return t && t->requires_grad; }

int tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad)
{
    if (!t)
        return tg_set_error(TG_ERR_NULL, "tg_tensor_set_requires_grad: tensor is NULL");
    if (t->node) {
        char s[TG_SHAPE_STR_MAX];
        return tg_set_error(TG_ERR_ARG,
                            "tg_tensor_set_requires_grad: tensor %s is the output of tg_%s, not a "
                            "leaf; detach it first",
                            tg_shape_format(s, sizeof s, t->ndim, t->shape), t->node->op->name);
    }
    t->requires_grad = requires_grad;
    return TG_OK;
}

void tg_tensor_zero_grad(tg_tensor *t)
{
    if (t && t->grad)
        memset(t->grad->data, 0, (size_t)t->numel * tg_dtype_size(t->dtype));
}

double tg_tensor_get(const tg_tensor *t, int64_t i)
{
    if (t->dtype == TG_F64)
        return ((const double *)t->data)[i];
    return (double)((const float *)t->data)[i];
}

void tg_tensor_set(tg_tensor *t, int64_t i, double v)
{
    if (t->dtype == TG_F64)
        ((double *)t->data)[i] = v;
    else
        ((float *)t->data)[i] = (float)v;
}

void tg_tensor_fill(tg_tensor *t, double v)
{
    for (int64_t i = 0; i < t->numel; i++)
        tg_tensor_set(t, i, v);
}

tg_tensor *tg__heap_grad(const tg_tensor *t)
{
    return heap_tensor("tg_backward", t->dtype, t->ndim, t->shape);
}
