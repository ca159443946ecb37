/* safetensors checkpoints (nn/safetensors.c): round trips, the exact bytes of
 * a file, the bytes PyTorch's safetensors writes, every truncation and every
 * bit flip rejected, malformed headers each with its message, crash safety of
 * the atomic write under SIGKILL, and the writer's errors. */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nn/crc32.h"
#include "nn/safetensors.h"

/* ------------------------------------------------------------- helpers */

/* A fresh folder under /tmp; removed (with its files) by rm_dir. */
static char *make_dir(void)
{
    char *d = malloc(64);
    cr_assert(d);
    strcpy(d, "/tmp/tg_st_test_XXXXXX");
    cr_assert(mkdtemp(d), "mkdtemp: %s", strerror(errno));
    return d;
}

static void rm_dir(char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(dp))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
        closedir(dp);
    }
    rmdir(dir);
    free(dir);
}

/* Files in dir whose name contains `part`. */
static int count_files(const char *dir, const char *part)
{
    DIR *dp = opendir(dir);
    int n = 0;
    if (!dp)
        return -1;
    struct dirent *de;
    while ((de = readdir(dp)))
        if (strstr(de->d_name, part))
            n++;
    closedir(dp);
    return n;
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "open %s: %s", path, strerror(errno));
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert(b);
    cr_assert(fread(b, 1, (size_t)n, fp) == (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return b;
}

static void spit(const char *path, const void *b, size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "open %s: %s", path, strerror(errno));
    cr_assert(fwrite(b, 1, n, fp) == n);
    cr_assert(fclose(fp) == 0);
}

/* Little-endian packing, so the tests build files the same on any host. */
static size_t put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return 8;
}
static size_t put_f32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(u >> (8 * i));
    return 4;
}

/* A file from a header text (not padded) and `data_size` data bytes of
 * value i & 0xff; *size gets its length. */
static unsigned char *make_file(const char *header, size_t data_size, size_t *size)
{
    size_t h = strlen(header);
    unsigned char *b = malloc(8 + h + data_size + 1);
    cr_assert(b);
    put_u64(b, h);
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_size; i++)
        b[8 + h + i] = (unsigned char)i;
    *size = 8 + h + data_size;
    return b;
}

static void expect_same_tensor(const tg_st_tensor *got, const tg_st_tensor *want)
{
    cr_assert(got, "missing tensor %s", want->name);
    cr_expect_str_eq(got->name, want->name);
    cr_expect_eq(got->dtype, want->dtype, "%s: dtype", want->name);
    cr_expect_eq(got->ndim, want->ndim, "%s: ndim", want->name);
    int64_t numel = 1;
    for (int k = 0; k < want->ndim; k++) {
        cr_expect_eq(got->shape[k], want->shape[k], "%s: dim %d", want->name, k);
        numel *= want->shape[k];
    }
    cr_expect(got->data != NULL, "%s: data is NULL", want->name);
    cr_expect((uintptr_t)got->data % 64 == 0, "%s: data not 64-byte aligned", want->name);
    size_t nb = (size_t)numel * tg_st_dtype_size(want->dtype);
    if (nb)
        cr_expect(memcmp(got->data, want->data, nb) == 0, "%s: data differ", want->name);
}

/* A small valid file written by tg_st_write, as bytes (for the truncation and
 * bit-flip tests). */
static unsigned char *small_file(const char *dir, size_t *size)
{
    static const float w[6] = {1.5f, -2.0f, 0.25f, 3.0f, -0.5f, 8.0f};
    static const int64_t step[1] = {12345};
    tg_st_tensor t[2] = {
        {.name = "0.weight", .dtype = TG_ST_F32, .ndim = 2, .shape = {2, 3}, .data = w},
        {.name = "step", .dtype = TG_ST_I64, .ndim = 0, .data = step},
    };
    char path[256];
    snprintf(path, sizeof path, "%s/small.safetensors", dir);
    cr_assert_eq(tg_st_write(path, t, 2, NULL, 0), 0, "%s", tg_last_error());
    return slurp(path, size);
}

/* ---------------------------------------------------------------- CRC */

Test(safetensors, crc32_matches_zlib)
{
    cr_expect_eq(tg__crc32(0, "123456789", 9), 0xcbf43926u);
    /* python3 -c 'import zlib; print(hex(zlib.crc32(b"The quick brown fox jumps over the lazy dog")))' */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    cr_expect_eq(tg__crc32(0, fox, strlen(fox)), 0x414fa339u);
    cr_expect_eq(tg__crc32(tg__crc32(0, fox, 10), fox + 10, strlen(fox) - 10), 0x414fa339u);
    cr_expect_eq(tg__crc32(0, "", 0), 0u);
}

/* --------------------------------------------------------- round trip */

