/* The heap-call counter of tests/alloc_hook.h: __wrap_* functions for the
 * linker's --wrap, forwarding to the real allocator and counting while on. */
#include "alloc_hook.h"

#include <execinfo.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Weak, so that a binary linked without --wrap still links (the __wrap_*
 * functions are then never called and tgt_alloc_hooked() says so). */
#define WEAK __attribute__((weak))
WEAK void *__real_malloc(size_t size);
WEAK void *__real_calloc(size_t n, size_t size);
WEAK void *__real_realloc(void *p, size_t size);
WEAK void __real_free(void *p);
WEAK void *__real_aligned_alloc(size_t align, size_t size);
WEAK int __real_posix_memalign(void **out, size_t align, size_t size);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);
void *__wrap_aligned_alloc(size_t align, size_t size);
int __wrap_posix_memalign(void **out, size_t align, size_t size);

static atomic_bool counting, tracing;
static atomic_long n_malloc, n_calloc, n_realloc, n_free, n_aligned, n_memalign;
/* backtrace() may allocate the first time (it loads libgcc_s); that call goes
 * to libc's malloc, not through the wrap, but a guard keeps any re-entry out. */
static _Thread_local bool in_trace;

static void trace(const char *what, size_t size, const void *p)
{
    if (in_trace)
        return;
    in_trace = true;
    char line[160];
    int n = snprintf(line, sizeof line, "alloc_hook: %s(%zu) %p counted during a measured step\n",
                     what, size, p);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    void *frames[32];
    int depth = backtrace(frames, 32);
    backtrace_symbols_fd(frames, depth, STDERR_FILENO);
    in_trace = false;
}

static void count(atomic_long *c, const char *what, size_t size, const void *p)
{
    if (!atomic_load_explicit(&counting, memory_order_relaxed))
        return;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    if (atomic_load_explicit(&tracing, memory_order_relaxed))
        trace(what, size, p);
}

void *__wrap_malloc(size_t size)
{
    count(&n_malloc, "malloc", size, NULL);
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    count(&n_calloc, "calloc", n * size, NULL);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    count(&n_realloc, "realloc", size, p);
    return __real_realloc(p, size);
}

void __wrap_free(void *p)
{
    count(&n_free, "free", 0, p);
    __real_free(p);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    count(&n_aligned, "aligned_alloc", size, NULL);
    return __real_aligned_alloc(align, size);
}

int __wrap_posix_memalign(void **out, size_t align, size_t size)
{
    count(&n_memalign, "posix_memalign", size, NULL);
    return __real_posix_memalign(out, align, size);
}

void tgt_alloc_start(bool trace_calls)
{
    const char *env = getenv("TGT_ALLOC_TRACE");
    atomic_store(&n_malloc, 0);
    atomic_store(&n_calloc, 0);
    atomic_store(&n_realloc, 0);
    atomic_store(&n_free, 0);
    atomic_store(&n_aligned, 0);
    atomic_store(&n_memalign, 0);
    atomic_store(&tracing, trace_calls || (env && !strcmp(env, "1")));
    atomic_store(&counting, true);
}

tgt_alloc_counts tgt_alloc_stop(void)
{
    atomic_store(&counting, false);
    return (tgt_alloc_counts){atomic_load(&n_malloc),  atomic_load(&n_calloc),
                              atomic_load(&n_realloc), atomic_load(&n_free),
                              atomic_load(&n_aligned), atomic_load(&n_memalign)};
}

bool tgt_alloc_hooked(void)
{
    /* Without --wrap=malloc this file's own malloc reaches libc directly and
     * is not counted. The pointer goes through a volatile so the pair is not
     * elided. */
    bool was = atomic_exchange(&counting, true);
    long before = atomic_load(&n_malloc);
    void *volatile p = malloc(1);
    free(p);
    bool hooked = atomic_load(&n_malloc) > before;
    atomic_fetch_sub(&n_malloc, hooked ? 1 : 0);
    if (hooked)
        atomic_fetch_sub(&n_free, 1);
    atomic_store(&counting, was);
    return hooked;
}

long tgt_alloc_total(const tgt_alloc_counts *c)
{
    return c->n_malloc + c->n_calloc + c->n_realloc + c->n_free + c->n_aligned_alloc +
           c->n_posix_memalign;
}

void tgt_alloc_format(const tgt_alloc_counts *c, char *buf, size_t size)
{
    snprintf(buf, size, "malloc %ld, calloc %ld, realloc %ld, free %ld, aligned_alloc %ld, "
                        "posix_memalign %ld",
             c->n_malloc, c->n_calloc, c->n_realloc, c->n_free, c->n_aligned_alloc,
             c->n_posix_memalign);
}
