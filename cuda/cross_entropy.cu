// Softmax cross-entropy fused with its gradient, one block per row: a pass for the max, one for the sum of
// exponentials, one writing the gradient (in place over the logits when dlogits == logits). The
// probabilities are never stored, so a [N, V] softmax never exists in memory.
#include "cuda_internal.h"

#define CE_THREADS 512

// logits [N, V]; targets [N] (< 0 ignored); losses [N] fp32; dlogits [N, V] or NULL
template <typename T>
__global__ void cross_entropy_kernel(float *losses, T *dlogits, const T *logits, const int32_t *targets,
                                     int V, float grad_scale) {
    __shared__ float shared[32];
    size_t row = blockIdx.x;
    const T *x = logits + row * (size_t)V;
    T *dx = dlogits ? dlogits + row * (size_t)V : NULL;
    int tgt = targets[row];
    if (tgt < 0 || tgt >= V) {
        // ignored; an id past the vocabulary cannot get here after dataset validation, and shows as a NaN
        // loss rather than a plausible number
        if (threadIdx.x == 0) losses[row] = tgt < 0 ? 0.0f : NAN;
        if (dx)
            for (int j = threadIdx.x; j < V; j += blockDim.x) dx[j] = from_f32<T>(0.0f);
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, to_f32(x[j]));
    mx = block_max(mx, shared);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(to_f32(x[j]) - mx);
    float target_logit = to_f32(x[tgt]); // read before block_sum's barriers: the gradient overwrites x
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0) losses[row] = logf(sum) + mx - target_logit;
    if (!dx) return;
    float s = grad_scale / sum;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float p = s * expf(to_f32(x[j]) - mx);
        dx[j] = from_f32<T>(j == tgt ? p - grad_scale : p);
    }
}

void cuda_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                        int N, int V, float grad_scale) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || N <= 0) return;
    CUDA_DISPATCH_ACT(ctx, cross_entropy_kernel<T><<<(unsigned)N, CE_THREADS, 0, st->stream>>>(
                               losses, (T *)dlogits, (const T *)logits, targets, V, grad_scale));
    cuda_check_launch(ctx, "cross_entropy");
}
