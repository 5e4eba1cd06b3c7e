// The CPU backend's ops on bf16 act buffers. Elementwise ops load, compute and store per element; the
// others here convert their bf16 inputs (and any output they accumulate into) to fp32 working copies, run
// the fp32 op on those, and round the outputs to bf16 once; their op files send a bf16 context here on their
// first line. (Row-wise ops, RMSNorm, RoPE, cross-entropy and AdamW, convert row by row in their own files,
// and attention has its own bf16 file.) Either way an output rounds once, after the whole fp32 computation,
// as the CUDA kernels do, and fp32-typed buffers (statistics, losses, master weights, moments) stay fp32.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bf16.h"
#include "cpu_internal.h"

void cpu_bf16_to_f32(rt_ctx *ctx, float *dst, const uint16_t *src, size_t n) {
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n / 4))
    for (size_t i = 0; i < n; i++) dst[i] = cpu_bf16_load(src[i]);
}

void cpu_f32_to_bf16(rt_ctx *ctx, uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n / 4))
    for (size_t i = 0; i < n; i++) dst[i] = cpu_bf16_store(src[i]);
}

float *cpu_f32_slot(rt_ctx *ctx, int slot, size_t n) {
    cpu_state *st = cpu_of(ctx);
    if (n > st->f32_slot_n[slot]) {
        size_t bytes;
        float *p = NULL;
        if (rt_mul_size(n ? n : 1, sizeof(float), &bytes) && bytes <= SIZE_MAX - 63)
            p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) {
            fprintf(stderr, "retort: out of memory growing a bf16 working copy to %zu floats\n", n);
            exit(EXIT_FAILURE);
        }
        free(st->f32_slot[slot]);
        st->f32_slot[slot] = p;
        st->f32_slot_n[slot] = n;
    }
    return st->f32_slot[slot];
}

void cpu_f32_slots_free(rt_ctx *ctx) {
    cpu_state *st = cpu_of(ctx);
    for (int i = 0; i < CPU_F32_SLOTS; i++) {
        free(st->f32_slot[i]);
        st->f32_slot[i] = NULL;
        st->f32_slot_n[i] = 0;
    }
}

// The fp32 copy of bf16 buffer x [n] in slot s.
static float *load(rt_ctx *ctx, int s, const void *x, size_t n) {
    float *f = cpu_f32_slot(ctx, s, n);
    cpu_bf16_to_f32(ctx, f, x, n);
    return f;
}

// The same context computing in fp32 (same threads and scratch), for the fp32 ops run on working copies.
static rt_ctx f32_twin(const rt_ctx *ctx) {
    rt_ctx f = *ctx;
    f.act = RT_F32;
    return f;
}

static void store(rt_ctx *ctx, void *dst, const float *f, size_t n) {
    cpu_f32_to_bf16(ctx, dst, f, n);
}

// The contiguous fp32 copy [rows, cols] in slot s of bf16 rows ld elements apart (a column slice of a
// fused projection).
static float *load_rows(rt_ctx *ctx, int s, const void *x, int rows, int cols, int ld) {
    float *f = cpu_f32_slot(ctx, s, (size_t)rows * cols);
    const uint16_t *src = x;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)rows *cols / 4))
    for (int r = 0; r < rows; r++) {
        float *frow = f + (size_t)r * cols;
        const uint16_t *srow = src + (size_t)r * ld;
#pragma omp simd
        for (int c = 0; c < cols; c++) frow[c] = cpu_bf16_load(srow[c]);
    }
    return f;
}

// ---- elementwise ----

void cpu_bf16_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n) {
    uint16_t *o = out;
    const uint16_t *x = a, *y = b;
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n / 2))
    for (size_t i = 0; i < n; i++) o[i] = cpu_bf16_store(cpu_bf16_load(x[i]) + cpu_bf16_load(y[i]));
}

void cpu_bf16_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first) {
    const uint16_t *y = x;
    if (first) {
        cpu_bf16_to_f32(ctx, acc, y, n);
        return;
    }
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n / 2))
    for (size_t i = 0; i < n; i++) acc[i] += cpu_bf16_load(y[i]);
}

