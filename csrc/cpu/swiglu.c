// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g).
#include <math.h>

#include "cpu_internal.h"

void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, size_t n) {
    float *o = out;
    const float *g = gate, *u = up;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (size_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g)
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                         size_t n) {
    float *dg = dgate, *du = dup;
    const float *d = dout, *g = gate, *u = up;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (size_t i = 0; i < n; i++) {
        float sig = 1.0f / (1.0f + expf(-g[i]));
        float di = d[i];
        dg[i] = di * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
        du[i] = di * g[i] * sig;
    }
}
