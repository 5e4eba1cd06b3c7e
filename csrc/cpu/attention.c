// Causal grouped-query attention. One task per (batch, head) forward and per (batch, kv head) backward;
// each builds its T x T score block with sgemm in per-thread scratch (the block is never kept: backward
// rebuilds the probabilities from the saved log-sum-exp).
//   q [B, T, H, D], k/v [B, T, KVH, D], out [B, T, H, D], lse [B, H, T]
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"

// P[T, T] = causal softmax of scale * Q K^T, rebuilt from the scores and (when given) the saved lse.
// Without lse it computes and stores the lse of each row.
static void probabilities(float *P, const float *q, int ldq, const float *k, int ldk, int T, int D, float scale,
                          float *lse_out, const float *lse_in) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale, q, ldq, k, ldk, 0.0f, P, T);
    for (int t = 0; t < T; t++) {
        float *row = P + (size_t)t * T;
        float l;
        if (lse_in) {
            l = lse_in[t];
        } else {
            float mx = row[0];
            for (int j = 1; j <= t; j++) mx = row[j] > mx ? row[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j <= t; j++) sum += expf(row[j] - mx);
            l = mx + logf(sum);
            lse_out[t] = l;
        }
        for (int j = 0; j <= t; j++) row[j] = expf(row[j] - l);
        for (int j = t + 1; j < T; j++) row[j] = 0.0f;
    }
}

void cpu_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v, int B,
                           int T, int H, int KVH, int D) {
    const float *Q = q, *K = k, *Vv = v;
    float *O = out;
    int group = H / KVH, ldq = H * D, ldk = KVH * D;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, (size_t)T * T);
    size_t per = cpu_of(ctx)->scratch_per_thread;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (int task = 0; task < B * H; task++) {
        int b = task / H, h = task % H, g = h / group;
        float *P = scratch + (size_t)omp_get_thread_num() * per;
        const float *qb = Q + (size_t)b * T * ldq + (size_t)h * D;
        const float *kb = K + (size_t)b * T * ldk + (size_t)g * D;
        const float *vb = Vv + (size_t)b * T * ldk + (size_t)g * D;
        probabilities(P, qb, ldq, kb, ldk, T, D, scale, lse + ((size_t)b * H + h) * T, NULL);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, P, T, vb, ldk, 0.0f,
                    O + (size_t)b * T * ldq + (size_t)h * D, ldq);
    }
}

// For each query head h of kv head g, with P rebuilt from lse and delta_t = sum_d dO[t,d] O[t,d]:
//   dP = dO V^T,  dS = P * (dP - delta),  dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO
// A kv head's query heads run in order inside one task, so dK and dV accumulate deterministically.
void cpu_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, int B, int T, int H,
                            int KVH, int D) {
    const float *Q = q, *K = k, *Vv = v, *dO = dout, *O = out;
    float *dQ = dq, *dK = dk, *dV = dv;
    int group = H / KVH, ldq = H * D, ldk = KVH * D;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, 2 * (size_t)T * T + (size_t)T);
    size_t per = cpu_of(ctx)->scratch_per_thread;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (int task = 0; task < B * KVH; task++) {
        int b = task / KVH, g = task % KVH;
        float *P = scratch + (size_t)omp_get_thread_num() * per, *dP = P + (size_t)T * T, *delta = dP + (size_t)T * T;
        const float *kb = K + (size_t)b * T * ldk + (size_t)g * D;
        const float *vb = Vv + (size_t)b * T * ldk + (size_t)g * D;
        float *dkb = dK + (size_t)b * T * ldk + (size_t)g * D;
        float *dvb = dV + (size_t)b * T * ldk + (size_t)g * D;
        for (int j = 0; j < group; j++) {
            int h = g * group + j;
            size_t qoff = (size_t)b * T * ldq + (size_t)h * D;
            probabilities(P, Q + qoff, ldq, kb, ldk, T, D, scale, NULL, lse + ((size_t)b * H + h) * T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dO + qoff, ldq, vb, ldk, 0.0f, dP, T);
            for (int t = 0; t < T; t++) {
                const float *dorow = dO + qoff + (size_t)t * ldq, *orow = O + qoff + (size_t)t * ldq;
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += dorow[d] * orow[d];
                delta[t] = s;
            }
            for (int t = 0; t < T; t++) {
                float *prow = P + (size_t)t * T, *dprow = dP + (size_t)t * T;
                for (int u = 0; u <= t; u++) dprow[u] = prow[u] * (dprow[u] - delta[t]);
                for (int u = t + 1; u < T; u++) dprow[u] = 0.0f;
            }
            // dP now holds dS
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, dP, T, kb, ldk, 0.0f, dQ + qoff,
                        ldq);
            float beta = j == 0 ? 0.0f : 1.0f;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, dP, T, Q + qoff, ldq, beta, dkb, ldk);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, dO + qoff, ldq, beta, dvb, ldk);
        }
    }
}
