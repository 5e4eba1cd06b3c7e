// Elementwise ops: RoPE (rotate-half) and SwiGLU, forward and backward. One thread per element or per
// rotated pair, grid-stride loops; fp32 arithmetic whatever the storage type.
#include "cuda_internal.h"

// ---- RoPE: x [B, T, H, D], rows (b, t) ld elements apart; cos/sin [T_max, D/2]; pair (i, i + D/2) rotates
// by t * theta^(-2i/D) ----

template <typename T>
__global__ void rope_kernel(T *out, const T *x, const float *cos_tab, const float *sin_tab, int T_len, int H,
                            int D, size_t ld, size_t n_pairs, float sign) {
    int half = D / 2;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < n_pairs;
         p += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(p % (size_t)half);
        size_t row = p / (size_t)half; // (b, t, h)
        int t = (int)((row / (size_t)H) % (size_t)T_len);
        size_t off = row / (size_t)H * ld + row % (size_t)H * (size_t)D;
        float c = cos_tab[(size_t)t * half + i], s = sign * sin_tab[(size_t)t * half + i];
        float x1 = to_f32(x[off + i]), x2 = to_f32(x[off + i + half]);
        out[off + i] = from_f32<T>(x1 * c - x2 * s);
        out[off + i + half] = from_f32<T>(x1 * s + x2 * c);
    }
}

static void rope_apply(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                       int B, int T_len, int H, int D, int ld, float sign, const char *op) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) return;
    size_t n_pairs = (size_t)B * T_len * H * (D / 2);
    if (n_pairs == 0) return;
    CUDA_DISPATCH_ACT(ctx,
                      (rope_kernel<T><<<cuda_grid(n_pairs, 256), 256, 0, st->stream>>>(
                          (T *)out, (const T *)x, cos_tab, sin_tab, T_len, H, D, (size_t)ld, n_pairs, sign)));
    cuda_check_launch(ctx, op);
}

void cuda_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int ld) {
    rope_apply(ctx, out, x, cos_tab, sin_tab, B, T, H, D, ld, 1.0f, "rope_forward");
}

// The rotation is orthogonal: its transpose is the rotation by the negative angle.
void cuda_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                        int B, int T, int H, int D, int ld) {
    rope_apply(ctx, dx, dout, cos_tab, sin_tab, B, T, H, D, ld, -1.0f, "rope_backward");
}

// ---- SwiGLU: out [N, F] = silu(gate) * up; gate, up (and dgate, dup) [N, F] with rows ld elements apart
// ----

template <typename T>
__global__ void swiglu_forward_kernel(T *out, const T *gate, const T *up, int F, size_t ld, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t in = i / (size_t)F * ld + i % (size_t)F;
        float g = to_f32(gate[in]);
        out[i] = from_f32<T>(g / (1.0f + expf(-g)) * to_f32(up[in]));
    }
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g)
template <typename T>
__global__ void swiglu_backward_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, int F,
                                       size_t ld, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t in = i / (size_t)F * ld + i % (size_t)F;
        float g = to_f32(gate[in]), d = to_f32(dout[i]), u = to_f32(up[in]);
        float sig = 1.0f / (1.0f + expf(-g));
        dgate[in] = from_f32<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
        dup[in] = from_f32<T>(d * g * sig);
    }
}

void cuda_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld) {
    cuda_state *st = cuda_of(ctx);
    size_t n = N > 0 && F > 0 ? (size_t)N * F : 0;
    if (st->failed || n == 0) return;
    CUDA_DISPATCH_ACT(ctx, (swiglu_forward_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>(
                               (T *)out, (const T *)gate, (const T *)up, F, (size_t)ld, n)));
    cuda_check_launch(ctx, "swiglu_forward");
}

void cuda_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                          const void *up, int N, int F, int ld) {
    cuda_state *st = cuda_of(ctx);
    size_t n = N > 0 && F > 0 ? (size_t)N * F : 0;
    if (st->failed || n == 0) return;
    CUDA_DISPATCH_ACT(
        ctx, (swiglu_backward_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>(
                 (T *)dgate, (T *)dup, (const T *)dout, (const T *)gate, (const T *)up, F, (size_t)ld, n)));
    cuda_check_launch(ctx, "swiglu_backward");
}
