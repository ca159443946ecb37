/* safetensors checkpoints: a strict parser of the JSON header, the reader that
 * validates a whole file before handing anything out, and the atomic writer
 * with tgrad's CRC32. Modules and state dicts live in nn/checkpoint.c; nothing
 * here knows about graphs, ops or modules. docs/nn.md describes the format. */
#include "safetensors.h"

#include "crc32.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include "io.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_HEADER_MAX ((size_t)100 * 1024 * 1024) /* 100 MiB, as the Rust reader's limit */
#define ST_NAME_MAX 255                           /* bytes in a tensor name */
#define ST_CRC_KEY "tgrad_crc32"
#define ST_DATA_ALIGN 64                          /* alignment of every tensor read */
#define ST_QUOTE_MAX 96                           /* bytes of a name quoted in a message */

/* ============================================================ utilities */

size_t tg_st_dtype_size(tg_st_dtype dtype) { return dtype == TG_ST_F32 ? 4 : 8; }

const char *tg_st_dtype_name(tg_st_dtype dtype)
{
    switch (dtype) {
    case TG_ST_F32: return "F32";
    case TG_ST_F64: return "F64";
    case TG_ST_I64: return "I64";
    }
    return "?";
}

/* s (len bytes) quoted for a message: "name", with ", \ and bytes outside
 * printable ASCII escaped, cut after ST_QUOTE_MAX bytes with "...". */
static const char *quote(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (o + 8 >= cap || i >= ST_QUOTE_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
#define QBUF (ST_QUOTE_MAX * 4 + 16)

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Copies n bytes of elements of `elsize` bytes, reversing each element's bytes
 * on a big-endian host (the file is little-endian). */
static void copy_le(void *dst, const void *src, size_t n, size_t elsize)
{
    if (host_is_little_endian() || elsize == 1) {
        if (n)
            memcpy(dst, src, n);
        return;
    }
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i += elsize)
        for (size_t k = 0; k < elsize; k++)
            d[i + k] = s[i + elsize - 1 - k];
}

/* Checks that s[0..len) is valid UTF-8 (no overlongs, no surrogates, at most
 * U+10FFFF). Returns the offset of the first bad byte, or len. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t need;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0)
                lo = 0xa0;
            if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f;
        } else {
            return i;
        }
        if (len - i <= need)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return i;
        i += need + 1;
    }
    return len;
}

/* numel * elsize of a shape into *bytes; -1 when elsize times the product of
 * the non-zero dims exceeds `limit` (so [2^62, 2^62, 0] is rejected whatever
 * the order of its dims, although it has no elements). */
static int shape_bytes(int ndim, const int64_t *shape, size_t elsize, uint64_t limit,
                       uint64_t *bytes)
{
    uint64_t n = elsize;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d == 0) {
            zero = 1;
            continue;
        }
        if (n > limit / d)
            return -1;
        n *= d;
    }
    *bytes = zero ? 0 : n;
    return 0;
}

static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    return tg_shape_format(buf, size, ndim, shape);
}

/* ============================================================ the parser */

/* The header is parsed against the schema directly (top object -> entry
 * object -> integer arrays, or __metadata__ -> strings), so nesting deeper
 * than the format needs is rejected where it appears. */

typedef struct st_entry {
    char *name;
    int dtype; /* tg_st_dtype */
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t begin, end;
} st_entry;

typedef struct st_doc {
    st_entry *e;
    int n, cap;
    char **meta; /* key, value, key, value ... */
    int n_meta, cap_meta;
    int has_meta;
    int has_crc;
    size_t crc_pos; /* header offset of the 8 hex digits */
} st_doc;

typedef struct st_parser {
    const char *who, *label;
    const unsigned char *h; /* the header, n bytes */
    size_t n, pos;
    uint64_t data_size;     /* bytes after the header */
    char *s;                /* the last string decoded, NUL-terminated */
    size_t s_len, s_cap;
    int s_nul;              /* it contains a \u0000 */
} st_parser;

static int perr(st_parser *ps, size_t at, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int perr(st_parser *ps, size_t at, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label, "header byte %zu: %s", at, msg);
}