Test(safetensors, round_trip_every_dtype_with_scalars_and_zero_size)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-30f};
    double b = 3.141592653589793;
    int64_t c[4] = {0, -1, INT64_MAX, INT64_MIN};
    int64_t d = 42;
    double e[2] = {1e300, -5e-324};
    float z = 0;
    float odd[3] = {1, 2, 3};
    tg_st_tensor t[] = {
        {.name = "layer.weight", .dtype = TG_ST_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "scalar64", .dtype = TG_ST_F64, .ndim = 0, .data = &b},
        {.name = "ints", .dtype = TG_ST_I64, .ndim = 1, .shape = {4}, .data = c},
        {.name = "step", .dtype = TG_ST_I64, .ndim = 0, .data = &d},
        {.name = "eight_dims", .dtype = TG_ST_F64, .ndim = 8, .shape = {1, 1, 1, 1, 1, 1, 1, 2},
         .data = e},
        {.name = "empty", .dtype = TG_ST_F32, .ndim = 2, .shape = {0, 5}, .data = &z},
        {.name = "empty_null", .dtype = TG_ST_I64, .ndim = 1, .shape = {0}, .data = NULL},
        {.name = "odd", .dtype = TG_ST_F32, .ndim = 1, .shape = {3}, .data = odd},
        {.name = "unicode é \"q\" \\ \n\t", .dtype = TG_ST_F32, .ndim = 1, .shape = {1},
         .data = a},
    };
    int n = (int)(sizeof t / sizeof t[0]);
    const char *meta[] = {"epoch", "7", "note", "line\nbreak \"quoted\" é"};
    cr_assert_eq(tg_st_write(path, t, n, meta, 2), 0, "%s", tg_last_error());
    cr_expect_eq(count_files(dir, ".tmp."), 0, "temporary file left behind");

    tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
    cr_assert(f, "%s", tg_last_error());
    cr_expect_eq(tg_st_count(f), n);
    for (int i = 0; i < n; i++)
        expect_same_tensor(tg_st_find(f, t[i].name), &t[i]);
    /* tg_st_at walks the data order: I64, then F64, then F32, each by name. */
    const char *order[] = {"empty_null", "ints", "step", "eight_dims", "scalar64", "empty",
                           "layer.weight", "odd", "unicode é \"q\" \\ \n\t"};
    for (int i = 0; i < n; i++)
        cr_expect_str_eq(tg_st_at(f, i)->name, order[i]);
    cr_expect_str_eq(tg_st_meta(f, "epoch"), "7");
    cr_expect_str_eq(tg_st_meta(f, "note"), "line\nbreak \"quoted\" é");
    cr_expect_str_eq(tg_st_meta(f, "format"), "pt");
    const char *crc = tg_st_meta(f, "tgrad_crc32");
    cr_assert(crc);
    cr_expect_eq(strlen(crc), 8);
    cr_expect_null(tg_st_meta(f, "absent"));
    tg_st_close(f);
    rm_dir(dir);
}

Test(safetensors, empty_file_round_trips)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    cr_assert_eq(tg_st_write(path, NULL, 0, NULL, 0), 0, "%s", tg_last_error());
    tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
    cr_assert(f, "%s", tg_last_error());
    cr_expect_eq(tg_st_count(f), 0);
    cr_expect_null(tg_st_at(f, 0));
    tg_st_close(f);
    rm_dir(dir);
}

Test(safetensors, user_format_overrides_pt)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    const char *meta[] = {"format", "np"};
    cr_assert_eq(tg_st_write(path, NULL, 0, meta, 1), 0, "%s", tg_last_error());
    tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
    cr_assert(f, "%s", tg_last_error());
    cr_expect_str_eq(tg_st_meta(f, "format"), "np");
    tg_st_close(f);
    rm_dir(dir);
}

/* --------------------------------------------------------- exact bytes */

/* The layout pinned byte by byte. The CRC was computed independently:
 * python3 -c 'import struct,zlib; h=HEADER_WITH_00000000+" "*5;
 *   print("%08x" % zlib.crc32(struct.pack("<Q",len(h)) + h.encode()
 *         + struct.pack("<q",7) + struct.pack("<ff",1.0,-2.0)))'   -> e288e7fd */
Test(safetensors, exact_bytes_of_a_small_file)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float b[2] = {1.0f, -2.0f};
    int64_t a = 7;
    tg_st_tensor t[2] = {
        {.name = "b", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = b},
        {.name = "a", .dtype = TG_ST_I64, .ndim = 0, .data = &a},
    };
    cr_assert_eq(tg_st_write(path, t, 2, NULL, 0), 0, "%s", tg_last_error());
    const char *header = "{\"__metadata__\":{\"format\":\"pt\",\"tgrad_crc32\":\"e288e7fd\"},"
                         "\"a\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}"
                         "     ";
    unsigned char want[192];
    size_t k = put_u64(want, 168);
    cr_assert_eq(strlen(header), 168);
    memcpy(want + k, header, 168);
    k += 168;
    k += put_u64(want + k, 7);
    k += put_f32(want + k, 1.0f);
    k += put_f32(want + k, -2.0f);
    cr_assert_eq(k, sizeof want);
    size_t size;
    unsigned char *got = slurp(path, &size);
    cr_expect_eq(size, sizeof want);
    for (size_t i = 0; i < size && i < sizeof want; i++)
        if (got[i] != want[i]) {
            cr_expect_fail("byte %zu: got 0x%02x '%c', want 0x%02x '%c'", i, got[i],
                           got[i] >= 32 && got[i] < 127 ? got[i] : '?', want[i],
                           want[i] >= 32 && want[i] < 127 ? want[i] : '?');
            break;
        }
    free(got);
    rm_dir(dir);
}

/* ------------------------------------------------- the Python writer */

/* Two byte vectors from safetensors' own Rust test suite (tensor.rs,
 * test_serialization_forced_alignement and test_empty): the Python package
 * calls that serializer. No metadata, so no CRC: read with flags 0. */
Test(safetensors, reads_the_byte_vectors_of_safetensors_own_tests)
{
    static const unsigned char attn0[] = {
        72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
        121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
        91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
        115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
        32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
        160, 64};
    tg_st_file *f = tg_st_parse(attn0, sizeof attn0, 0, "attn0");
    cr_assert(f, "%s", tg_last_error());
    const tg_st_tensor *t = tg_st_find(f, "attn0");
    cr_assert(t, "%s", tg_last_error());
    cr_expect_eq(t->dtype, TG_ST_F32);
    cr_expect_eq(t->ndim, 4);
    cr_expect(t->shape[0] == 1 && t->shape[1] == 1 && t->shape[2] == 2 && t->shape[3] == 3);
    const float *v = t->data;
    for (int i = 0; i < 6; i++)
        cr_expect(v[i] == (float)i, "attn0[%d] = %g", i, (double)v[i]);
    cr_expect_null(tg_st_meta(f, "format"));
    tg_st_close(f);

    f = tg_st_parse(attn0, sizeof attn0, TG_ST_REQUIRE_CRC, "attn0");
    expect_error(f == NULL, "tg_st_parse: attn0: no \"tgrad_crc32\" in __metadata__");

    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    f = tg_st_parse(empty, sizeof empty, 0, "empty");
    cr_assert(f, "%s", tg_last_error());
    cr_expect_eq(tg_st_count(f), 0);
    tg_st_close(f);
}

