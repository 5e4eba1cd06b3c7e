// ggml tensor encodings (docs/formats.md, ggml blocks): F32, F16, BF16, Q8_0, Q4_0 and Q6_K, each a quantizer
// from fp32 rows (GGUF export) and a dequantizer back; Q4_K decoded only (GGUF import). The other ggml types
// are known by name and size only, so a file holding them can be read and its tensors refused by name.
#ifndef RT_GGML_QUANTS_H
#define RT_GGML_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

typedef enum rt_ggml_type {
    RT_GGML_F32 = 0,
    RT_GGML_F16 = 1,
    RT_GGML_Q4_0 = 2,
    RT_GGML_Q8_0 = 8,
    RT_GGML_Q4_K = 12,
    RT_GGML_Q6_K = 14,
    RT_GGML_BF16 = 30
} rt_ggml_type;

// Name ("q4_0"), block size in elements and bytes per block; "unknown" and 0 for a type retort does not know.
const char *rt_ggml_type_name(int type);
int rt_ggml_block_size(int type);
size_t rt_ggml_block_bytes(int type);
// Whether rt_ggml_quantize writes the type (f32, f16, bf16, q8_0, q4_0, q6_k) and whether
// rt_ggml_dequantize reads it (those and q4_k).
int rt_ggml_can_encode(int type);
int rt_ggml_can_decode(int type);
// Parse the name of a type rt_ggml_quantize writes: "f32", "f16", "bf16", "q8_0", "q4_0", "q6_k" (any
// case); -1 for any other.
int rt_ggml_type_from_name(const char *name);
// Bytes of n elements of type (n a multiple of the block size); 0 on overflow or a bad n.
size_t rt_ggml_nbytes(int type, size_t n);

// Encode n fp32 values (n a multiple of the type's block size) into out (rt_ggml_nbytes bytes); a type it
// cannot encode leaves out untouched.
void rt_ggml_quantize(int type, const float *x, size_t n, void *out);
// Decode n values of type from data (rt_ggml_nbytes bytes) into out; a type it cannot decode gives NaNs.
void rt_ggml_dequantize(int type, const void *data, size_t n, float *out);

uint16_t rt_fp32_to_fp16(float f);
float rt_fp16_to_fp32(uint16_t h);

#endif
