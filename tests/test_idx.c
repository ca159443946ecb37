/* IDX files (nn/idx.c): hand-made arrays, every truncation, bad magic, types
 * and sizes each with its message, and the real Fashion-MNIST test set when
 * the dataset package is installed. */
#include "helpers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/idx.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char *make_dir(void)
{
    char *d = malloc(64);
    cr_assert(d);
    strcpy(d, "/tmp/tg_idx_test_XXXXXX");
    cr_assert(mkdtemp(d), "mkdtemp: %s", strerror(errno));
    return d;
}

static void rm_dir_files(char *dir, const char *const *names, int n)
{
    char p[512];
    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    free(dir);
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "open %s: %s", path, strerror(errno));
    cr_assert(fwrite(b, 1, n, fp) == n);
    cr_assert(fclose(fp) == 0);
}

/* Header bytes: 0 0 type ndim, then big-endian dims. Returns the length. */
static size_t header(unsigned char *b, int type, int ndim, const uint32_t *dims)
{
    b[0] = 0;
    b[1] = 0;
    b[2] = (unsigned char)type;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        b[7 + 4 * i] = (unsigned char)dims[i];
    }
    return 4 + 4 * (size_t)ndim;
}

/* A [2, 2, 3] unsigned-byte array with values 0, 10, ..., 110 (28 bytes). */
static size_t small_images(unsigned char *b)
{
    uint32_t dims[3] = {2, 2, 3};
    size_t k = header(b, 0x08, 3, dims);
    for (int i = 0; i < 12; i++)
        b[k++] = (unsigned char)(10 * i);
    return k;
}

Test(idx, parses_labels_and_images)
{
    unsigned char b[64];
    uint32_t ld[1] = {5};
    size_t k = header(b, 0x08, 1, ld);
    const unsigned char labels[5] = {9, 2, 1, 1, 6};
    memcpy(b + k, labels, 5);
    tg_idx *x = tg_idx_parse(b, k + 5, "labels");
    cr_assert(x, "%s", tg_last_error());
    cr_expect_eq(x->ndim, 1);
    cr_expect_eq(x->dims[0], 5);
    cr_expect_eq(x->numel, 5);
    cr_expect_eq(x->type, 0x08);
    cr_expect(memcmp(x->data, labels, 5) == 0);
    tg_idx_free(x);

    k = small_images(b);
    cr_assert_eq(k, 28);
    x = tg_idx_parse(b, k, "images");
    cr_assert(x, "%s", tg_last_error());
    cr_expect_eq(x->ndim, 3);
    cr_expect(x->dims[0] == 2 && x->dims[1] == 2 && x->dims[2] == 3);
    cr_expect_eq(x->numel, 12);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(x->data[i], 10 * i);
    tg_idx_free(x);
    tg_idx_free(NULL);
}

Test(idx, signed_bytes_and_empty_arrays)
{
    unsigned char b[64];
    uint32_t d[2] = {1, 3};
    size_t k = header(b, 0x09, 2, d);
    b[k++] = 0xff;
    b[k++] = 0x80;
    b[k++] = 0x7f;
    tg_idx *x = tg_idx_parse(b, k, "s");
    cr_assert(x, "%s", tg_last_error());
    cr_expect_eq(x->type, 0x09);
    const int8_t *s = (const int8_t *)x->data;
    cr_expect(s[0] == -1 && s[1] == -128 && s[2] == 127);
    tg_idx_free(x);

    /* A zero dim: no elements, even next to huge dims. */
    uint32_t z[8] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                     0xffffffffu, 0xffffffffu, 0xffffffffu, 0};
    k = header(b, 0x08, 8, z);
    x = tg_idx_parse(b, k, "z");
    cr_assert(x, "%s", tg_last_error());
    cr_expect_eq(x->numel, 0);
    cr_expect(x->data != NULL);
    tg_idx_free(x);
}

