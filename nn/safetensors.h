/* safetensors files: the checkpoint layout PyTorch's `safetensors` package
 * reads and writes. An 8-byte little-endian header size N, N bytes of JSON
 * header (name -> {"dtype", "shape", "data_offsets"}, plus an optional
 * "__metadata__" object of strings), then the raw little-endian data.
 * docs/nn.md ("Checkpoint files") gives the layout byte by byte and every
 * check the reader makes.
 *
 * tgrad adds a CRC32 of the whole file to __metadata__ ("tgrad_crc32"), so a
 * flipped bit anywhere is detected; files without it (written by PyTorch) are
 * read when TG_ST_REQUIRE_CRC is not given. Only F32, F64 and I64 tensors are
 * supported; a file holding another dtype is rejected, naming it.
 *
 * Ownership: tg_st_read / tg_st_parse return a file the caller frees with
 * tg_st_close. Every pointer obtained from it (tensor records, names, data,
 * metadata strings) is borrowed and dies with tg_st_close. */
#ifndef TG_NN_SAFETENSORS_H
#define TG_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../autograd/error.h"
#include "../autograd/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tg_st_dtype {
    TG_ST_F32 = 0, /* "F32": float, 4 bytes */
    TG_ST_F64 = 1, /* "F64": double, 8 bytes */
    TG_ST_I64 = 2  /* "I64": int64_t, 8 bytes */
} tg_st_dtype;

/* One tensor: the writer's input and the reader's output. */
typedef struct tg_st_tensor {
    const char *name;  /* non-empty, at most 255 bytes of UTF-8, not "__metadata__" */
    tg_st_dtype dtype;
    int ndim;          /* 0..8; 0 is a scalar (one element) */
    int64_t shape[TG_MAX_DIMS];
    const void *data;  /* numel values in host byte order (float, double or int64_t);
                          read: 64-byte aligned, never NULL (even for zero elements) */
} tg_st_tensor;

/* Writes the tensors (any order; the file holds them sorted as the Python
 * writer sorts them: 8-byte dtypes first, then by name) and the metadata
 * pairs meta_kv = {key0, value0, key1, value1, ...} (n_meta pairs; may be
 * NULL when n_meta is 0). "format": "pt" is added unless given; the key
 * "tgrad_crc32" is reserved (the writer adds the file's CRC under it).
 * Atomic: the data goes to "<path>.tmp.XXXXXX" in the same folder, is
 * fsync'ed and renamed over `path`, then the folder is fsync'ed; on failure
 * the old file is untouched and the temporary file removed.
 * 0, or TG_ERR_NULL / TG_ERR_ARG (bad tensor or metadata) / TG_ERR_OVERFLOW /
 * TG_ERR_NOMEM / TG_ERR_IO, with tg_last_error(). */
int tg_st_write(const char *path, const tg_st_tensor *tensors, int n, const char *const *meta_kv,
                int n_meta);

typedef struct tg_st_file tg_st_file;

typedef enum tg_st_flags {
    TG_ST_REQUIRE_CRC = 1 /* reject a file without "tgrad_crc32" in __metadata__ */
} tg_st_flags;

/* Reads and validates a whole file (see docs/nn.md for every check). NULL on
 * failure: TG_ERR_IO (open/read), TG_ERR_FORMAT (malformed, truncated,
 * corrupt), TG_ERR_DTYPE (a dtype other than F32/F64/I64), TG_ERR_NOMEM. */
tg_st_file *tg_st_read(const char *path, unsigned flags);
/* The same checks on `size` bytes in memory (borrowed; the result copies what
 * it keeps). `label` names the input in messages (NULL: "<memory>"). */
tg_st_file *tg_st_parse(const void *bytes, size_t size, unsigned flags, const char *label);
/* Number of tensors. */
int tg_st_count(const tg_st_file *f);
/* Tensor i, 0 <= i < count, in the order of their data in the file; NULL and
 * TG_ERR_ARG when out of range. */
const tg_st_tensor *tg_st_at(const tg_st_file *f, int i);
/* The tensor named `name`; NULL and TG_ERR_ARG ("no tensor named ...") when
 * absent. */
const tg_st_tensor *tg_st_find(const tg_st_file *f, const char *name);
/* The __metadata__ value of `key`, or NULL if absent (no error recorded). */
const char *tg_st_meta(const tg_st_file *f, const char *key);
/* Frees everything the file owns. NULL is a no-op. */
void tg_st_close(tg_st_file *f);

/* Bytes per element of a dtype (4 or 8) and its name in the header ("F32"). */
size_t tg_st_dtype_size(tg_st_dtype dtype);
const char *tg_st_dtype_name(tg_st_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif
