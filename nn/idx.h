/* IDX files: the format of MNIST and Fashion-MNIST, as gunzip leaves it.
 * Bytes 0 and 1 are zero, byte 2 is the element type, byte 3 the number of
 * dims; then one big-endian uint32 per dim; then the elements, row-major.
 * tgrad reads the one-byte types: 0x08 (unsigned byte, what MNIST uses) and
 * 0x09 (signed byte). The wider types (0x0B int16, 0x0C int32, 0x0D float32,
 * 0x0E float64) are rejected as unsupported. docs/nn.md lists every check.
 *
 * Ownership: tg_idx_read / tg_idx_parse return an array the caller frees with
 * tg_idx_free; `data` belongs to it. */
#ifndef TG_NN_IDX_H
#define TG_NN_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "../autograd/error.h"
#include "../autograd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_idx {
    int ndim;                  /* 1..8 (MNIST: 3 for images, 1 for labels) */
    int64_t dims[TG_MAX_DIMS]; /* e.g. [10000, 28, 28] */
    int64_t numel;             /* product of dims */
    uint8_t *data;             /* numel bytes; never NULL (even when numel is 0) */
    int type;                  /* 0x08: data are uint8_t; 0x09: read them as int8_t */
} tg_idx;

/* Reads and validates a whole file. NULL on failure with tg_last_error():
 * TG_ERR_IO (open/read), TG_ERR_FORMAT (bad magic, dims, size),
 * TG_ERR_DTYPE (a wider element type), TG_ERR_NOMEM. */
tg_idx *tg_idx_read(const char *path);
/* The same checks on `size` bytes in memory (borrowed; the data is copied).
 * `label` names the input in messages (NULL: "<memory>"). */
tg_idx *tg_idx_parse(const void *bytes, size_t size, const char *label);
/* Frees the array and its data. NULL is a no-op. */
void tg_idx_free(tg_idx *x);

#ifdef __cplusplus
}
#endif
#endif