void cpu_bf16_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n) {
    uint16_t *o = out;
    const uint16_t *b = bias;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *n))
    for (int i = 0; i < N; i++) {
        uint16_t *row = o + (size_t)i * n;
#pragma omp simd
        for (int c = 0; c < n; c++) row[c] = cpu_bf16_store(cpu_bf16_load(row[c]) + cpu_bf16_load(b[c]));
    }
}

// ---- row sums ----
// (Gathers and copies move bf16 values as they are: the fp32 ops do them by element size.)

void cpu_bf16_add_rows(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols) {
    uint16_t *d = dst;
    const uint16_t *s = src;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)rows *cols))
    for (int r = 0; r < rows; r++) {
        uint16_t *drow = d + (size_t)r * ld_dst;
        const uint16_t *srow = s + (size_t)r * ld_src;
#pragma omp simd
        for (int c = 0; c < cols; c++)
            drow[c] = cpu_bf16_store(cpu_bf16_load(drow[c]) + cpu_bf16_load(srow[c]));
    }
}

// ---- the rest: fp32 working copies ----

void cpu_bf16_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n) {
    rt_ctx f = f32_twin(ctx);
    float *db = load(ctx, 0, dbias, (size_t)n);
    cpu_bias_backward(&f, db, load(ctx, 1, dout, (size_t)N * n), N, n);
    store(ctx, dbias, db, (size_t)n);
}

// The whole table in fp32, so a token that repeats sums its rows in fp32 and rounds once (as the GPU does).
void cpu_bf16_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                                 int C) {
    rt_ctx f = f32_twin(ctx);
    int V = 0;
    for (int i = 0; i < N; i++) V = tokens[i] >= V ? tokens[i] + 1 : V; // rows past the largest id stay
    float *dt = load(ctx, 0, dtable, (size_t)V * C);
    cpu_embedding_backward(&f, dt, load(ctx, 1, dout, (size_t)N * C), tokens, N, C);
    store(ctx, dtable, dt, (size_t)V * C);
}

void cpu_bf16_distill_loss(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                           const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs,
                           int k, const int32_t *targets, int N, int V, const rt_kd_params *p,
                           float grad_scale) {
    rt_ctx f = f32_twin(ctx);
    size_t n = (size_t)N * V;
    float *lf = load(ctx, 0, logits, n), *df = NULL;
    const float *tf = teacher_logits ? load(ctx, 1, teacher_logits, n) : NULL;
    if (dlogits) df = dlogits == logits ? lf : cpu_f32_slot(ctx, 2, n);
    cpu_distill_loss(&f, ce, kd, df, lf, tf, topk_ids, topk_logprobs, k, targets, N, V, p, grad_scale);
    if (dlogits) store(ctx, dlogits, df, n);
}

void cpu_bf16_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n) {
    rt_ctx f = f32_twin(ctx);
    cpu_sum_squares(&f, acc, load(ctx, 0, x, n), n);
}

// Converts the whole cache [B, cache_stride_T, KVH, D]: generation on a bf16 CPU context is for checking
// against the GPU, not for speed.
void cpu_bf16_attention_forward_cached(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                       const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                       int cache_stride_T, int ld) {
    rt_ctx f = f32_twin(ctx);
    int cq = H * D;
    size_t nq = (size_t)B * Tq * cq, nk = (size_t)B * cache_stride_T * KVH * D;
    float *o = cpu_f32_slot(ctx, 3, nq);
    cpu_attention_forward_cached(&f, o, load_rows(ctx, 0, q, B * Tq, cq, ld), load(ctx, 1, k_cache, nk),
                                 load(ctx, 2, v_cache, nk), B, Tq, T_ctx, H, KVH, D, cache_stride_T, cq);
    store(ctx, out, o, nq);
}

void cpu_bf16_nf4_dequantize(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                             const int8_t *absmax_q, const float *absmax_scale, float absmax_offset,
                             size_t n) {
    rt_ctx f = f32_twin(ctx);
    float *o = cpu_f32_slot(ctx, 0, n);
    cpu_nf4_dequantize(&f, o, codes, absmax, absmax_q, absmax_scale, absmax_offset, n);
    store(ctx, out, o, n);
}

void cpu_bf16_dropout(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed) {
    rt_ctx f = f32_twin(ctx);
    float *xf = load(ctx, 0, x, n);
    cpu_dropout(&f, xf, xf, n, p, seed);
    store(ctx, out, xf, n);
}
