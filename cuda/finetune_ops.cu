// Fine-tuning ops of the CUDA backend: NF4 dequantization of a QLoRA base (feeding cuBLASLt through a bf16
// or fp32 buffer), the LoRA input dropout and the strided row copies of an adapter's slice of a fused
// projection. CPU twins in csrc/cpu/finetune_ops.c.
#include "cuda_internal.h"

extern "C" {
#include "backend/dropout_hash.h"
#include "backend/nf4.h"
}

__constant__ float nf4_code_dev[16] = {RT_NF4_CODE_VALUES};

// One thread per byte: two weights of the same block (64 is even, so a byte never straddles blocks).
template <typename T>
__global__ void nf4_dequantize_kernel(T *out, const uint8_t *codes, const float *absmax,
                                      const int8_t *absmax_q, const float *absmax_scale, float offset,
                                      size_t n) {
    size_t n_bytes = (n + 1) / 2;
    for (size_t j = blockIdx.x * (size_t)blockDim.x + threadIdx.x; j < n_bytes;
         j += (size_t)gridDim.x * blockDim.x) {
        size_t i = 2 * j;
        float s = rt_nf4_block_scale(absmax, absmax_q, absmax_scale, offset, i / RT_NF4_BLOCK);
        uint8_t byte = codes[j];
        out[i] = from_f32<T>(nf4_code_dev[byte >> 4] * s);
        if (i + 1 < n) out[i + 1] = from_f32<T>(nf4_code_dev[byte & 15] * s);
    }
}

void cuda_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                         const int8_t *absmax_q, const float *absmax_scale, float absmax_offset, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    size_t n_bytes = (n + 1) / 2;
    CUDA_DISPATCH_ACT(ctx, (nf4_dequantize_kernel<T><<<cuda_grid(n_bytes, 256), 256, 0, st->stream>>>(
                               (T *)out, codes, absmax, absmax_q, absmax_scale, absmax_offset, n)));
    cuda_check_launch(ctx, "nf4_dequantize");
}

template <typename T>
__global__ void dropout_kernel(T *out, const T *x, size_t n, uint64_t threshold, float keep_scale,
                               uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = rt_dropout_bits(seed, i) >= threshold ? from_f32<T>(to_f32(x[i]) * keep_scale)
                                                       : from_f32<T>(0.0f);
}

void cuda_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    uint64_t threshold = rt_dropout_threshold(p);
    float keep_scale = 1.0f / (1.0f - p);
    CUDA_DISPATCH_ACT(ctx, (dropout_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>(
                               (T *)out, (const T *)x, n, threshold, keep_scale, seed)));
    cuda_check_launch(ctx, "dropout");
}

template <typename T>
__global__ void copy_rows_kernel(T *dst, size_t ld_dst, const T *src, size_t ld_src, int cols, size_t n,
                                 int accumulate) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        T *d = dst + r * ld_dst + c;
        float v = to_f32(src[r * ld_src + c]);
        *d = from_f32<T>(accumulate ? to_f32(*d) + v : v);
    }
}

void cuda_copy_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols,
                    int accumulate) {
    cuda_state *st = cuda_of(ctx);
    size_t n = rows > 0 && cols > 0 ? (size_t)rows * cols : 0;
    if (st->failed || n == 0) return;
    CUDA_DISPATCH_ACT(ctx,
                      (copy_rows_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>(
                          (T *)dst, (size_t)ld_dst, (const T *)src, (size_t)ld_src, cols, n, accumulate)));
    cuda_check_launch(ctx, "copy_rows");
}
