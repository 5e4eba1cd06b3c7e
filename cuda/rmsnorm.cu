// RMSNorm forward and backward: out = x / rms(x) * weight over the last dim, fp32 statistics.
// One warp per row; the weight gradient is a column sum over rows, done deterministically in two passes
// (per-chunk partials in scratch, then the chunks summed in order) instead of with atomics.
#include "cuda_internal.h"

#define ROWS_PER_BLOCK 8   // warps per block, one row each
#define DW_CHUNK_ROWS  64  // rows per partial sum of the weight gradient (more when chunks exceed grid.y)
#define DW_THREADS     256 // columns per block in the weight-gradient kernels

// x, out [N, C]; weight [C]; rstd [N]
template <typename T>
__global__ void rmsnorm_forward_kernel(T *out, float *rstd, const T *x, const T *weight, int N, int C,
                                       float eps) {
    int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return; // whole warps leave together
    const T *xr = x + (size_t)row * C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float v = to_f32(xr[c]);
        ss += v * v;
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (lane == 0) rstd[row] = r;
    T *orow = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) orow[c] = from_f32<T>(to_f32(xr[c]) * r * to_f32(weight[c]));
}

// dx += rstd * (g - xhat * mean(g * xhat)), g = dout * weight, xhat = x * rstd
template <typename T>
__global__ void rmsnorm_backward_dx_kernel(T *dx, const T *dout, const T *x, const T *weight,
                                           const float *rstd, int N, int C) {
    int row = blockIdx.x * ROWS_PER_BLOCK + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *dr = dout + (size_t)row * C, *xr = x + (size_t)row * C;
    float r = rstd[row], dot = 0.0f;
    for (int c = lane; c < C; c += 32) dot += to_f32(dr[c]) * to_f32(weight[c]) * to_f32(xr[c]);
    float mean = warp_sum(dot) * r / (float)C;
    T *dxr = dx + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float g = to_f32(dr[c]) * to_f32(weight[c]), xhat = to_f32(xr[c]) * r;
        dxr[c] = from_f32<T>(to_f32(dxr[c]) + r * (g - xhat * mean));
    }
}

// partial[chunk, c] = sum over the chunk's rows of dout[row, c] * x[row, c] * rstd[row]
template <typename T>
__global__ void rmsnorm_dweight_partial_kernel(float *partial, const T *dout, const T *x, const float *rstd,
                                               int N, int C, int chunk_rows) {
    int c = blockIdx.x * DW_THREADS + threadIdx.x, chunk = blockIdx.y;
    if (c >= C) return;
    int r0 = chunk * chunk_rows, r1 = (int)min((long long)N, (long long)r0 + chunk_rows); // no int overflow
    float s = 0.0f; // dout * xhat with xhat = x * rstd, grouped as the CPU does
    for (int r = r0; r < r1; r++)
        s += to_f32(dout[(size_t)r * C + c]) * (to_f32(x[(size_t)r * C + c]) * rstd[r]);
    partial[(size_t)chunk * C + c] = s;
}

// dweight[c] += sum over chunks in order
template <typename T>
__global__ void rmsnorm_dweight_sum_kernel(T *dweight, const float *partial, int n_chunks, int C) {
    int c = blockIdx.x * DW_THREADS + threadIdx.x;
    if (c >= C) return;
    float s = 0.0f;
    for (int k = 0; k < n_chunks; k++) s += partial[(size_t)k * C + c];
    dweight[c] = from_f32<T>(to_f32(dweight[c]) + s);
}

void cuda_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N,
                          int C, float eps) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0) return;
    unsigned grid = (unsigned)(((size_t)N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    CUDA_DISPATCH_ACT(ctx, rmsnorm_forward_kernel<T><<<grid, 32 * ROWS_PER_BLOCK, 0, st->stream>>>(
                               (T *)out, rstd, (const T *)x, (const T *)weight, N, C, eps));
    cuda_check_launch(ctx, "rmsnorm_forward");
}

void cuda_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                           const void *weight, const float *rstd, int N, int C) {
    cuda_state *st = cuda_of(ctx);
    // C == 0 adds nothing, and its grid of 0 column blocks would be an invalid launch that fails the context
    if (st->failed || N <= 0 || C <= 0) return;
    int chunk_rows = DW_CHUNK_ROWS;
    while (((size_t)N + chunk_rows - 1) / chunk_rows > RT_CUDA_MAX_GRID_Y) chunk_rows *= 2;
    int n_chunks = (int)(((size_t)N + chunk_rows - 1) / chunk_rows);
    float *partial = (float *)cuda_scratch(ctx, (size_t)n_chunks * C * sizeof(float), "rmsnorm_backward");
    if (!partial) return;
    unsigned rows_grid = (unsigned)(((size_t)N + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK);
    dim3 dw_grid((unsigned)((C + DW_THREADS - 1) / DW_THREADS), (unsigned)n_chunks);
    unsigned sum_grid = (unsigned)((C + DW_THREADS - 1) / DW_THREADS);
    CUDA_DISPATCH_ACT(ctx, {
        rmsnorm_backward_dx_kernel<T><<<rows_grid, 32 * ROWS_PER_BLOCK, 0, st->stream>>>(
            (T *)dx, (const T *)dout, (const T *)x, (const T *)weight, rstd, N, C);
        rmsnorm_dweight_partial_kernel<T><<<dw_grid, DW_THREADS, 0, st->stream>>>(
            partial, (const T *)dout, (const T *)x, rstd, N, C, chunk_rows);
        rmsnorm_dweight_sum_kernel<T>
            <<<sum_grid, DW_THREADS, 0, st->stream>>>((T *)dweight, partial, n_chunks, C);
    });
    cuda_check_launch(ctx, "rmsnorm_backward");
}
