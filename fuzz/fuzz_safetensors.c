/* libFuzzer harness for the safetensors reader: tg_st_parse on arbitrary
 * bytes, with and without TG_ST_REQUIRE_CRC. On success it touches every
 * tensor byte and every lookup so ASan sees any out-of-bounds pointer. Build:
 *   clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_safetensors.c \
 *     nn/safetensors.c nn/crc32.c autograd/error.c autograd/tensor.c -lm
 * Seeds: fuzz/corpus/safetensors/; dictionary: fuzz/safetensors.dict. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nn/safetensors.h"

static volatile unsigned sink;

static void touch(const tg_st_file *f)
{
    unsigned acc = 0;
    for (int i = 0; i < tg_st_count(f); i++) {
        const tg_st_tensor *t = tg_st_at(f, i);
        int64_t numel = 1;
        for (int k = 0; k < t->ndim; k++)
            numel *= t->shape[k];
        const unsigned char *p = t->data;
        size_t nb = (size_t)numel * tg_st_dtype_size(t->dtype);
        for (size_t k = 0; k < nb; k++)
            acc += p[k];
        if (tg_st_find(f, t->name) != t)
            __builtin_trap();
        acc += (unsigned)strlen(t->name);
    }
    const char *v = tg_st_meta(f, "format");
    if (v)
        acc += (unsigned)strlen(v);
    v = tg_st_meta(f, "tgrad_crc32");
    if (v && strlen(v) != 8)
        __builtin_trap();
    sink = acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (unsigned flags = 0; flags < 2; flags++) {
        tg_st_file *f = tg_st_parse(data, size, flags, "fuzz");
        if (f)
            touch(f);
        tg_st_close(f);
    }
    return 0;
}
