// Causal grouped-query attention. One task per (batch, head) forward and per (batch, kv head) backward.
// Each task walks its queries in blocks of ATT_BLOCK rows; a block of rows [r0, r1) only sees keys [0, r1),
// so the score block is [r1 - r0, r1] (sgemm on strided q/k/v, into per-thread scratch) and the masked upper
// triangle is never computed beyond the diagonal block. The probabilities are never kept: backward rebuilds
// them from the saved log-sum-exp.
//   q/dq [B, T, H, D] (rows ldq elements apart), k/v/dk/dv [B, T, KVH, D] (rows ldkv apart),
//   out/dout [B, T, H, D] contiguous, lse [B, H, T]
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

#define ATT_BLOCK 64

// P[t - r0, 0..r1) for rows t in [r0, r1): the causal softmax of S = scale * Q K^T over keys 0..t, zero for
// keys after t. S is computed into P (row stride ldp). With lse_in the row's log-sum-exp is given (backward);
// otherwise it is computed and stored into lse_out.
static void probabilities(float *P, int ldp, const float *q, int ldq, const float *k, int ldk, int r0, int r1,
                          int D, float scale, float *lse_out, const float *lse_in) {
    cpu_gemm(0, 1, r1 - r0, r1, D, scale, q + (size_t)r0 * ldq, ldq, k, ldk, 0.0f, P, ldp);
    for (int t = r0; t < r1; t++) {
        float *row = P + (size_t)(t - r0) * ldp;
        int n = t + 1;
        if (lse_in) {
            cpu_exp_shift(row, n, lse_in[t]);
        } else {
            float mx = cpu_max(row, n), sum = cpu_exp_sum(row, n, mx), inv = 1.0f / sum;
            lse_out[t] = mx + logf(sum);
#pragma omp simd
            for (int j = 0; j < n; j++) row[j] *= inv;
        }
        memset(row + n, 0, (size_t)(r1 - n) * sizeof *row);
    }
}

void cpu_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                           int B, int T, int H, int KVH, int D, int ldq, int ldkv) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_attention_forward(ctx, out, lse, q, k, v, B, T, H, KVH, D, ldq, ldkv);
        return;
    }
    const float *Q = q, *K = k, *Vv = v;
    float *O = out;
    int group = H / KVH, ldk = ldkv, ldo = H * D, bs = T < ATT_BLOCK ? T : ATT_BLOCK;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, (size_t)bs * T);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H, g = h / group;
        float *P = scratch + (size_t)omp_get_thread_num() * per; // [bs, T]
        const float *qb = Q + (size_t)b * T * ldq + (size_t)h * D;
        const float *kb = K + (size_t)b * T * ldk + (size_t)g * D;
        const float *vb = Vv + (size_t)b * T * ldk + (size_t)g * D;
        float *ob = O + (size_t)b * T * ldo + (size_t)h * D;
        float *lb = lse + ((size_t)b * H + h) * T;
        for (int r0 = 0; r0 < T; r0 += bs) {
            int r1 = r0 + bs < T ? r0 + bs : T;
            probabilities(P, T, qb, ldq, kb, ldk, r0, r1, D, scale, lb, NULL);
            cpu_gemm(0, 0, r1 - r0, D, r1, 1.0f, P, T, vb, ldk, 0.0f, ob + (size_t)r0 * ldo, ldo);
        }
    }
}

// For each query head h of kv head g, per block of query rows, with P rebuilt from lse and
// delta_t = sum_d dO[t,d] O[t,d]:
//   dP = dO V^T,  dS = P * (dP - delta),  dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO
// A kv head's query heads run in order inside one task, so dK and dV accumulate deterministically.
void cpu_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, int B, int T,
                            int H, int KVH, int D, int ldq, int ldkv) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, lse, B, T, H, KVH, D, ldq, ldkv);
        return;
    }
    const float *Q = q, *K = k, *Vv = v, *dO = dout, *O = out;
    float *dQ = dq, *dK = dk, *dV = dv;
    int group = H / KVH, ldk = ldkv, ldo = H * D, bs = T < ATT_BLOCK ? T : ATT_BLOCK;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, 2 * (size_t)bs * T);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int task = 0; task < B * KVH; task++) {
        int b = task / KVH, g = task % KVH;
        float *P = scratch + (size_t)omp_get_thread_num() * per, *dS = P + (size_t)bs * T; // [bs, T] each
        const float *kb = K + (size_t)b * T * ldk + (size_t)g * D;
        const float *vb = Vv + (size_t)b * T * ldk + (size_t)g * D;
        float *dkb = dK + (size_t)b * T * ldk + (size_t)g * D;
        float *dvb = dV + (size_t)b * T * ldk + (size_t)g * D;
        for (int t = 0; t < T; t++) {
            memset(dkb + (size_t)t * ldk, 0, (size_t)D * sizeof(float));
            memset(dvb + (size_t)t * ldk, 0, (size_t)D * sizeof(float));
        }
        for (int j = 0; j < group; j++) {
            int h = g * group + j;
            size_t qoff = (size_t)b * T * ldq + (size_t)h * D, ooff = (size_t)b * T * ldo + (size_t)h * D;
            const float *qb = Q + qoff, *dob = dO + ooff, *ob = O + ooff, *lb = lse + ((size_t)b * H + h) * T;
            for (int r0 = 0; r0 < T; r0 += bs) {
                int r1 = r0 + bs < T ? r0 + bs : T, m = r1 - r0;
                probabilities(P, T, qb, ldq, kb, ldk, r0, r1, D, scale, NULL, lb);
                cpu_gemm(0, 1, m, r1, D, 1.0f, dob + (size_t)r0 * ldo, ldo, vb, ldk, 0.0f, dS, T); // dP
                for (int t = r0; t < r1; t++) {
                    float *prow = P + (size_t)(t - r0) * T, *srow = dS + (size_t)(t - r0) * T;
                    float delta = cpu_dot(dob + (size_t)t * ldo, ob + (size_t)t * ldo, D);
#pragma omp simd
                    for (int u = 0; u <= t; u++) srow[u] = prow[u] * (srow[u] - delta);
                    memset(srow + t + 1, 0, (size_t)(r1 - t - 1) * sizeof *srow);
                }
                cpu_gemm(0, 0, m, D, r1, scale, dS, T, kb, ldk, 0.0f, dQ + qoff + (size_t)r0 * ldq, ldq);
                cpu_gemm(1, 0, r1, D, m, scale, dS, T, qb + (size_t)r0 * ldq, ldq, 1.0f, dkb, ldk);
                cpu_gemm(1, 0, r1, D, m, 1.0f, P, T, dob + (size_t)r0 * ldo, ldo, 1.0f, dvb, ldk);
            }
        }
    }
}
