// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g). Elementwise; cpu_expf keeps the loops SIMD.
#include "bf16.h"
#include "cpu_internal.h"

// gate, up, out [n]
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_swiglu_forward(ctx, out, gate, up, n);
        return;
    }
    float *o = out;
    const float *g = gate, *u = up;
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n))
    for (size_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + cpu_expf(-g[i])) * u[i];
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g)
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_swiglu_backward(ctx, dgate, dup, dout, gate, up, n);
        return;
    }
    float *dg = dgate, *du = dup;
    const float *d = dout, *g = gate, *u = up;
#pragma omp parallel for simd schedule(static) num_threads(cpu_threads(ctx, n))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i], di = d[i];
        float sig = 1.0f / (1.0f + cpu_expf(-gi));
        dg[i] = di * u[i] * sig * (1.0f + gi * (1.0f - sig));
        du[i] = di * gi * sig;
    }
}
