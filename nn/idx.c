/* IDX arrays (MNIST, Fashion-MNIST): header validation, reading a file with a
 * single copy of its data, and parsing from memory. Turning the bytes into
 * normalised image tensors is the data loader's job (nn/), not this file's. */
#include "idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include "io.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IDX_HEADER_MAX (4 + 4 * TG_MAX_DIMS)

static const char *wide_type_name(unsigned t)
{
    switch (t) {
    case 0x0b: return "int16";
    case 0x0c: return "int32";
    case 0x0d: return "float32";
    case 0x0e: return "float64";
    default: return NULL;
    }
}

/* Checks the header h (avail bytes of it present) of a file of `total` bytes
 * and fills x's ndim, dims, numel and type; *hdr_len gets the header size. */
static int check_header(const char *who, const char *label, const unsigned char *h, size_t avail,
                        uint64_t total, tg_idx *x, size_t *hdr_len)
{
    if (total < 4)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "file is %llu bytes, shorter than the 4-byte magic", (unsigned long long)total);
    if (h[0] == 0x1f && h[1] == 0x8b)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "starts with 1f 8b: the file is gzip-compressed; gunzip it first");
    if (h[0] != 0 || h[1] != 0)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "bad magic %02x %02x %02x %02x (an IDX file starts with two zero bytes)", h[0],
                    h[1], h[2], h[3]);
    unsigned type = h[2];
    if (type != 0x08 && type != 0x09) {
        const char *wide = wide_type_name(type);
        if (wide)
            return tg__io_fail(TG_ERR_DTYPE, who, label,
                        "unsupported element type 0x%02x (%s): tgrad reads 0x08 (unsigned byte) "
                        "and 0x09 (signed byte)",
                        type, wide);
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "unknown element type 0x%02x (IDX types are 0x08, 0x09, 0x0b..0x0e)", type);
    }
    int ndim = h[3];
    if (ndim < 1 || ndim > TG_MAX_DIMS)
        return tg__io_fail(TG_ERR_FORMAT, who, label, "ndim %d is outside 1..%d", ndim, TG_MAX_DIMS);
    size_t hl = 4 + 4 * (size_t)ndim;
    if (total < hl)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "truncated header: %d dims need %zu header bytes, the file has %llu", ndim, hl,
                    (unsigned long long)total);
    if (avail < hl)
        return tg__io_fail(TG_ERR_IO, who, label, "could read only %zu of the %zu header bytes", avail,
                    hl);
    x->ndim = ndim;
    x->type = (int)type;
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = h + 4 + 4 * i;
        uint64_t d = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        x->dims[i] = (int64_t)d;
        if (d != 0 && numel > (uint64_t)INT64_MAX / d)
            overflow = 1;
        else
            numel *= d;
    }
    char ds[TG_SHAPE_STR_MAX];
    tg_shape_format(ds, sizeof ds, ndim, x->dims);
    for (int i = 0; i < ndim; i++)
        if (x->dims[i] == 0)
            numel = 0, overflow = 0;
    if (overflow || numel > (uint64_t)SIZE_MAX - hl)
        return tg__io_fail(TG_ERR_FORMAT, who, label, "element count of dims %s overflows", ds);
    uint64_t want = hl + numel;
    if (total < want)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "truncated: dims %s need %zu + %llu = %llu bytes, the file has %llu", ds, hl,
                    (unsigned long long)numel, (unsigned long long)want,
                    (unsigned long long)total);
    if (total > want)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "%llu trailing bytes: dims %s need %zu + %llu = %llu bytes, the file has %llu",
                    (unsigned long long)(total - want), ds, hl, (unsigned long long)numel,
                    (unsigned long long)want, (unsigned long long)total);
    x->numel = (int64_t)numel;
    *hdr_len = hl;
    return 0;
}

void tg_idx_free(tg_idx *x)
{
    if (!x)
        return;
    free(x->data);
    free(x);
}

tg_idx *tg_idx_parse(const void *bytes, size_t size, const char *label)
{
    const char *who = "tg_idx_parse";
    if (!label)
        label = "<memory>";
    if (!bytes && size > 0) {
        tg__io_fail(TG_ERR_NULL, who, label, "bytes is NULL");
        return NULL;
    }
    unsigned char pad[4] = {0};
    const unsigned char *b = size >= 4 ? bytes : pad;
    tg_idx *x = calloc(1, sizeof *x);
    size_t hl;
    if (!x) {
        tg__io_fail(TG_ERR_NOMEM, who, label, "out of memory");
        return NULL;
    }
    if (check_header(who, label, b, size, size, x, &hl)) {
        free(x);
        return NULL;
    }
    x->data = malloc(x->numel > 0 ? (size_t)x->numel : 1);
    if (!x->data) {
        tg__io_fail(TG_ERR_NOMEM, who, label, "out of memory for %lld bytes", (long long)x->numel);
        free(x);
        return NULL;
    }
    if (x->numel > 0)
        memcpy(x->data, (const unsigned char *)bytes + hl, (size_t)x->numel);
    return x;
}

/* Reads exactly n bytes (fewer only at end of file); -1 on an error. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (unsigned char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

tg_idx *tg_idx_read(const char *path)
{
    const char *who = "tg_idx_read";
    char eb[128];
    if (!path) {
        tg_set_error(TG_ERR_NULL, "tg_idx_read: path is NULL");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tg__io_fail(TG_ERR_IO, who, path, "cannot open: %s", tg__io_errstr(errno, eb, sizeof eb));
        return NULL;
    }
    tg_idx *x = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        tg__io_fail(TG_ERR_IO, who, path, "cannot stat: %s", tg__io_errstr(errno, eb, sizeof eb));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        tg__io_fail(TG_ERR_IO, who, path, "is not a regular file (read it into memory and use "
                                   "tg_idx_parse)");
        goto fail;
    }
    /* The header, then the data straight into its final buffer: one copy. */
    unsigned char h[IDX_HEADER_MAX] = {0};
    uint64_t total = (uint64_t)st.st_size;
    size_t want_h = total < sizeof h ? (size_t)total : sizeof h;
    ssize_t got = read_full(fd, h, want_h);
    if (got < 0) {
        tg__io_fail(TG_ERR_IO, who, path, "read failed: %s", tg__io_errstr(errno, eb, sizeof eb));
        goto fail;
    }
    x = calloc(1, sizeof *x);
    if (!x) {
        tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory");
        goto fail;
    }
    size_t hl;
    if (check_header(who, path, h, (size_t)got, total, x, &hl))
        goto fail;
    size_t n = (size_t)x->numel;
    if (!(x->data = malloc(n > 0 ? n : 1))) {
        tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory for %zu bytes", n);
        goto fail;
    }
    size_t have = (size_t)got - hl; /* data bytes already in h */
    if (have > n)
        have = n;
    memcpy(x->data, h + hl, have);
    ssize_t r = read_full(fd, x->data + have, n - have);
    if (r < 0) {
        tg__io_fail(TG_ERR_IO, who, path, "read failed: %s", tg__io_errstr(errno, eb, sizeof eb));
        goto fail;
    }
    unsigned char extra;
    if ((size_t)r != n - have || read_full(fd, &extra, 1) != 0) {
        tg__io_fail(TG_ERR_IO, who, path, "the file changed size while being read");
        goto fail;
    }
    close(fd);
    return x;

fail:
    close(fd);
    tg_idx_free(x);
    return NULL;
}
