// Private helpers of the CUDA backend (CUDA C++, C linkage at the boundary: backend.h's table and the two
// entry points rt_backend_cuda / rt_cuda_available).
//
// Conventions every op follows:
// - act buffers are float (RT_F32) or __nv_bfloat16 (RT_BF16), chosen by ctx->act; kernels are templates
//   over the element type and compute in fp32 (statistics, softmax, accumulators) whatever the storage.
// - Every op is enqueued on the context's stream and returns at once; nothing synchronises the host but
//   sync(), download() and the scalar reads the model asks for.
// - An op cannot return an error, so a failed launch or a failed asynchronous kernel is recorded in the
//   context (the first one wins) and reported by check(), which the training loop and the inference
//   commands call; later ops on a failed context are skipped.
// - Results are deterministic: no floating-point atomics; reductions run in a fixed order over a fixed grid.
#ifndef RT_CUDA_INTERNAL_H
#define RT_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "backend/backend.h"
}

typedef __nv_bfloat16 bf16;

#define CUDA_MATMUL_PLANS 128

// One cached cuBLASLt plan: descriptors and the algorithm the heuristic chose for one shape.
typedef struct cuda_matmul_plan {
    int M, N, K, trans_a, trans_b;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int align; // the byte alignment of the operands the algorithm was chosen for
} cuda_matmul_plan;

typedef struct cuda_state {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_workspace; // cuBLASLt workspace, allocated at context creation
    size_t lt_workspace_bytes;
    void *scratch; // shared scratch of the ops, grown on first use and then reused
    size_t scratch_bytes;
    cuda_matmul_plan plans[CUDA_MATMUL_PLANS];
    int n_plans;
    int failed; // sticky: the first failure, reported by check()
    char fail_msg[RT_ERROR_MAX];
} cuda_state;

static inline cuda_state *cuda_of(rt_ctx *ctx) {
    return (cuda_state *)ctx->impl;
}

// Records the first failure of the context (op name and the CUDA error) and returns 1 when ctx has failed.
void cuda_record_failure(rt_ctx *ctx, const char *op, const char *fmt, ...);
// After a launch: records a launch failure of `op`. Returns 0 when the context is healthy.
int cuda_check_launch(rt_ctx *ctx, const char *op);
// Scratch device memory of at least `bytes`, valid until the next op that asks for scratch. NULL (and the
// context marked failed) when it cannot be allocated.
void *cuda_scratch(rt_ctx *ctx, size_t bytes, const char *op);

// Grid limits that the strided and capped paths of the launches depend on. The emulation build
// (tests/cuda_emu) defines them far lower, so that those paths run at the twin tests' shapes; nvcc builds
// get the real values.
#ifndef RT_CUDA_MAX_GRID_Y
#define RT_CUDA_MAX_GRID_Y 65535 // grid.y of every CUDA device; kernels stride over y past it
#endif
#ifndef RT_CUDA_GRID_CAP
#define RT_CUDA_GRID_CAP (65535u * 16u) // blocks of a grid-stride launch; its threads loop over the rest
#endif

// Grid size for n elements in blocks of `threads`, capped so that a grid-stride loop covers the rest.
static inline unsigned cuda_grid(size_t n, int threads) {
    size_t blocks = (n + (size_t)threads - 1) / (size_t)threads;
    if (blocks > RT_CUDA_GRID_CAP) blocks = RT_CUDA_GRID_CAP;
    return blocks ? (unsigned)blocks : 1u;
}

// Element conversions between storage types and fp32.
__device__ __forceinline__ float to_f32(float x) {
    return x;
}
__device__ __forceinline__ float to_f32(bf16 x) {
    return __bfloat162float(x);
}
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) {
    return __float2bfloat16_rn(x);
}

// Warp and block sums in a fixed order (a butterfly, then warp partials in warp order), so a block's
// result does not depend on timing. `shared` holds 32 floats. Every thread of the block must call it;
// every thread receives the sum.
__device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}
__device__ __forceinline__ float block_sum(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads(); // shared may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = lane < n_warps ? shared[lane] : 0.0f;
    return warp_sum(s);
}
__device__ __forceinline__ float block_max(float v, float *shared) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    float s = lane < n_warps ? shared[lane] : -INFINITY;
    return warp_max(s);
}

// Runs the statement(s) given with T = float or bf16 according to the context's activation dtype.
#define CUDA_DISPATCH_ACT(ctx, ...)                                                                          \
    do {                                                                                                     \
        if ((ctx)->act == RT_BF16) {                                                                         \
            typedef bf16 T;                                                                                  \
            __VA_ARGS__;                                                                                     \
        } else {                                                                                             \
            typedef float T;                                                                                 \
            __VA_ARGS__;                                                                                     \
        }                                                                                                    \
    } while (0)

// The ops, one file each (C++ linkage inside the backend; the table in cuda_backend.cu exports them).
void cuda_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                 int trans_b, float alpha, float beta);
void cuda_matmul_free_plans(rt_ctx *ctx);
void cuda_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n);
void cuda_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n);
void cuda_embedding_forward(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C);
void cuda_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                             int C);
void cuda_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N,
                          int C, float eps);
void cuda_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                           const void *weight, const float *rstd, int N, int C);
void cuda_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int ld);
void cuda_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                        int B, int T, int H, int D, int ld);
void cuda_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                            int B, int T, int H, int KVH, int D, int ldq, int ldkv);
void cuda_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                             const void *k, const void *v, const void *out, const float *lse, int B, int T,
                             int H, int KVH, int D, int ldq, int ldkv);
// The bf16 tensor-core attention kernels (attention_mma.cu, sm_80+). 1 when the call was handled (enqueued,
// or its failure recorded); 0 when the dtype or shape is not theirs and the caller runs the portable kernels.
int cuda_attention_mma_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                               const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv);
int cuda_attention_mma_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                const void *k, const void *v, const void *out, const float *lse, int B, int T,
                                int H, int KVH, int D, int ldq, int ldkv);
void cuda_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld);
void cuda_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                          const void *up, int N, int F, int ld);
void cuda_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                        int N, int V, float grad_scale);
void cuda_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                       const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs, int k,
                       const int32_t *targets, int N, int V, const rt_kd_params *p, float grad_scale);
void cuda_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n);
void cuda_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n);
void cuda_sum_squares_segments(rt_ctx *ctx, float *partials, const float *x, size_t n, size_t seg);
void cuda_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first);
void cuda_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm);
void cuda_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
                float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                const float *grad_scale);
void cuda_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n);
void cuda_add_inplace(rt_ctx *ctx, void *acc, const void *x, size_t n);
void cuda_convert(rt_ctx *ctx, void *dst, rt_dtype dst_t, const void *src, rt_dtype src_t, size_t n);
// Generation with a KV cache (kv_attention.cu).
void cuda_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                          int B, int T, int H, int D, int pos0, int ld);
void cuda_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                   const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                   int cache_stride_T, int ld);
void cuda_kv_append(rt_ctx *ctx, void *cache, const void *x, int B, int T, int KVH, int D, int pos0,
                    int cache_stride_T, int ld);
// Fine-tuning (finetune_ops.cu).
void cuda_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                         const int8_t *absmax_q, const float *absmax_scale, float absmax_offset, size_t n);
void cuda_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed);
void cuda_copy_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols,
                    int accumulate);

#endif
