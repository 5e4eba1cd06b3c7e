// Causal grouped-query attention on bf16 act buffers, for training. The products are bf16 GEMMs with fp32
// accumulation through oneDNN's batched matmul (cpu_bf16_bmm): one call per batch element and member of a
// query-head group takes all kv heads, reading q, k and v where they lie (a head is a slice of the fused
// projection), so dK and dV, which sum over a group, are plain accumulating products. The softmax and its
// gradient run in fp32, and P and dS are rounded to bf16 before the products that take them, as the GPU's
// tensor-core kernels do. As in attention.c, a block of query rows [r0, r1) only sees keys [0, r1), and
// backward rebuilds P from the saved log-sum-exp. Per block of rows, one parallel region runs a task per
// batch element: its products (oneDNN runs them on the calling thread) and its softmax, in per-thread scratch
// that stays in cache.
//   q/dq [B, T, H, D] (rows ldq elements apart), k/v/dk/dv [B, T, KVH, D] (rows ldkv apart),
//   out/dout [B, T, H, D] contiguous, all bf16; lse [B, H, T] fp32
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

#define ATT_BLOCK 64

// One batch element and one block of m query rows [r0, r1): the shapes every product shares.
typedef struct att_block {
    int64_t T, H, KVH, G, D, m, r1, ldq, ldkv, ldo; // ldo = H D, the rows of out and dout
} att_block;

static att_block block_of(int T, int H, int KVH, int D, int ldq, int ldkv, int64_t r0, int64_t r1) {
    return (att_block){T, H, KVH, H / KVH, D, r1 - r0, r1, ldq, ldkv, (int64_t)H * D};
}

static cpu_bmm bmm_zero(void) {
    cpu_bmm d;
    memset(&d, 0, sizeof d);
    return d;
}

static void set3(int64_t dst[3], int64_t a, int64_t b, int64_t c) {
    dst[0] = a, dst[1] = b, dst[2] = c;
}

static void set5(int64_t dst[5], int64_t a, int64_t b, int64_t c, int64_t row, int64_t col) {
    dst[0] = a, dst[1] = b, dst[2] = c, dst[3] = row, dst[4] = col;
}

// A product over the kv heads of one batch element, for one query head of each group (the callers offset the
// query-side operands by the group member). With one kv head it is a plain GEMM.
static cpu_bmm per_head(const att_block *x, int64_t M, int64_t N, int64_t K) {
    cpu_bmm d = bmm_zero();
    set3(d.batch, 1, x->KVH, 1);
    set3(d.a_batch, 1, x->KVH, 1);
    set3(d.b_batch, 1, x->KVH, 1);
    d.M = M, d.N = N, d.K = K;
    d.alpha = 1.0f;
    return d;
}

// Strides (batch, kv head, group member, row, column) of a query-side [T, H, D] tensor with rows ld apart;
// group member j starts j D further.
static void query_side(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->G * x->D, x->D, ld, 1);
}

// Of a score block [H, m, r1] (contiguous; group member j starts j m r1 further), and of its transpose.
static void scores(int64_t s[5], const att_block *x) {
    set5(s, 0, x->G * x->m * x->r1, x->m * x->r1, x->r1, 1);
}
static void scores_t(int64_t s[5], const att_block *x) {
    set5(s, 0, x->G * x->m * x->r1, x->m * x->r1, 1, x->r1);
}

// Of a key-side [T, KVH, D] tensor with rows ld apart, and of its transpose ([D, keys]).
static void key_side(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->D, x->D, ld, 1);
}
static void key_side_t(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->D, x->D, 1, ld);
}

// S [H, m, r1] fp32 = scale Q_block K^T
static const struct mm_entry *score_product(rt_ctx *ctx, const att_block *x, float scale) {
    cpu_bmm d = per_head(x, x->m, x->r1, x->D);
    query_side(d.a_stride, x, x->ldq);
    key_side_t(d.b_stride, x, x->ldkv);
    scores(d.c_stride, x);
    d.c_f32 = 1;
    d.alpha = scale;
    return cpu_bf16_bmm_prepare(ctx, &d);
}

static int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

