// Reductions to one device scalar, deterministic: a fixed grid of fixed blocks (independent of the GPU)
// writes one partial per block into scratch, then one block adds the partials in order. Per-thread sums
// run in double, as on the CPU, so large tensors lose nothing to fp32 accumulation.
#include "cuda_internal.h"

#define RED_BLOCKS  256
#define RED_THREADS 256

template <typename T, int SQUARES>
__global__ void partial_sums_kernel(double *partial, const T *x, size_t n) {
    __shared__ double shared[RED_THREADS];
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)RED_THREADS + threadIdx.x; i < n;
         i += (size_t)RED_BLOCKS * RED_THREADS) {
        double v = (double)to_f32(x[i]);
        acc += SQUARES ? v * v : v;
    }
    shared[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = RED_THREADS / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

// *out = (accumulate ? *out : 0) + sum(partial)
__global__ void finish_sum_kernel(float *out, const double *partial, int accumulate) {
    __shared__ double shared[RED_BLOCKS];
    shared[threadIdx.x] = partial[threadIdx.x];
    __syncthreads();
    for (int stride = RED_BLOCKS / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = (float)((accumulate ? (double)*out : 0.0) + shared[0]);
}

template <typename T, int SQUARES>
static void reduce_to_scalar(rt_ctx *ctx, float *out, const T *x, size_t n, int accumulate, const char *op) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) return;
    double *partial = (double *)cuda_scratch(ctx, RED_BLOCKS * sizeof(double), op);
    if (!partial) return;
    partial_sums_kernel<T, SQUARES><<<RED_BLOCKS, RED_THREADS, 0, st->stream>>>(partial, x, n);
    finish_sum_kernel<<<1, RED_BLOCKS, 0, st->stream>>>(out, partial, accumulate);
    cuda_check_launch(ctx, op);
}

// *acc += sum(x[i]^2) over an act buffer
void cuda_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n) {
    CUDA_DISPATCH_ACT(ctx, reduce_to_scalar<T, 1>(ctx, acc, (const T *)x, n, 1, "sum_squares"));
}

// *out = sum(x[i]) over fp32 x
void cuda_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n) {
    reduce_to_scalar<float, 0>(ctx, out, x, n, 0, "sum_f32");
}

__global__ void clip_scale_kernel(float *scale, const float *norm_sq, float max_norm) {
    float norm = sqrtf(*norm_sq);
    *scale = max_norm > 0.0f && norm > max_norm ? max_norm / norm : 1.0f;
}

void cuda_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) return;
    clip_scale_kernel<<<1, 1, 0, st->stream>>>(scale, norm_sq, max_norm);
    cuda_check_launch(ctx, "clip_scale");
}

// One block per segment, each thread striding through it in double, then a fixed tree: the partial of a
// segment does not depend on the GPU or on the other segments.
__global__ void sum_squares_segments_kernel(float *partials, const float *x, size_t n, size_t seg) {
    __shared__ double shared[RED_THREADS];
    size_t lo = blockIdx.x * seg, hi = lo + seg < n ? lo + seg : n;
    double acc = 0.0;
    for (size_t i = lo + threadIdx.x; i < hi; i += RED_THREADS) {
        double v = (double)x[i];
        acc += v * v;
    }
    shared[threadIdx.x] = acc;
    __syncthreads();
    for (int stride = RED_THREADS / 2; stride > 0; stride >>= 1) {
        if ((int)threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partials[blockIdx.x] = (float)shared[0];
}

void cuda_sum_squares_segments(rt_ctx *ctx, float *partials, const float *x, size_t n, size_t seg) {
    cuda_state *st = cuda_of(ctx);
    size_t n_seg = (n + seg - 1) / seg;
    if (st->failed || n_seg == 0) return;
    sum_squares_segments_kernel<<<(unsigned)n_seg, RED_THREADS, 0, st->stream>>>(partials, x, n, seg);
    cuda_check_launch(ctx, "sum_squares_segments");
}
