/* libFuzzer harness for the IDX reader: tg_idx_parse on arbitrary bytes; on
 * success it checks numel against the dims and reads every data byte. Build:
 *   clang -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_idx.c nn/idx.c \
 *     autograd/error.c autograd/tensor.c -lm
 * Seeds: fuzz/corpus/idx/. */
#include <stddef.h>
#include <stdint.h>

#include "nn/idx.h"

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_idx *x = tg_idx_parse(data, size, "fuzz");
    if (x) {
        /* Zero dims first: [2^32-1, ..., 0] is valid, with no elements, and
         * multiplying in order would overflow. */
        int64_t n = 1;
        for (int i = 0; i < x->ndim; i++)
            if (x->dims[i] == 0)
                n = 0;
        for (int i = 0; i < x->ndim && n; i++)
            n *= x->dims[i];
        if (n != x->numel || (size_t)x->numel + 4 + 4 * (size_t)x->ndim != size)
            __builtin_trap();
        unsigned acc = 0;
        for (int64_t i = 0; i < x->numel; i++)
            acc += x->data[i];
        sink = acc;
    }
    tg_idx_free(x);
    return 0;
}
