// Fine-tuning ops of the CPU backend: the NF4 dequantization of a QLoRA base, the LoRA input dropout, and
// the strided row copies that move an adapter's slice in and out of a fused projection.
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"
#include "backend/dropout_hash.h"
#include "backend/nf4.h"

void cpu_upload_bytes(rt_ctx *ctx, void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}

// One block of 64 weights per iteration, so each reads its scale once.
void cpu_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                        const int8_t *absmax_q, const float *absmax_scale, float absmax_offset, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_nf4_dequantize(ctx, out, codes, absmax, absmax_q, absmax_scale, absmax_offset, n);
        return;
    }
    float *o = out;
    size_t n_blocks = (n + RT_NF4_BLOCK - 1) / RT_NF4_BLOCK;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n / 4))
    for (size_t b = 0; b < n_blocks; b++) {
        float s = rt_nf4_block_scale(absmax, absmax_q, absmax_scale, absmax_offset, b);
        size_t lo = b * RT_NF4_BLOCK, hi = lo + RT_NF4_BLOCK < n ? lo + RT_NF4_BLOCK : n;
        for (size_t i = lo; i < hi; i++) {
            uint8_t byte = codes[i / 2];
            o[i] = rt_nf4_code[i % 2 == 0 ? byte >> 4 : byte & 15] * s;
        }
    }
}

// Blocks of 4096 elements per thread step, a SIMD loop inside (the mask's hash is 32-bit arithmetic).
void cpu_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_dropout(ctx, out, x, n, p, seed);
        return;
    }
    float *o = out;
    const float *in = x;
    uint32_t threshold = (uint32_t)rt_dropout_threshold(p); // p < 1, so below 2^32
    float keep_scale = 1.0f / (1.0f - p);
    size_t n_blocks = (n + 4095) / 4096;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n / 4))
    for (size_t b = 0; b < n_blocks; b++) {
        size_t lo = b * 4096, hi = lo + 4096 < n ? lo + 4096 : n;
#pragma omp simd
        for (size_t i = lo; i < hi; i++)
            o[i] = rt_dropout_bits(seed, i) >= threshold ? in[i] * keep_scale : 0.0f;
    }
}

void cpu_copy_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols,
                   int accumulate) {
    if (accumulate && ctx->act == RT_BF16) {
        cpu_bf16_add_rows(ctx, dst, ld_dst, src, ld_src, rows, cols);
        return;
    }
    size_t es = rt_dtype_size(ctx->act); // a plain copy moves the same bytes in fp32 and bf16
    char *d = dst;
    const char *s = src;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)rows *cols))
    for (int r = 0; r < rows; r++) {
        char *drow = d + (size_t)r * ld_dst * es;
        const char *srow = s + (size_t)r * ld_src * es;
        if (accumulate) {
            float *df = (float *)drow;
            const float *sf = (const float *)srow;
#pragma omp simd
            for (int c = 0; c < cols; c++) df[c] += sf[c];
        } else {
            memcpy(drow, srow, (size_t)cols * es);
        }
    }
}
