// ggml encodings (ggml_quants.h), written from the block layouts in docs/formats.md (ggml blocks):
// ggml-quants.c's reference quantizers for Q8_0 and Q4_0 (so the bytes match gguf-py's), and Q6_K with a
// weighted least-squares search for each sub-block's scale, the method of ggml's reference quantizer.
// Decoding also covers Q4_K, which retort reads (GGUF import) but does not write.
#include "gguf/ggml_quants.h"

#include <math.h>
#include <string.h>
#include <strings.h>

// Decoding multiplies and subtracts in the order ggml's reference dequantizers (and gguf-py's) do; a fused
// multiply-add would round once where they round twice, and imported weights are checked against gguf-py
// bit for bit. GCC does not contract in ISO C mode (-std=c11); clang does unless told.
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

typedef struct type_info {
    int type;
    const char *name;
    int block;
    size_t bytes;
    int encode; // retort writes it (export --type)
    int decode; // retort reads it as floats (import, inspect)
} type_info;

// Every type of ggml's classic numbering that appears in GGUF files (ggml.h, enum ggml_type), so the reader
// can size each tensor of any such file; Q8_1 (an activation type, never stored) and the types newer than
// MXFP4 are left out, and a file holding them is refused by the reader.
static const type_info types[] = {
    {RT_GGML_F32, "f32", 1, 4, 1, 1},
    {RT_GGML_F16, "f16", 1, 2, 1, 1},
    {RT_GGML_Q4_0, "q4_0", 32, 18, 1, 1},
    {3, "q4_1", 32, 20, 0, 0},
    {6, "q5_0", 32, 22, 0, 0},
    {7, "q5_1", 32, 24, 0, 0},
    {RT_GGML_Q8_0, "q8_0", 32, 34, 1, 1},
    {10, "q2_k", 256, 84, 0, 0},
    {11, "q3_k", 256, 110, 0, 0},
    {RT_GGML_Q4_K, "q4_k", 256, 144, 0, 1},
    {13, "q5_k", 256, 176, 0, 0},
    {RT_GGML_Q6_K, "q6_k", 256, 210, 1, 1},
    {15, "q8_k", 256, 292, 0, 0},
    {16, "iq2_xxs", 256, 66, 0, 0},
    {17, "iq2_xs", 256, 74, 0, 0},
    {18, "iq3_xxs", 256, 98, 0, 0},
    {19, "iq1_s", 256, 50, 0, 0},
    {20, "iq4_nl", 32, 18, 0, 0},
    {21, "iq3_s", 256, 110, 0, 0},
    {22, "iq2_s", 256, 82, 0, 0},
    {23, "iq4_xs", 256, 136, 0, 0},
    {24, "i8", 1, 1, 0, 0},
    {25, "i16", 1, 2, 0, 0},
    {26, "i32", 1, 4, 0, 0},
    {27, "i64", 1, 8, 0, 0},
    {28, "f64", 1, 8, 0, 0},
    {29, "iq1_m", 256, 56, 0, 0},
    {RT_GGML_BF16, "bf16", 1, 2, 1, 1},
    {34, "tq1_0", 256, 54, 0, 0},
    {35, "tq2_0", 256, 66, 0, 0},
    {39, "mxfp4", 32, 17, 0, 0},
};
#define N_TYPES ((int)(sizeof types / sizeof types[0]))

static const type_info *info(int type) {
    for (int i = 0; i < N_TYPES; i++)
        if (types[i].type == type) return &types[i];
    return NULL;
}

const char *rt_ggml_type_name(int type) {
    const type_info *t = info(type);
    return t ? t->name : "unknown";
}
int rt_ggml_block_size(int type) {
    const type_info *t = info(type);
    return t ? t->block : 0;
}
size_t rt_ggml_block_bytes(int type) {
    const type_info *t = info(type);
    return t ? t->bytes : 0;
}
int rt_ggml_can_encode(int type) {
    const type_info *t = info(type);
    return t && t->encode;
}
int rt_ggml_can_decode(int type) {
    const type_info *t = info(type);
    return t && t->decode;
}
int rt_ggml_type_from_name(const char *name) {
    for (int i = 0; i < N_TYPES; i++)
        if (types[i].encode && strcasecmp(types[i].name, name) == 0) return types[i].type;
    return -1;
}
size_t rt_ggml_nbytes(int type, size_t n) {
    const type_info *t = info(type);
    size_t out;
    if (!t || n % (size_t)t->block != 0 || !rt_mul_size(n / (size_t)t->block, t->bytes, &out)) return 0;
    return out;
}

// ---- fp16 / bf16: round to nearest even ----