/* The state dict of torch.nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
 * with the values below, laid out as safetensors.torch.save_file(sd,
 * metadata={"format": "pt"}) writes it: safetensors' serialize() sorts by dtype
 * (descending: I64 before F32) then name, writes compact JSON with
 * __metadata__ first, pads with spaces to 8 bytes (this header is 488 bytes,
 * no padding). Generated by mimicking that code in Python over the real
 * torch 1.13 state_dict (names, shapes, dtypes, int64 num_batches_tracked). */
static const char torch_header[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},"
    "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
    "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,1,1,1],\"data_offsets\":[16,24]},"
    "\"1.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
    "\"1.running_mean\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[32,40]},"
    "\"1.running_var\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[40,48]},"
    "\"1.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[48,56]}}";
static const float torch_f32[12] = {0.125f, 3.0f,  0.5f, -1.25f, -0.5f, 0.25f,
                                    0.75f,  -0.375f, 1.0f, 4.0f,  1.5f,  2.0f};

static unsigned char *torch_file(size_t *size)
{
    size_t h = strlen(torch_header);
    cr_assert_eq(h, 488);
    unsigned char *b = malloc(8 + h + 56);
    cr_assert(b);
    size_t k = put_u64(b, h);
    memcpy(b + k, torch_header, h);
    k += h;
    k += put_u64(b + k, 42);
    for (int i = 0; i < 12; i++)
        k += put_f32(b + k, torch_f32[i]);
    *size = k;
    return b;
}

Test(safetensors, reads_what_pytorch_writes_for_a_state_dict)
{
    size_t size;
    unsigned char *b = torch_file(&size);
    tg_st_file *f = tg_st_parse(b, size, 0, "torch.safetensors");
    cr_assert(f, "%s", tg_last_error());
    cr_expect_eq(tg_st_count(f), 7);
    cr_expect_str_eq(tg_st_meta(f, "format"), "pt");
    const tg_st_tensor *n = tg_st_find(f, "1.num_batches_tracked");
    cr_assert(n);
    cr_expect_eq(n->dtype, TG_ST_I64);
    cr_expect_eq(n->ndim, 0);
    cr_expect_eq(*(const int64_t *)n->data, 42);
    const tg_st_tensor *w = tg_st_find(f, "0.weight");
    cr_assert(w);
    cr_expect(w->ndim == 4 && w->shape[0] == 2 && w->shape[1] == 1 && w->shape[3] == 1);
    cr_expect(((const float *)w->data)[0] == 0.5f && ((const float *)w->data)[1] == -1.25f);
    const tg_st_tensor *rv = tg_st_find(f, "1.running_var");
    cr_assert(rv);
    cr_expect(((const float *)rv->data)[0] == 1.0f && ((const float *)rv->data)[1] == 4.0f);
    tg_st_close(f);
    free(b);
}

/* tgrad's writer lays out the same state dict exactly as PyTorch does, except
 * for its CRC entry in __metadata__ and the padding that follows from it. */
Test(safetensors, writes_the_pytorch_layout_plus_its_crc)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    int64_t nbt = 42;
    tg_st_tensor t[] = {
        {.name = "0.weight", .dtype = TG_ST_F32, .ndim = 4, .shape = {2, 1, 1, 1},
         .data = torch_f32 + 2},
        {.name = "0.bias", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = torch_f32},
        {.name = "1.weight", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = torch_f32 + 10},
        {.name = "1.bias", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = torch_f32 + 4},
        {.name = "1.running_mean", .dtype = TG_ST_F32, .ndim = 1, .shape = {2},
         .data = torch_f32 + 6},
        {.name = "1.running_var", .dtype = TG_ST_F32, .ndim = 1, .shape = {2},
         .data = torch_f32 + 8},
        {.name = "1.num_batches_tracked", .dtype = TG_ST_I64, .ndim = 0, .data = &nbt},
    };
    cr_assert_eq(tg_st_write(path, t, 7, NULL, 0), 0, "%s", tg_last_error());
    size_t size, tsize;
    unsigned char *got = slurp(path, &size), *want = torch_file(&tsize);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | got[i];
    cr_assert(hn % 8 == 0 && 8 + hn <= size);
    /* Header without ,"tgrad_crc32":"xxxxxxxx" and the trailing spaces. */
    char *h = malloc(hn + 1);
    memcpy(h, got + 8, hn);
    h[hn] = '\0';
    char *c = strstr(h, ",\"tgrad_crc32\":\"");
    cr_assert(c, "no crc in %s", h);
    memmove(c, c + 25, strlen(c + 25) + 1); /* ,"tgrad_crc32":"xxxxxxxx" */
    size_t L = strlen(h);
    while (L && h[L - 1] == ' ')
        h[--L] = '\0';
    cr_expect_str_eq(h, torch_header);
    cr_expect_eq(size - 8 - hn, 56);
    cr_expect(memcmp(got + 8 + hn, want + 8 + 488, 56) == 0, "data sections differ");
    free(h);
    free(got);
    free(want);
    rm_dir(dir);
}

Test(safetensors, accepts_any_entry_order_whitespace_and_escapes)
{
    /* Pretty-printed, entries out of data order, names with \u escapes and a
     * surrogate pair, as another (valid) JSON writer may produce. */
    const char *hdr = "{\n  \"b\\u00e9\" : {\"data_offsets\": [8, 12], \"shape\": [1], "
                      "\"dtype\": \"F32\"},\r\n\t\"\\ud83d\\ude00\\/x\": {\"dtype\":\"F64\", "
                      "\"shape\": [], \"data_offsets\": [0, 8]},\n \"__metadata__\": {} }   ";
    size_t size;
    unsigned char *b = make_file(hdr, 12, &size);
    tg_st_file *f = tg_st_parse(b, size, 0, "pretty");
    cr_assert(f, "%s", tg_last_error());
    cr_expect_eq(tg_st_count(f), 2);
    cr_expect(tg_st_find(f, "b\xc3\xa9") != NULL, "%s", tg_last_error());
    cr_expect(tg_st_find(f, "\xf0\x9f\x98\x80/x") != NULL, "%s", tg_last_error());
    cr_expect_str_eq(tg_st_at(f, 0)->name, "\xf0\x9f\x98\x80/x");
    tg_st_close(f);
    free(b);
}