static void skip_ws(st_parser *ps)
{
    while (ps->pos < ps->n) {
        unsigned char c = ps->h[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

/* Consumes character c (after whitespace) or fails naming `what`. */
static int expect(st_parser *ps, char c, const char *what)
{
    skip_ws(ps);
    if (ps->pos >= ps->n)
        return perr(ps, ps->pos, "header ends where %s was expected", what);
    if (ps->h[ps->pos] != (unsigned char)c)
        return perr(ps, ps->pos, "expected %s, found '%c'", what,
                    ps->h[ps->pos] >= 0x20 && ps->h[ps->pos] < 0x7f ? ps->h[ps->pos] : '?');
    ps->pos++;
    return 0;
}

/* The next non-space byte, or -1 at the end (not consumed). */
static int peek(st_parser *ps)
{
    skip_ws(ps);
    return ps->pos < ps->n ? ps->h[ps->pos] : -1;
}

static int push_bytes(st_parser *ps, const void *b, size_t k)
{
    if (ps->s_len + k + 1 > ps->s_cap) {
        size_t cap = ps->s_cap ? ps->s_cap : 64;
        while (cap < ps->s_len + k + 1)
            cap *= 2;
        char *s = realloc(ps->s, cap);
        if (!s)
            return tg__io_fail(TG_ERR_NOMEM, ps->who, ps->label, "out of memory parsing the header");
        ps->s = s;
        ps->s_cap = cap;
    }
    memcpy(ps->s + ps->s_len, b, k);
    ps->s_len += k;
    ps->s[ps->s_len] = '\0';
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    *out = v;
    return 0;
}

/* Decodes the string at pos (after whitespace) into ps->s; *raw is the header
 * offset of its first byte after the quote, *raw_len its length undecoded. */
static int parse_string(st_parser *ps, const char *what, size_t *raw, size_t *raw_len)
{
    skip_ws(ps);
    if (ps->pos >= ps->n)
        return perr(ps, ps->pos, "header ends where %s was expected", what);
    if (ps->h[ps->pos] != '"')
        return perr(ps, ps->pos, "expected %s (a string)", what);
    size_t open = ps->pos++;
    ps->s_len = 0;
    ps->s_nul = 0;
    if (push_bytes(ps, "", 0))
        return TG_ERR_NOMEM;
    for (;;) {
        if (ps->pos >= ps->n)
            return perr(ps, open, "unterminated string");
        unsigned c = ps->h[ps->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return perr(ps, ps->pos, "control character 0x%02x in a string (must be escaped)", c);
        if (c == '\\') {
            size_t at = ps->pos;
            if (ps->pos + 1 >= ps->n)
                return perr(ps, open, "unterminated string");
            unsigned e = ps->h[ps->pos + 1];
            char ch;
            ps->pos += 2;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (ps->pos + 4 > ps->n || hex4(ps->h + ps->pos, &cp))
                    return perr(ps, at, "invalid \\u escape (needs 4 hex digits)");
                ps->pos += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return perr(ps, at, "lone low surrogate \\u%04x", cp);
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (ps->pos + 6 > ps->n || ps->h[ps->pos] != '\\' || ps->h[ps->pos + 1] != 'u' ||
                        hex4(ps->h + ps->pos + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
                        return perr(ps, at, "high surrogate \\u%04x not followed by a low one", cp);
                    ps->pos += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                unsigned char u[4];
                size_t k;
                if (cp < 0x80) {
                    u[0] = (unsigned char)cp;
                    k = 1;
                } else if (cp < 0x800) {
                    u[0] = (unsigned char)(0xc0 | (cp >> 6));
                    u[1] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp < 0x10000) {
                    u[0] = (unsigned char)(0xe0 | (cp >> 12));
                    u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    u[2] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 3;
                } else {
                    u[0] = (unsigned char)(0xf0 | (cp >> 18));
                    u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
                    u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                    u[3] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 4;
                }
                if (cp == 0)
                    ps->s_nul = 1;
                if (push_bytes(ps, u, k))
                    return TG_ERR_NOMEM;
                continue;
            }
            default:
                return perr(ps, at, "invalid escape '\\%c'",
                            e >= 0x20 && e < 0x7f ? (char)e : '?');
            }
            if (push_bytes(ps, &ch, 1))
                return TG_ERR_NOMEM;
            continue;
        }
        /* A run of raw bytes up to the next quote, backslash or control byte. */
        size_t end = ps->pos;
        while (end < ps->n && ps->h[end] != '"' && ps->h[end] != '\\' && ps->h[end] >= 0x20)
            end++;
        size_t ok = utf8_valid_prefix(ps->h + ps->pos, end - ps->pos);
        if (ok != end - ps->pos)
            return perr(ps, ps->pos + ok, "invalid UTF-8 byte 0x%02x in a string",
                        ps->h[ps->pos + ok]);
        if (push_bytes(ps, ps->h + ps->pos, end - ps->pos))
            return TG_ERR_NOMEM;
        ps->pos = end;
    }
    if (raw)
        *raw = open + 1;
    if (raw_len)
        *raw_len = ps->pos - open - 1;
    ps->pos++;
    return 0;
}

/* A JSON integer that fits int64 (no fraction, exponent or leading zero). */
static int parse_int(st_parser *ps, const char *what, int64_t *out)
{
    skip_ws(ps);
    size_t p = ps->pos, start = ps->pos;
    int neg = 0;
    if (p < ps->n && ps->h[p] == '-') {
        neg = 1;
        p++;
    }
    if (p >= ps->n || ps->h[p] < '0' || ps->h[p] > '9')
        return perr(ps, start, "expected %s (an integer)", what);
    if (ps->h[p] == '0' && p + 1 < ps->n && ps->h[p + 1] >= '0' && ps->h[p + 1] <= '9')
        return perr(ps, start, "number with a leading zero");
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    while (p < ps->n && ps->h[p] >= '0' && ps->h[p] <= '9') {
        uint64_t d = (uint64_t)(ps->h[p] - '0');
        if (v > (limit - d) / 10)
            return perr(ps, start, "number overflows int64");
        v = v * 10 + d;
        p++;
    }
    if (p < ps->n && (ps->h[p] == '.' || ps->h[p] == 'e' || ps->h[p] == 'E'))
        return perr(ps, start, "expected %s (an integer), found a fraction or exponent", what);
    ps->pos = p;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/* [int, int, ...] with at most max entries; *count gets the number read. */
static int parse_int_array(st_parser *ps, const char *ctx, const char *what, int max,
                           int64_t *vals, int *count)
{
    skip_ws(ps);
    if (ps->pos >= ps->n || ps->h[ps->pos] != '[')
        return perr(ps, ps->pos, "%s: \"%s\" must be an array of integers", ctx, what);
    ps->pos++;
    int k = 0;
    if (peek(ps) == ']') {
        ps->pos++;
        *count = 0;
        return 0;
    }
    for (;;) {
        if (k == max) {
            skip_ws(ps);
            return perr(ps, ps->pos, "%s: \"%s\" has more than %d entries", ctx, what, max);
        }
        int rc = parse_int(ps, what, &vals[k]);
        if (rc)
            return rc;
        k++;
        int c = peek(ps);
        if (c == ',') {
            ps->pos++;
            continue;
        }
        if (c == ']') {
            ps->pos++;
            break;
        }
        return perr(ps, ps->pos, "%s: expected ',' or ']' in \"%s\"", ctx, what);
    }
    *count = k;
    return 0;
}

static const char *const unsupported_dtypes[] = {
    "BOOL", "U8",  "I8",  "I16", "U16", "F16",     "BF16",    "I32",
    "U32",  "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"};

/* One tensor entry {"dtype": .., "shape": [..], "data_offsets": [b, e]}. */
static int parse_entry(st_parser *ps, st_entry *en, size_t name_len)
{
    char qn[QBUF], ctx[QBUF + 16];
    quote(qn, sizeof qn, en->name, name_len);
    snprintf(ctx, sizeof ctx, "tensor %s", qn);
    skip_ws(ps);
    if (ps->pos >= ps->n || ps->h[ps->pos] != '{')
        return perr(ps, ps->pos, "%s: expected an object {\"dtype\", \"shape\", \"data_offsets\"}",
                    ctx);
    ps->pos++;
    int seen_dtype = 0, seen_shape = 0, seen_offsets = 0;
    if (peek(ps) != '}') {
        for (;;) {
            size_t key_at;
            skip_ws(ps);
            key_at = ps->pos;
            int rc = parse_string(ps, "a key", NULL, NULL);
            if (rc)
                return rc;
            int which = 0;
            if (!ps->s_nul && strcmp(ps->s, "dtype") == 0)
                which = 1;
            else if (!ps->s_nul && strcmp(ps->s, "shape") == 0)
                which = 2;
            else if (!ps->s_nul && strcmp(ps->s, "data_offsets") == 0)
                which = 3;
            if (!which) {
                char qk[QBUF];
                return perr(ps, key_at,
                            "%s: unexpected key %s (an entry has exactly dtype, shape and "
                            "data_offsets)",
                            ctx, quote(qk, sizeof qk, ps->s, ps->s_len));
            }
            int *seen = which == 1 ? &seen_dtype : which == 2 ? &seen_shape : &seen_offsets;
            if (*seen)
                return perr(ps, key_at, "%s: duplicate key \"%s\"", ctx, ps->s);
            *seen = 1;
            if ((rc = expect(ps, ':', "':' after a key")))
                return rc;
            if (which == 1) {
                skip_ws(ps);
                size_t at = ps->pos;
                if (ps->pos >= ps->n || ps->h[ps->pos] != '"')
                    return perr(ps, at, "%s: \"dtype\" must be a string", ctx);
                if ((rc = parse_string(ps, "the dtype", NULL, NULL)))
                    return rc;
                if (strcmp(ps->s, "F32") == 0 && !ps->s_nul)
                    en->dtype = TG_ST_F32;
                else if (strcmp(ps->s, "F64") == 0 && !ps->s_nul)
                    en->dtype = TG_ST_F64;
                else if (strcmp(ps->s, "I64") == 0 && !ps->s_nul)
                    en->dtype = TG_ST_I64;
                else {
                    char qd[QBUF];
                    quote(qd, sizeof qd, ps->s, ps->s_len);
                    for (size_t i = 0; i < sizeof unsupported_dtypes / sizeof *unsupported_dtypes;
                         i++)
                        if (!ps->s_nul && strcmp(ps->s, unsupported_dtypes[i]) == 0)
                            return tg__io_fail(TG_ERR_DTYPE, ps->who, ps->label,
                                        "%s: dtype %s is not supported (tgrad reads F32, F64 "
                                        "and I64)",
                                        ctx, qd);
                    return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label, "%s: unknown dtype %s", ctx,
                                qd);
                }
            } else if (which == 2) {
                if ((rc = parse_int_array(ps, ctx, "shape", TG_MAX_DIMS, en->shape, &en->ndim)))
                    return rc;
            } else {
                int64_t v[2];
                int k;
                size_t at = (skip_ws(ps), ps->pos);
                if ((rc = parse_int_array(ps, ctx, "data_offsets", 2, v, &k)))
                    return rc;
                if (k != 2)
                    return perr(ps, at, "%s: \"data_offsets\" must be [begin, end]", ctx);
                en->begin = v[0];
                en->end = v[1];
            }
            int c = peek(ps);
            if (c == ',') {
                ps->pos++;
                continue;
            }
            if (c == '}')
                break;
            return perr(ps, ps->pos, "%s: expected ',' or '}' in the entry", ctx);
        }
    }
    ps->pos++; /* '}' */
    if (!seen_dtype || !seen_shape || !seen_offsets)
        return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label, "%s: missing \"%s\"", ctx,
                    !seen_dtype ? "dtype" : !seen_shape ? "shape" : "data_offsets");

    /* The entry on its own: dims, byte count, offsets inside the data section. */
    char ss[TG_SHAPE_STR_MAX];
    for (int i = 0; i < en->ndim; i++)
        if (en->shape[i] < 0)
            return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label,
                        "%s: negative dimension %lld in shape %s", ctx,
                        (long long)en->shape[i], shape_str(ss, sizeof ss, en->ndim, en->shape));
    uint64_t nbytes;
    if (shape_bytes(en->ndim, en->shape, tg_st_dtype_size((tg_st_dtype)en->dtype),
                    (uint64_t)INT64_MAX, &nbytes))
        return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label, "%s: byte count of %s shape %s overflows",
                    ctx, tg_st_dtype_name((tg_st_dtype)en->dtype),
                    shape_str(ss, sizeof ss, en->ndim, en->shape));
    if (en->begin < 0 || en->end < en->begin)
        return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label,
                    "%s: data_offsets [%lld, %lld] are negative or reversed", ctx,
                    (long long)en->begin, (long long)en->end);
    if ((uint64_t)en->end > ps->data_size)
        return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label,
                    "%s: data_offsets [%lld, %lld] run past the end of the data section (%llu "
                    "bytes)",
                    ctx, (long long)en->begin, (long long)en->end,
                    (unsigned long long)ps->data_size);
    if ((uint64_t)(en->end - en->begin) != nbytes)
        return tg__io_fail(TG_ERR_FORMAT, ps->who, ps->label,
                    "%s: data_offsets [%lld, %lld] do not match dtype %s and shape %s (%llu "
                    "elements, %llu bytes)",
                    ctx, (long long)en->begin, (long long)en->end,
                    tg_st_dtype_name((tg_st_dtype)en->dtype),
                    shape_str(ss, sizeof ss, en->ndim, en->shape),
                    (unsigned long long)(nbytes / tg_st_dtype_size((tg_st_dtype)en->dtype)),
                    (unsigned long long)nbytes);
    return 0;
}

