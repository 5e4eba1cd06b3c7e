// cpu_v16 on AVX-512 (simd.h): one zmm register; partial loads and stores by lane masks.
#ifndef RT_CPU_SIMD_AVX512_H
#define RT_CPU_SIMD_AVX512_H

#include <immintrin.h>

typedef __m512 cpu_v16;

static inline __mmask16 cpu_v16_first(int n) {
    return (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
}

static inline cpu_v16 cpu_v16_set(float x) {
    return _mm512_set1_ps(x);
}

static inline cpu_v16 cpu_v16_load(const float *p) {
    return _mm512_loadu_ps(p);
}

static inline cpu_v16 cpu_v16_load_n(const float *p, int n) {
    return _mm512_maskz_loadu_ps(cpu_v16_first(n), p);
}

static inline void cpu_v16_store(float *p, cpu_v16 v) {
    _mm512_storeu_ps(p, v);
}

static inline void cpu_v16_store_n(float *p, cpu_v16 v, int n) {
    _mm512_mask_storeu_ps(p, cpu_v16_first(n), v);
}

// bf16 -> fp32 is exact: the bits move to the top half
static inline cpu_v16 cpu_v16_from_bf16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static inline cpu_v16 cpu_v16_load_bf16(const uint16_t *p) {
    return cpu_v16_from_bf16(_mm256_loadu_si256((const __m256i *)p));
}

static inline cpu_v16 cpu_v16_load_bf16_n(const uint16_t *p, int n) {
    return cpu_v16_from_bf16(_mm256_maskz_loadu_epi16(cpu_v16_first(n), p));
}

// cpu_bf16_store per lane: round to nearest even, a NaN stays a quiet NaN. With AVX512-BF16 that is one
// VCVTNEPS2BF16, which also flushes fp32 denormals (below 1.2e-38) to zero where the scalar rounding keeps
// them as bf16 denormals: the only difference from the scalar code in any form of cpu_v16.
static inline __m256i cpu_v16_to_bf16(cpu_v16 v) {
#ifdef __AVX512BF16__
    return (__m256i)_mm512_cvtneps_pbh(v);
#else
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i rounded =
        _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
#endif
}

static inline void cpu_v16_store_bf16(uint16_t *p, cpu_v16 v) {
    _mm256_storeu_si256((__m256i *)p, cpu_v16_to_bf16(v));
}

static inline void cpu_v16_store_bf16_n(uint16_t *p, cpu_v16 v, int n) {
    _mm256_mask_storeu_epi16(p, cpu_v16_first(n), cpu_v16_to_bf16(v));
}

static inline cpu_v16 cpu_v16_add(cpu_v16 a, cpu_v16 b) {
    return _mm512_add_ps(a, b);
}

static inline cpu_v16 cpu_v16_sub(cpu_v16 a, cpu_v16 b) {
    return _mm512_sub_ps(a, b);
}

static inline cpu_v16 cpu_v16_mul(cpu_v16 a, cpu_v16 b) {
    return _mm512_mul_ps(a, b);
}

static inline cpu_v16 cpu_v16_div(cpu_v16 a, cpu_v16 b) {
    return _mm512_div_ps(a, b);
}

// -x: the sign bit flipped, as the scalar negation does (also a NaN's)
static inline cpu_v16 cpu_v16_neg(cpu_v16 x) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}

// a > b ? a : b per lane (MAXPS: with a NaN in a, b)
static inline cpu_v16 cpu_v16_max(cpu_v16 a, cpu_v16 b) {
    return _mm512_max_ps(a, b);
}

// the largest lane (exact; a NaN only when every lane is one, as cpu_max needs)
static inline float cpu_v16_hmax(cpu_v16 v) {
    return _mm512_reduce_max_ps(v);
}

// lanes n and up set to +0
static inline cpu_v16 cpu_v16_keep_first(cpu_v16 v, int n) {
    return _mm512_maskz_mov_ps(cpu_v16_first(n), v);
}

// cpu_expf per lane, the same operations in the same order; 2^n by VSCALEFPS, exact like the scalar
// exponent-field multiply over the clamped range
static inline cpu_v16 cpu_v16_exp(cpu_v16 x) {
    const __m512 lo = _mm512_set1_ps(CPU_EXP_LO), magic = _mm512_set1_ps(CPU_EXP_ROUND);
    // MINPS/MAXPS(a, b) are a < b ? a : b and a > b ? a : b: a NaN x passes through, as in cpu_expf
    __m512 xc = _mm512_max_ps(lo, _mm512_min_ps(_mm512_set1_ps(CPU_EXP_HI), x));
    __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504089f), magic), magic);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
#define CPU_V16_FMA(a, b, c) _mm512_fmadd_ps(a, b, _mm512_set1_ps(c))
    CPU_EXP_POLY(p, r, CPU_V16_FMA);
#undef CPU_V16_FMA
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    y = _mm512_scalef_ps(y, n);
    return _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y); // below lo: 0
}

#endif
