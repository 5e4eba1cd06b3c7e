// The CPU backend: the reference implementation of the operation table (backend.h). Activations in fp32, or
// in bf16 where oneDNN has bf16 kernels (bf16.h says how a bf16 op computes); every op runs when called (the
// context is a stream that is always idle). Parallel regions use the context's fixed thread count with static
// partitions, and reductions add per-thread partials in thread order, so results are bit-identical from run
// to run.
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

static void cpu_ctx_free(rt_ctx *ctx);

static int cpu_ctx_init(rt_ctx *ctx, rt_dtype act, int n_threads, rt_error *err) {
    const char *no_bf16 = act == RT_BF16 ? cpu_bf16_unsupported() : NULL;
    if (no_bf16) return rt_fail(err, "system.precision bf16 on the CPU: %s", no_bf16);
    cpu_state *st = calloc(1, sizeof *st);
    if (!st) return rt_fail(err, "out of memory creating the CPU context");
    st->n_threads = n_threads > 0 ? n_threads : rt_cpu_default_threads(1, NULL, 0);
    // oneDNN (OpenMP build) takes its thread count from the OpenMP runtime
    omp_set_num_threads(st->n_threads);
    ctx->be = &rt_backend_cpu;
    ctx->act = act;
    ctx->n_threads = st->n_threads;
    ctx->impl = st;
    if (act == RT_BF16 && cpu_bf16_matmul_init(ctx, err)) {
        cpu_ctx_free(ctx);
        return -1;
    }
    return 0;
}

static void cpu_ctx_free(rt_ctx *ctx) {
    cpu_state *st = cpu_of(ctx);
    if (st) {
        cpu_bf16_matmul_free(ctx);
        cpu_f32_slots_free(ctx);
        free(st->scratch);
        free(st);
    }
    ctx->impl = NULL;
}

float *cpu_scratch(rt_ctx *ctx, size_t n_per_thread) {
    cpu_state *st = cpu_of(ctx);
    if (n_per_thread > st->scratch_per_thread) {
        // round each thread's share to a cache line so threads never write the same line
        size_t per = (n_per_thread + 15) / 16 * 16, total;
        float *p = NULL;
        if (rt_mul_size(per, (size_t)st->n_threads, &total) && rt_mul_size(total, sizeof(float), &total))
            p = aligned_alloc(64, total);
        if (!p) {
            fprintf(stderr, "retort: out of memory growing the CPU scratch to %zu floats per thread\n", per);
            exit(EXIT_FAILURE);
        }
        free(st->scratch);
        st->scratch = p;
        st->scratch_per_thread = per;
    }
    return st->scratch;
}

static void *cpu_alloc(rt_ctx *ctx, size_t bytes, const char *what, rt_error *err) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) {
        rt_fail(err, "size overflow allocating %s", what);
        return NULL;
    }
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        rt_fail(err, "out of memory allocating %zu bytes for %s", bytes, what);
        return NULL;
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

static void cpu_free(rt_ctx *ctx, void *p) {
    free(p);
}

static void cpu_upload(rt_ctx *ctx, void *dst, rt_dtype t, const float *src, size_t n) {
    if (t == RT_BF16)
        cpu_f32_to_bf16(ctx, dst, src, n);
    else
        memcpy(dst, src, n * sizeof(float));
}

static void cpu_download(rt_ctx *ctx, float *dst, const void *src, rt_dtype t, size_t n) {
    if (t == RT_BF16)
        cpu_bf16_to_f32(ctx, dst, src, n);
    else
        memcpy(dst, src, n * sizeof(float));
}

static void cpu_upload_i32(rt_ctx *ctx, int32_t *dst, const int32_t *src, size_t n) {
    memcpy(dst, src, n * sizeof(int32_t));
}

static void cpu_sync(rt_ctx *ctx) {}

// CPU ops cannot fail once their memory exists (scratch growth that fails stops the process), except a
// GEMM whose library runs out of memory for its packing buffers.
static int cpu_check(rt_ctx *ctx, rt_error *err) {
    return cpu_gemm_check(err);
}

static void cpu_zero(rt_ctx *ctx, void *p, size_t bytes) {
    memset(p, 0, bytes);
}

static void cpu_convert(rt_ctx *ctx, void *dst, rt_dtype dst_t, const void *src, rt_dtype src_t, size_t n) {
    if (dst_t == src_t) {
        if (dst != src) memmove(dst, src, n * rt_dtype_size(dst_t));
    } else if (dst_t == RT_BF16) {
        cpu_f32_to_bf16(ctx, dst, src, n);
    } else {
        cpu_bf16_to_f32(ctx, dst, src, n);
    }
}

static void cpu_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_add(ctx, out, a, b, n);
        return;
    }
    float *o = out;
    const float *x = a, *y = b;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n / 2))
    for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

static void cpu_add_inplace(rt_ctx *ctx, void *acc, const void *x, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_add(ctx, acc, acc, x, n);
        return;
    }
    float *o = acc;
    const float *y = x;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n / 2))
    for (size_t i = 0; i < n; i++) o[i] += y[i];
}

static void cpu_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_accumulate_f32(ctx, acc, x, n, first);
        return;
    }
    const float *y = x;
    if (first) {
        if (acc != y) memcpy(acc, y, n * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n / 2))
    for (size_t i = 0; i < n; i++) acc[i] += y[i];
}

const rt_backend rt_backend_cpu = {
    .name = "cpu",
    .ctx_init = cpu_ctx_init,
    .ctx_free = cpu_ctx_free,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .upload_i32 = cpu_upload_i32,
    .sync = cpu_sync,
    .check = cpu_check,
    .zero = cpu_zero,
    .convert = cpu_convert,
    .matmul = cpu_matmul,
    .add = cpu_add,
    .add_inplace = cpu_add_inplace,
    .add_bias_rows = cpu_add_bias_rows,
    .bias_backward = cpu_bias_backward,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .cross_entropy = cpu_cross_entropy,
    .sum_squares = cpu_sum_squares,
    .sum_f32 = cpu_sum_f32,
    .clip_scale = cpu_clip_scale,
    .sum_squares_segments = cpu_sum_squares_segments,
    .accumulate_f32 = cpu_accumulate_f32,
    .adamw = cpu_adamw,
    .distill_loss = cpu_distill_loss,
    .rope_forward_at = cpu_rope_forward_at,
    .attention_forward_cached = cpu_attention_forward_cached,
    .kv_append = cpu_kv_append,
    .upload_bytes = cpu_upload_bytes,
    .nf4_dequantize = cpu_nf4_dequantize,
    .dropout = cpu_dropout,
    .copy_rows = cpu_copy_rows,
};