void cpu_bf16_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                                const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    const uint16_t *Q = q, *K = k, *V = v;
    uint16_t *O = out;
    int64_t bs = min64(T, ATT_BLOCK), n = (int64_t)H * bs * T, ldo = (int64_t)H * D;
    float scale = 1.0f / sqrtf((float)D);
    // per thread: S [H, bs, T] fp32, then P, the same in bf16
    float *scratch = cpu_scratch(ctx, (size_t)(n + (n + 1) / 2));
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
    for (int64_t r0 = 0; r0 < T; r0 += bs) {
        att_block x = block_of(T, H, KVH, D, ldq, ldkv, r0, min64(r0 + bs, T));
        const struct mm_entry *s_mm = score_product(ctx, &x, scale);
        cpu_bmm d = per_head(&x, x.m, D, x.r1); // out block [m, H, D] = P V
        scores(d.a_stride, &x);
        key_side(d.b_stride, &x, ldkv);
        query_side(d.c_stride, &x, ldo);
        const struct mm_entry *o_mm = cpu_bf16_bmm_prepare(ctx, &d);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t b = 0; b < B; b++) {
            float *S = scratch + (size_t)omp_get_thread_num() * per;
            uint16_t *P = (uint16_t *)(S + n);
            for (int64_t j = 0; j < x.G; j++)
                cpu_bf16_bmm_run(ctx, s_mm, S + j * x.m * x.r1, Q + (b * T + r0) * ldq + j * D,
                                 K + b * T * ldkv);
            for (int64_t i = 0; i < H * x.m; i++) { // i = h m + (t - r0)
                int64_t h = i / x.m, t = r0 + i % x.m, n_keys = t + 1;
                float *row = S + i * x.r1;
                uint16_t *prow = P + i * x.r1;
                float mx = cpu_max(row, (int)n_keys), sum = cpu_exp_sum(row, (int)n_keys, mx),
                      inv = 1.0f / sum;
                lse[(b * H + h) * T + t] = mx + logf(sum);
#pragma omp simd
                for (int64_t j = 0; j < n_keys; j++) prow[j] = cpu_bf16_store(row[j] * inv);
                for (int64_t j = n_keys; j < x.r1; j++) prow[j] = 0;
            }
            for (int64_t j = 0; j < x.G; j++)
                cpu_bf16_bmm_run(ctx, o_mm, O + (b * T + r0) * ldo + j * D, P + j * x.m * x.r1,
                                 V + b * T * ldkv);
        }
    }
}

// sum(a[i] b[i]) of two bf16 vectors in fp32, in cpu_dot's fixed lanes.
static float bf16_dot(const uint16_t *a, const uint16_t *b, int64_t n) {
    float acc[CPU_LANES] = {0};
    int64_t i = 0;
    for (; i + CPU_LANES <= n; i += CPU_LANES)
        for (int j = 0; j < CPU_LANES; j++) acc[j] += cpu_bf16_load(a[i + j]) * cpu_bf16_load(b[i + j]);
    for (int j = 0; i < n; i++, j++) acc[j] += cpu_bf16_load(a[i]) * cpu_bf16_load(b[i]);
    float s = 0.0f;
    for (int j = 0; j < CPU_LANES; j++) s += acc[j];
    return s;
}

// acc [T, KVH, D] fp32 (keys 0 .. r1) += alpha X_j^T Y_j for query head j of each group, where X is a bf16
// score block [H, m, r1] and Y a query-side tensor at the block's first row with rows ld apart: dK += scale
// dS^T Q and dV += P^T dO, accumulated over the group's members.
static cpu_bmm key_gradient(const att_block *x, int64_t ld, float alpha) {
    cpu_bmm d = bmm_zero();
    set3(d.batch, 1, x->KVH, 1);
    set3(d.a_batch, 1, x->KVH, 1);
    set3(d.b_batch, 1, x->KVH, 1);
    d.M = x->r1, d.N = x->D, d.K = x->m;
    scores_t(d.a_stride, x);
    query_side(d.b_stride, x, ld);
    set5(d.c_stride, 0, x->D, x->D, x->KVH * x->D, 1);
    d.c_f32 = 1;
    d.alpha = alpha;
    d.beta = 1.0f;
    return d;
}

