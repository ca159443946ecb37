/* The library's one random generator: PCG32 (XSH-RR, 64-bit state, O'Neill 2014).
 * Everything random in tgrad (init, dropout, shuffling, gradcheck) draws from a
 * tg_rng the caller seeds, so the same seed gives the same numbers everywhere. */
#ifndef TG_RNG_H
#define TG_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_rng {
    uint64_t state;
    uint64_t inc;
} tg_rng;

/* Seeds the generator; stream selects one of 2^63 independent sequences. */
void tg_rng_seed(tg_rng *r, uint64_t seed, uint64_t stream);
uint32_t tg_rng_u32(tg_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double tg_rng_uniform(tg_rng *r);
/* Standard normal (Box-Muller on two uniforms; no cached second value). */
double tg_rng_normal(tg_rng *r);
/* Uniform integer in [0, n) without modulo bias; n >= 1. */
uint64_t tg_rng_below(tg_rng *r, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif
