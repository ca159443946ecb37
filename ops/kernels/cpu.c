/* Runtime CPU feature detection for kernel dispatch, the TG_CPU environment
 * cap and the forcing hook for tests. The kernels themselves live elsewhere. */
#include "cpu.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"generic", "avx2", "avx512"};

/* -1 until decided; then the level in use. */
static _Atomic int level_used = -1;
static _Atomic int level_max = -1;

static tg__cpu_level detect(void)
{
#if TG_HAVE_X86 && (defined(__GNUC__) || defined(__clang__))
    /* These also check that the OS saves the wide registers (XCR0). */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return TG_CPU_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return TG_CPU_AVX2;
#endif
    return TG_CPU_GENERIC;
}

tg__cpu_level tg__cpu_max(void)
{
    int m = atomic_load_explicit(&level_max, memory_order_relaxed);
    if (m < 0) {
        m = (int)detect();
        atomic_store_explicit(&level_max, m, memory_order_relaxed);
    }
    return (tg__cpu_level)m;
}

/* The detected level, capped by TG_CPU when it names a level. */
static tg__cpu_level from_env(void)
{
    tg__cpu_level m = tg__cpu_max();
    const char *env = getenv("TG_CPU");
    if (env)
        for (int i = 0; i <= (int)TG_CPU_AVX512; i++)
            if (strcmp(env, names[i]) == 0)
                return (tg__cpu_level)i < m ? (tg__cpu_level)i : m;
    return m;
}

tg__cpu_level tg__cpu(void)
{
    int l = atomic_load_explicit(&level_used, memory_order_relaxed);
    if (l < 0) {
        l = (int)from_env();
        atomic_store_explicit(&level_used, l, memory_order_relaxed);
    }
    return (tg__cpu_level)l;
}

tg__cpu_level tg__cpu_force(tg__cpu_level level)
{
    tg__cpu_level old = tg__cpu();
    tg__cpu_level m = tg__cpu_max();
    if ((int)level < 0)
        level = TG_CPU_GENERIC;
    atomic_store_explicit(&level_used, (int)(level < m ? level : m), memory_order_relaxed);
    return old;
}

void tg__cpu_reset(void) { atomic_store_explicit(&level_used, -1, memory_order_relaxed); }

const char *tg__cpu_name(tg__cpu_level level)
{
    return (int)level >= 0 && (int)level <= (int)TG_CPU_AVX512 ? names[level] : "unknown";
}