/* Room for one more key/value pair. */
static int meta_reserve(st_parser *ps, st_doc *d)
{
    if (d->n_meta * 2 + 2 > d->cap_meta) {
        int cap = d->cap_meta ? d->cap_meta * 2 : 8;
        char **m = realloc(d->meta, (size_t)cap * sizeof *m);
        if (!m)
            return tg__io_fail(TG_ERR_NOMEM, ps->who, ps->label, "out of memory parsing the header");
        d->meta = m;
        d->cap_meta = cap;
    }
    return 0;
}

static char *dup_s(st_parser *ps)
{
    char *c = malloc(ps->s_len + 1);
    if (!c) {
        tg__io_fail(TG_ERR_NOMEM, ps->who, ps->label, "out of memory parsing the header");
        return NULL;
    }
    memcpy(c, ps->s, ps->s_len + 1);
    return c;
}

/* "__metadata__": {"key": "value", ...} */
static int parse_meta(st_parser *ps, st_doc *d)
{
    skip_ws(ps);
    if (ps->pos >= ps->n || ps->h[ps->pos] != '{')
        return perr(ps, ps->pos, "\"__metadata__\" must be an object of strings");
    ps->pos++;
    if (peek(ps) == '}') {
        ps->pos++;
        return 0;
    }
    for (;;) {
        int rc;
        skip_ws(ps);
        size_t key_at = ps->pos;
        if ((rc = parse_string(ps, "a __metadata__ key", NULL, NULL)))
            return rc;
        if (ps->s_nul)
            return perr(ps, key_at, "__metadata__ key contains a NUL character");
        int is_crc = strcmp(ps->s, ST_CRC_KEY) == 0;
        if (meta_reserve(ps, d))
            return TG_ERR_NOMEM;
        char *key = dup_s(ps);
        if (!key)
            return TG_ERR_NOMEM;
        d->meta[d->n_meta * 2] = key;
        d->meta[d->n_meta * 2 + 1] = NULL;
        d->n_meta++;
        char qk[QBUF];
        quote(qk, sizeof qk, ps->s, ps->s_len);
        if ((rc = expect(ps, ':', "':' after a key")))
            return rc;
        skip_ws(ps);
        size_t val_at = ps->pos;
        if (ps->pos >= ps->n || ps->h[ps->pos] != '"')
            return perr(ps, val_at, "__metadata__ %s: the value must be a string", qk);
        size_t raw, raw_len;
        if ((rc = parse_string(ps, "a __metadata__ value", &raw, &raw_len)))
            return rc;
        if (ps->s_nul)
            return perr(ps, val_at, "__metadata__ %s: the value contains a NUL character", qk);
        char *val = dup_s(ps);
        if (!val)
            return TG_ERR_NOMEM;
        d->meta[d->n_meta * 2 - 1] = val;
        if (is_crc) {
            int ok = raw_len == 8 && ps->s_len == 8;
            for (size_t i = 0; ok && i < 8; i++)
                ok = (val[i] >= '0' && val[i] <= '9') || (val[i] >= 'a' && val[i] <= 'f');
            if (!ok)
                return perr(ps, val_at, "__metadata__ \"" ST_CRC_KEY
                                        "\" is not 8 lowercase hex digits");
            if (d->has_crc)
                return perr(ps, key_at, "duplicate __metadata__ key \"" ST_CRC_KEY "\"");
            d->has_crc = 1;
            d->crc_pos = raw;
        }
        int c = peek(ps);
        if (c == ',') {
            ps->pos++;
            continue;
        }
        if (c == '}') {
            ps->pos++;
            return 0;
        }
        return perr(ps, ps->pos, "expected ',' or '}' in \"__metadata__\"");
    }
}