/* ------------------------------------------------ truncation, bit flips */

Test(safetensors, every_truncation_is_rejected)
{
    char *dir = make_dir(), path[256];
    size_t size;
    unsigned char *b = small_file(dir, &size);
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    spit(path, b, size);
    for (size_t len = size; len-- > 0;) {
        for (unsigned flags = 0; flags < 2; flags++) {
            tg_error_clear();
            tg_st_file *f = tg_st_parse(b, len, flags, "trunc");
            cr_expect(f == NULL, "length %zu of %zu accepted", len, size);
            cr_expect(strstr(tg_last_error(), "tg_st_parse: trunc: ") != NULL,
                      "length %zu: message \"%s\"", len, tg_last_error());
            cr_expect_eq(tg_last_status(), TG_ERR_FORMAT, "length %zu: %s", len,
                         tg_last_error());
            tg_st_close(f);
        }
        cr_assert_eq(truncate(path, (off_t)len), 0);
        tg_st_file *f = tg_st_read(path, 0);
        cr_expect(f == NULL, "file of length %zu accepted", len);
        cr_expect(strstr(tg_last_error(), path) != NULL);
        tg_st_close(f);
    }
    tg_st_file *f = tg_st_parse(b, size, TG_ST_REQUIRE_CRC, "whole");
    cr_expect(f != NULL, "%s", tg_last_error());
    tg_st_close(f);
    free(b);
    rm_dir(dir);
}

Test(safetensors, every_bit_flip_is_rejected_with_require_crc)
{
    char *dir = make_dir(), path[256];
    size_t size;
    unsigned char *b = small_file(dir, &size);
    snprintf(path, sizeof path, "%s/flip.safetensors", dir);
    spit(path, b, size);
    /* Flip in place with pwrite: rewriting through a truncation makes ext4
     * flush on every close (auto_da_alloc), 100 times slower. */
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    int accepted = 0;
    for (size_t i = 0; i < size; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            cr_assert(pwrite(fd, b + i, 1, (off_t)i) == 1);
            tg_error_clear();
            tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
            if (f || tg_last_error()[0] == '\0') {
                accepted++;
                cr_expect_fail("flip of byte %zu bit %d accepted", i, bit);
            }
            tg_st_close(f);
            b[i] ^= (unsigned char)(1u << bit);
            cr_assert(pwrite(fd, b + i, 1, (off_t)i) == 1);
        }
    close(fd);
    cr_expect_eq(accepted, 0);
    free(b);
    rm_dir(dir);
}

Test(safetensors, every_data_flip_is_caught_by_the_crc_without_the_flag)
{
    char *dir = make_dir();
    size_t size;
    unsigned char *b = small_file(dir, &size);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | b[i];
    cr_assert(8 + hn < size);
    for (size_t i = 8 + (size_t)hn; i < size; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            tg_st_file *f = tg_st_parse(b, size, 0, "flip");
            cr_expect(f == NULL, "flip of data byte %zu bit %d accepted", i, bit);
            cr_expect(strstr(tg_last_error(), "crc32 mismatch") != NULL, "byte %zu: %s", i,
                      tg_last_error());
            tg_st_close(f);
            b[i] ^= (unsigned char)(1u << bit);
        }
    free(b);
    rm_dir(dir);
}

/* ---------------------------------------------------- malformed files */

typedef struct bad_case {
    const char *header;
    size_t data;
    int code;
    const char *needle;
} bad_case;

