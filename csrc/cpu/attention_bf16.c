// Causal grouped-query attention on bf16 act buffers, for training. The products are bf16 GEMMs with fp32
// accumulation through oneDNN's batched matmul (cpu_bf16_bmm), reading q, k and v where they lie (a head is
// a slice of the fused projection). The softmax and its gradient run in fp32, and P and dS are rounded to
// bf16 before the products that take them, as the GPU's tensor-core kernels do. As in attention.c, a block of
// query rows [r0, r1) only sees keys [0, r1), and backward rebuilds P from the saved log-sum-exp.
// Per block of rows, one parallel region runs a task per (batch element, chunk of kv heads); a task takes the
// members of the query-head groups one at a time, each product covering the chunk's kv heads in one call
// (oneDNN runs it on the calling thread), so a group's dK and dV are plain accumulating products and the
// task's score blocks, in per-thread scratch, stay within about a core's L2 (ATT_SCRATCH_BYTES).
//   q/dq [B, T, H, D] (rows ldq elements apart), k/v/dk/dv [B, T, KVH, D] (rows ldkv apart),
//   out/dout [B, T, H, D] contiguous, all bf16; lse [B, H, T] fp32
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

#define ATT_BLOCK 64
// A task's score blocks (backward: S and dP fp32, P and dS bf16, 12 bytes a score) for its kv heads: the
// chunk is the most kv heads (a divisor of KVH) within this, at least one.
#define ATT_SCRATCH_BYTES (2u << 20)

// The shapes every product of a block shares: nk kv heads of one batch element, one member of each of
// their query-head groups (G of them), m query rows [r0, r1).
typedef struct att_block {
    int64_t T, H, nk, G, D, m, r1, ldq, ldkv, ldo; // ldo = H D, the rows of out and dout
} att_block;

static cpu_bmm bmm_zero(void) {
    cpu_bmm d;
    memset(&d, 0, sizeof d);
    return d;
}

static void set5(int64_t dst[5], int64_t a, int64_t b, int64_t c, int64_t row, int64_t col) {
    dst[0] = a, dst[1] = b, dst[2] = c, dst[3] = row, dst[4] = col;
}

// A product batched over the block's kv heads (one call; a plain GEMM for one kv head).
static cpu_bmm per_head(const att_block *x, int64_t M, int64_t N, int64_t K) {
    cpu_bmm d = bmm_zero();
    d.batch[0] = d.batch[2] = 1;
    d.batch[1] = x->nk;
    d.M = M, d.N = N, d.K = K;
    d.alpha = 1.0f;
    return d;
}

// Strides (-, kv head, -, row, column) of a query-side [T, H, D] tensor with rows ld apart (the kv head's
// group member j at j D), of a score block [nk, m, r1] (contiguous) and its transpose, and of a key-side
// [T, KVH, D] tensor with rows ld apart and its transpose ([D, keys]).
static void query_side(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->G * x->D, 0, ld, 1);
}
static void scores(int64_t s[5], const att_block *x) {
    set5(s, 0, x->m * x->r1, 0, x->r1, 1);
}
static void scores_t(int64_t s[5], const att_block *x) {
    set5(s, 0, x->m * x->r1, 0, 1, x->r1);
}
static void key_side(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->D, 0, ld, 1);
}
static void key_side_t(int64_t s[5], const att_block *x, int64_t ld) {
    set5(s, 0, x->D, 0, 1, ld);
}

// S [nk, m, r1] fp32 = scale Q_block K^T
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

// kv heads per task: the largest divisor of KVH whose score blocks fit ATT_SCRATCH_BYTES, at least 1
static int64_t kv_chunk(int64_t KVH, int64_t bs, int64_t T) {
    int64_t per = bs * T * 12, nk = 1;
    for (int64_t c = 1; c <= KVH; c++)
        if (KVH % c == 0 && c * per <= (int64_t)ATT_SCRATCH_BYTES) nk = c;
    return nk;
}

// p[0 .. n) = 0: the masked keys of a row, a few vectors at most (a memset call per row cost more than the
// stores).
static void zero_keys(uint16_t *p, int64_t n) {
    for (int64_t c = 0; c < n; c += CPU_LANES)
        cpu_v16_store_bf16_n(p + c, cpu_v16_set(0.0f), n - c < CPU_LANES ? (int)(n - c) : CPU_LANES);
}

