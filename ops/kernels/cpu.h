/* Runtime CPU dispatch for the kernels: one binary runs everywhere, and each
 * SIMD kernel is compiled with a target attribute and chosen at run time.
 * tg__cpu() is the level kernels should use: what the CPU (and OS) supports,
 * capped by the environment variable TG_CPU=generic|avx2|avx512 (read once),
 * or by tg__cpu_force (tests exercise every path on one machine). */
#ifndef TG_KERNELS_CPU_H
#define TG_KERNELS_CPU_H

typedef enum tg__cpu_level {
    TG_CPU_GENERIC = 0, /* plain C */
    TG_CPU_AVX2,        /* AVX2 + FMA */
    TG_CPU_AVX512       /* AVX-512 F, DQ, BW, VL + FMA */
} tg__cpu_level;

/* The level to dispatch on (cheap: one relaxed atomic load after the first
 * call). */
tg__cpu_level tg__cpu(void);
/* The highest level this CPU supports, ignoring TG_CPU and forcing. */
tg__cpu_level tg__cpu_max(void);
/* Forces the level (clamped to tg__cpu_max) and returns the previous one;
 * for tests. Not meant to be called while kernels run on other threads. */
tg__cpu_level tg__cpu_force(tg__cpu_level level);
/* Forgets the decided level: the next tg__cpu() reads TG_CPU again (tests). */
void tg__cpu_reset(void);
/* "generic", "avx2", "avx512". */
const char *tg__cpu_name(tg__cpu_level level);

/* Attributes for functions holding SIMD intrinsics (x86-64 only). */
#if defined(__x86_64__) || defined(__i386__)
#define TG_HAVE_X86 1
#define TG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TG_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#else
#define TG_HAVE_X86 0
#endif

#endif