static int parse_top(st_parser *ps, st_doc *d)
{
    int rc;
    skip_ws(ps);
    if (ps->pos >= ps->n || ps->h[ps->pos] != '{')
        return perr(ps, ps->pos, "the header must be a JSON object starting with '{'");
    ps->pos++;
    if (peek(ps) == '}') {
        ps->pos++;
    } else {
        for (;;) {
            skip_ws(ps);
            size_t key_at = ps->pos;
            if ((rc = parse_string(ps, "a tensor name", NULL, NULL)))
                return rc;
            if ((rc = expect(ps, ':', "':' after a key")))
                return rc;
            if (!ps->s_nul && strcmp(ps->s, "__metadata__") == 0) {
                if (d->has_meta)
                    return perr(ps, key_at, "duplicate key \"__metadata__\"");
                d->has_meta = 1;
                if ((rc = parse_meta(ps, d)))
                    return rc;
            } else {
                if (ps->s_len == 0)
                    return perr(ps, key_at, "empty tensor name");
                if (ps->s_len > ST_NAME_MAX)
                    return perr(ps, key_at, "tensor name of %zu bytes (at most %d)", ps->s_len,
                                ST_NAME_MAX);
                if (ps->s_nul)
                    return perr(ps, key_at, "tensor name contains a NUL character");
                if (d->n == d->cap) {
                    int cap = d->cap ? d->cap * 2 : 16;
                    st_entry *e = realloc(d->e, (size_t)cap * sizeof *e);
                    if (!e)
                        return tg__io_fail(TG_ERR_NOMEM, ps->who, ps->label,
                                    "out of memory parsing the header");
                    d->e = e;
                    d->cap = cap;
                }
                st_entry *en = &d->e[d->n];
                memset(en, 0, sizeof *en);
                size_t name_len = ps->s_len;
                if (!(en->name = dup_s(ps)))
                    return TG_ERR_NOMEM;
                d->n++;
                if ((rc = parse_entry(ps, en, name_len)))
                    return rc;
            }
            int c = peek(ps);
            if (c == ',') {
                ps->pos++;
                continue;
            }
            if (c == '}') {
                ps->pos++;
                break;
            }
            return perr(ps, ps->pos, "expected ',' or '}' after an entry");
        }
    }
    skip_ws(ps);
    if (ps->pos != ps->n)
        return perr(ps, ps->pos, "%zu bytes after the header object (only spaces may follow)",
                    ps->n - ps->pos);
    return 0;
}

static void doc_free(st_doc *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    for (int i = 0; i < d->n_meta * 2; i++)
        free(d->meta[i]);
    free(d->meta);
}

/* ============================================================ the file */

struct tg_st_file {
    int n;
    tg_st_tensor *t;   /* in data order */
    int *by_name;      /* indices of t sorted by name */
    int n_meta;
    const char **meta; /* key, value pairs sorted by key */
    char *pool;        /* every string: the label, names, metadata */
    void *block;       /* every tensor's data, each 64-byte aligned */
    const char *label; /* in pool */
};

/* Index comparators over the entries (passed explicitly: no global state, so
 * two threads may read files at once). */
typedef int (*idx_cmp)(const st_entry *e, int a, int b);

static int cmp_by_name(const st_entry *e, int a, int b) { return strcmp(e[a].name, e[b].name); }

