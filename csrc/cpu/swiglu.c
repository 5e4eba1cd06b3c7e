// SwiGLU gate: out = silu(gate) * up, silu(g) = g * sigmoid(g), sigmoid(g) = 1 / (1 + exp(-g)).
// Elementwise on cpu_v16 (simd.h), one loop for fp32 and bf16 act buffers, each product in the order its
// comment gives, so every form of cpu_v16 computes the same bits.
#include "cpu_internal.h"

// One row: gate, up (and dgate, dup) at element offset in, out and dout at io; F elements.
static void forward_row(int bf, void *out, const void *gate, const void *up, size_t in, size_t io, int F) {
    cpu_v16 one = cpu_v16_set(1.0f);
    for (int i = 0; i < F; i += CPU_LANES) {
        int n = F - i < CPU_LANES ? F - i : CPU_LANES;
        cpu_v16 g = cpu_v16_load_act(bf, gate, in + i, n), u = cpu_v16_load_act(bf, up, in + i, n);
        cpu_v16 e = cpu_v16_exp(cpu_v16_neg(g));
        // (g / (1 + e)) u
        cpu_v16_store_act(bf, out, io + i, cpu_v16_mul(cpu_v16_div(g, cpu_v16_add(one, e)), u), n);
    }
}

static void backward_row(int bf, void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                         size_t in, size_t io, int F) {
    cpu_v16 one = cpu_v16_set(1.0f);
    for (int i = 0; i < F; i += CPU_LANES) {
        int n = F - i < CPU_LANES ? F - i : CPU_LANES;
        cpu_v16 g = cpu_v16_load_act(bf, gate, in + i, n), u = cpu_v16_load_act(bf, up, in + i, n),
                d = cpu_v16_load_act(bf, dout, io + i, n);
        cpu_v16 sig = cpu_v16_div(one, cpu_v16_add(one, cpu_v16_exp(cpu_v16_neg(g))));
        // dgate = ((d u) sig) (1 + g (1 - sig)), dup = (d g) sig
        cpu_v16 slope = cpu_v16_add(one, cpu_v16_mul(g, cpu_v16_sub(one, sig)));
        cpu_v16_store_act(bf, dgate, in + i, cpu_v16_mul(cpu_v16_mul(cpu_v16_mul(d, u), sig), slope), n);
        cpu_v16_store_act(bf, dup, in + i, cpu_v16_mul(cpu_v16_mul(d, g), sig), n);
    }
}

// gate, up [N, F] with rows ld apart (the halves of a fused [N, 2F] projection); out [N, F] contiguous
void cpu_swiglu_forward(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld) {
    int bf = ctx->act == RT_BF16;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++) forward_row(bf, out, gate, up, (size_t)r * ld, (size_t)r * F, F);
}

// dgate = dout * up * sig * (1 + g (1 - sig)),  dup = dout * silu(g); dgate, dup rows ld apart like gate, up
void cpu_swiglu_backward(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int N, int F, int ld) {
    int bf = ctx->act == RT_BF16;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *F))
    for (int r = 0; r < N; r++)
        backward_row(bf, dgate, dup, dout, gate, up, (size_t)r * ld, (size_t)r * F, F);
}