uint16_t rt_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  // NaN
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); // rounds to inf (or is inf)
    if (abs < 0x38800000u) {                                   // a subnormal half (or zero)
        // value * 2^24 rounded to nearest even, in the float unit
        float v;
        memcpy(&v, &abs, 4);
        float scaled = v * 16777216.0f; // exact (power of two)
        uint32_t q = (uint32_t)scaled;
        float rem = scaled - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t mant = abs & 0x7fffffu, exp = (abs >> 23) - 112u;
    uint32_t h = (exp << 10) | (mant >> 13), rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

float rt_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
    if (exp == 0) {
        float v = (float)mant / 16777216.0f; // mant * 2^-24
        memcpy(&x, &v, 4);
        x |= sign;
    } else if (exp == 31) {
        x = sign | 0x7f800000u | (mant << 13);
    } else {
        x = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static uint16_t fp32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t get16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

// ---- Q8_0: d = amax / 127 (fp16), q = roundf(x / d) ----

static void q8_0_block(const float *x, uint8_t *y) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(y, rt_fp32_to_fp16(d));
    for (int j = 0; j < 32; j++) y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

// ---- Q4_0: d = (signed max) / -8, q = min(15, (int8)(x / d + 8.5)); j low nibble, j + 16 high ----

static void q4_0_block(const float *x, uint8_t *y) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(y, rt_fp32_to_fp16(d));
    for (int j = 0; j < 16; j++) {
        int8_t a = (int8_t)(x[j] * id + 8.5f), b = (int8_t)(x[j + 16] * id + 8.5f);
        uint8_t q0 = (uint8_t)(a > 15 ? 15 : a), q1 = (uint8_t)(b > 15 ? 15 : b);
        y[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

// ---- Q6_K: 16 sub-blocks of 16 with int8 scales, one fp16 d; q in 0..63 ----

static int nearest_int(float f) {
    return (int)lrintf(f);
}

// The scale of n values quantized to integers in [-nmax, nmax - 1] that minimizes the squared error
// weighted by x^2 (large weights matter most): for each of 19 candidate grids around -nmax / max, the
// codes l = round(x / grid), then the least-squares scale sum(w x l) / sum(w l^2) of those codes; the
// candidate with the smallest weighted error wins (error = sum(w x^2) - sumlx^2 / suml2).
static float weighted_scale(const float *x, int n, int nmax) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax == 0.0f) return 0.0f;
    float best_scale = 0.0f, best = -1.0f;
    for (int step = -9; step <= 9; step++) {
        float iscale = -((float)nmax + 0.1f * (float)step) / max;
        float sumlx = 0.0f, suml2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        // maximizing sumlx^2 / suml2 minimizes the weighted error of the best scale for these codes
        if (suml2 > 0.0f && (best < 0.0f || sumlx * sumlx > best * suml2)) {
            best_scale = sumlx / suml2;
            best = best_scale * sumlx;
        }
    }
    return best_scale;
}

static void q6_k_block(const float *x, uint8_t *y) {
    uint8_t *ql = y, *qh = y + 128;
    int8_t *sc = (int8_t *)(y + 192);
    float scales[16], max_scale = 0.0f, amax_scale = 0.0f;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = weighted_scale(x + 16 * ib, 16, 32);
        if (fabsf(scales[ib]) > amax_scale) {
            amax_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    uint8_t L[256];
    if (amax_scale == 0.0f) {
        memset(y, 0, 210);
        memset(L, 32, sizeof L);
    } else {
        float iscale = -128.0f / max_scale;
        put16(y + 208, rt_fp32_to_fp16(1.0f / iscale));
        float d = rt_fp16_to_fp32(get16(y + 208));
        for (int ib = 0; ib < 16; ib++) {
            int s = nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(s > 127 ? 127 : s < -128 ? -128 : s);
            float ds = d * (float)sc[ib];
            for (int j = 0; j < 16; j++) {
                int q = ds != 0.0f ? nearest_int(x[16 * ib + j] / ds) : 0;
                q = q < -32 ? -32 : q > 31 ? 31 : q;
                L[16 * ib + j] = (uint8_t)(q + 32);
            }
        }
    }
    for (int n = 0; n < 2; n++) {
        uint8_t *l = ql + 64 * n, *h = qh + 32 * n;
        const uint8_t *q = L + 128 * n;
        for (int i = 0; i < 32; i++) {
            l[i] = (uint8_t)((q[i] & 0xF) | ((q[i + 64] & 0xF) << 4));
            l[i + 32] = (uint8_t)((q[i + 32] & 0xF) | ((q[i + 96] & 0xF) << 4));
            h[i] = (uint8_t)((q[i] >> 4) | ((q[i + 32] >> 4) << 2) | ((q[i + 64] >> 4) << 4) |
                             ((q[i + 96] >> 4) << 6));
        }
    }
}

static void q6_k_deblock(const uint8_t *y, float *x) {
    const uint8_t *ql = y, *qh = y + 128;
    const int8_t *sc = (const int8_t *)(y + 192);
    float d = rt_fp16_to_fp32(get16(y + 208));
    for (int n = 0; n < 2; n++) {
        const uint8_t *l = ql + 64 * n, *h = qh + 32 * n;
        float *o = x + 128 * n;
        for (int i = 0; i < 32; i++) {
            int q1 = (l[i] & 0xF) | (((h[i] >> 0) & 3) << 4),
                q2 = (l[i + 32] & 0xF) | (((h[i] >> 2) & 3) << 4);
            int q3 = (l[i] >> 4) | (((h[i] >> 4) & 3) << 4), q4 = (l[i + 32] >> 4) | (((h[i] >> 6) & 3) << 4);
            int e[4] = {i, i + 32, i + 64, i + 96}, q[4] = {q1, q2, q3, q4};
            for (int k = 0; k < 4; k++) o[e[k]] = d * (float)sc[(128 * n + e[k]) / 16] * (float)(q[k] - 32);
        }
    }
}

// ---- Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes; x = d sc q - dmin m ----

// Sub-block j's scale and min: j < 4 in the low 6 bits of bytes j and j + 4; j >= 4 split between the
// nibbles of byte j + 4 and the top 2 bits of bytes j - 4 (scale) and j (min).
static void q4_k_scale_min(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// block: fp16 d, fp16 dmin, scales[12], qs[128]; each 64 elements take 32 bytes of qs, the first 32
// elements in the low nibbles and the next 32 in the high nibbles
static void q4_k_deblock(const uint8_t *y, float *x) {
    float d = rt_fp16_to_fp32(get16(y)), dmin = rt_fp16_to_fp32(get16(y + 2));
    const uint8_t *scales = y + 4, *qs = y + 16;
    for (int c = 0; c < 4; c++) {
        int sc0, m0, sc1, m1;
        q4_k_scale_min(2 * c, scales, &sc0, &m0);
        q4_k_scale_min(2 * c + 1, scales, &sc1, &m1);
        float d0 = d * (float)sc0, min0 = dmin * (float)m0, d1 = d * (float)sc1, min1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            float lo = d0 * (float)(qs[32 * c + l] & 0xF), hi = d1 * (float)(qs[32 * c + l] >> 4);
            x[64 * c + l] = lo - min0;
            x[64 * c + 32 + l] = hi - min1;
        }
    }
}

void rt_ggml_quantize(int type, const float *x, size_t n, void *out) {
    uint8_t *o = out;
    switch (type) {
    case RT_GGML_F32:
        memcpy(o, x, n * 4);
        break;
    case RT_GGML_F16:
        for (size_t i = 0; i < n; i++) put16(o + 2 * i, rt_fp32_to_fp16(x[i]));
        break;
    case RT_GGML_BF16:
        for (size_t i = 0; i < n; i++) put16(o + 2 * i, fp32_to_bf16(x[i]));
        break;
    case RT_GGML_Q8_0:
        for (size_t b = 0; b < n / 32; b++) q8_0_block(x + 32 * b, o + 34 * b);
        break;
    case RT_GGML_Q4_0:
        for (size_t b = 0; b < n / 32; b++) q4_0_block(x + 32 * b, o + 18 * b);
        break;
    case RT_GGML_Q6_K:
        for (size_t b = 0; b < n / 256; b++) q6_k_block(x + 256 * b, o + 210 * b);
        break;
    default:
        break;
    }
}

void rt_ggml_dequantize(int type, const void *data, size_t n, float *out) {
    const uint8_t *p = data;
    switch (type) {
    case RT_GGML_F32:
        memcpy(out, p, n * 4);
        break;
    case RT_GGML_F16:
        for (size_t i = 0; i < n; i++) out[i] = rt_fp16_to_fp32(get16(p + 2 * i));
        break;
    case RT_GGML_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)get16(p + 2 * i) << 16;
            memcpy(&out[i], &u, 4);
        }
        break;
    case RT_GGML_Q8_0:
        for (size_t b = 0; b < n / 32; b++) {
            float d = rt_fp16_to_fp32(get16(p + 34 * b));
            for (int j = 0; j < 32; j++) out[32 * b + j] = d * (float)(int8_t)p[34 * b + 2 + j];
        }
        break;
    case RT_GGML_Q4_0:
        for (size_t b = 0; b < n / 32; b++) {
            float d = rt_fp16_to_fp32(get16(p + 18 * b));
            for (int j = 0; j < 16; j++) {
                uint8_t q = p[18 * b + 2 + j];
                out[32 * b + j] = d * (float)((q & 0xF) - 8);
                out[32 * b + j + 16] = d * (float)((q >> 4) - 8);
            }
        }
        break;
    case RT_GGML_Q4_K:
        for (size_t b = 0; b < n / 256; b++) q4_k_deblock(p + 144 * b, out + 256 * b);
        break;
    case RT_GGML_Q6_K:
        for (size_t b = 0; b < n / 256; b++) q6_k_deblock(p + 210 * b, out + 256 * b);
        break;
    default:
        for (size_t i = 0; i < n; i++) out[i] = NAN;
    }
}
