// ggml encodings (ggml_quants.h), written from the block layouts in docs/formats.md (ggml blocks):
// ggml-quants.c's reference quantizers for Q8_0 and Q4_0 (so the bytes match gguf-py's), and Q6_K with a
// weighted least-squares search for each sub-block's scale, the method of ggml's reference quantizer.
#include "gguf/ggml_quants.h"

#include <math.h>
#include <string.h>
#include <strings.h>

typedef struct type_info {
    int type;
    const char *name;
    int block;
    size_t bytes;
} type_info;

static const type_info types[] = {
    {RT_GGML_F32, "f32", 1, 4},     {RT_GGML_F16, "f16", 1, 2},     {RT_GGML_BF16, "bf16", 1, 2},
    {RT_GGML_Q8_0, "q8_0", 32, 34}, {RT_GGML_Q4_0, "q4_0", 32, 18}, {RT_GGML_Q6_K, "q6_k", 256, 210},
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
int rt_ggml_type_from_name(const char *name) {
    for (int i = 0; i < N_TYPES; i++)
        if (strcasecmp(types[i].name, name) == 0) return types[i].type;
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
    case RT_GGML_Q6_K:
        for (size_t b = 0; b < n / 256; b++) q6_k_deblock(p + 210 * b, out + 256 * b);
        break;
    default:
        for (size_t i = 0; i < n; i++) out[i] = NAN;
    }
}
