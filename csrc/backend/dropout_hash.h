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

// 32 uniform bits for element i: the murmur3 finaliser of i * golden ratio + a 32-bit fold of the seed.
// 32-bit multiplies, so the CPU loop vectorises (the mask is drawn three times per adapter and step).
static inline RT_HOST_DEVICE uint32_t rt_dropout_bits(uint64_t seed, uint64_t i) {
    uint32_t h = (uint32_t)i * 0x9E3779B1u + (uint32_t)(seed ^ (seed >> 32));
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

// Element i is dropped when its bits fall below p * 2^32.
static inline RT_HOST_DEVICE uint64_t rt_dropout_threshold(float p) {
    return (uint64_t)((double)p * 4294967296.0);
}

#endif
