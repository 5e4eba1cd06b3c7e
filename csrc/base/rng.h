// Deterministic random numbers: xoshiro256** seeded through splitmix64. The whole state is four words,
// stored in checkpoints so a resumed run draws the same numbers.
#ifndef RT_RNG_H
#define RT_RNG_H

#include <stdint.h>

typedef struct rt_rng {
    uint64_t s[4];
} rt_rng;

void rt_rng_seed(rt_rng *r, uint64_t seed);
uint64_t rt_rng_u64(rt_rng *r);
// Uniform in [0, n) without modulo bias (n > 0).
uint64_t rt_rng_below(rt_rng *r, uint64_t n);
// Uniform in [0, 1) with 24 random bits (exact in float).
float rt_rng_uniform(rt_rng *r);
// Standard normal (Box-Muller).
float rt_rng_normal(rt_rng *r);
// Mix several words into one seed (for per-epoch or per-task streams).
uint64_t rt_seed_mix(uint64_t a, uint64_t b);

#endif
