// Private helpers of the CPU backend.
#ifndef RT_CPU_INTERNAL_H
#define RT_CPU_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "simd.h"

// Per-context state: scratch memory for ops that need it, grown once and reused (never inside a step after
// the first), and the thread count every parallel region uses, so results do not depend on the machine's
// load and stay bit-identical run to run.
// A bf16 context also holds fp32 working copies of its act buffers (bf16.h) and its GEMM primitives.
typedef struct cpu_state {
    int n_threads;
    float *scratch; // [n_threads * scratch_per_thread]
    size_t scratch_per_thread;
    float *f32_slot[8]; // bf16 contexts: [f32_slot_n[i]] each (CPU_F32_SLOTS in bf16.h)
    size_t f32_slot_n[8];
    struct cpu_bf16_mm *mm; // bf16 contexts: oneDNN engine, stream and primitive cache (matmul_bf16.c)
} cpu_state;

static inline cpu_state *cpu_of(rt_ctx *ctx) {
    return (cpu_state *)ctx->impl;
}

// Threads for a parallel region over `work` elements: below a few tens of thousands of flops a fork/join
// costs more than it saves (and much more when the cores are busy with another process), so small ops run
// on one thread. The choice depends on sizes only, so results stay reproducible.
#define CPU_PAR_MIN_WORK 16384
static inline int cpu_threads(rt_ctx *ctx, size_t work) {
    return work < CPU_PAR_MIN_WORK ? 1 : cpu_of(ctx)->n_threads;
}

// Per-thread scratch of at least n floats: thread t owns [t * cpu_of(ctx)->scratch_per_thread, ...). Grows
// (once, on the first step) and is reused; an op cannot report errors, so running out of memory here stops
// the process with a message.
float *cpu_scratch(rt_ctx *ctx, size_t n_per_thread);

// ---- vectorizable math helpers ----
// On cpu_v16 (simd.h) or in fixed-width lane arrays, without -ffast-math: every sum runs in a fixed lane
// order, so results depend on the binary only, never on the run.

// sum(a[i] * b[i]) in CPU_LANES fixed lanes.
static inline float cpu_dot(const float *a, const float *b, int n) {
    float acc[CPU_LANES] = {0};
    int i = 0;
    for (; i + CPU_LANES <= n; i += CPU_LANES)
        for (int j = 0; j < CPU_LANES; j++) acc[j] += a[i + j] * b[i + j];
    for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    float s = 0.0f;
    for (int j = 0; j < CPU_LANES; j++) s += acc[j];
    return s;
}

// row[i] = exp(row[i] - shift) for i < n, in one pass with their sum, taken in CPU_LANES fixed lanes as
// cpu_dot takes its products.
static inline float cpu_exp_sum(float *row, int n, float shift) {
    cpu_v16 acc = cpu_v16_set(0.0f), vshift = cpu_v16_set(shift);
    for (int i = 0; i < n; i += CPU_LANES) {
        int k = n - i < CPU_LANES ? n - i : CPU_LANES;
        cpu_v16 e = cpu_v16_keep_first(cpu_v16_exp(cpu_v16_sub(cpu_v16_load_n(row + i, k), vshift)), k);
        cpu_v16_store_n(row + i, e, k);
        acc = cpu_v16_add(acc, e);
    }
    float lanes[CPU_LANES], s = 0.0f;
    cpu_v16_store(lanes, acc);
    for (int j = 0; j < CPU_LANES; j++) s += lanes[j];
    return s;
}

// row[i] = exp(row[i] - shift) for i < n.
static inline void cpu_exp_shift(float *row, int n, float shift) {
    cpu_v16 vshift = cpu_v16_set(shift);
    for (int i = 0; i < n; i += CPU_LANES) {
        int k = n - i < CPU_LANES ? n - i : CPU_LANES;
        cpu_v16_store_n(row + i, cpu_v16_exp(cpu_v16_sub(cpu_v16_load_n(row + i, k), vshift)), k);
    }
}

// max(a[0..n)), n >= 1, with the plain loop's steps m = a[i] > m ? a[i] : m (a NaN past a[0] is passed
// over); otherwise the order of comparisons cannot change the result, so the vectors may overlap.
static inline float cpu_max(const float *a, int n) {
    float m = a[0];
    if (n < CPU_LANES) {
        for (int i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
        return m;
    }
    cpu_v16 v = cpu_v16_set(m);
    for (int i = 0; i + CPU_LANES <= n; i += CPU_LANES) v = cpu_v16_max(cpu_v16_load(a + i), v);
    v = cpu_v16_max(cpu_v16_load(a + n - CPU_LANES), v); // the tail, overlapping the last whole vector
    return cpu_v16_hmax(v);
}

// Static partition of [0, n) into `parts` contiguous chunks: chunk p is [*lo, *hi).
static inline void cpu_chunk(size_t n, int parts, int p, size_t *lo, size_t *hi) {
    size_t base = n / (size_t)parts, rem = n % (size_t)parts;
    *lo = (size_t)p * base + ((size_t)p < rem ? (size_t)p : rem);
    *hi = *lo + base + ((size_t)p < rem ? 1 : 0);
}

// Declarations of the ops, one file each.
// C[M,N] = alpha * op(A) op(B) + beta * C, row-major, through oneDNN (matmul.c). Safe to call inside a
// parallel region (it then runs on the calling thread). A failure is kept for cpu_gemm_check.
void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc);
// 0, or -1 with err filled when a GEMM of this process has failed.
int cpu_gemm_check(rt_error *err);
// Keeps msg as the process's GEMM failure unless one is kept already (the first failure is the cause).
void cpu_gemm_record_failure(const char *msg);
void cpu_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                int trans_b, float alpha, float beta);
void cpu_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n);
void cpu_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n);
void cpu_embedding_forward(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C);
void cpu_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N, int C);
void cpu_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N, int C,
                         float eps);
void cpu_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int N, int C);
void cpu_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                      int B, int T, int H, int D, int ld);
void cpu_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int ld);
void cpu_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                           int B, int T, int H, int KVH, int D, int ldq, int ldkv);
void cpu_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, int B, int T,
                            int H, int KVH, int D, int ldq, int ldkv);
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld);
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int N, int F, int ld);
void cpu_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                       int N, int V, float grad_scale);
void cpu_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                      const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs, int k,
                      const int32_t *targets, int N, int V, const rt_kd_params *p, float grad_scale);
void cpu_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n);
void cpu_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n);
void cpu_sum_squares_segments(rt_ctx *ctx, float *partials, const float *x, size_t n, size_t seg);
void cpu_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm);
void cpu_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
               float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
               const float *grad_scale);
void cpu_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                         int B, int T, int H, int D, int pos0, int ld);
void cpu_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                  const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                  int cache_stride_T, int ld);
void cpu_kv_append(rt_ctx *ctx, void *cache, const void *x, int B, int T, int KVH, int D, int pos0,
                   int cache_stride_T, int ld);
void cpu_upload_bytes(rt_ctx *ctx, void *dst, const void *src, size_t bytes);
void cpu_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                        const int8_t *absmax_q, const float *absmax_scale, float absmax_offset, size_t n);
void cpu_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed);
void cpu_copy_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols,
                   int accumulate);

#endif
