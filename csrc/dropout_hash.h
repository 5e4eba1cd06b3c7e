// The dropout mask as a pure function of (seed, element index), shared by the CPU and CUDA backends so both
// drop the same elements, and backward rebuilds the mask instead of storing it.
#ifndef RT_DROPOUT_HASH_H
#define RT_DROPOUT_HASH_H

#include <stdint.h>

#ifdef __CUDACC__
#define RT_HOST_DEVICE __host__ __device__
#else
#define RT_HOST_DEVICE
#endif

// 32 uniform bits for element i (splitmix64 finaliser of seed + (i + 1) * golden ratio).
static inline RT_HOST_DEVICE uint32_t rt_dropout_bits(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

// Element i is dropped when its bits fall below p * 2^32.
static inline RT_HOST_DEVICE uint64_t rt_dropout_threshold(float p) {
    return (uint64_t)((double)p * 4294967296.0);
}

#endif
