// The CUDA backend: contexts (device, stream, cuBLASLt handle and workspace), memory, transfers, the
// sticky failure state, elementwise adds and dtype conversion, and the operation table.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#define LT_WORKSPACE_BYTES (64u << 20) // cuBLASLt's recommendation for Hopper is 32 MiB; split-K wants more

void cuda_record_failure(rt_ctx *ctx, const char *op, const char *fmt, ...) {
    cuda_state *st = cuda_of(ctx);
    cudaGetLastError(); // clear the runtime's last error, so a later check cannot blame another op for it
    if (st->failed) return;
    st->failed = 1;
    char what[RT_ERROR_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(st->fail_msg, sizeof st->fail_msg, "CUDA %s on device %d (%s): %s", op, st->device,
             st->prop.name, what);
}

int cuda_check_launch(rt_ctx *ctx, const char *op) {
    cuda_state *st = cuda_of(ctx);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) cuda_record_failure(ctx, op, "%s", cudaGetErrorString(e));
    return st->failed;
}

void *cuda_scratch(rt_ctx *ctx, size_t bytes, const char *op) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) return NULL;
    if (bytes <= st->scratch_bytes) return st->scratch;
    // Grows during the first step only: every later step asks for the same sizes.
    size_t want = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (want < bytes) {
        cuda_record_failure(ctx, op, "scratch size overflow (%zu bytes)", bytes);
        return NULL;
    }
    // the old buffer may still be in use by kernels enqueued earlier on the stream: wait for them explicitly
    // rather than rely on cudaFree's implicit synchronisation
    cudaError_t e = cudaStreamSynchronize(st->stream);
    if (e != cudaSuccess) {
        cuda_record_failure(ctx, op, "%s", cudaGetErrorString(e));
        return NULL;
    }
    if (st->scratch) cudaFree(st->scratch);
    st->scratch = NULL;
    st->scratch_bytes = 0;
    e = cudaMalloc(&st->scratch, want);
    if (e != cudaSuccess) {
        st->scratch = NULL;
        cuda_record_failure(ctx, op, "cannot allocate %zu bytes of scratch: %s", want, cudaGetErrorString(e));
        return NULL;
    }
    st->scratch_bytes = want;
    return st->scratch;
}

static int cuda_ctx_init(rt_ctx *ctx, rt_dtype act, int n_threads, rt_error *err) {
    cuda_state *st = (cuda_state *)calloc(1, sizeof *st);
    if (!st) return rt_fail(err, "out of memory creating the CUDA context");
    cudaError_t e = cudaGetDevice(&st->device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&st->prop, st->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(st);
        return rt_fail(err, "cannot create a CUDA stream: %s", cudaGetErrorString(e));
    }
    if (cublasLtCreate(&st->lt) != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(st->stream);
        free(st);
        return rt_fail(err, "cannot create a cuBLASLt handle (is libcublasLt from the same CUDA toolkit?)");
    }
    st->lt_workspace_bytes = LT_WORKSPACE_BYTES;
    e = cudaMalloc(&st->lt_workspace, st->lt_workspace_bytes);
    if (e != cudaSuccess) {
        cublasLtDestroy(st->lt);
        cudaStreamDestroy(st->stream);
        free(st);
        return rt_fail(err, "cannot allocate the %zu MiB cuBLASLt workspace: %s",
                       (size_t)(LT_WORKSPACE_BYTES >> 20), cudaGetErrorString(e));
    }
    ctx->be = rt_backend_cuda();
    ctx->act = act;
    ctx->n_threads = n_threads;
    ctx->impl = st;
    return 0;
}

static void cuda_ctx_free(rt_ctx *ctx) {
    cuda_state *st = cuda_of(ctx);
    if (!st) return;
    cudaStreamSynchronize(st->stream);
    cuda_matmul_free_plans(ctx);
    if (st->scratch) cudaFree(st->scratch);
    if (st->lt_workspace) cudaFree(st->lt_workspace);
    cublasLtDestroy(st->lt);
    cudaStreamDestroy(st->stream);
    free(st);
    ctx->impl = NULL;
}

