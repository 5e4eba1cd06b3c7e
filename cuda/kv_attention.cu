// Generation with a KV cache: RoPE at an offset position, the append of new keys/values into the cache, and
// causal attention of new queries against the cache, flash style (the scores never leave shared memory).
//
// attention_forward_cached: one block of KVC_THREADS threads per (b, h, query row), looping over the row's
// visible keys 0 .. p in chunks of KVC_KEYS. A chunk of keys is staged in shared memory as fp32 rows padded
// to D + 1; KVC_SPLIT consecutive lanes score one key (strided partial dots, then a fixed butterfly over the
// lanes), the chunk's scores go to shared memory, and every thread folds them into the online softmax in key
// order (running max, sum and its accumulator slots d = tid + KVC_THREADS i rescaled when the max grows).
// Every thread sees the same scores in the same order, so the sum is the same in all of them; no atomics,
// so results are bit-identical run to run. Shared memory: (D + KVC_KEYS (D + 1) + KVC_KEYS) floats, 34 KB
// at D = 256.
//   q [B, Tq, H, D] (rows ld apart) at positions T_ctx - Tq .. T_ctx - 1; k/v cache [B, S, KVH, D];
//   out [B, Tq, H, D] contiguous
#include <limits.h>
#include <math.h>

#include "cuda_internal.h"

#define KVC_THREADS  128
#define KVC_KEYS     32                       // keys per chunk
#define KVC_SPLIT    (KVC_THREADS / KVC_KEYS) // lanes per key in the score phase
#define KVC_MAX_GRID RT_CUDA_MAX_GRID_Y

typedef struct kvc_shape {
    int B, Tq, T_ctx, H, KVH, D, S;
    int ldq;   // elements between rows of q
    int group; // H / KVH
    float scale;
} kvc_shape;

template <typename E, int NI>
__global__ void __launch_bounds__(KVC_THREADS)
    attention_cached_kernel(E *out, const E *q, const E *kc, const E *vc, kvc_shape s) {
    static_assert(KVC_SPLIT == 4, "the score butterfly below folds 4 lanes");
    extern __shared__ float smem[];
    const int D = s.D, ld = D + 1;
    float *qs = smem, *KVs = qs + D, *Ps = KVs + KVC_KEYS * ld; // [D], [KVC_KEYS, ld], [KVC_KEYS]
    const int b = blockIdx.x / s.H, h = blockIdx.x % s.H, g = h / s.group, tid = threadIdx.x;
    const size_t kstride = (size_t)s.KVH * D;
    const E *kb = kc + (size_t)b * s.S * kstride + (size_t)g * D;
    const E *vb = vc + (size_t)b * s.S * kstride + (size_t)g * D;
    for (int r = blockIdx.y; r < s.Tq; r += gridDim.y) {
        const int p = s.T_ctx - s.Tq + r; // this query's position: it sees keys 0 .. p
        const E *qrow = q + ((size_t)b * s.Tq + r) * (size_t)s.ldq + (size_t)h * D;
        __syncthreads(); // the previous row is done with qs
        for (int d = tid; d < D; d += KVC_THREADS) qs[d] = to_f32(qrow[d]);
        float m = -INFINITY, lsum = 0.0f, acc[NI];
#pragma unroll
        for (int i = 0; i < NI; i++) acc[i] = 0.0f;
        for (int k0 = 0; k0 <= p; k0 += KVC_KEYS) {
            const int nk = p + 1 - k0 < KVC_KEYS ? p + 1 - k0 : KVC_KEYS;
            __syncthreads(); // the previous chunk is done with KVs (as V) and Ps; qs is written
            for (int i = tid; i < nk * D; i += KVC_THREADS) {
                int c = i / D, d = i - c * D;
                KVs[c * ld + d] = to_f32(kb[(size_t)(k0 + c) * kstride + d]);
            }
            __syncthreads();
            {
                const int c = tid / KVC_SPLIT, part = tid % KVC_SPLIT;
                const float *krow = KVs + c * ld;
                float sc = 0.0f;
                for (int d = part; d < D; d += KVC_SPLIT) sc += qs[d] * krow[d];
                sc += __shfl_xor_sync(0xffffffffu, sc, 1);
                sc += __shfl_xor_sync(0xffffffffu, sc, 2);
                if (part == 0) Ps[c] = c < nk ? sc * s.scale : -INFINITY; // rows past nk hold stale values
            }
            __syncthreads(); // the scores are in Ps; everyone is done with K
            for (int i = tid; i < nk * D; i += KVC_THREADS) {
                int c = i / D, d = i - c * D;
                KVs[c * ld + d] = to_f32(vb[(size_t)(k0 + c) * kstride + d]);
            }
            float mt = -INFINITY;
            for (int c = 0; c < nk; c++) mt = fmaxf(mt, Ps[c]);
            // key 0 is visible to every query, so m_new is finite from the first chunk on; there
            // m = -inf and alpha = 0 clears nothing but zeros
            const float m_new = fmaxf(m, mt), alpha = expf(m - m_new);
            __syncthreads(); // V is loaded
#pragma unroll
            for (int i = 0; i < NI; i++) acc[i] *= alpha;
            float psum = 0.0f;
            for (int c = 0; c < nk; c++) {
                const float pc = expf(Ps[c] - m_new);
                const float *vrow = KVs + c * ld;
                psum += pc;
#pragma unroll
                for (int i = 0; i < NI; i++) {
                    int d = tid + i * KVC_THREADS;
                    if (d < D) acc[i] += pc * vrow[d];
                }
            }
            lsum = lsum * alpha + psum;
            m = m_new;
        }
        const float inv = 1.0f / lsum;
        E *orow = out + (((size_t)b * s.Tq + r) * s.H + h) * (size_t)D; // contiguous, unlike q
#pragma unroll
        for (int i = 0; i < NI; i++) {
            int d = tid + i * KVC_THREADS;
            if (d < D) orow[d] = from_f32<E>(acc[i] * inv);
        }
    }
}