static int cmp_by_offset(const st_entry *e, int a, int b)
{
    if (e[a].begin != e[b].begin)
        return e[a].begin < e[b].begin ? -1 : 1;
    if (e[a].end != e[b].end)
        return e[a].end < e[b].end ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Bottom-up merge sort of idx[0..n) (stable, no recursion); tmp holds n. */
static void sort_idx(int *idx, int n, const st_entry *e, idx_cmp cmp, int *tmp)
{
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp(e, idx[j], idx[i]) < 0 ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void tg_st_close(tg_st_file *f)
{
    if (!f)
        return;
    free(f->t);
    free(f->by_name);
    free(f->meta);
    free(f->pool);
    free(f->block);
    free(f);
}

int tg_st_count(const tg_st_file *f) { return f ? f->n : 0; }

const tg_st_tensor *tg_st_at(const tg_st_file *f, int i)
{
    if (!f) {
        tg_set_error(TG_ERR_NULL, "tg_st_at: file is NULL");
        return NULL;
    }
    if (i < 0 || i >= f->n) {
        tg__io_fail(TG_ERR_ARG, "tg_st_at", f->label, "index %d is outside 0..%d", i, f->n - 1);
        return NULL;
    }
    return &f->t[i];
}

const tg_st_tensor *tg_st_find(const tg_st_file *f, const char *name)
{
    if (!f || !name) {
        tg_set_error(TG_ERR_NULL, "tg_st_find: %s is NULL", f ? "name" : "file");
        return NULL;
    }
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t[f->by_name[mid]].name);
        if (c == 0)
            return &f->t[f->by_name[mid]];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    char qn[QBUF];
    tg__io_fail(TG_ERR_ARG, "tg_st_find", f->label, "no tensor named %s",
         quote(qn, sizeof qn, name, strlen(name)));
    return NULL;
}

const char *tg_st_meta(const tg_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    int lo = 0, hi = f->n_meta - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(key, f->meta[2 * mid]);
        if (c == 0)
            return f->meta[2 * mid + 1];
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The checks that need the whole header: unique names and metadata keys, the
 * offsets tiling the data section exactly, the CRC. 0 or a TG_ERR_*. idx gets
 * the entries in data order, by_name in name order. */
static int check_doc(st_parser *ps, st_doc *d, const unsigned char *bytes, size_t size,
                     unsigned flags, int *idx, int *by_name, int *tmp)
{
    const char *who = ps->who, *label = ps->label;
    int n = d->n;
    char q1[QBUF], q2[QBUF];

    for (int i = 0; i < n; i++)
        by_name[i] = i;
    sort_idx(by_name, n, d->e, cmp_by_name, tmp);
    for (int i = 1; i < n; i++) {
        const char *s = d->e[by_name[i]].name;
        if (strcmp(d->e[by_name[i - 1]].name, s) == 0)
            return tg__io_fail(TG_ERR_FORMAT, who, label, "duplicate tensor name %s",
                        quote(q1, sizeof q1, s, strlen(s)));
    }

    if (d->n_meta > 1)
        qsort(d->meta, (size_t)d->n_meta, 2 * sizeof *d->meta, cmp_meta);
    for (int i = 1; i < d->n_meta; i++)
        if (strcmp(d->meta[2 * i - 2], d->meta[2 * i]) == 0)
            return tg__io_fail(TG_ERR_FORMAT, who, label, "duplicate __metadata__ key %s",
                        quote(q1, sizeof q1, d->meta[2 * i], strlen(d->meta[2 * i])));

    for (int i = 0; i < n; i++)
        idx[i] = i;
    sort_idx(idx, n, d->e, cmp_by_offset, tmp);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = &d->e[idx[i]];
        if (e->begin < at) {
            const st_entry *p = &d->e[idx[i - 1]];
            return tg__io_fail(TG_ERR_FORMAT, who, label,
                        "data_offsets of tensor %s [%lld, %lld] and tensor %s [%lld, %lld] "
                        "overlap",
                        quote(q1, sizeof q1, p->name, strlen(p->name)), (long long)p->begin,
                        (long long)p->end, quote(q2, sizeof q2, e->name, strlen(e->name)),
                        (long long)e->begin, (long long)e->end);
        }
        if (e->begin > at)
            return tg__io_fail(TG_ERR_FORMAT, who, label,
                        "bytes [%lld, %lld) of the data section belong to no tensor (a gap "
                        "before tensor %s)",
                        (long long)at, (long long)e->begin,
                        quote(q1, sizeof q1, e->name, strlen(e->name)));
        at = e->end;
    }
    if ((uint64_t)at != ps->data_size)
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "the data section has %llu bytes but the tensors cover only [0, %lld)",
                    (unsigned long long)ps->data_size, (long long)at);

    if (d->has_crc) {
        /* Over the whole file with its own 8 digits read as '0'. */
        size_t p = 8 + d->crc_pos;
        uint32_t c = tg__crc32(0, bytes, p);
        c = tg__crc32(c, "00000000", 8);
        c = tg__crc32(c, bytes + p + 8, size - p - 8);
        char said[9];
        memcpy(said, bytes + p, 8);
        said[8] = '\0';
        if ((uint32_t)strtoul(said, NULL, 16) != c)
            return tg__io_fail(TG_ERR_FORMAT, who, label,
                        "crc32 mismatch: the file says %s, its contents give %08lx (the file "
                        "is corrupt)",
                        said, (unsigned long)c);
    } else if (flags & TG_ST_REQUIRE_CRC) {
        return tg__io_fail(TG_ERR_FORMAT, who, label,
                    "no \"" ST_CRC_KEY "\" in __metadata__ (TG_ST_REQUIRE_CRC): not written by "
                    "tgrad, or its metadata was edited");
    }
    return 0;
}

/* Validates the parsed header, then copies names, metadata and data (byte-
 * swapped on a big-endian host) into a new file. */
static tg_st_file *finish(st_parser *ps, st_doc *d, const unsigned char *bytes, size_t size,
                          unsigned flags)
{
    const char *who = ps->who, *label = ps->label;
    int n = d->n;
    size_t cnt = (size_t)n + 1;
    int *idx = malloc(cnt * sizeof *idx), *tmp = malloc(cnt * sizeof *tmp);
    tg_st_file *f = calloc(1, sizeof *f);
    if (!idx || !tmp || !f || !(f->by_name = malloc(cnt * sizeof *f->by_name))) {
        tg__io_fail(TG_ERR_NOMEM, who, label, "out of memory");
        goto fail;
    }
    if (check_doc(ps, d, bytes, size, flags, idx, f->by_name, tmp))
        goto fail;

    size_t pool_size = strlen(label) + 1, block_size = 0;
    for (int i = 0; i < n; i++) {
        pool_size += strlen(d->e[i].name) + 1;
        size_t nb = (size_t)(d->e[i].end - d->e[i].begin);
        block_size += (nb + ST_DATA_ALIGN - 1) / ST_DATA_ALIGN * ST_DATA_ALIGN;
    }
    for (int i = 0; i < 2 * d->n_meta; i++)
        pool_size += strlen(d->meta[i]) + 1;
    if (block_size == 0)
        block_size = ST_DATA_ALIGN;
    if (posix_memalign(&f->block, ST_DATA_ALIGN, block_size) != 0) {
        f->block = NULL;
        tg__io_fail(TG_ERR_NOMEM, who, label, "out of memory for %zu bytes of tensor data", block_size);
        goto fail;
    }
    if (!(f->t = calloc(cnt, sizeof *f->t)) ||
        !(f->meta = calloc(2 * (size_t)d->n_meta + 1, sizeof *f->meta)) ||
        !(f->pool = malloc(pool_size))) {
        tg__io_fail(TG_ERR_NOMEM, who, label, "out of memory");
        goto fail;
    }
    f->n = n;
    f->n_meta = d->n_meta;

    char *sp = f->pool;
    size_t len = strlen(label) + 1;
    memcpy(sp, label, len);
    f->label = sp;
    sp += len;
    const unsigned char *data = bytes + (size - ps->data_size);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = &d->e[idx[i]];
        tg_st_tensor *t = &f->t[i];
        len = strlen(e->name) + 1;
        memcpy(sp, e->name, len);
        t->name = sp;
        sp += len;
        t->dtype = (tg_st_dtype)e->dtype;
        t->ndim = e->ndim;
        memcpy(t->shape, e->shape, sizeof t->shape);
        size_t nb = (size_t)(e->end - e->begin);
        unsigned char *dst = (unsigned char *)f->block + off;
        copy_le(dst, data + e->begin, nb, tg_st_dtype_size(t->dtype));
        t->data = dst;
        off += (nb + ST_DATA_ALIGN - 1) / ST_DATA_ALIGN * ST_DATA_ALIGN;
    }
    /* by_name holds entry numbers; f->t is in data order (entry idx[i] is t[i]). */
    for (int i = 0; i < n; i++)
        tmp[idx[i]] = i;
    for (int i = 0; i < n; i++)
        f->by_name[i] = tmp[f->by_name[i]];
    for (int i = 0; i < 2 * d->n_meta; i++) {
        len = strlen(d->meta[i]) + 1;
        memcpy(sp, d->meta[i], len);
        f->meta[i] = sp;
        sp += len;
    }
    free(idx);
    free(tmp);
    return f;

