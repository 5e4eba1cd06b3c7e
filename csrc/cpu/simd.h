// AVX-512 versions of the scalar helpers that the elementwise ops spend their time in (cpu_expf, cpu_max,
// the bf16 loads and rounding), for builds whose instruction set has AVX-512 (CPU_SIMD_AVX512). GCC's
// vectorized form of cpu_expf's clamps, of the bf16 rounding and of max reductions takes about twice the
// instructions: with these, the bf16 SwiGLU ([2048, 688], 2 threads) went from 0.47 to 0.27 ms forward and
// 0.77 to 0.40 ms backward, bf16 attention (B=8, T=256, 8 heads of 32) from 7.2 to 5.3 ms a layer forward
// and backward. Every function gives, lane by lane, the bits of the scalar helper it stands for (bf16
// rounding: except fp32 denormals, below), so an op computes the same numbers with and without this header.
// Other builds keep the plain loops; the sanitizer build is configured without -march=native to test them.
// A vector holds CPU_LANES (16) floats; the _n forms take the first n lanes (0 < n <= 16), reading and
// writing nothing past them, and load 0 into the rest.
#ifndef RT_CPU_SIMD_H
#define RT_CPU_SIMD_H

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__FMA__)
#define CPU_SIMD_AVX512 1
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

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

// -x, the sign bit flipped as the scalar negation does (0 - x would give +0 for +0, and a NaN's sign is the
// hardware's)
static inline cpu_v16 cpu_v16_neg(cpu_v16 x) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
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
// them as bf16 denormals: the only difference from cpu_bf16_store (test_ops checks both paths).
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

// cpu_expf per lane, the same operations in the same order; 2^n by VSCALEFPS, exact like the scalar
// exponent-field multiply over the clamped range
static inline cpu_v16 cpu_v16_exp(cpu_v16 x) {
    const __m512 lo = _mm512_set1_ps(-87.33f), magic = _mm512_set1_ps(12582912.0f);
    __m512 xc = _mm512_max_ps(lo, _mm512_min_ps(_mm512_set1_ps(88.37f), x)); // a NaN passes, as in cpu_expf
    __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504089f), magic), magic);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    y = _mm512_scalef_ps(y, n);
    return _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), y); // below lo: 0
}

// The first n lanes at element off of an act buffer, fp32 or bf16 (an op's loops serve both precisions);
// whole vectors load and store without a mask.
static inline cpu_v16 cpu_v16_load_act(int bf16, const void *buf, size_t off, int n) {
    if (bf16)
        return n == 16 ? cpu_v16_load_bf16((const uint16_t *)buf + off)
                       : cpu_v16_load_bf16_n((const uint16_t *)buf + off, n);
    return n == 16 ? cpu_v16_load((const float *)buf + off) : cpu_v16_load_n((const float *)buf + off, n);
}

static inline void cpu_v16_store_act(int bf16, void *buf, size_t off, cpu_v16 v, int n) {
    if (bf16 && n == 16)
        cpu_v16_store_bf16((uint16_t *)buf + off, v);
    else if (bf16)
        cpu_v16_store_bf16_n((uint16_t *)buf + off, v, n);
    else if (n == 16)
        cpu_v16_store((float *)buf + off, v);
    else
        cpu_v16_store_n((float *)buf + off, v, n);
}

#endif
#endif
