/* Tensors: dtype, shape and 64-byte aligned contiguous row-major storage.
 *
 * Ownership: tg_tensor_new / tg_tensor_from / tg_tensor_copy return a leaf the
 * caller frees with tg_tensor_free. Tensors returned by ops live in their graph's
 * arena and die at tg_graph_reset / tg_graph_free; tg_tensor_free on one of them
 * is a no-op. A leaf's gradient is created by the first backward that reaches it,
 * is owned by the leaf and accumulates until tg_tensor_zero_grad. */
#ifndef TG_TENSOR_H
#define TG_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_DIMS 8 /* most dims a tensor can have */
#define TG_ALIGN 64   /* byte alignment of every tensor's data */

typedef enum tg_dtype { TG_F32 = 0, TG_F64 = 1 } tg_dtype;

typedef struct tg_tensor tg_tensor;

/* A zero-filled leaf tensor. ndim in 0..8 (0 is a scalar), dims >= 0 (0 gives
 * an empty tensor). NULL on a bad argument or overflow, with tg_last_error(). */
tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape);
/* As tg_tensor_new, then copies numel elements of `dtype` from data. */
tg_tensor *tg_tensor_from(tg_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* A new leaf with t's shape and values converted to `dtype` (no gradient, no
 * requires_grad). */
tg_tensor *tg_tensor_copy(const tg_tensor *t, tg_dtype dtype);
/* Frees a leaf and its gradient. NULL and arena tensors: no-op. */
void tg_tensor_free(tg_tensor *t);

int tg_tensor_ndim(const tg_tensor *t);
const int64_t *tg_tensor_shape(const tg_tensor *t); /* ndim entries */
int64_t tg_tensor_numel(const tg_tensor *t);
tg_dtype tg_tensor_dtype(const tg_tensor *t);
/* The values: float * for TG_F32, double * for TG_F64. */
void *tg_tensor_data(const tg_tensor *t);
/* dL/dt after a backward reached t, else NULL. Same shape and dtype as t. */
tg_tensor *tg_tensor_grad(const tg_tensor *t);
/* Marks a leaf as a variable to differentiate. TG_ERR_ARG for an op output
 * (its requires_grad follows from its inputs). */
int tg_tensor_set_requires_grad(tg_tensor *t, bool requires_grad);
bool tg_tensor_requires_grad(const tg_tensor *t);
/* Sets t's gradient to zeros (keeps its memory); no-op if it has none. */
void tg_tensor_zero_grad(tg_tensor *t);

/* Element i (flat, row-major) as a double; element i set from a double. */
double tg_tensor_get(const tg_tensor *t, int64_t i);
void tg_tensor_set(tg_tensor *t, int64_t i, double v);
/* Fills every element with v. */
void tg_tensor_fill(tg_tensor *t, double v);

size_t tg_dtype_size(tg_dtype dtype);       /* 4 or 8 */
const char *tg_dtype_name(tg_dtype dtype);  /* "float32", "float64" */
/* Writes "[2, 3]" (or "[]" for a scalar) into buf; returns buf. */
char *tg_shape_format(char *buf, size_t size, int ndim, const int64_t *shape);
#define TG_SHAPE_STR_MAX 192 /* enough for any shape tg_shape_format writes */

#ifdef __cplusplus
}
#endif
#endif
