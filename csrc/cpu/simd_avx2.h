// cpu_v16 on AVX2 with FMA (simd.h): two ymm halves. AVX2 has no 16-bit masked loads and stores, so the
// partial bf16 forms go through a small buffer; they only run at a row's tail.
#ifndef RT_CPU_SIMD_AVX2_H
#define RT_CPU_SIMD_AVX2_H

#include <immintrin.h>

typedef struct cpu_v16 {
    __m256 lo, hi; // lanes 0-7, 8-15
} cpu_v16;

static inline cpu_v16 cpu_v16_of(__m256 lo, __m256 hi) {
    cpu_v16 v = {lo, hi};
    return v;
}

// all-ones in lanes below n of the half that starts at lane `first`
static inline __m256i cpu_v8_first(int n, int first) {
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n - first), lane);
}

static inline cpu_v16 cpu_v16_set(float x) {
    return cpu_v16_of(_mm256_set1_ps(x), _mm256_set1_ps(x));
}

static inline cpu_v16 cpu_v16_load(const float *p) {
    return cpu_v16_of(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
}

static inline cpu_v16 cpu_v16_load_n(const float *p, int n) {
    return cpu_v16_of(_mm256_maskload_ps(p, cpu_v8_first(n, 0)),
                      _mm256_maskload_ps(p + 8, cpu_v8_first(n, 8)));
}

static inline void cpu_v16_store(float *p, cpu_v16 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}

static inline void cpu_v16_store_n(float *p, cpu_v16 v, int n) {
    _mm256_maskstore_ps(p, cpu_v8_first(n, 0), v.lo);
    _mm256_maskstore_ps(p + 8, cpu_v8_first(n, 8), v.hi);
}

// bf16 -> fp32 is exact: the bits move to the top half
static inline __m256 cpu_v8_from_bf16(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline cpu_v16 cpu_v16_load_bf16(const uint16_t *p) {
    return cpu_v16_of(cpu_v8_from_bf16(_mm_loadu_si128((const __m128i *)p)),
                      cpu_v8_from_bf16(_mm_loadu_si128((const __m128i *)(p + 8))));
}

static inline cpu_v16 cpu_v16_load_bf16_n(const uint16_t *p, int n) {
    uint16_t buf[16] = {0};
    memcpy(buf, p, (size_t)n * sizeof *p);
    return cpu_v16_load_bf16(buf);
}

// cpu_bf16_store per lane (round to nearest even, a NaN stays a quiet NaN), as 32-bit lanes
static inline __m256i cpu_v8_to_bf16(__m256 v) {
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i rounded =
        _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    // both sides below 2^31, so the signed compare is the unsigned one
    __m256i nan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    return _mm256_blendv_epi8(rounded, quiet, nan);
}

// the sixteen bf16 values in lane order: PACKUSDW interleaves 128-bit halves, the permute puts them back
static inline __m256i cpu_v16_to_bf16(cpu_v16 v) {
    __m256i packed = _mm256_packus_epi32(cpu_v8_to_bf16(v.lo), cpu_v8_to_bf16(v.hi));
    return _mm256_permute4x64_epi64(packed, 0xd8);
}

static inline void cpu_v16_store_bf16(uint16_t *p, cpu_v16 v) {
    _mm256_storeu_si256((__m256i *)p, cpu_v16_to_bf16(v));
}

static inline void cpu_v16_store_bf16_n(uint16_t *p, cpu_v16 v, int n) {
    uint16_t buf[16];
    _mm256_storeu_si256((__m256i *)buf, cpu_v16_to_bf16(v));
    memcpy(p, buf, (size_t)n * sizeof *p);
}

#define CPU_V16_BINARY(name, op)                                                                             \
    static inline cpu_v16 cpu_v16_##name(cpu_v16 a, cpu_v16 b) {                                             \
        return cpu_v16_of(op(a.lo, b.lo), op(a.hi, b.hi));                                                   \
    }
CPU_V16_BINARY(add, _mm256_add_ps)
CPU_V16_BINARY(sub, _mm256_sub_ps)
CPU_V16_BINARY(mul, _mm256_mul_ps)
CPU_V16_BINARY(div, _mm256_div_ps)
CPU_V16_BINARY(max, _mm256_max_ps) // a > b ? a : b per lane (MAXPS: with a NaN in a, b)
#undef CPU_V16_BINARY

// -x: the sign bit flipped, as the scalar negation does (also a NaN's)
static inline cpu_v16 cpu_v16_neg(cpu_v16 x) {
    __m256 sign = _mm256_set1_ps(-0.0f);
    return cpu_v16_of(_mm256_xor_ps(x.lo, sign), _mm256_xor_ps(x.hi, sign));
}

// the largest lane (exact; a NaN only when every lane is one, as cpu_max needs)
static inline float cpu_v16_hmax(cpu_v16 v) {
    __m256 m = _mm256_max_ps(v.lo, v.hi);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

// lanes n and up set to +0
static inline cpu_v16 cpu_v16_keep_first(cpu_v16 v, int n) {
    return cpu_v16_of(_mm256_and_ps(v.lo, _mm256_castsi256_ps(cpu_v8_first(n, 0))),
                      _mm256_and_ps(v.hi, _mm256_castsi256_ps(cpu_v8_first(n, 8))));
}

// cpu_expf on eight lanes, the same operations in the same order
static inline __m256 cpu_v8_exp(__m256 x) {
    const __m256 lo = _mm256_set1_ps(CPU_EXP_LO), magic = _mm256_set1_ps(CPU_EXP_ROUND);
    // MINPS/MAXPS(a, b) are a < b ? a : b and a > b ? a : b: a NaN x passes through, as in cpu_expf
    __m256 xc = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(CPU_EXP_HI), x));
    __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504089f), magic), magic);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693359375f), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
#define CPU_V8_FMA(a, b, c) _mm256_fmadd_ps(a, b, _mm256_set1_ps(c))
    CPU_EXP_POLY(p, r, CPU_V8_FMA);
#undef CPU_V8_FMA
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y); // below lo: 0
}

static inline cpu_v16 cpu_v16_exp(cpu_v16 x) {
    return cpu_v16_of(cpu_v8_exp(x.lo), cpu_v8_exp(x.hi));
}

#endif
