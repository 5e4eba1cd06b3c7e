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

// One row of an act buffer (rows ld elements apart) as fp32, for ops written once for fp32 rows: in an fp32
// context the row itself, in a bf16 context a conversion into the caller's per-thread row buffer tmp [n],
// with cpu_row_out rounding a computed row back. Converting row by row keeps the copies in L1, where
// whole-buffer conversions would pass every element through memory twice more.
static inline const float *cpu_row_in(const rt_ctx *ctx, const void *buf, size_t row, size_t ld, int n,
                                      float *tmp) {
    if (ctx->act != RT_BF16) return (const float *)buf + row * ld;
    const uint16_t *src = (const uint16_t *)buf + row * ld;
#pragma omp simd
    for (int i = 0; i < n; i++) tmp[i] = cpu_bf16_load(src[i]);
    return tmp;
}

// The same, writable: an output row that also holds an input (an accumulation), written back by cpu_row_out.
static inline float *cpu_row_inout(const rt_ctx *ctx, void *buf, size_t row, size_t ld, int n, float *tmp) {
    return (float *)cpu_row_in(ctx, buf, row, ld, n, tmp);
}

// Where to compute an output row: the row itself (fp32) or tmp (bf16, rounded back by cpu_row_out).
static inline float *cpu_row_at(const rt_ctx *ctx, void *buf, size_t row, size_t ld, float *tmp) {
    return ctx->act != RT_BF16 ? (float *)buf + row * ld : tmp;
}

static inline void cpu_row_out(const rt_ctx *ctx, void *buf, size_t row, size_t ld, int n, const float *tmp) {
    if (ctx->act != RT_BF16) return;
    uint16_t *dst = (uint16_t *)buf + row * ld;
#pragma omp simd
    for (int i = 0; i < n; i++) dst[i] = cpu_bf16_store(tmp[i]);
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
// One bf16 GEMM, or a batch of them, as oneDNN's matmul takes it: for every batch index (i, j, l) < batch,
//   c[i,j,l][M,N] = alpha a[i,j,l][M,K] b[i,j,l][K,N] + beta c[i,j,l]    (fp32 accumulation)
// with each operand given by element strides (batch 0..2, row, column), so transposed and strided operands
// (a head's slice of a fused projection) need no copy. Batch dims of 1 are left out of the primitive. c is
// fp32 or bf16. Build it from a zeroed struct (the cache compares descriptors by their bytes).
typedef struct cpu_bmm {
    int64_t batch[3];
    int64_t M, N, K;
    int64_t a_stride[5], b_stride[5], c_stride[5];
    int32_t c_f32;
    float alpha, beta;
    int32_t unused; // keeps the struct free of padding
} cpu_bmm;
void cpu_bf16_bmm(rt_ctx *ctx, const cpu_bmm *d, void *c, const void *a, const void *b);
// The same in two steps, for products run from inside a parallel region: prepare (outside the region: it
// finds or makes the primitive in the context's cache) and run (from any thread of the context, each on its
// own memory objects, stream and scratchpad). A prepared primitive stays valid while fewer than MM_CACHE
// (matmul_bf16.c) other descriptors have been prepared since. A failure is kept for cpu_gemm_check; run then
// does nothing.
struct mm_entry;
const struct mm_entry *cpu_bf16_bmm_prepare(rt_ctx *ctx, const cpu_bmm *d);
void cpu_bf16_bmm_run(rt_ctx *ctx, const struct mm_entry *e, void *c, const void *a, const void *b);
// NULL when oneDNN runs bf16 GEMMs on this CPU, otherwise why not, naming the CPU's instruction set.
const char *cpu_bf16_unsupported(void);

// The ops' bf16 entry points (bf16_ops.c; attention's in attention_bf16.c), with the signatures of their fp32
// ops.
void cpu_bf16_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n);
void cpu_bf16_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first);
void cpu_bf16_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n);
void cpu_bf16_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n);
void cpu_bf16_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                                 int C);
void cpu_bf16_attention_forward(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k,
                                const void *v, int B, int T, int H, int KVH, int D, int ldq, int ldkv);
void cpu_bf16_attention_backward(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                 const void *k, const void *v, const void *out, const float *lse, int B,
                                 int T, int H, int KVH, int D, int ldq, int ldkv);
void cpu_bf16_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                           const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs,
                           int k, const int32_t *targets, int N, int V, const rt_kd_params *p,
                           float grad_scale);
void cpu_bf16_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n);
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