static void *cuda_alloc(rt_ctx *ctx, size_t bytes, const char *what, rt_error *err) {
    cuda_state *st = cuda_of(ctx);
    void *p = NULL;
    size_t want = bytes ? bytes : 256;
    cudaError_t e = cudaMalloc(&p, want);
    if (e != cudaSuccess) {
        cudaGetLastError(); // an allocation failure is reported here, not as a failed context
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        rt_fail(err,
                "cannot allocate %zu bytes of GPU memory for %s (%zu MiB free of %zu MiB): %s; lower "
                "train.batch_size or data.seq_len",
                bytes, what, free_b >> 20, total_b >> 20, cudaGetErrorString(e));
        return NULL;
    }
    // zero-filled, as the table promises; on the context's stream so it is ordered with the ops
    e = cudaMemsetAsync(p, 0, want, st->stream);
    if (e != cudaSuccess) {
        cudaGetLastError(); // reported here: a later op must not find (and be blamed for) this error
        cudaFree(p);
        rt_fail(err, "cannot clear %zu bytes of GPU memory for %s: %s", bytes, what, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

static void cuda_free(rt_ctx *ctx, void *p) {
    if (p) cudaFree(p); // waits for the kernels that may still use p
}

// Host fp32 -> bf16, round to nearest even: bit for bit what __float2bfloat16_rn gives (cuda_bf16.hpp),
// which maps every NaN to the canonical 0x7fff, so an upload and a device convert() of the same values agree.
static uint16_t host_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu; // NaN: canonical NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float host_from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void copy_failed(rt_ctx *ctx, const char *op, cudaError_t e) {
    cuda_record_failure(ctx, op, "%s", cudaGetErrorString(e));
}

static void cuda_upload(rt_ctx *ctx, void *dst, rt_dtype t, const float *src, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    cudaError_t e;
    if (t == RT_F32) {
        e = cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, st->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st->stream); // src may be freed on return
    } else {
        uint16_t *tmp = (uint16_t *)malloc(n * sizeof(uint16_t));
        if (!tmp) {
            cuda_record_failure(ctx, "upload", "out of host memory converting %zu values to bf16", n);
            return;
        }
        for (size_t i = 0; i < n; i++) tmp[i] = host_to_bf16(src[i]);
        e = cudaMemcpyAsync(dst, tmp, n * sizeof(uint16_t), cudaMemcpyHostToDevice, st->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st->stream);
        free(tmp);
    }
    if (e != cudaSuccess) copy_failed(ctx, "upload", e);
}

static void cuda_download(rt_ctx *ctx, float *dst, const void *src, rt_dtype t, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed) {
        // a failed context has no trustworthy data: NaN makes any use of it visible
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
    if (n == 0) return;
    cudaError_t e;
    if (t == RT_F32) {
        e = cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, st->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st->stream);
    } else {
        uint16_t *tmp = (uint16_t *)malloc(n * sizeof(uint16_t));
        if (!tmp) {
            cuda_record_failure(ctx, "download", "out of host memory for %zu bf16 values", n);
            for (size_t i = 0; i < n; i++) dst[i] = NAN;
            return;
        }
        e = cudaMemcpyAsync(tmp, src, n * sizeof(uint16_t), cudaMemcpyDeviceToHost, st->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(st->stream);
        for (size_t i = 0; i < n; i++) dst[i] = e == cudaSuccess ? host_from_bf16(tmp[i]) : NAN;
        free(tmp);
    }
    if (e != cudaSuccess) {
        copy_failed(ctx, "download", e);
        for (size_t i = 0; i < n; i++) dst[i] = NAN;
    }
}

static void cuda_upload_i32(rt_ctx *ctx, int32_t *dst, const int32_t *src, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    // pageable source: the runtime stages it before returning, so src may change afterwards
    cudaError_t e = cudaMemcpyAsync(dst, src, n * sizeof(int32_t), cudaMemcpyHostToDevice, st->stream);
    if (e != cudaSuccess) copy_failed(ctx, "upload_i32", e);
}

static void cuda_upload_bytes(rt_ctx *ctx, void *dst, const void *src, size_t bytes) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || bytes == 0) return;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st->stream);
    if (e != cudaSuccess) copy_failed(ctx, "upload_bytes", e);
}