fail:
    tg_st_close(f);
    free(idx);
    free(tmp);
    return NULL;
}

static tg_st_file *parse_bytes(const char *who, const char *label, const unsigned char *bytes,
                               size_t size, unsigned flags)
{
    if (size < 8) {
        tg__io_fail(TG_ERR_FORMAT, who, label,
             "file is %zu bytes, shorter than the 8-byte header size prefix", size);
        return NULL;
    }
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | bytes[i];
    if (hn > ST_HEADER_MAX) {
        tg__io_fail(TG_ERR_FORMAT, who, label,
             "header size %llu exceeds the limit of %zu bytes (100 MiB)", (unsigned long long)hn,
             ST_HEADER_MAX);
        return NULL;
    }
    if (hn > size - 8) {
        tg__io_fail(TG_ERR_FORMAT, who, label,
             "header size %llu runs past the end of the file (%zu bytes after the 8-byte "
             "prefix): truncated?",
             (unsigned long long)hn, size - 8);
        return NULL;
    }
    st_parser ps = {.who = who,
                    .label = label,
                    .h = bytes + 8,
                    .n = (size_t)hn,
                    .data_size = size - 8 - (size_t)hn};
    st_doc d = {0};
    tg_st_file *f = NULL;
    if (parse_top(&ps, &d) == 0)
        f = finish(&ps, &d, bytes, size, flags);
    free(ps.s);
    doc_free(&d);
    return f;
}

tg_st_file *tg_st_parse(const void *bytes, size_t size, unsigned flags, const char *label)
{
    if (!label)
        label = "<memory>";
    if (!bytes && size > 0) {
        tg_set_error(TG_ERR_NULL, "tg_st_parse: %s: bytes is NULL", label);
        return NULL;
    }
    if (!bytes)
        bytes = "";
    return parse_bytes("tg_st_parse", label, bytes, size, flags);
}

/* The whole file into a malloc'd buffer (read until EOF, so a file that
 * changes size while read is still read consistently). */
static int read_all(const char *who, const char *path, unsigned char **out, size_t *out_size)
{
    char eb[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tg__io_fail(TG_ERR_IO, who, path, "cannot open: %s", tg__io_errstr(errno, eb, sizeof eb));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tg__io_fail(TG_ERR_IO, who, path, "cannot stat: %s", tg__io_errstr(e, eb, sizeof eb));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return tg__io_fail(TG_ERR_IO, who, path, "is a folder, not a file");
    }
    size_t cap = 4096;
    if (S_ISREG(st.st_mode) && st.st_size > 0 && (uint64_t)st.st_size < SIZE_MAX - 1)
        cap = (size_t)st.st_size + 1;
    unsigned char *buf = malloc(cap);
    size_t len = 0;
    if (!buf) {
        close(fd);
        return tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory for %zu bytes", cap);
    }
    for (;;) {
        if (len == cap) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                close(fd);
                return tg__io_fail(TG_ERR_NOMEM, who, path, "file too large");
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory for %zu bytes", cap * 2);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            free(buf);
            close(fd);
            return tg__io_fail(TG_ERR_IO, who, path, "read failed after %zu bytes: %s", len,
                        tg__io_errstr(e, eb, sizeof eb));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    *out = buf;
    *out_size = len;
    return 0;
}

tg_st_file *tg_st_read(const char *path, unsigned flags)
{
    if (!path) {
        tg_set_error(TG_ERR_NULL, "tg_st_read: path is NULL");
        return NULL;
    }
    unsigned char *buf;
    size_t size;
    if (read_all("tg_st_read", path, &buf, &size))
        return NULL;
    tg_st_file *f = parse_bytes("tg_st_read", path, buf, size, flags);
    free(buf);
    return f;
}

/* ============================================================ the writer */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t k)
{
    if (b->oom)
        return;
    if (b->len + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + k + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, k);
    b->len += k;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string as serde_json writes it: ", \ and control characters
 * escaped (\b \f \n \r \t, else \u00XX), everything else as is. */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        switch (c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_put(b, esc, 6);
            } else {
                sb_put(b, (const char *)&c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_int(sbuf *b, long long v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%lld", v);
    sb_put(b, t, (size_t)k);
}

typedef struct w_item {
    const char *name;
    int rank; /* safetensors' dtype order: I64 > F64 > F32 */
    int idx;
} w_item;

static int dtype_rank(tg_st_dtype d) { return d == TG_ST_I64 ? 2 : d == TG_ST_F64 ? 1 : 0; }

static int cmp_write_order(const void *a, const void *b)
{
    const w_item *x = a, *y = b;
    if (x->rank != y->rank)
        return y->rank - x->rank;
    return strcmp(x->name, y->name);
}

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp(((const w_item *)a)->name, ((const w_item *)b)->name);
}

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(((const char *const *)a)[0], ((const char *const *)b)[0]);
}

static int write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes n bytes of elements in little-endian order (through a small buffer
 * on a big-endian host). */
static int write_le(int fd, const void *src, size_t n, size_t elsize)
{
    if (host_is_little_endian())
        return write_all(fd, src, n);
    unsigned char tmp[1 << 16];
    const unsigned char *s = src;
    while (n > 0) {
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        copy_le(tmp, s, k, elsize);
        if (write_all(fd, tmp, k))
            return -1;
        s += k;
        n -= k;
    }
    return 0;
}

/* CRC of little-endian data (host order in memory). */
static uint32_t crc_le(uint32_t c, const void *src, size_t n, size_t elsize)
{
    if (host_is_little_endian())
        return tg__crc32(c, src, n);
    unsigned char tmp[4096];
    const unsigned char *s = src;
    while (n > 0) {
        size_t k = n < sizeof tmp ? n : sizeof tmp;
        copy_le(tmp, s, k, elsize);
        c = tg__crc32(c, tmp, k);
        s += k;
        n -= k;
    }
    return c;
}

/* The mode a new file gets from open(..., 0666): 0666 & ~umask, read without
 * changing the umask (umask() would race with other threads). */
static mode_t new_file_mode(void)
{
    mode_t mode = 0644;
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return mode;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        unsigned m;
        if (sscanf(line, "Umask: %o", &m) == 1) {
            mode = (mode_t)(0666 & ~m);
            break;
        }
    }
    fclose(fp);
    return mode;
}

