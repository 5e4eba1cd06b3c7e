// Private helpers of the CPU backend.
#ifndef RT_CPU_INTERNAL_H
#define RT_CPU_INTERNAL_H

#include <stddef.h>

#include "backend.h"

// Per-context state: scratch memory for ops that need it, grown once and reused (never inside a step after
// the first), and the thread count every parallel region uses, so results do not depend on the machine's
// load and stay bit-identical run to run.
typedef struct cpu_state {
    int n_threads;
    float *scratch;  // [n_threads * scratch_per_thread]
    size_t scratch_per_thread;
} cpu_state;

static inline cpu_state *cpu_of(rt_ctx *ctx) { return (cpu_state *)ctx->impl; }
// Per-thread scratch of at least n floats (NULL when it cannot be allocated).
float *cpu_scratch(rt_ctx *ctx, size_t n_per_thread);

// Static partition of [0, n) into `parts` contiguous chunks: chunk p is [*lo, *hi).
static inline void cpu_chunk(size_t n, int parts, int p, size_t *lo, size_t *hi) {
    size_t base = n / (size_t)parts, rem = n % (size_t)parts;
    *lo = (size_t)p * base + ((size_t)p < rem ? (size_t)p : rem);
    *hi = *lo + base + ((size_t)p < rem ? 1 : 0);
}

// Declarations of the ops, one file each.
void cpu_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                int trans_b, float alpha, float beta);
void cpu_embedding_forward(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C);
void cpu_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N, int C);
void cpu_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N, int C,
                         float eps);
void cpu_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int N, int C);
void cpu_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab, int B,
                      int T, int H, int D);
void cpu_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab, int B,
                       int T, int H, int D);
void cpu_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v, int B,
                           int T, int H, int KVH, int D);
void cpu_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                            const void *k, const void *v, const void *out, const float *lse, int B, int T, int H,
                            int KVH, int D);
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, size_t n);
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                         size_t n);
void cpu_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                       int N, int V, float grad_scale);
void cpu_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n);
void cpu_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n);
void cpu_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm);
void cpu_adamw(rt_ctx *ctx, float *master, void *param, const void *grad, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, int64_t step, const float *grad_scale);

#endif
