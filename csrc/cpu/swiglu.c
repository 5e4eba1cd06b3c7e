// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g). Elementwise; cpu_expf keeps the loops SIMD.
#include "bf16.h"
#include "cpu_internal.h"

// gate, up [N, F] with rows ld apart (the halves of a fused [N, 2F] projection); out [N, F] contiguous
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_swiglu_forward(ctx, out, gate, up, N, F, ld);
        return;
    }
    float *o = out;
    const float *g = gate, *u = up;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++) {
        float *orow = o + (size_t)r * F;
        const float *grow = g + (size_t)r * ld, *urow = u + (size_t)r * ld;
#pragma omp simd
        for (int i = 0; i < F; i++) orow[i] = cpu_swiglu(grow[i], urow[i]);
    }
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g); dgate, dup rows ld apart like gate, up
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int N, int F, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_swiglu_backward(ctx, dgate, dup, dout, gate, up, N, F, ld);
        return;
    }
    float *dg = dgate, *du = dup;
    const float *d = dout, *g = gate, *u = up;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++) {
        size_t io = (size_t)r * ld;
        const float *drow = d + (size_t)r * F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            dg[io + i] = cpu_swiglu_dgate(g[io + i], u[io + i], drow[i]);
            du[io + i] = cpu_swiglu_dup(g[io + i], drow[i]);
        }
    }
}
