// Sixteen fp32 lanes for the CPU backend's elementwise loops, and the scalar math they stand for.
//
// The exponentials of the softmax rows and of SwiGLU are a real share of a training step once the GEMMs run
// near their peak, and GCC vectorizes the scalar helpers badly: on AVX-512 its form of cpu_expf's clamps, of
// the bf16 rounding and of max reductions takes about twice the instructions, and on AVX2 it leaves the
// exp loops scalar (a fifth of an fp32 step on bench/cpu_train.sh's model went to them). So the loops are
// written once on cpu_v16, which this header builds from AVX-512 intrinsics (CPU_SIMD_AVX512), from two AVX2
// halves (CPU_SIMD_AVX2), or from a plain array of floats elsewhere, chosen by the build's instruction set
// (-march=native by default). Every operation gives, lane by lane, the bits of the scalar code it names
// (cpu_expf, cpu_bf16_store, a * b, ...) in the same build, so with FMA every form computes the same
// numbers; the one exception is the AVX512-BF16 rounding of fp32 denormals (cpu_v16_to_bf16). test_simd
// checks each form against the scalar code, built three times (tests/ops.cmake).
//
// A vector's lanes are in memory order; the _n forms take the first n lanes (0 < n <= 16), reading and
// writing nothing past them, and load 0 into the rest.
#ifndef RT_CPU_SIMD_H
#define RT_CPU_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bf16.h"

#define CPU_LANES 16

// a * b + c, fused (one rounding) where the build's instruction set has FMA, else two roundings: a libm fmaf
// would be a slow software call there. Results depend on the build, as every vectorized loop's do.
static inline float cpu_fma(float a, float b, float c) {
#ifdef __FMA__
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

// exp(x) for x in float range, within 2 ulp: 2^n * p(r) with r = x - n ln2 in [-ln2/2, ln2/2] (Cephes
// polynomial, Horner steps fused). Branch-free; below -87.3 it returns 0 (glibc returns a denormal there).
#define CPU_EXP_HI    88.37f
#define CPU_EXP_LO    (-87.33f)
#define CPU_EXP_ROUND 12582912.0f // 1.5 * 2^23: x + it - it rounds x to an integer (no floorf call)
#define CPU_EXP_POLY(p, r, fma)                                                                              \
    do {                                                                                                     \
        p = fma(p, r, 1.3981999507e-3f);                                                                     \
        p = fma(p, r, 8.3334519073e-3f);                                                                     \
        p = fma(p, r, 4.1665795894e-2f);                                                                     \
        p = fma(p, r, 1.6666665459e-1f);                                                                     \
        p = fma(p, r, 5.0000001201e-1f);                                                                     \
    } while (0)
static inline float cpu_expf(float x) {
    float xc = x > CPU_EXP_HI ? CPU_EXP_HI : x;
    xc = xc < CPU_EXP_LO ? CPU_EXP_LO : xc;
    float n = cpu_fma(xc, 1.44269504089f, CPU_EXP_ROUND) - CPU_EXP_ROUND;
    float r = cpu_fma(n, -0.693359375f, xc);
    r = cpu_fma(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    CPU_EXP_POLY(p, r, cpu_fma);
    float y = cpu_fma(p, r * r, r) + 1.0f;
    union {
        uint32_t u;
        float f;
    } scale = {.u = (uint32_t)((int32_t)n + 127) << 23};
    y = y * scale.f;
    return x < CPU_EXP_LO ? 0.0f : y;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__)
#define CPU_SIMD_AVX512 1
#include "simd_avx512.h"
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_SIMD_AVX2 1
#include "simd_avx2.h"
#else
#define CPU_SIMD_PLAIN 1
#include "simd_plain.h"
#endif

// Built on the operations above, the same in every form.

// The first n lanes at element off of an act buffer, fp32 or bf16 (an op's loops serve both precisions).
static inline cpu_v16 cpu_v16_load_act(int bf16, const void *buf, size_t off, int n) {
    if (bf16)
        return n == CPU_LANES ? cpu_v16_load_bf16((const uint16_t *)buf + off)
                              : cpu_v16_load_bf16_n((const uint16_t *)buf + off, n);
    return n == CPU_LANES ? cpu_v16_load((const float *)buf + off)
                          : cpu_v16_load_n((const float *)buf + off, n);
}

static inline void cpu_v16_store_act(int bf16, void *buf, size_t off, cpu_v16 v, int n) {
    if (bf16 && n == CPU_LANES)
        cpu_v16_store_bf16((uint16_t *)buf + off, v);
    else if (bf16)
        cpu_v16_store_bf16_n((uint16_t *)buf + off, v, n);
    else if (n == CPU_LANES)
        cpu_v16_store((float *)buf + off, v);
    else
        cpu_v16_store_n((float *)buf + off, v, n);
}

#endif