static void cuda_sync(rt_ctx *ctx) {
    cuda_state *st = cuda_of(ctx);
    cudaError_t e = cudaStreamSynchronize(st->stream);
    if (e != cudaSuccess) cuda_record_failure(ctx, "sync", "%s", cudaGetErrorString(e));
}

static int cuda_check(rt_ctx *ctx, rt_error *err) {
    cuda_state *st = cuda_of(ctx);
    if (!st->failed) {
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) cuda_record_failure(ctx, "kernel", "%s", cudaGetErrorString(e));
    }
    if (!st->failed) return 0;
    return rt_fail(err, "%s", st->fail_msg);
}

static void cuda_zero(rt_ctx *ctx, void *p, size_t bytes) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || bytes == 0) return;
    cudaError_t e = cudaMemsetAsync(p, 0, bytes, st->stream);
    if (e != cudaSuccess) copy_failed(ctx, "zero", e);
}

// ---------------------------------------------------------------------------------------------------
// elementwise: conversion and adds

template <typename D, typename S> __global__ void convert_kernel(D *dst, const S *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = from_f32<D>(to_f32(src[i]));
}

void cuda_convert(rt_ctx *ctx, void *dst, rt_dtype dst_t, const void *src, rt_dtype src_t, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    if (dst_t == src_t) {
        if (dst == src) return;
        cudaError_t e =
            cudaMemcpyAsync(dst, src, n * rt_dtype_size(dst_t), cudaMemcpyDeviceToDevice, st->stream);
        if (e != cudaSuccess) copy_failed(ctx, "convert", e);
        return;
    }
    unsigned grid = cuda_grid(n, 256);
    if (dst_t == RT_BF16)
        convert_kernel<bf16, float><<<grid, 256, 0, st->stream>>>((bf16 *)dst, (const float *)src, n);
    else
        convert_kernel<float, bf16><<<grid, 256, 0, st->stream>>>((float *)dst, (const bf16 *)src, n);
    cuda_check_launch(ctx, "convert");
}

template <typename T> __global__ void add_kernel(T *out, const T *a, const T *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}

void cuda_add(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0) return;
    CUDA_DISPATCH_ACT(ctx, (add_kernel<T><<<cuda_grid(n, 256), 256, 0, st->stream>>>((T *)out, (const T *)a,
                                                                                     (const T *)b, n)));
    cuda_check_launch(ctx, "add");
}

void cuda_add_inplace(rt_ctx *ctx, void *acc, const void *x, size_t n) {
    cuda_add(ctx, acc, acc, x, n);
}

template <typename T> __global__ void accumulate_f32_kernel(float *acc, const T *x, size_t n, int first) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc[i] = first ? to_f32(x[i]) : acc[i] + to_f32(x[i]);
}

// fp32 acc = x or acc += x for an act x: micro-batch gradients summed in fp32 whatever the compute dtype
void cuda_accumulate_f32(rt_ctx *ctx, float *acc, const void *x, size_t n, int first) {
    cuda_state *st = cuda_of(ctx);
    if (st->failed || n == 0 || (first && (const void *)acc == x)) return;
    CUDA_DISPATCH_ACT(ctx, (accumulate_f32_kernel<T>
                            <<<cuda_grid(n, 256), 256, 0, st->stream>>>(acc, (const T *)x, n, first)));
    cuda_check_launch(ctx, "accumulate_f32");
}