/* The folder holding path ("." when there is no slash). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    size_t k = (size_t)(slash - path);
    char *d = malloc(k + 1);
    if (d) {
        memcpy(d, path, k);
        d[k] = '\0';
    }
    return d;
}

static int validate_tensor(const char *path, const tg_st_tensor *t, int i, uint64_t *nbytes)
{
    const char *who = "tg_st_write";
    char qn[QBUF], ss[TG_SHAPE_STR_MAX];
    if (!t->name)
        return tg__io_fail(TG_ERR_NULL, who, path, "tensor %d: name is NULL", i);
    size_t len = strlen(t->name);
    quote(qn, sizeof qn, t->name, len);
    if (len == 0)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %d: empty name", i);
    if (len > ST_NAME_MAX)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %d: name %s is %zu bytes (at most %d)", i, qn,
                    len, ST_NAME_MAX);
    if (utf8_valid_prefix((const unsigned char *)t->name, len) != len)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %d: name %s is not valid UTF-8", i, qn);
    if (strcmp(t->name, "__metadata__") == 0)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %d: the name \"__metadata__\" is reserved", i);
    if ((unsigned)t->dtype > (unsigned)TG_ST_I64)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %s: unknown dtype %d", qn, (int)t->dtype);
    if (t->ndim < 0 || t->ndim > TG_MAX_DIMS)
        return tg__io_fail(TG_ERR_ARG, who, path, "tensor %s: ndim %d is outside 0..%d", qn, t->ndim,
                    TG_MAX_DIMS);
    for (int k = 0; k < t->ndim; k++)
        if (t->shape[k] < 0)
            return tg__io_fail(TG_ERR_ARG, who, path, "tensor %s: negative dimension in shape %s", qn,
                        shape_str(ss, sizeof ss, t->ndim, t->shape));
    if (shape_bytes(t->ndim, t->shape, tg_st_dtype_size(t->dtype), (uint64_t)INT64_MAX / 2,
                    nbytes) ||
        *nbytes > (uint64_t)(SIZE_MAX / 2))
        return tg__io_fail(TG_ERR_OVERFLOW, who, path, "tensor %s: byte count of shape %s overflows", qn,
                    shape_str(ss, sizeof ss, t->ndim, t->shape));
    if (*nbytes > 0 && !t->data)
        return tg__io_fail(TG_ERR_NULL, who, path, "tensor %s: data is NULL for shape %s", qn,
                    shape_str(ss, sizeof ss, t->ndim, t->shape));
    return 0;
}

/* Builds the header (with "00000000" where the CRC goes) into *hb, its CRC
 * position into *crc_pos, and the Python writer's order into items. */
static int build_header(const char *path, const tg_st_tensor *tensors, int n,
                        const char *const *meta_kv, int n_meta, w_item *items, uint64_t *nbytes,
                        const char **pairs, sbuf *hb, size_t *crc_pos)
{
    const char *who = "tg_st_write";
    char q1[QBUF];
    int rc;

    /* Tensors: valid, unique names; then dtype (I64, F64, F32) and name order. */
    for (int i = 0; i < n; i++) {
        if ((rc = validate_tensor(path, &tensors[i], i, &nbytes[i])))
            return rc;
        items[i].name = tensors[i].name;
        items[i].rank = dtype_rank(tensors[i].dtype);
        items[i].idx = i;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_item_name);
    for (int i = 1; i < n; i++)
        if (strcmp(items[i - 1].name, items[i].name) == 0)
            return tg__io_fail(TG_ERR_ARG, who, path, "duplicate tensor name %s",
                        quote(q1, sizeof q1, items[i].name, strlen(items[i].name)));
    qsort(items, (size_t)n, sizeof *items, cmp_write_order);

    /* Metadata: the caller's pairs, "format": "pt" unless given, the CRC. */
    int np = 0, has_format = 0;
    for (int i = 0; i < n_meta; i++) {
        const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
        if (!k || !v)
            return tg__io_fail(TG_ERR_NULL, who, path, "metadata pair %d has a NULL %s", i,
                        k ? "value" : "key");
        if (utf8_valid_prefix((const unsigned char *)k, strlen(k)) != strlen(k) ||
            utf8_valid_prefix((const unsigned char *)v, strlen(v)) != strlen(v))
            return tg__io_fail(TG_ERR_ARG, who, path, "metadata pair %d (key %s) is not valid UTF-8", i,
                        quote(q1, sizeof q1, k, strlen(k)));
        if (strcmp(k, ST_CRC_KEY) == 0)
            return tg__io_fail(TG_ERR_ARG, who, path,
                        "metadata key \"" ST_CRC_KEY "\" is reserved (the writer adds it)");
        if (strcmp(k, "format") == 0)
            has_format = 1;
        pairs[2 * np] = k;
        pairs[2 * np + 1] = v;
        np++;
    }
    if (!has_format) {
        pairs[2 * np] = "format";
        pairs[2 * np + 1] = "pt";
        np++;
    }
    pairs[2 * np] = ST_CRC_KEY;
    pairs[2 * np + 1] = "00000000";
    np++;
    qsort(pairs, (size_t)np, 2 * sizeof *pairs, cmp_pair);
    for (int i = 1; i < np; i++)
        if (strcmp(pairs[2 * i - 2], pairs[2 * i]) == 0)
            return tg__io_fail(TG_ERR_ARG, who, path, "duplicate metadata key %s",
                        quote(q1, sizeof q1, pairs[2 * i], strlen(pairs[2 * i])));

    /* Compact JSON as serde_json writes it: __metadata__ first, then the
     * tensors in data order; spaces up to a multiple of 8 bytes. */
    sb_str(hb, "{\"__metadata__\":{");
    for (int i = 0; i < np; i++) {
        if (i)
            sb_str(hb, ",");
        sb_json(hb, pairs[2 * i]);
        sb_str(hb, ":");
        if (strcmp(pairs[2 * i], ST_CRC_KEY) == 0)
            *crc_pos = hb->len + 1;
        sb_json(hb, pairs[2 * i + 1]);
    }
    sb_str(hb, "}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const tg_st_tensor *t = &tensors[items[i].idx];
        uint64_t nb = nbytes[items[i].idx];
        if (nb > (uint64_t)INT64_MAX - off)
            return tg__io_fail(TG_ERR_OVERFLOW, who, path, "the total data size overflows");
        sb_str(hb, ",");
        sb_json(hb, t->name);
        sb_str(hb, ":{\"dtype\":\"");
        sb_str(hb, tg_st_dtype_name(t->dtype));
        sb_str(hb, "\",\"shape\":[");
        for (int k = 0; k < t->ndim; k++) {
            if (k)
                sb_str(hb, ",");
            sb_int(hb, (long long)t->shape[k]);
        }
        sb_str(hb, "],\"data_offsets\":[");
        sb_int(hb, (long long)off);
        sb_str(hb, ",");
        off += nb;
        sb_int(hb, (long long)off);
        sb_str(hb, "]}");
    }
    sb_str(hb, "}");
    while (!hb->oom && hb->len % 8 != 0)
        sb_str(hb, " ");
    if (hb->oom)
        return tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory building the header");
    if (hb->len > ST_HEADER_MAX)
        return tg__io_fail(TG_ERR_ARG, who, path,
                    "the header of %zu bytes exceeds the limit of %zu bytes (100 MiB)", hb->len,
                    ST_HEADER_MAX);
    return 0;
}

