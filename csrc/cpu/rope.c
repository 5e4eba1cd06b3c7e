// Rotary position embedding, rotate-half (Hugging Face) convention: the pair (i, i + D/2) of each head
// rotates by angle t * theta^(-2i/D). x [B, T, H, D] with rows (b, t) ld elements apart; cos/sin tables
// [T_max, D/2]; row t is at position pos0 + t (pos0 = 0 but in cached generation).
#include "bf16.h"
#include "cpu_internal.h"

static void rope_apply(rt_ctx *ctx, float *out, const float *x, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int pos0, int ld, float sign) {
    int half = D / 2;
    int nt = cpu_threads(ctx, (size_t)B * T * H * D);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            size_t row = (size_t)(pos0 + t) * half;
            const float *c = cos_tab + row, *s = sin_tab + row;
            for (int h = 0; h < H; h++) {
                size_t off = ((size_t)b * T + t) * (size_t)ld + (size_t)h * D;
#pragma omp simd
                for (int i = 0; i < half; i++) {
                    float x1 = x[off + i], x2 = x[off + i + half], sn = sign * s[i];
                    out[off + i] = x1 * c[i] - x2 * sn;
                    out[off + i + half] = x1 * sn + x2 * c[i];
                }
            }
        }
    }
}

void cpu_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                      int B, int T, int H, int D, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_rope_forward_at(ctx, out, x, cos_tab, sin_tab, B, T, H, D, 0, ld);
        return;
    }
    rope_apply(ctx, out, x, cos_tab, sin_tab, B, T, H, D, 0, ld, 1.0f);
}

void cpu_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                         int B, int T, int H, int D, int pos0, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_rope_forward_at(ctx, out, x, cos_tab, sin_tab, B, T, H, D, pos0, ld);
        return;
    }
    rope_apply(ctx, out, x, cos_tab, sin_tab, B, T, H, D, pos0, ld, 1.0f);
}

// The rotation is orthogonal: its transpose is the rotation by the negative angle.
void cpu_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int ld) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_rope_backward(ctx, dx, dout, cos_tab, sin_tab, B, T, H, D, ld);
        return;
    }
    rope_apply(ctx, dx, dout, cos_tab, sin_tab, B, T, H, D, 0, ld, -1.0f);
}