// P [width] bf16 = the softmax of row's first n scores, 0 past them (the causal mask inside the block);
// returns their log-sum-exp. row [width] is overwritten with the exponentials (its first n).
static float softmax_row(float *row, uint16_t *prow, int64_t n, int64_t width) {
    float mx = cpu_max(row, (int)n), sum = cpu_exp_sum(row, (int)n, mx);
    cpu_v16 inv = cpu_v16_set(1.0f / sum);
    for (int64_t c = 0; c < n; c += CPU_LANES) {
        int k = n - c < CPU_LANES ? (int)(n - c) : CPU_LANES;
        cpu_v16_store_bf16_n(prow + c, cpu_v16_mul(cpu_v16_load_n(row + c, k), inv), k);
    }
    zero_keys(prow + n, width - n);
    return mx + logf(sum);
}

// The backward's row: P = exp(S - lse) and dS = P (dP - delta) for the first n keys, 0 for the rest of the
// width (the mask).
static void gradient_row(const float *srow, const float *dprow, uint16_t *prow, uint16_t *dsrow, float l,
                         float dl, int64_t n, int64_t width) {
    cpu_v16 vl = cpu_v16_set(l), vdl = cpu_v16_set(dl);
    for (int64_t u = 0; u < n; u += CPU_LANES) {
        int k = n - u < CPU_LANES ? (int)(n - u) : CPU_LANES;
        cpu_v16 p = cpu_v16_exp(cpu_v16_sub(cpu_v16_load_n(srow + u, k), vl));
        cpu_v16_store_bf16_n(prow + u, p, k);
        cpu_v16_store_bf16_n(dsrow + u, cpu_v16_mul(p, cpu_v16_sub(cpu_v16_load_n(dprow + u, k), vdl)), k);
    }
    zero_keys(prow + n, width - n);
    zero_keys(dsrow + n, width - n);
}

void cpu_bf16_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                                const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    const uint16_t *Q = q, *K = k, *V = v;
    uint16_t *O = out;
    int64_t bs = min64(T, ATT_BLOCK), G = H / KVH, nk = kv_chunk(KVH, bs, T), chunks = KVH / nk;
    int64_t n = nk * bs * T, ldo = (int64_t)H * D;
    float scale = 1.0f / sqrtf((float)D);
    float *scratch = cpu_scratch(ctx, (size_t)(n + (n + 1) / 2)); // per thread: S [nk, bs, T], then P in bf16
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
    for (int64_t r0 = 0; r0 < T; r0 += bs) {
        int64_t r1 = min64(r0 + bs, T);
        att_block x = {T, H, nk, G, D, r1 - r0, r1, ldq, ldkv, ldo};
        const struct mm_entry *s_mm = score_product(ctx, &x, scale);
        cpu_bmm d = per_head(&x, x.m, D, x.r1); // out block [m, H, D] = P V
        scores(d.a_stride, &x);
        key_side(d.b_stride, &x, ldkv);
        query_side(d.c_stride, &x, ldo);
        const struct mm_entry *o_mm = cpu_bf16_bmm_prepare(ctx, &d);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t task = 0; task < B * chunks; task++) {
            int64_t b = task / chunks, kv0 = task % chunks * nk;
            float *S = scratch + (size_t)omp_get_thread_num() * per;
            uint16_t *P = (uint16_t *)(S + n);
            const uint16_t *Kb = K + b * T * ldkv + kv0 * D, *Vb = V + b * T * ldkv + kv0 * D;
            for (int64_t j = 0; j < G; j++) {
                int64_t h0 = kv0 * G + j; // the first kv head's query head
                cpu_bf16_bmm_run(ctx, s_mm, S, Q + (b * T + r0) * ldq + h0 * D, Kb);
                for (int64_t i = 0; i < nk * x.m; i++) { // i = kv m + (t - r0)
                    int64_t h = h0 + i / x.m * G, t = r0 + i % x.m;
                    lse[(b * H + h) * T + t] = softmax_row(S + i * x.r1, P + i * x.r1, t + 1, x.r1);
                }
                cpu_bf16_bmm_run(ctx, o_mm, O + (b * T + r0) * ldo + h0 * D, P, Vb);
            }
        }
    }
}