static const char *cuda_device_name(rt_ctx *ctx) {
    return cuda_of(ctx)->prop.name;
}

static void *cuda_stream(rt_ctx *ctx) {
    return (void *)cuda_of(ctx)->stream;
}

// ---------------------------------------------------------------------------------------------------
// the table and the entry points

static const rt_backend cuda_backend_table = {
    .name = "cuda",
    .ctx_init = cuda_ctx_init,
    .ctx_free = cuda_ctx_free,
    .device_name = cuda_device_name,
    .stream = cuda_stream,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .upload_i32 = cuda_upload_i32,
    .sync = cuda_sync,
    .check = cuda_check,
    .zero = cuda_zero,
    .convert = cuda_convert,
    .matmul = cuda_matmul,
    .add = cuda_add,
    .add_inplace = cuda_add_inplace,
    .add_bias_rows = cuda_add_bias_rows,
    .bias_backward = cuda_bias_backward,
    .embedding_forward = cuda_embedding_forward,
    .embedding_backward = cuda_embedding_backward,
    .rmsnorm_forward = cuda_rmsnorm_forward,
    .rmsnorm_backward = cuda_rmsnorm_backward,
    .rope_forward = cuda_rope_forward,
    .rope_backward = cuda_rope_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
    .swiglu_forward = cuda_swiglu_forward,
    .swiglu_backward = cuda_swiglu_backward,
    .cross_entropy = cuda_cross_entropy,
    .sum_squares = cuda_sum_squares,
    .sum_f32 = cuda_sum_f32,
    .clip_scale = cuda_clip_scale,
    .sum_squares_segments = cuda_sum_squares_segments,
    .accumulate_f32 = cuda_accumulate_f32,
    .adamw = cuda_adamw,
    .distill_loss = cuda_distill_loss,
    .rope_forward_at = cuda_rope_forward_at,
    .attention_forward_cached = cuda_attention_forward_cached,
    .kv_append = cuda_kv_append,
    .upload_bytes = cuda_upload_bytes,
    .nf4_dequantize = cuda_nf4_dequantize,
    .dropout = cuda_dropout,
    .copy_rows = cuda_copy_rows,
};

extern "C" const rt_backend *rt_backend_cuda(void) {
    return &cuda_backend_table;
}

// GPU dev exists and can run the backend (bf16 needs compute capability 8.0); otherwise err says why.
static int gpu_usable(int dev, rt_error *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rt_fail(err, "%s (no NVIDIA driver or GPU visible to this process)", cudaGetErrorString(e));
    }
    if (n == 0) return rt_fail(err, "the CUDA runtime sees no GPU");
    if (dev < 0 || dev >= n)
        return rt_fail(err, "there is no GPU %d: the CUDA runtime sees %d GPU%s (CUDA_VISIBLE_DEVICES=%s)",
                       dev, n, n == 1 ? "" : "s",
                       getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, dev);
    if (e != cudaSuccess)
        return rt_fail(err, "cannot read GPU %d's properties: %s", dev, cudaGetErrorString(e));
    if (prop.major < 8)
        return rt_fail(
            err, "GPU %d (%s) has compute capability %d.%d; retort's CUDA backend needs 8.0 or newer (bf16)",
            dev, prop.name, prop.major, prop.minor);
    return 0;
}

extern "C" int rt_cuda_available(rt_error *err) {
    return gpu_usable(0, err) == 0;
}

extern "C" int rt_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

extern "C" int rt_cuda_ctx_init(rt_ctx *ctx, rt_dtype act, int n_threads, int device_index, rt_error *err) {
    if (gpu_usable(device_index, err)) return -1;
    cudaError_t e = cudaSetDevice(device_index);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return rt_fail(err, "cannot select GPU %d: %s", device_index, cudaGetErrorString(e));
    }
    return cuda_ctx_init(ctx, act, n_threads, err);
}
