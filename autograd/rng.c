/* PCG32 (XSH-RR 64/32, O'Neill 2014): the library's one generator, plus the
 * uniform, normal and bounded-integer draws built on it. */
#include "rng.h"

#include <math.h>

#define PCG_MULT 6364136223846793005ULL

void tg_rng_seed(tg_rng *r, uint64_t seed, uint64_t stream)
{
    r->state = 0;
    r->inc = (stream << 1) | 1u;
    (void)tg_rng_u32(r);
    r->state += seed;
    (void)tg_rng_u32(r);
}

uint32_t tg_rng_u32(tg_rng *r)
{
    uint64_t old = r->state;
    r->state = old * PCG_MULT + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

double tg_rng_uniform(tg_rng *r)
{
    uint64_t hi = tg_rng_u32(r) >> 5, lo = tg_rng_u32(r) >> 6; /* 27 + 26 bits */
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

double tg_rng_normal(tg_rng *r)
{
    double u1 = tg_rng_uniform(r), u2 = tg_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

uint64_t tg_rng_below(tg_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Rejection sampling on 64-bit draws: the accepted range is a multiple of n. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t x = ((uint64_t)tg_rng_u32(r) << 32) | tg_rng_u32(r);
        if (x < limit)
            return x % n;
    }
}
