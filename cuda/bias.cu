// Bias of a linear layer: forward adds bias[n] to every row of out [N, n]; backward sums the rows of the
// output gradient into dbias in two deterministic passes (per-chunk partials in scratch, then the chunks in
// order), as rmsnorm.cu does for its weight gradient, instead of with atomics.
#include "cuda_internal.h"

#define BIAS_THREADS    256
#define BIAS_CHUNK_ROWS 64 // rows per partial sum (more when the chunks would exceed grid.y)

// out [N, n] += bias [n]; a grid-stride loop over the N * n elements
template <typename T> __global__ void add_bias_rows_kernel(T *out, const T *bias, size_t total, int n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(to_f32(out[i]) + to_f32(bias[i % (size_t)n]));
}

// partial[chunk, c] = sum over the chunk's rows of dout[row, c]
template <typename T>
__global__ void bias_partial_kernel(float *partial, const T *dout, int N, int n, int chunk_rows) {
    int c = blockIdx.x * BIAS_THREADS + threadIdx.x, chunk = blockIdx.y;
    if (c >= n) return;
    int r0 = chunk * chunk_rows, r1 = (int)min((long long)N, (long long)r0 + chunk_rows);
    float s = 0.0f;
    for (int r = r0; r < r1; r++) s += to_f32(dout[(size_t)r * n + c]);
    partial[(size_t)chunk * n + c] = s;
}

// dbias[c] += sum over chunks in order
template <typename T> __global__ void bias_sum_kernel(T *dbias, const float *partial, int n_chunks, int n) {
    int c = blockIdx.x * BIAS_THREADS + threadIdx.x;
    if (c >= n) return;
    float s = 0.0f;
    for (int k = 0; k < n_chunks; k++) s += partial[(size_t)k * n + c];
    dbias[c] = from_f32<T>(to_f32(dbias[c]) + s);
}

void cuda_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0 || n <= 0) return;
    size_t total = (size_t)N * (size_t)n;
    CUDA_DISPATCH_ACT(ctx, add_bias_rows_kernel<T>
                      <<<cuda_grid(total, BIAS_THREADS), BIAS_THREADS, 0, st->stream>>>(
                          (T *)out, (const T *)bias, total, n));
    cuda_check_launch(ctx, "add_bias_rows");
}

void cuda_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0 || n <= 0) return;
    int chunk_rows = BIAS_CHUNK_ROWS;
    while (((size_t)N + chunk_rows - 1) / chunk_rows > RT_CUDA_MAX_GRID_Y) chunk_rows *= 2;
    int n_chunks = (int)(((size_t)N + chunk_rows - 1) / chunk_rows);
    float *partial = (float *)cuda_scratch(ctx, (size_t)n_chunks * n * sizeof(float), "bias_backward");
    if (!partial) return;
    dim3 grid((unsigned)((n + BIAS_THREADS - 1) / BIAS_THREADS), (unsigned)n_chunks);
    unsigned sum_grid = (unsigned)((n + BIAS_THREADS - 1) / BIAS_THREADS);
    CUDA_DISPATCH_ACT(ctx, {
        bias_partial_kernel<T>
            <<<grid, BIAS_THREADS, 0, st->stream>>>(partial, (const T *)dout, N, n, chunk_rows);
        bias_sum_kernel<T><<<sum_grid, BIAS_THREADS, 0, st->stream>>>((T *)dbias, partial, n_chunks, n);
    });
    cuda_check_launch(ctx, "bias_backward");
}
