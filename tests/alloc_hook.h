/* Counting heap calls for the zero-allocation test (tests/test_alloc.c).
 *
 * tests/alloc_hook.c defines __wrap_malloc, __wrap_calloc, __wrap_realloc,
 * __wrap_free, __wrap_aligned_alloc and __wrap_posix_memalign, each forwarding
 * to __real_*; the binary must be linked with
 *   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=aligned_alloc,--wrap=posix_memalign
 * so that every call from the objects linked in (the library, the tests) goes
 * through them; calls made inside shared libraries (libc, libgomp, Criterion)
 * are not seen. Calls are counted, from every thread, only between
 * tgt_alloc_start and tgt_alloc_stop. Works under ASan (__real_malloc is then
 * ASan's malloc). */
#ifndef TGT_ALLOC_HOOK_H
#define TGT_ALLOC_HOOK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tgt_alloc_counts {
    long n_malloc, n_calloc, n_realloc, n_free, n_aligned_alloc, n_posix_memalign;
} tgt_alloc_counts;

/* Zeroes the counts and starts counting. With trace (or the environment
 * variable TGT_ALLOC_TRACE=1), each counted call also prints its name, size
 * and a backtrace to stderr (resolve with addr2line -e BINARY -f ADDR). */
void tgt_alloc_start(bool trace);
/* Stops counting; returns the counts since tgt_alloc_start. */
tgt_alloc_counts tgt_alloc_stop(void);
/* True when the binary was linked with the --wrap options (a call is seen). */
bool tgt_alloc_hooked(void);
/* Sum of all six counts. */
long tgt_alloc_total(const tgt_alloc_counts *c);
/* "malloc 0, calloc 0, realloc 0, free 0, aligned_alloc 0, posix_memalign 0". */
void tgt_alloc_format(const tgt_alloc_counts *c, char *buf, size_t size);

#endif
