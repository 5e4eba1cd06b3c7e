// NF4 (QLoRA; docs/training.md, NF4 and double quantization): 4-bit NormalFloat codes in blocks of 64
// weights with one absmax scale each; with double quantization the absmaxes are mean-centred and stored as
// int8 in blocks of 256 with one fp32 scale each (linear int8, as torchao; bitsandbytes uses its dynamic
// 8-bit map instead).
//
// Layout (host and device alike), for n weights in row-major order:
//   codes          [ceil(n / 2)]     uint8: weight 2i in the high nibble, 2i + 1 in the low nibble
//   absmax         [n_blocks] fp32   without double quantization; n_blocks = ceil(n / 64)
//   absmax_q       [n_blocks] int8   with double quantization: absmax = absmax_q * absmax_scale + offset
//   absmax_scale   [ceil(n_blocks / 256)] fp32
//   absmax_offset  fp32, the mean of the block absmaxes
// weight i = rt_nf4_code[code i] * absmax(block i / 64). A trailing partial block is allowed.
#ifndef RT_NF4_H
#define RT_NF4_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

#define RT_NF4_BLOCK       64
#define RT_NF4_SCALE_BLOCK 256

// The bitsandbytes NF4 table, index 0 .. 15 (a macro so the CUDA backend's constant table is the same list).
#define RT_NF4_CODE_VALUES                                                                                   \
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,         \
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,      \
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,               \
        0.7229568362236023f, 1.0f
extern const float rt_nf4_code[16];

typedef struct rt_nf4 {
    size_t n;        // weights
    size_t n_blocks; // ceil(n / 64)
    size_t n_scales; // ceil(n_blocks / 256) with double quantization, else 0
    int double_quant;
    uint8_t *codes;
    float *absmax;       // NULL with double quantization
    int8_t *absmax_q;    // NULL without
    float *absmax_scale; // NULL without
    float absmax_offset;
} rt_nf4;

// Quantize n fp32 weights (host). Each weight maps to the nearest code of w / absmax (the lower code on a
// tie); an all-zero block has absmax 0 and decodes to zeros. Non-finite weights are refused.
int rt_nf4_quantize(const float *w, size_t n, int double_quant, rt_nf4 *out, const char *what, rt_error *err);
// The weights the codes stand for (host), n floats.
void rt_nf4_dequantize(const rt_nf4 *q, float *out);
void rt_nf4_free(rt_nf4 *q);
// Bytes the quantized form takes (codes + scales).
size_t rt_nf4_bytes(const rt_nf4 *q);

// The absmax of block b as dequantization sees it (after double quantization).
#ifdef __CUDACC__
__host__ __device__
#endif
    static inline float
    rt_nf4_block_scale(const float *absmax, const int8_t *absmax_q, const float *absmax_scale, float offset,
                       size_t b) {
    if (absmax) return absmax[b];
    return (float)absmax_q[b] * absmax_scale[b / RT_NF4_SCALE_BLOCK] + offset;
}

#endif
