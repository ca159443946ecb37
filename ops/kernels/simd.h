/* What every multiversioned kernel file shares (include after cpu.h and
 * threads.h): no FMA contraction, the omp simd loop marker, the targets of the
 * float32 copies, the no-trapping-math attribute and the pick of a copy for
 * this CPU. Kernels written once as a macro body DEF(T, SUF, ATTR) are
 * instantiated with F32_COPIES(DEF) and called through PICK_F32(fn). */
#ifndef TG_KERNELS_SIMD_H
#define TG_KERNELS_SIMD_H

#include "cpu.h"
#include "threads.h"

/* No FMA contraction (GCC's ISO C mode already has none): every copy of a
 * loop must round the same way. clang warns when an omp simd loop stays
 * scalar (as under ASan); such a loop is as correct, only slower. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* One loop of independent iterations the compiler may vectorise (a no-op
 * without OpenMP, where clang still vectorises and GCC at -O2 does not). */
#define TG_SIMD TG_OMP("omp simd")

/* The copies' targets. No "fma": the copies must not contract a * b + c
 * (tg__cpu() still only picks AVX2 / AVX-512 on CPUs that have FMA). */
#if TG_HAVE_X86
#define ATTR_avx512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define ATTR_avx2 __attribute__((target("avx2")))
#endif
#define ATTR_gen

/* GCC will not if-convert (so not vectorise) a select such as relu's or a
 * max's while it must preserve floating-point exception flags; nothing here
 * reads them. This changes no result (it is not -ffast-math); clang already
 * behaves so. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_TRAP __attribute__((optimize("no-trapping-math")))
#else
#define NO_TRAP
#endif

/* The float32 copy of `fn` for this CPU: fn##_f32_avx512, _f32_avx2 or
 * _f32_gen, and the three definitions from one body. */
#if TG_HAVE_X86
#define PICK_F32(fn)                                                                               \
    (tg__cpu() == TG_CPU_AVX512 ? fn##_f32_avx512                                                  \
     : tg__cpu() == TG_CPU_AVX2 ? fn##_f32_avx2                                                    \
                                : fn##_f32_gen)
#define F32_COPIES(DEF)                                                                            \
    DEF(float, f32_avx512, ATTR_avx512)                                                            \
    DEF(float, f32_avx2, ATTR_avx2) DEF(float, f32_gen, ATTR_gen)
#else
#define PICK_F32(fn) fn##_f32_gen
#define F32_COPIES(DEF) DEF(float, f32_gen, ATTR_gen)
#endif

#endif
