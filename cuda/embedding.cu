// Token embedding: a row gather forward; backward adds each output row into its token's table row.
// Rows repeat across tokens, and float atomics would make the sum's order (and bits) vary from run to run,
// so backward sorts (token, position) pairs with CUB's stable radix sort and lets one block sum each
// token's rows in position order.
#include <cub/device/device_radix_sort.cuh>

#include "cuda_internal.h"

#define EMB_THREADS 256

// out[N, C] = table[tokens[i], :]
template <typename T>
__global__ void embedding_forward_kernel(T *out, const int32_t *tokens, const T *table, int N, int C) {
    size_t n = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / (size_t)C, c = i % (size_t)C;
        out[i] = table[(size_t)tokens[row] * C + c];
    }
}

__global__ void iota_kernel(int32_t *v, int n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)n;
         i += (size_t)gridDim.x * blockDim.x)
        v[i] = (int32_t)i;
}

// One block per sorted position; the block at the start of a run of equal tokens adds that run's rows into
// the token's row in position order (ascending: the sort is stable), accumulating in fp32 from the row's old
// value: the CPU's order exactly (row += dout[i] for i ascending), so fp32 results are bit-identical to it,
// and bf16 rounds once per element instead of once per repeat.
template <typename T>
__global__ void embedding_backward_kernel(T *dtable, const T *dout, const int32_t *sorted_tok,
                                          const int32_t *sorted_pos, int N, int C) {
    int i = blockIdx.x;
    int tok = sorted_tok[i];
    if (i > 0 && sorted_tok[i - 1] == tok) return;
    int end = i + 1;
    while (end < N && sorted_tok[end] == tok) end++;
    T *row = dtable + (size_t)tok * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = to_f32(row[c]);
        for (int j = i; j < end; j++) s += to_f32(dout[(size_t)sorted_pos[j] * C + c]);
        row[c] = from_f32<T>(s);
    }
}

void cuda_embedding_forward(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0) return;
    size_t n = (size_t)N * C;
    CUDA_DISPATCH_ACT(ctx, embedding_forward_kernel<T>
                      <<<cuda_grid(n, 256), 256, 0, st->stream>>>((T *)out, tokens, (const T *)table, N, C));
    cuda_check_launch(ctx, "embedding_forward");
}

// dtable[tokens[i], :] += dout[i, :]
void cuda_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                             int C) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0) return;
    size_t temp_bytes = 0;
    // keys are token ids (>= 0), so sorting them as unsigned gives the same order
    cudaError_t e =
        cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, (const uint32_t *)tokens, (uint32_t *)NULL,
                                        (const int32_t *)NULL, (int32_t *)NULL, N, 0, 32, st->stream);
    if (e != cudaSuccess) {
        cuda_record_failure(ctx, "embedding_backward", "sort size query: %s", cudaGetErrorString(e));
        return;
    }
    size_t ids = ((size_t)N * sizeof(int32_t) + 255) & ~(size_t)255;
    char *scratch = (char *)cuda_scratch(ctx, 3 * ids + temp_bytes, "embedding_backward");
    if (!scratch) return;
    int32_t *sorted_tok = (int32_t *)scratch, *pos = (int32_t *)(scratch + ids),
            *sorted_pos = (int32_t *)(scratch + 2 * ids);
    void *temp = scratch + 3 * ids;
    iota_kernel<<<cuda_grid((size_t)N, 256), 256, 0, st->stream>>>(pos, N);
    e = cub::DeviceRadixSort::SortPairs(temp, temp_bytes, (const uint32_t *)tokens, (uint32_t *)sorted_tok,
                                        pos, sorted_pos, N, 0, 32, st->stream);
    if (e != cudaSuccess) {
        cuda_record_failure(ctx, "embedding_backward", "sort: %s", cudaGetErrorString(e));
        return;
    }
    CUDA_DISPATCH_ACT(ctx, embedding_backward_kernel<T><<<(unsigned)N, EMB_THREADS, 0, st->stream>>>(
                               (T *)dtable, (const T *)dout, sorted_tok, sorted_pos, N, C));
    cuda_check_launch(ctx, "embedding_backward");
}
