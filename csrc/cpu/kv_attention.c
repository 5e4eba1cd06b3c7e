// Generation with a KV cache: causal attention of new queries against the cached keys and values, and the
// append of new keys/values into the cache. The attention walks one (batch, head) per task and its query
// rows in blocks of KV_BLOCK, as attention_forward does: a block of rows [r0, r1) at positions
// p0 + r0 .. p0 + r1 - 1 sees keys [0, p0 + r1), so its score block is [r1 - r0, p0 + r1] (sgemm on the
// strided cache into per-thread scratch), softmax per row in fp32, then P V by sgemm.
//   q [B, Tq, H, D] (rows ld apart) at positions p0 = T_ctx - Tq .. T_ctx - 1, k/v cache [B, S, KVH, D] (S =
//   cache_stride_T, positions 0 .. T_ctx - 1 valid), out [B, Tq, H, D]
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

#define KV_BLOCK 64

void cpu_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                  const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                  int cache_stride_T, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_attention_forward_cached(ctx, out, q, k_cache, v_cache, B, Tq, T_ctx, H, KVH, D,
                                          cache_stride_T, ld);
        return;
    }
    if (B <= 0 || Tq <= 0 || H <= 0) return;
    const float *Q = q, *K = k_cache, *Vv = v_cache;
    float *O = out;
    int group = H / KVH, ldq = ld, ldo = H * D, ldk = KVH * D, bs = Tq < KV_BLOCK ? Tq : KV_BLOCK,
        p0 = T_ctx - Tq;
    size_t S = (size_t)cache_stride_T;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, (size_t)bs * T_ctx);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * H * Tq * T_ctx * D);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H, g = h / group;
        float *P = scratch + (size_t)omp_get_thread_num() * per; // [bs, T_ctx]
        const float *qb = Q + (size_t)b * Tq * ldq + (size_t)h * D;
        const float *kb = K + (size_t)b * S * ldk + (size_t)g * D;
        const float *vb = Vv + (size_t)b * S * ldk + (size_t)g * D;
        float *ob = O + (size_t)b * Tq * ldo + (size_t)h * D;
        for (int r0 = 0; r0 < Tq; r0 += bs) {
            int r1 = r0 + bs < Tq ? r0 + bs : Tq, n_keys = p0 + r1;
            cpu_gemm(0, 1, r1 - r0, n_keys, D, scale, qb + (size_t)r0 * ldq, ldq, kb, ldk, 0.0f, P,
                     T_ctx); // [r1 - r0, n_keys]
            for (int t = r0; t < r1; t++) {
                float *row = P + (size_t)(t - r0) * T_ctx;
                int n = p0 + t + 1; // keys 0 .. p0 + t
                float mx = cpu_max(row, n), inv = 1.0f / cpu_exp_sum(row, n, mx);
#pragma omp simd
                for (int j = 0; j < n; j++) row[j] *= inv;
                for (int j = n; j < n_keys; j++) row[j] = 0.0f;
            }
            cpu_gemm(0, 0, r1 - r0, D, n_keys, 1.0f, P, T_ctx, vb, ldk, 0.0f, ob + (size_t)r0 * ldo,
                     ldo); // [r1 - r0, D]
        }
    }
}

void cpu_kv_append(rt_ctx *ctx, void *cache, const void *x, int B, int T, int KVH, int D, int pos0,
                   int cache_stride_T, int ld) {
    // a copy: the same bytes in fp32 and bf16
    size_t es = rt_dtype_size(ctx->act), row = (size_t)KVH * D;
    char *dst = cache;
    const char *src = x;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(dst + ((size_t)b * cache_stride_T + pos0 + t) * row * es,
                   src + ((size_t)b * T + t) * (size_t)ld * es, row * es);
}