// acc [T, KVH, D] fp32 (keys 0 .. r1) += alpha X^T Y, X a bf16 score block [nk, m, r1] and Y a query-side
// tensor at the block's first row with rows ld apart: dK += scale dS^T Q and dV += P^T dO, one group member
// at a time.
static cpu_bmm key_gradient(const att_block *x, int64_t ld, float alpha, int64_t KVH) {
    cpu_bmm d = per_head(x, x->r1, x->D, x->m);
    scores_t(d.a_stride, x);
    query_side(d.b_stride, x, ld);
    set5(d.c_stride, 0, x->D, 0, KVH * x->D, 1);
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
    uint16_t *dQ = dq;
    int64_t bs = min64(T, ATT_BLOCK), G = H / KVH, nk = kv_chunk(KVH, bs, T), chunks = KVH / nk;
    int64_t n = nk * bs * T, ldo = (int64_t)H * D, nkv = (int64_t)B * T * KVH * D, nd = (int64_t)B * H * T;
    float scale = 1.0f / sqrtf((float)D);
    // per thread: S and dP [nk, bs, T] fp32, then P and dS, the same in bf16 (first, delta's two rows [D])
    float *scratch = cpu_scratch(ctx, (size_t)(3 * n > 2 * (int64_t)D ? 3 * n : 2 * (int64_t)D));
    size_t per = cpu_of(ctx)->scratch_per_thread;
    float *delta = cpu_f32_slot(ctx, 0, (size_t)nd); // [B, H, T]
    float *dKf = cpu_f32_slot(ctx, 1, (size_t)nkv),
          *dVf = cpu_f32_slot(ctx, 2, (size_t)nkv); // [B, T, KVH, D]
    int nt = cpu_threads(ctx, (size_t)B * H * T * T * D);
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)(nd * D)))
    for (int64_t i = 0; i < nd; i++) { // i = (b H + h) T + t
        int64_t b = i / ((int64_t)H * T), h = i / T % H, t = i % T, off = (b * T + t) * ldo + h * D;
        float *tmp = scratch + (size_t)omp_get_thread_num() * per;
        delta[i] =
            cpu_dot(cpu_row_in(ctx, dO + off, 0, 0, D, tmp), cpu_row_in(ctx, O + off, 0, 0, D, tmp + D), D);
    }
    // split over the threads: on one, the other would wait through both
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)nkv))
    for (int64_t r = 0; r < (int64_t)B * T; r++) {
        memset(dKf + r * KVH * D, 0, (size_t)(KVH * D) * sizeof(float));
        memset(dVf + r * KVH * D, 0, (size_t)(KVH * D) * sizeof(float));
    }
    for (int64_t r0 = 0; r0 < T; r0 += bs) {
        int64_t r1 = min64(r0 + bs, T);
        att_block x = {T, H, nk, G, D, r1 - r0, r1, ldq, ldkv, ldo};
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
        d = key_gradient(&x, ldq, scale, KVH);
        const struct mm_entry *dk_mm = cpu_bf16_bmm_prepare(ctx, &d);
        d = key_gradient(&x, ldo, 1.0f, KVH);
        const struct mm_entry *dv_mm = cpu_bf16_bmm_prepare(ctx, &d);
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t task = 0; task < B * chunks; task++) {
            int64_t b = task / chunks, kv0 = task % chunks * nk;
            float *S = scratch + (size_t)omp_get_thread_num() * per, *dP = S + n;
            uint16_t *P = (uint16_t *)(dP + n), *dS = P + n;
            const uint16_t *Kb = K + b * T * ldkv + kv0 * D, *Vb = V + b * T * ldkv + kv0 * D;
            float *dKb = dKf + b * T * KVH * D + kv0 * D, *dVb = dVf + b * T * KVH * D + kv0 * D;
            for (int64_t j = 0; j < G; j++) {
                int64_t h0 = kv0 * G + j; // the first kv head's query head
                const uint16_t *Qb = Q + (b * T + r0) * ldq + h0 * D, *dOb = dO + (b * T + r0) * ldo + h0 * D;
                cpu_bf16_bmm_run(ctx, s_mm, S, Qb, Kb);
                cpu_bf16_bmm_run(ctx, dp_mm, dP, dOb, Vb);
                for (int64_t i = 0; i < nk * x.m; i++) { // i = kv m + (t - r0)
                    int64_t h = h0 + i / x.m * G, t = r0 + i % x.m, at = (b * H + h) * T + t;
                    gradient_row(S + i * x.r1, dP + i * x.r1, P + i * x.r1, dS + i * x.r1, lse[at], delta[at],
                                 t + 1, x.r1);
                }
                cpu_bf16_bmm_run(ctx, dq_mm, dQ + (b * T + r0) * ldq + h0 * D, dS, Kb);
                cpu_bf16_bmm_run(ctx, dk_mm, dKb, dS, Qb);
                cpu_bf16_bmm_run(ctx, dv_mm, dVb, P, dOb);
            }
        }
    }
    int64_t kv_rows = (int64_t)B * T, kv_cols = (int64_t)KVH * D;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)nkv))
    for (int64_t r = 0; r < kv_rows; r++) {
        cpu_row_out(ctx, dk, (size_t)r, (size_t)ldkv, (int)kv_cols, dKf + r * kv_cols);
        cpu_row_out(ctx, dv, (size_t)r, (size_t)ldkv, (int)kv_cols, dVf + r * kv_cols);
    }
}