#define E(dt, shape, b, e) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static const bad_case bad_cases[] = {
    /* layout of the data section */
    {"{\"a\":" E("F32", "[2]", "0", "8") ",\"b\":" E("F32", "[2]", "4", "12") "}", 12,
     TG_ERR_FORMAT,
     "data_offsets of tensor \"a\" [0, 8] and tensor \"b\" [4, 12] overlap"},
    {"{\"a\":" E("F32", "[2]", "0", "8") ",\"b\":" E("F32", "[2]", "12", "20") "}", 20,
     TG_ERR_FORMAT, "bytes [8, 12) of the data section belong to no tensor (a gap before tensor \"b\")"},
    {"{\"a\":" E("F32", "[2]", "4", "12") "}", 12, TG_ERR_FORMAT,
     "bytes [0, 4) of the data section belong to no tensor"},
    {"{\"a\":" E("F32", "[2]", "0", "8") "}", 4, TG_ERR_FORMAT,
     "tensor \"a\": data_offsets [0, 8] run past the end of the data section (4 bytes)"},
    {"{\"a\":" E("F32", "[2]", "0", "8") "}", 12, TG_ERR_FORMAT,
     "the data section has 12 bytes but the tensors cover only [0, 8)"},
    {"{}", 3, TG_ERR_FORMAT, "the data section has 3 bytes but the tensors cover only [0, 0)"},
    {"{\"0.weight\":" E("F32", "[32,1,3,3]", "0", "100") "}", 100, TG_ERR_FORMAT,
     "tensor \"0.weight\": data_offsets [0, 100] do not match dtype F32 and shape [32, 1, 3, 3] "
     "(288 elements, 1152 bytes)"},
    {"{\"a\":" E("F32", "[2]", "8", "0") "}", 8, TG_ERR_FORMAT,
     "tensor \"a\": data_offsets [8, 0] are negative or reversed"},
    {"{\"a\":" E("F32", "[2]", "-8", "0") "}", 8, TG_ERR_FORMAT, "are negative or reversed"},
    /* dtypes */
    {"{\"a\":" E("F99", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT, "tensor \"a\": unknown dtype \"F99\""},
    {"{\"a\":" E("F16", "[2]", "0", "4") "}", 4, TG_ERR_DTYPE,
     "tensor \"a\": dtype \"F16\" is not supported (tgrad reads F32, F64 and I64)"},
    {"{\"a\":" E("BF16", "[2]", "0", "4") "}", 4, TG_ERR_DTYPE, "dtype \"BF16\" is not supported"},
    {"{\"a\":" E("I32", "[2]", "0", "8") "}", 8, TG_ERR_DTYPE, "dtype \"I32\" is not supported"},
    {"{\"a\":" E("U8", "[2]", "0", "2") "}", 2, TG_ERR_DTYPE, "dtype \"U8\" is not supported"},
    {"{\"a\":" E("BOOL", "[2]", "0", "2") "}", 2, TG_ERR_DTYPE, "dtype \"BOOL\" is not supported"},
    {"{\"a\":{\"dtype\":7,\"shape\":[],\"data_offsets\":[0,4]}}", 4, TG_ERR_FORMAT,
     "tensor \"a\": \"dtype\" must be a string"},
    /* shapes */
    {"{\"a\":" E("F32", "[-2]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "tensor \"a\": negative dimension -2 in shape [-2]"},
    {"{\"a\":" E("F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", 4, TG_ERR_FORMAT,
     "tensor \"a\": \"shape\" has more than 8 entries"},
    {"{\"a\":" E("F32", "[4294967296,4294967296,0]", "0", "0") "}", 0, TG_ERR_FORMAT,
     "tensor \"a\": byte count of F32 shape [4294967296, 4294967296, 0] overflows"},
    {"{\"a\":" E("F64", "[9223372036854775807]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "byte count of F64 shape [9223372036854775807] overflows"},
    {"{\"a\":" E("F32", "[[1]]", "0", "4") "}", 4, TG_ERR_FORMAT, "expected shape (an integer)"},
    {"{\"a\":" E("F32", "2", "0", "8") "}", 8, TG_ERR_FORMAT,
     "tensor \"a\": \"shape\" must be an array of integers"},
    {"{\"a\":" E("F32", "[2.0]", "0", "8") "}", 8, TG_ERR_FORMAT, "found a fraction or exponent"},
    {"{\"a\":" E("F32", "[1e1]", "0", "40") "}", 40, TG_ERR_FORMAT, "found a fraction or exponent"},
    {"{\"a\":" E("F32", "[02]", "0", "8") "}", 8, TG_ERR_FORMAT, "number with a leading zero"},
    {"{\"a\":" E("F32", "[99999999999999999999]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "number overflows int64"},
    {"{\"a\":" E("F32", "[2]", "0", "9223372036854775808") "}", 8, TG_ERR_FORMAT,
     "number overflows int64"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,16]}}", 8, TG_ERR_FORMAT,
     "\"data_offsets\" has more than 2 entries"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, TG_ERR_FORMAT,
     "tensor \"a\": \"data_offsets\" must be [begin, end]"},
    /* entry keys */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, TG_ERR_FORMAT, "tensor \"a\": missing \"data_offsets\""},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, TG_ERR_FORMAT, "tensor \"a\": missing \"dtype\""},
    {"{\"a\":{}}", 0, TG_ERR_FORMAT, "tensor \"a\": missing \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     TG_ERR_FORMAT, "tensor \"a\": duplicate key \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"offsets\":[0,8]}}", 8,
     TG_ERR_FORMAT, "tensor \"a\": unexpected key \"offsets\""},
    {"{\"a\":[1,2]}", 0, TG_ERR_FORMAT, "tensor \"a\": expected an object"},
    /* names */
    {"{\"a\":" E("F32", "[2]", "0", "8") ",\"a\":" E("F32", "[2]", "8", "16") "}", 16,
     TG_ERR_FORMAT, "duplicate tensor name \"a\""},
    {"{\"\":" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT, "empty tensor name"},
    {"{\"a\\u0000b\":" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "tensor name contains a NUL character"},
    {"{\"a\xff\":" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "header byte 3: invalid UTF-8 byte 0xff in a string"},
    {"{\"a\xc0\xaf\":" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT, "invalid UTF-8 byte 0xc0"},
    {"{\"a\xed\xa0\x80\":" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT,
     "invalid UTF-8 byte 0xed"},
    /* metadata */
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, TG_ERR_FORMAT, "duplicate key \"__metadata__\""},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, TG_ERR_FORMAT,
     "duplicate __metadata__ key \"k\""},
    {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, TG_ERR_FORMAT,
     "__metadata__ \"k\": the value must be a string"},
    {"{\"__metadata__\":{\"k\":3}}", 0, TG_ERR_FORMAT, "__metadata__ \"k\": the value must be a string"},
    {"{\"__metadata__\":[]}", 0, TG_ERR_FORMAT, "\"__metadata__\" must be an object of strings"},
    {"{\"__metadata__\":{\"tgrad_crc32\":\"1234567\"}}", 0, TG_ERR_FORMAT,
     "__metadata__ \"tgrad_crc32\" is not 8 lowercase hex digits"},
    {"{\"__metadata__\":{\"tgrad_crc32\":\"1234567G\"}}", 0, TG_ERR_FORMAT,
     "is not 8 lowercase hex digits"},
    {"{\"__metadata__\":{\"tgrad_crc32\":\"ABCDEF01\"}}", 0, TG_ERR_FORMAT,
     "is not 8 lowercase hex digits"},
    {"{\"__metadata__\":{\"tgrad_crc32\":\"\\u0030bcdef01\"}}", 0, TG_ERR_FORMAT,
     "is not 8 lowercase hex digits"},
    {"{\"__metadata__\":{\"tgrad_crc32\":\"00000000\"}}", 0, TG_ERR_FORMAT,
     "crc32 mismatch: the file says 00000000"},
    /* JSON syntax */
    {"", 0, TG_ERR_FORMAT, "header byte 0: the header must be a JSON object starting with '{'"},
    {"[1]", 0, TG_ERR_FORMAT, "the header must be a JSON object starting with '{'"},
    {"{} x", 0, TG_ERR_FORMAT, "header byte 3: 1 bytes after the header object"},
    {"{}}", 0, TG_ERR_FORMAT, "bytes after the header object (only spaces may follow)"},
    {"{", 0, TG_ERR_FORMAT, "header ends where a tensor name was expected"},
    {"{\"a\" " E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT, "header byte 5: expected ':' after a key"},
    {"{\"a\":" E("F32", "[2]", "0", "8") ",}", 8, TG_ERR_FORMAT, "expected a tensor name (a string)"},
    {"{\"a\":" E("F32", "[2]", "0", "8") " \"b\"}", 8, TG_ERR_FORMAT, "expected ',' or '}' after an entry"},
    {"{\"a:" E("F32", "[2]", "0", "8") "}", 8, TG_ERR_FORMAT, "header byte 6: expected ':' after a key, found 'd'"},
    {"{\"abc", 0, TG_ERR_FORMAT, "header byte 1: unterminated string"},
    {"{\"a\\q\":{}}", 0, TG_ERR_FORMAT, "header byte 3: invalid escape '\\q'"},
    {"{\"a\\u12\":{}}", 0, TG_ERR_FORMAT, "invalid \\u escape (needs 4 hex digits)"},
    {"{\"\\udc00\":{}}", 0, TG_ERR_FORMAT, "lone low surrogate \\udc00"},
    {"{\"\\ud800x\":{}}", 0, TG_ERR_FORMAT, "high surrogate \\ud800 not followed by a low one"},
    {"{\"a\tb\":{}}", 0, TG_ERR_FORMAT, "control character 0x09 in a string (must be escaped)"},
    {"{\"a\":" E("F32", "[2 3]", "0", "24") "}", 24, TG_ERR_FORMAT, "expected ',' or ']' in \"shape\""},
    {"{'a':{}}", 0, TG_ERR_FORMAT, "expected a tensor name (a string)"},
    {"{\"a\":" E("F32", "[-]", "0", "8") "}", 8, TG_ERR_FORMAT, "expected shape (an integer)"},
};