// With P rebuilt from lse and delta_t = sum_d dO[t,d] O[t,d], per block of query rows:
//   dP = dO V^T,  dS = P (dP - delta),  dQ = scale dS K,  dK += scale dS^T Q,  dV += P^T dO
// dK and dV accumulate in fp32 over the blocks and the group's heads and round once at the end.
void cpu_bf16_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                 const void *k, const void *v, const void *out, const float *lse, int B,
                                 int T, int H, int KVH, int D, int ldq, int ldkv) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    const uint16_t *Q = q, *K = k, *V = v, *dO = dout, *O = out;
    uint16_t *dQ = dq, *dK = dk, *dV = dv;
    int64_t bs = min64(T, ATT_BLOCK), n = (int64_t)H * bs * T, ldo = (int64_t)H * D;
    int64_t nkv = (int64_t)B * T * KVH * D, nd = (int64_t)B * H * T;
    float scale = 1.0f / sqrtf((float)D);
    // per thread: S and dP [H, bs, T] fp32, then P and dS, the same in bf16
    float *scratch = cpu_scratch(ctx, (size_t)(3 * n));
    size_t per = cpu_of(ctx)->scratch_per_thread;
    float *delta = cpu_f32_slot(ctx, 0, (size_t)nd); // [B, H, T]
    float *dKf = cpu_f32_slot(ctx, 1, (size_t)nkv),
          *dVf = cpu_f32_slot(ctx, 2, (size_t)nkv); // [B, T, KVH, D]
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)(nd * D)))
    for (int64_t i = 0; i < nd; i++) { // i = (b H + h) T + t
        int64_t b = i / ((int64_t)H * T), h = i / T % H, t = i % T, off = (b * T + t) * ldo + h * D;
        delta[i] = bf16_dot(dO + off, O + off, D);
    }
    memset(dKf, 0, (size_t)nkv * sizeof(float));
    memset(dVf, 0, (size_t)nkv * sizeof(float));
    for (int64_t r0 = 0; r0 < T; r0 += bs) {
        att_block x = block_of(T, H, KVH, D, ldq, ldkv, r0, min64(r0 + bs, T));
        const struct mm_entry *s_mm = score_product(ctx, &x, scale);
        cpu_bmm d = per_head(&x, x.m, x.r1, D); // dP = dO V^T
        query_side(d.a_stride, &x, ldo);
        key_side_t(d.b_stride, &x, ldkv);
        scores(d.c_stride, &x);
        d.c_f32 = 1;
        const struct mm_entry *dp_mm = cpu_bf16_bmm_prepare(ctx, &d);
        d = per_head(&x, x.m, D, x.r1); // dQ block = scale dS K
        scores(d.a_stride, &x);
        key_side(d.b_stride, &x, ldkv);
        query_side(d.c_stride, &x, ldq);
        d.alpha = scale;
        const struct mm_entry *dq_mm = cpu_bf16_bmm_prepare(ctx, &d);
        d = key_gradient(&x, ldq, scale);
        const struct mm_entry *dk_mm = cpu_bf16_bmm_prepare(ctx, &d);
        d = key_gradient(&x, ldo, 1.0f);
        const struct mm_entry *dv_mm = cpu_bf16_bmm_prepare(ctx, &d);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t b = 0; b < B; b++) {
            float *S = scratch + (size_t)omp_get_thread_num() * per, *dP = S + n;
            uint16_t *P = (uint16_t *)(dP + n), *dS = P + n;
            const uint16_t *Qb = Q + (b * T + r0) * ldq, *Kb = K + b * T * ldkv, *Vb = V + b * T * ldkv;
            const uint16_t *dOb = dO + (b * T + r0) * ldo;
            for (int64_t j = 0; j < x.G; j++) {
                cpu_bf16_bmm_run(ctx, s_mm, S + j * x.m * x.r1, Qb + j * D, Kb);
                cpu_bf16_bmm_run(ctx, dp_mm, dP + j * x.m * x.r1, dOb + j * D, Vb);
            }
            for (int64_t i = 0; i < H * x.m; i++) { // i = h m + (t - r0)
                int64_t h = i / x.m, t = r0 + i % x.m, n_keys = t + 1;
                float l = lse[(b * H + h) * T + t], dl = delta[(b * H + h) * T + t];
                const float *srow = S + i * x.r1, *dprow = dP + i * x.r1;
                uint16_t *prow = P + i * x.r1, *dsrow = dS + i * x.r1;
#pragma omp simd
                for (int64_t u = 0; u < n_keys; u++) {
                    float p = cpu_expf(srow[u] - l);
                    prow[u] = cpu_bf16_store(p);
                    dsrow[u] = cpu_bf16_store(p * (dprow[u] - dl));
                }
                for (int64_t u = n_keys; u < x.r1; u++) prow[u] = dsrow[u] = 0;
            }
            float *dKb = dKf + b * T * KVH * D, *dVb = dVf + b * T * KVH * D;
            for (int64_t j = 0; j < x.G; j++) {
                cpu_bf16_bmm_run(ctx, dq_mm, dQ + (b * T + r0) * ldq + j * D, dS + j * x.m * x.r1, Kb);
                cpu_bf16_bmm_run(ctx, dk_mm, dKb, dS + j * x.m * x.r1, Qb + j * D);
                cpu_bf16_bmm_run(ctx, dv_mm, dVb, P + j * x.m * x.r1, dOb + j * D);
            }
        }
    }
    int64_t kv_rows = (int64_t)B * T, kv_cols = (int64_t)KVH * D;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)nkv))
    for (int64_t r = 0; r < kv_rows; r++) {
        uint16_t *dkrow = dK + r * ldkv, *dvrow = dV + r * ldkv;
        const float *kf = dKf + r * kv_cols, *vf = dVf + r * kv_cols;
#pragma omp simd
        for (int64_t c = 0; c < kv_cols; c++) {
            dkrow[c] = cpu_bf16_store(kf[c]);
            dvrow[c] = cpu_bf16_store(vf[c]);
        }
    }
}
