/* The kernels' thread count: set by tg_set_num_threads, or read once from the
 * TG_NUM_THREADS environment variable, or OpenMP's default. */
#include "threads.h"

#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int n_threads; /* 0: not decided yet */

static int default_threads(void)
{
    const char *env = getenv("TG_NUM_THREADS");
    if (env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (end != env && *end == '\0' && v >= 1 && v <= 1024)
            return (int)v;
    }
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int tg__threads(void)
{
    if (n_threads == 0)
        n_threads = default_threads();
    return n_threads;
}

/* Public (declared in ops/ops.h). */
int tg_set_num_threads(int n);
int tg_num_threads(void);

int tg_set_num_threads(int n)
{
    int old = tg__threads();
    n_threads = n >= 1 ? n : default_threads();
#ifndef _OPENMP
    n_threads = 1;
#endif
    return old;
}

int tg_num_threads(void) { return tg__threads(); }
