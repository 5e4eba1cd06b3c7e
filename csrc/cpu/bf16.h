// bf16 on the CPU backend: the conversions every bf16 op uses, and the ops' bf16 entry points. A bf16 op
// loads bf16 -> fp32 (exact), computes in fp32 as the fp32 op does, and rounds to bf16 once on store (round
// to nearest even, as the GPU's __float2bfloat16), so the two backends round at the same points.
#ifndef RT_CPU_BF16_H
#define RT_CPU_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"

static inline float cpu_bf16_load(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// Round to nearest even; a NaN stays a (quiet) NaN instead of rounding up into an infinity.
static inline uint16_t cpu_bf16_store(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, quiet = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

// Whole-buffer conversions, parallel over the context's threads.
void cpu_bf16_to_f32(rt_ctx *ctx, float *dst, const uint16_t *src, size_t n);
void cpu_f32_to_bf16(rt_ctx *ctx, uint16_t *dst, const float *src, size_t n);

// An fp32 buffer of at least n floats owned by the context, slot 0 .. CPU_F32_SLOTS - 1: the fp32 copies
// the bf16 ops compute in. Grown once (on the first step) and reused; running out of memory stops the
// process with a message, as cpu_scratch does.
#define CPU_F32_SLOTS 8
float *cpu_f32_slot(rt_ctx *ctx, int slot, size_t n);
void cpu_f32_slots_free(rt_ctx *ctx);

// bf16 GEMMs through oneDNN's matmul primitive (matmul_bf16.c): a per-context engine, stream and cache of
// primitives keyed by shape, transposes, alpha and beta, so a training step creates none after the first.
int cpu_bf16_matmul_init(rt_ctx *ctx, rt_error *err);
void cpu_bf16_matmul_free(rt_ctx *ctx);
void cpu_bf16_matmul(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                     int trans_b, float alpha, float beta);
// NULL when oneDNN runs bf16 GEMMs on this CPU, otherwise why not, naming the CPU's instruction set.
const char *cpu_bf16_unsupported(void);

// The ops' bf16 entry points (bf16_ops.c), with the signatures of their fp32 ops.
void cpu_bf16_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n);
void cpu_bf16_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first);
void cpu_bf16_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n);
void cpu_bf16_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n);
void cpu_bf16_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                                 int C);
void cpu_bf16_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N,
                              int C, float eps);
void cpu_bf16_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                               const void *weight, const float *rstd, int N, int C);
void cpu_bf16_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab,
                            const float *sin_tab, int B, int T, int H, int D, int ld);
void cpu_bf16_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab,
                              const float *sin_tab, int B, int T, int H, int D, int pos0, int ld);
void cpu_bf16_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                                const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv);
void cpu_bf16_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                 const void *k, const void *v, const void *out, const float *lse, int B,
                                 int T, int H, int KVH, int D, int ldq, int ldkv);
void cpu_bf16_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld);
void cpu_bf16_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                              const void *up, int N, int F, int ld);
void cpu_bf16_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits,
                            const int32_t *targets, int N, int V, float grad_scale);
void cpu_bf16_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                           const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs,
                           int k, const int32_t *targets, int N, int V, const rt_kd_params *p,
                           float grad_scale);
void cpu_bf16_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n);
void cpu_bf16_adamw(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
                    float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                    const float *grad_scale);
void cpu_bf16_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                       const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                       int cache_stride_T, int ld);
// dst rows += src rows in fp32, each sum rounded once (copy_rows' accumulate; its plain copy moves bytes)
void cpu_bf16_add_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols);
void cpu_bf16_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                             const int8_t *absmax_q, const float *absmax_scale, float absmax_offset,
                             size_t n);
void cpu_bf16_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed);

#endif