Test(idx, every_truncation_is_rejected)
{
    unsigned char b[64];
    size_t size = small_images(b);
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/t.idx", dir);
    for (size_t len = 0; len < size; len++) {
        tg_error_clear();
        tg_idx *x = tg_idx_parse(b, len, "trunc");
        cr_expect(x == NULL, "length %zu of %zu accepted", len, size);
        cr_expect(strstr(tg_last_error(), "tg_idx_parse: trunc: ") == tg_last_error(),
                  "length %zu: \"%s\"", len, tg_last_error());
        cr_expect_eq(tg_last_status(), TG_ERR_FORMAT, "length %zu: %s", len, tg_last_error());
        tg_idx_free(x);
        spit(path, b, len);
        x = tg_idx_read(path);
        cr_expect(x == NULL, "file of length %zu accepted", len);
        cr_expect(strstr(tg_last_error(), path) != NULL);
        tg_idx_free(x);
    }
    /* The messages of the three kinds of truncation. */
    tg_idx *x = tg_idx_parse(b, 3, "t");
    expect_error(x == NULL, "tg_idx_parse: t: file is 3 bytes, shorter than the 4-byte magic");
    x = tg_idx_parse(b, 10, "t");
    expect_error(x == NULL, "tg_idx_parse: t: truncated header: 3 dims need 16 header bytes, the file has 10");
    x = tg_idx_parse(b, 27, "t");
    expect_error(x == NULL, "tg_idx_parse: t: truncated: dims [2, 2, 3] need 16 + 12 = 28 bytes, the file has 27");
    spit(path, b, size);
    x = tg_idx_read(path);
    cr_expect(x != NULL, "%s", tg_last_error());
    tg_idx_free(x);
    const char *names[] = {"t.idx"};
    rm_dir_files(dir, names, 1);
}

Test(idx, bad_magic_type_ndim_and_trailing_bytes)
{
    unsigned char b[64], c[64];
    size_t size = small_images(b);
    tg_idx *x;

    memcpy(c, b, size);
    c[0] = 1;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "tg_idx_parse: m: bad magic 01 00 08 03 (an IDX file starts with two zero bytes)");
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);
    memcpy(c, b, size);
    c[1] = 0x20;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "bad magic 00 20 08 03");

    const unsigned char gz[8] = {0x1f, 0x8b, 0x08, 0x08, 0, 0, 0, 0};
    x = tg_idx_parse(gz, sizeof gz, "t10k-labels-idx1-ubyte.gz");
    expect_error(x == NULL, "starts with 1f 8b: the file is gzip-compressed; gunzip it first");

    memcpy(c, b, size);
    c[2] = 0x0d;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "unsupported element type 0x0d (float32): tgrad reads 0x08 (unsigned byte) and 0x09 (signed byte)");
    cr_expect_eq(tg_last_status(), TG_ERR_DTYPE);
    const int wide[] = {0x0b, 0x0c, 0x0e};
    const char *wide_names[] = {"(int16)", "(int32)", "(float64)"};
    for (int i = 0; i < 3; i++) {
        c[2] = (unsigned char)wide[i];
        x = tg_idx_parse(c, size, "m");
        expect_error(x == NULL, "unsupported element type", wide_names[i]);
    }
    c[2] = 0x07;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "unknown element type 0x07");
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);

    memcpy(c, b, size);
    c[3] = 0;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "tg_idx_parse: m: ndim 0 is outside 1..8");
    c[3] = 9;
    x = tg_idx_parse(c, size, "m");
    expect_error(x == NULL, "ndim 9 is outside 1..8");

    memcpy(c, b, size);
    c[size] = 0;
    c[size + 1] = 0;
    x = tg_idx_parse(c, size + 2, "m");
    expect_error(x == NULL, "tg_idx_parse: m: 2 trailing bytes: dims [2, 2, 3] need 16 + 12 = 28 bytes, the file has 30");

    uint32_t big[8] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu,
                       0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    size_t k = header(c, 0x08, 8, big);
    x = tg_idx_parse(c, k, "m");
    expect_error(x == NULL, "element count of dims [4294967295, 4294967295, 4294967295, 4294967295, 4294967295, 4294967295, 4294967295, 4294967295] overflows");
    uint32_t large[2] = {0x10000000u, 0x10000000u}; /* 2^56 elements: no overflow, too short */
    k = header(c, 0x08, 2, large);
    x = tg_idx_parse(c, k, "m");
    expect_error(x == NULL, "truncated: dims [268435456, 268435456] need 12 + 72057594037927936");
}