Test(safetensors, malformed_headers_each_have_their_message)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        size_t size;
        unsigned char *b = make_file(c->header, c->data, &size);
        tg_error_clear();
        tg_st_file *f = tg_st_parse(b, size, 0, "bad.safetensors");
        cr_expect(f == NULL, "case %zu (%s) accepted", i, c->header);
        cr_expect(strstr(tg_last_error(), "tg_st_parse: bad.safetensors: ") == tg_last_error(),
                  "case %zu: prefix: %s", i, tg_last_error());
        cr_expect(strstr(tg_last_error(), c->needle) != NULL,
                  "case %zu (%s):\n  got  \"%s\"\n  want \"%s\"", i, c->header, tg_last_error(),
                  c->needle);
        cr_expect_eq(tg_last_status(), c->code, "case %zu: status %s: %s", i,
                     tg_status_name(tg_last_status()), tg_last_error());
        tg_st_close(f);
        free(b);
    }
}

Test(safetensors, header_size_checks)
{
    unsigned char b[64] = {0};
    tg_st_file *f = tg_st_parse(b, 5, 0, "m");
    expect_error(f == NULL, "tg_st_parse: m: file is 5 bytes, shorter than the 8-byte header size prefix");

    put_u64(b, (uint64_t)1 << 40); /* huge */
    f = tg_st_parse(b, sizeof b, 0, "m");
    expect_error(f == NULL, "tg_st_parse: m: header size 1099511627776 exceeds the limit of 104857600 bytes (100 MiB)");
    put_u64(b, UINT64_MAX);
    f = tg_st_parse(b, sizeof b, 0, "m");
    expect_error(f == NULL, "header size 18446744073709551615 exceeds the limit");

    put_u64(b, 57); /* past the end */
    f = tg_st_parse(b, sizeof b, 0, "m");
    expect_error(f == NULL, "tg_st_parse: m: header size 57 runs past the end of the file (56 bytes after the 8-byte prefix)");
    cr_expect_eq(tg_last_status(), TG_ERR_FORMAT);

    f = tg_st_parse(NULL, 0, 0, NULL);
    expect_error(f == NULL, "tg_st_parse: <memory>: file is 0 bytes");
    f = tg_st_parse(NULL, 8, 0, NULL);
    expect_error(f == NULL, "tg_st_parse: <memory>: bytes is NULL");
}

/* ------------------------------------------------------- accessors, IO */

Test(safetensors, accessors_and_read_errors)
{
    size_t size;
    unsigned char *b = torch_file(&size);
    tg_st_file *f = tg_st_parse(b, size, 0, "t.st");
    cr_assert(f, "%s", tg_last_error());
    expect_error(tg_st_find(f, "2.weight") == NULL, "tg_st_find: t.st: no tensor named \"2.weight\"");
    cr_expect_eq(tg_last_status(), TG_ERR_ARG);
    expect_error(tg_st_at(f, 7) == NULL, "tg_st_at: t.st: index 7 is outside 0..6");
    expect_error(tg_st_at(f, -1) == NULL, "index -1");
    expect_error(tg_st_find(f, NULL) == NULL, "tg_st_find: name is NULL");
    cr_expect_null(tg_st_meta(f, NULL));
    cr_expect_null(tg_st_meta(NULL, "format"));
    cr_expect_eq(tg_st_count(NULL), 0);
    /* Every name found, each through the sorted index. */
    for (int i = 0; i < tg_st_count(f); i++)
        cr_expect(tg_st_find(f, tg_st_at(f, i)->name) == tg_st_at(f, i));
    tg_st_close(f);
    tg_st_close(NULL);
    free(b);

    f = tg_st_read("/nonexistent/dir/model.safetensors", 0);
    expect_error(f == NULL, "tg_st_read: /nonexistent/dir/model.safetensors: cannot open: No such file or directory");
    cr_expect_eq(tg_last_status(), TG_ERR_IO);
    f = tg_st_read("/tmp", 0);
    expect_error(f == NULL, "tg_st_read: /tmp: is a folder");
    f = tg_st_read(NULL, 0);
    expect_error(f == NULL, "tg_st_read: path is NULL");
    cr_expect_eq(tg_last_status(), TG_ERR_NULL);
}