int tg_st_write(const char *path, const tg_st_tensor *tensors, int n, const char *const *meta_kv,
                int n_meta)
{
    const char *who = "tg_st_write";
    if (!path)
        return tg_set_error(TG_ERR_NULL, "tg_st_write: path is NULL");
    if (n < 0 || n_meta < 0)
        return tg__io_fail(TG_ERR_ARG, who, path, "negative count (n %d, n_meta %d)", n, n_meta);
    if (n > 0 && !tensors)
        return tg__io_fail(TG_ERR_NULL, who, path, "tensors is NULL for n %d", n);
    if (n_meta > 0 && !meta_kv)
        return tg__io_fail(TG_ERR_NULL, who, path, "meta_kv is NULL for n_meta %d", n_meta);

    int rc = 0, fd = -1, created = 0;
    size_t plen = strlen(path), crc_pos = 0;
    w_item *items = malloc(((size_t)n + 1) * sizeof *items);
    uint64_t *nbytes = malloc(((size_t)n + 1) * sizeof *nbytes);
    const char **pairs = malloc(((size_t)n_meta + 2) * 2 * sizeof *pairs);
    char *tmp_path = malloc(plen + sizeof ".tmp.XXXXXX"), *dir = dir_of(path);
    sbuf hb = {0};
    const char *step = "";
    char eb[128];
    unsigned char prefix[8];
    struct stat st;

    if (!items || !nbytes || !pairs || !tmp_path || !dir) {
        rc = tg__io_fail(TG_ERR_NOMEM, who, path, "out of memory");
        goto out;
    }
    if ((rc = build_header(path, tensors, n, meta_kv, n_meta, items, nbytes, pairs, &hb,
                           &crc_pos)))
        goto out;
    for (int i = 0; i < 8; i++)
        prefix[i] = (unsigned char)((uint64_t)hb.len >> (8 * i));

    /* The CRC over prefix, header (with "00000000") and data, patched in. */
    uint32_t crc = tg__crc32(0, prefix, 8);
    crc = tg__crc32(crc, hb.p, hb.len);
    for (int i = 0; i < n; i++) {
        const tg_st_tensor *t = &tensors[items[i].idx];
        crc = crc_le(crc, t->data, (size_t)nbytes[items[i].idx], tg_st_dtype_size(t->dtype));
    }
    char digits[9];
    snprintf(digits, sizeof digits, "%08lx", (unsigned long)crc);
    memcpy(hb.p + crc_pos, digits, 8);

    /* Atomic replace: temp file, write, fsync, close, rename, fsync folder. */
    memcpy(tmp_path, path, plen);
    memcpy(tmp_path + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    fd = mkstemp(tmp_path);
    if (fd < 0) {
        rc = tg__io_fail(TG_ERR_IO, who, path, "cannot create the temporary file %s: %s", tmp_path,
                  tg__io_errstr(errno, eb, sizeof eb));
        goto out;
    }
    created = 1;
    /* mkstemp makes 0600; give the file the mode it would have had. */
    step = "set the mode of";
    if (fchmod(fd, stat(path, &st) == 0 ? (st.st_mode & 07777) : new_file_mode()) != 0)
        goto io_fail;
    step = "write";
    if (write_all(fd, prefix, 8) || write_all(fd, hb.p, hb.len))
        goto io_fail;
    for (int i = 0; i < n; i++) {
        const tg_st_tensor *t = &tensors[items[i].idx];
        if (write_le(fd, t->data, (size_t)nbytes[items[i].idx], tg_st_dtype_size(t->dtype)))
            goto io_fail;
    }
    step = "fsync";
    if (fsync(fd) != 0)
        goto io_fail;
    step = "close";
    int closed = close(fd);
    fd = -1;
    if (closed != 0)
        goto io_fail;
    step = "rename";
    if (rename(tmp_path, path) != 0)
        goto io_fail;
    created = 0; /* the temporary file is the target now */

    /* Make the rename durable. Some file systems cannot fsync a folder
     * (EINVAL); that is not an error. */
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL)) {
        int e = errno;
        if (dfd >= 0)
            close(dfd);
        rc = tg__io_fail(TG_ERR_IO, who, path,
                  "the new file is in place but fsync of its folder %s failed: %s (it may not "
                  "survive a power loss)",
                  dir, tg__io_errstr(e, eb, sizeof eb));
        goto out;
    }
    close(dfd);
    goto out;

io_fail:
    rc = tg__io_fail(TG_ERR_IO, who, path,
              "cannot %s the temporary file %s: %s (the old file, if any, is untouched)", step,
              tmp_path, tg__io_errstr(errno, eb, sizeof eb));
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp_path);
    free(tmp_path);
    free(dir);
    free(hb.p);
    free(items);
    free(nbytes);
    free(pairs);
    return rc;
}