Test(idx, read_errors)
{
    tg_idx *x = tg_idx_read("/nonexistent/train-images-idx3-ubyte");
    expect_error(x == NULL, "tg_idx_read: /nonexistent/train-images-idx3-ubyte: cannot open: No such file or directory");
    cr_expect_eq(tg_last_status(), TG_ERR_IO);
    x = tg_idx_read("/tmp");
    expect_error(x == NULL, "tg_idx_read: /tmp: is not a regular file");
    x = tg_idx_read(NULL);
    expect_error(x == NULL, "tg_idx_read: path is NULL");
    x = tg_idx_parse(NULL, 4, NULL);
    expect_error(x == NULL, "tg_idx_parse: <memory>: bytes is NULL");
    x = tg_idx_parse(NULL, 0, NULL);
    expect_error(x == NULL, "tg_idx_parse: <memory>: file is 0 bytes");
}

/* gunzip src into dir/name with `gzip -dc`; false if that failed. */
static bool gunzip(const char *src, const char *dst)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", src);
    FILE *in = popen(cmd, "r");
    if (!in)
        return false;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        pclose(in);
        return false;
    }
    char buf[1 << 16];
    size_t n;
    bool ok = true;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ok = ok && fwrite(buf, 1, n, out) == n;
    ok = fclose(out) == 0 && ok;
    return pclose(in) == 0 && ok;
}

/* The Fashion-MNIST test set. Known values from
 * python3 -c 'import gzip; l = gzip.open(".../t10k-labels-idx1-ubyte.gz").read(); print(list(l[8:18]))'
 * -> [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], 1000 of each class; images: sum of image 0
 * is 33456, of all pixels 573469082. */
Test(idx, reads_fashion_mnist_test_set)
{
    struct stat st;
    if (stat(FMNIST "/t10k-labels-idx1-ubyte.gz", &st) != 0)
        cr_skip("Fashion-MNIST not installed under " FMNIST);
    char *dir = make_dir(), lp[256], ip[256];
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte", dir);
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte", dir);
    cr_assert(gunzip(FMNIST "/t10k-labels-idx1-ubyte.gz", lp), "gzip -dc failed");

    tg_idx *l = tg_idx_read(lp);
    cr_assert(l, "%s", tg_last_error());
    cr_expect_eq(l->ndim, 1);
    cr_expect_eq(l->dims[0], 10000);
    cr_expect_eq(l->type, 0x08);
    const uint8_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    cr_expect(memcmp(l->data, first, 10) == 0, "first labels %d %d %d %d %d", l->data[0],
              l->data[1], l->data[2], l->data[3], l->data[4]);
    int count[10] = {0}, bad = 0;
    for (int64_t i = 0; i < l->numel; i++) {
        if (l->data[i] > 9)
            bad++;
        else
            count[l->data[i]]++;
    }
    cr_expect_eq(bad, 0);
    for (int c = 0; c < 10; c++)
        cr_expect_eq(count[c], 1000, "class %d: %d", c, count[c]);
    tg_idx_free(l);

    if (stat(FMNIST "/t10k-images-idx3-ubyte.gz", &st) == 0 &&
        gunzip(FMNIST "/t10k-images-idx3-ubyte.gz", ip)) {
        tg_idx *im = tg_idx_read(ip);
        cr_assert(im, "%s", tg_last_error());
        cr_expect(im->ndim == 3 && im->dims[0] == 10000 && im->dims[1] == 28 && im->dims[2] == 28);
        int64_t s0 = 0, all = 0;
        for (int64_t i = 0; i < 784; i++)
            s0 += im->data[i];
        for (int64_t i = 0; i < im->numel; i++)
            all += im->data[i];
        cr_expect_eq(s0, 33456);
        cr_expect_eq(all, 573469082);
        tg_idx_free(im);
    }
    const char *names[] = {"t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"};
    rm_dir_files(dir, names, 2);
}
