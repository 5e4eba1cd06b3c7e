// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g). Elementwise; the exp keeps the loops SIMD
// (AVX-512 intrinsics where the build has them, simd.h, otherwise cpu_expf in plain loops). Both give the
// bits of cpu_swiglu and its gradients.
#include "bf16.h"
#include "cpu_internal.h"
#include "simd.h"

#ifdef CPU_SIMD_AVX512
// Sixteen elements' silu(g) = g sig(g), and sig(g) = 1 / (1 + exp(-g)).
static inline cpu_v16 sigmoid16(cpu_v16 g) {
    cpu_v16 one = cpu_v16_set(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, cpu_v16_exp(cpu_v16_neg(g))));
}
#endif

// gate, up [N, F] with rows ld apart (the halves of a fused [N, 2F] projection); out [N, F] contiguous
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld) {
#ifdef CPU_SIMD_AVX512
    int bf = ctx->act == RT_BF16;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++)
        for (int i = 0; i < F; i += CPU_LANES) {
            int n = F - i < CPU_LANES ? F - i : CPU_LANES;
            size_t in = (size_t)r * ld + i;
            cpu_v16 g = cpu_v16_load_act(bf, gate, in, n), u = cpu_v16_load_act(bf, up, in, n);
            cpu_v16 one = cpu_v16_set(1.0f), e = cpu_v16_exp(cpu_v16_neg(g));
            // g / (1 + e) * u, cpu_swiglu's order
            cpu_v16_store_act(bf, out, (size_t)r * F + i,
                              _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u), n);
        }
#else
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
#endif
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g); dgate, dup rows ld apart like gate, up
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int N, int F, int ld) {
#ifdef CPU_SIMD_AVX512
    int bf = ctx->act == RT_BF16;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++)
        for (int i = 0; i < F; i += CPU_LANES) {
            int n = F - i < CPU_LANES ? F - i : CPU_LANES;
            size_t in = (size_t)r * ld + i;
            cpu_v16 g = cpu_v16_load_act(bf, gate, in, n), u = cpu_v16_load_act(bf, up, in, n),
                    d = cpu_v16_load_act(bf, dout, (size_t)r * F + i, n), sig = sigmoid16(g),
                    one = cpu_v16_set(1.0f);
            // d u sig (1 + g (1 - sig)) and d g sig, left to right as cpu_swiglu_dgate and cpu_swiglu_dup
            cpu_v16 slope = _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, sig)));
            cpu_v16 dg = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, u), sig), slope);
            cpu_v16_store_act(bf, dgate, in, dg, n);
            cpu_v16_store_act(bf, dup, in, _mm512_mul_ps(_mm512_mul_ps(d, g), sig), n);
        }
#else
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
#endif
}