/* ------------------------------------------------------- writer errors */

Test(safetensors, writer_rejects_bad_arguments_and_creates_nothing)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float v[2] = {1, 2};
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    struct {
        tg_st_tensor t[2];
        int n;
        int code;
        const char *needle;
    } cases[] = {
        {{{.name = "a", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v},
          {.name = "a", .dtype = TG_ST_F64, .ndim = 0, .data = v}},
         2, TG_ERR_ARG, "duplicate tensor name \"a\""},
        {{{.name = "", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v}}, 1, TG_ERR_ARG,
         "tensor 0: empty name"},
        {{{.name = NULL, .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v}}, 1, TG_ERR_NULL,
         "tensor 0: name is NULL"},
        {{{.name = longname, .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v}}, 1,
         TG_ERR_ARG, "is 256 bytes (at most 255)"},
        {{{.name = "__metadata__", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v}}, 1,
         TG_ERR_ARG, "the name \"__metadata__\" is reserved"},
        {{{.name = "bad\xff", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = v}}, 1,
         TG_ERR_ARG, "is not valid UTF-8"},
        {{{.name = "a", .dtype = (tg_st_dtype)7, .ndim = 1, .shape = {2}, .data = v}}, 1,
         TG_ERR_ARG, "tensor \"a\": unknown dtype 7"},
        {{{.name = "a", .dtype = TG_ST_F32, .ndim = 9, .shape = {2}, .data = v}}, 1, TG_ERR_ARG,
         "tensor \"a\": ndim 9 is outside 0..8"},
        {{{.name = "a", .dtype = TG_ST_F32, .ndim = 2, .shape = {2, -1}, .data = v}}, 1,
         TG_ERR_ARG, "tensor \"a\": negative dimension in shape [2, -1]"},
        {{{.name = "a", .dtype = TG_ST_F32, .ndim = 2, .shape = {INT64_MAX, 4}, .data = v}}, 1,
         TG_ERR_OVERFLOW, "byte count of shape [9223372036854775807, 4] overflows"},
        {{{.name = "a", .dtype = TG_ST_F32, .ndim = 1, .shape = {2}, .data = NULL}}, 1,
         TG_ERR_NULL, "tensor \"a\": data is NULL for shape [2]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_error_clear();
        int rc = tg_st_write(path, cases[i].t, cases[i].n, NULL, 0);
        cr_expect_eq(rc, cases[i].code, "case %zu: rc %d: %s", i, rc, tg_last_error());
        cr_expect(strstr(tg_last_error(), "tg_st_write: ") == tg_last_error() &&
                      strstr(tg_last_error(), path) && strstr(tg_last_error(), cases[i].needle),
                  "case %zu: got \"%s\", want \"%s\"", i, tg_last_error(), cases[i].needle);
    }
    const char *reserved[] = {"tgrad_crc32", "x"};
    expect_error(tg_st_write(path, NULL, 0, reserved, 1) == TG_ERR_ARG,
                 "metadata key \"tgrad_crc32\" is reserved");
    const char *dup[] = {"k", "1", "k", "2"};
    expect_error(tg_st_write(path, NULL, 0, dup, 2) == TG_ERR_ARG, "duplicate metadata key \"k\"");
    const char *nullv[] = {"k", NULL};
    expect_error(tg_st_write(path, NULL, 0, nullv, 1) == TG_ERR_NULL, "metadata pair 0 has a NULL value");
    expect_error(tg_st_write(path, NULL, 0, NULL, 1) == TG_ERR_NULL, "meta_kv is NULL for n_meta 1");
    expect_error(tg_st_write(path, NULL, 1, NULL, 0) == TG_ERR_NULL, "tensors is NULL for n 1");
    expect_error(tg_st_write(path, NULL, -1, NULL, 0) == TG_ERR_ARG, "negative count");
    expect_error(tg_st_write(NULL, NULL, 0, NULL, 0) == TG_ERR_NULL, "tg_st_write: path is NULL");
    cr_expect_eq(count_files(dir, "w.safetensors"), 0, "a failed write left a file");
    rm_dir(dir);
}

Test(safetensors, write_into_a_missing_folder_fails_with_io)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/no/such/folder/m.safetensors", dir);
    float v = 1;
    tg_st_tensor t = {.name = "a", .dtype = TG_ST_F32, .ndim = 0, .data = &v};
    int rc = tg_st_write(path, &t, 1, NULL, 0);
    cr_expect_eq(rc, TG_ERR_IO);
    expect_error(rc != 0, "tg_st_write: ", path, "cannot create the temporary file",
                 "No such file or directory");
    rm_dir(dir);
}

/* A write that fails half-way (the file size limit, which binds root too)
 * leaves the old file intact and no temporary file. */
Test(safetensors, failed_write_keeps_the_old_file_and_removes_the_temp)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float small = 5;
    tg_st_tensor t = {.name = "a", .dtype = TG_ST_F32, .ndim = 0, .data = &small};
    cr_assert_eq(tg_st_write(path, &t, 1, NULL, 0), 0, "%s", tg_last_error());
    size_t size0;
    unsigned char *before = slurp(path, &size0);

    int64_t n = 1 << 16;
    float *big = calloc((size_t)n, sizeof *big);
    tg_st_tensor tb = {.name = "a", .dtype = TG_ST_F32, .ndim = 1, .shape = {n}, .data = big};
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    int rc = tg_st_write(path, &tb, 1, NULL, 0);
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_expect_eq(rc, TG_ERR_IO, "rc %d: %s", rc, tg_last_error());
    expect_error(rc != 0, "cannot write the temporary file", "the old file, if any, is untouched");
    cr_expect_eq(count_files(dir, ".tmp."), 0, "temporary file left behind");
    size_t size1;
    unsigned char *after = slurp(path, &size1);
    cr_expect(size0 == size1 && memcmp(before, after, size0) == 0, "the old file changed");
    free(before);
    free(after);
    free(big);
    rm_dir(dir);
}