template <typename E>
static void attention_cached(cudaStream_t stream, E *out, const E *q, const E *kc, const E *vc, kvc_shape s) {
    dim3 grid((unsigned)(s.B * s.H), (unsigned)(s.Tq < KVC_MAX_GRID ? s.Tq : KVC_MAX_GRID));
    size_t smem = ((size_t)s.D + (size_t)KVC_KEYS * (s.D + 1) + KVC_KEYS) * sizeof(float);
    if (s.D <= KVC_THREADS)
        attention_cached_kernel<E, 1><<<grid, KVC_THREADS, smem, stream>>>(out, q, kc, vc, s);
    else
        attention_cached_kernel<E, 2><<<grid, KVC_THREADS, smem, stream>>>(out, q, kc, vc, s);
}

void cuda_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                   const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                   int cache_stride_T, int ld) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || B <= 0 || Tq <= 0 || H <= 0) return;
    if (D < 1 || D > 2 * KVC_THREADS || KVH < 1 || H % KVH != 0 || (size_t)B * H > INT_MAX || Tq > T_ctx ||
        T_ctx > cache_stride_T || ld < H * D) {
        cuda_record_failure(
            ctx, "attention_forward_cached",
            "unsupported shape B=%d Tq=%d T_ctx=%d H=%d KVH=%d D=%d cache %d ld %d (needs D <= "
            "%d, H %% KVH == 0, Tq <= T_ctx <= cache rows, ld >= H * D)",
            B, Tq, T_ctx, H, KVH, D, cache_stride_T, ld, 2 * KVC_THREADS);
        return;
    }
    kvc_shape s = {B, Tq, T_ctx, H, KVH, D, cache_stride_T, ld, H / KVH, 1.0f / sqrtf((float)D)};
    cudaStream_t stream = st->stream;
    CUDA_DISPATCH_ACT(
        ctx, attention_cached<T>(stream, (T *)out, (const T *)q, (const T *)k_cache, (const T *)v_cache, s));
    cuda_check_launch(ctx, "attention_forward_cached");
}

// ---- RoPE at positions pos0 + t: x [B, T, H, D], rows ld apart; cos/sin [T_max, D/2] (elementwise.cu's
// rotation) ----

template <typename T>
__global__ void rope_at_kernel(T *out, const T *x, const float *cos_tab, const float *sin_tab, int T_len,
                               int H, int D, int pos0, size_t ld, size_t n_pairs) {
    int half = D / 2;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < n_pairs;
         p += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(p % (size_t)half);
        size_t row = p / (size_t)half; // (b, t, h)
        size_t pos = (size_t)pos0 + (row / (size_t)H) % (size_t)T_len;
        size_t off = row / (size_t)H * ld + row % (size_t)H * (size_t)D;
        float c = cos_tab[pos * half + i], s = sin_tab[pos * half + i];
        float x1 = to_f32(x[off + i]), x2 = to_f32(x[off + i + half]);
        out[off + i] = from_f32<T>(x1 * c - x2 * s);
        out[off + i + half] = from_f32<T>(x1 * s + x2 * c);
    }
}

void cuda_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                          int B, int T_len, int H, int D, int pos0, int ld) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) return;
    size_t n_pairs = (size_t)B * T_len * H * (D / 2);
    if (n_pairs == 0) return;
    CUDA_DISPATCH_ACT(ctx,
                      (rope_at_kernel<T><<<cuda_grid(n_pairs, 256), 256, 0, st->stream>>>(
                          (T *)out, (const T *)x, cos_tab, sin_tab, T_len, H, D, pos0, (size_t)ld, n_pairs)));
    cuda_check_launch(ctx, "rope_forward_at");
}

// ---- cache rows pos0 .. pos0 + T - 1 of each batch = x [B, T, KVH, D] (rows ld apart): 2-D copies ----

void cuda_kv_append(rt_ctx *ctx, void *cache, const void *x, int B, int T, int KVH, int D, int pos0,
                    int cache_stride_T, int ld) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || B <= 0 || T <= 0) return;
    size_t es = rt_dtype_size(ctx->act), row = (size_t)KVH * D * es; // bytes of one position
    // per batch, T rows of `row` bytes: source rows ld elements apart, destination rows contiguous
    for (int b = 0; b < B; b++) {
        cudaError_t e = cudaMemcpy2DAsync((char *)cache + ((size_t)b * cache_stride_T + pos0) * row, row,
                                          (const char *)x + (size_t)b * T * ld * es, (size_t)ld * es, row,
                                          (size_t)T, cudaMemcpyDeviceToDevice, st->stream);
        if (e != cudaSuccess) {
            cuda_record_failure(ctx, "kv_append", "%s", cudaGetErrorString(e));
            return;
        }
    }
}