/* rename over a non-empty folder fails: the temporary file is removed. */
Test(safetensors, failed_rename_removes_the_temp)
{
    char *dir = make_dir(), path[256], inner[300];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", path);
    spit(inner, "x", 1);
    float v = 1;
    tg_st_tensor t = {.name = "a", .dtype = TG_ST_F32, .ndim = 0, .data = &v};
    int rc = tg_st_write(path, &t, 1, NULL, 0);
    cr_expect_eq(rc, TG_ERR_IO);
    expect_error(rc != 0, "cannot rename the temporary file");
    cr_expect_eq(count_files(dir, ".tmp."), 0, "temporary file left behind");
    unlink(inner);
    rm_dir(dir);
}

Test(safetensors, write_over_a_file_in_a_read_only_folder_fails)
{
    if (geteuid() == 0)
        cr_skip("running as root: permissions do not apply");
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float v = 1, w = 2;
    tg_st_tensor t = {.name = "a", .dtype = TG_ST_F32, .ndim = 0, .data = &v};
    cr_assert_eq(tg_st_write(path, &t, 1, NULL, 0), 0, "%s", tg_last_error());
    cr_assert_eq(chmod(dir, 0555), 0);
    t.data = &w;
    int rc = tg_st_write(path, &t, 1, NULL, 0);
    chmod(dir, 0755);
    cr_expect_eq(rc, TG_ERR_IO);
    expect_error(rc != 0, "cannot create the temporary file", "Permission denied");
    tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
    cr_assert(f, "%s", tg_last_error());
    cr_expect(*(const float *)tg_st_find(f, "a")->data == 1.0f);
    tg_st_close(f);
    rm_dir(dir);
}

Test(safetensors, file_mode_follows_umask_or_the_old_file)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    float v = 1;
    tg_st_tensor t = {.name = "a", .dtype = TG_ST_F32, .ndim = 0, .data = &v};
    umask(027);
    cr_assert_eq(tg_st_write(path, &t, 1, NULL, 0), 0, "%s", tg_last_error());
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0640, "mode %o", st.st_mode & 0777);
    cr_assert_eq(chmod(path, 0604), 0);
    cr_assert_eq(tg_st_write(path, &t, 1, NULL, 0), 0, "%s", tg_last_error());
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0604, "mode %o", st.st_mode & 0777);
    rm_dir(dir);
}

/* ------------------------------------------------------- crash safety */

/* Two versions of a checkpoint of a few MB; the child rewrites the file
 * alternately and is SIGKILLed at varying moments. Each time, the target must
 * load with the CRC required and equal one of the two versions. */
#define CRASH_N ((int64_t)1 << 19) /* 2 MiB of float32 per version */

static void fill_version(float *x, int64_t *tag, int version)
{
    for (int64_t i = 0; i < CRASH_N; i++)
        x[i] = (float)((i * 7 + version * 13) % 1000) * (version ? -0.5f : 0.25f);
    *tag = version;
}

Test(safetensors, crash_during_write_leaves_old_or_new_file, .timeout = 60)
{
    char *dir = make_dir(), path[256];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    float *x[2];
    int64_t tag[2];
    tg_st_tensor t[2][2];
    for (int v = 0; v < 2; v++) {
        x[v] = malloc((size_t)CRASH_N * sizeof(float));
        cr_assert(x[v]);
        fill_version(x[v], &tag[v], v);
        t[v][0] = (tg_st_tensor){.name = "w", .dtype = TG_ST_F32, .ndim = 2,
                                 .shape = {CRASH_N / 512, 512}, .data = x[v]};
        t[v][1] = (tg_st_tensor){.name = "version", .dtype = TG_ST_I64, .ndim = 0,
                                 .data = &tag[v]};
    }
    cr_assert_eq(tg_st_write(path, t[0], 2, NULL, 0), 0, "%s", tg_last_error());

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int seen[2] = {0, 0}, strays = 0, cur = 0;
    uint32_t rng = 12345;
    for (int k = 0; k < 30; k++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            /* Start with the version not on disk, so any completed write shows. */
            for (int i = cur ^ 1;; i ^= 1)
                tg_st_write(path, t[i], 2, NULL, 0);
        }
        rng = rng * 1664525u + 1013904223u;
        struct timespec d = {0, (long)(1 + (rng >> 8) % 40) * 1000000L}; /* 1..40 ms */
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

        tg_st_file *f = tg_st_read(path, TG_ST_REQUIRE_CRC);
        cr_assert(f, "kill %d: %s", k, tg_last_error());
        const tg_st_tensor *ver = tg_st_find(f, "version"), *w = tg_st_find(f, "w");
        cr_assert(ver && w);
        int64_t v = *(const int64_t *)ver->data;
        cr_assert(v == 0 || v == 1, "kill %d: version %lld", k, (long long)v);
        cr_expect(memcmp(w->data, x[v], (size_t)CRASH_N * sizeof(float)) == 0,
                  "kill %d: data of version %lld differ", k, (long long)v);
        seen[v]++;
        cur = (int)v;
        tg_st_close(f);
        /* A kill mid-write leaves its temporary file: remove it, as a user
         * would (nothing else is writing). */
        int c = count_files(dir, ".tmp.");
        strays += c;
        if (c > 0) {
            DIR *dp = opendir(dir);
            struct dirent *de;
            char p[512];
            while ((de = readdir(dp)))
                if (strstr(de->d_name, ".tmp.")) {
                    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
                    unlink(p);
                }
            closedir(dp);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_log_info("crash test: 30 kills in %.2f s; version 0 seen %d, version 1 seen %d, "
                "%d temporary files left by kills",
                secs, seen[0], seen[1], strays);
    cr_expect(seen[0] + seen[1] == 30);
    free(x[0]);
    free(x[1]);
    rm_dir(dir);
}
