// Rotary position embedding, rotate-half (Hugging Face) convention: the pair (i, i + D/2) of each head
// rotates by angle t * theta^(-2i/D). x [B, T, H, D] with rows (b, t) ld elements apart; cos/sin tables
// [T_max, D/2]; row t is at position pos0 + t (pos0 = 0 but in cached generation).
#include <omp.h>

#include "bf16.h"
#include "cpu_internal.h"

// Rows of H * D columns, each converted in and out as a whole in bf16 contexts (cpu_row_in); in place
// (out == x) is fine, as each pair is read before it is written.
static void rope_apply(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int pos0, int ld, float sign) {
    int half = D / 2, cols = H * D;
    float *scratch = cpu_scratch(ctx, 2 * (size_t)cols);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)B * T * H * D);
#pragma omp parallel for collapse(2) schedule(static) num_threads(nt)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *tmp = scratch + (size_t)omp_get_thread_num() * per; // [cols] in, [cols] out
            size_t r = (size_t)b * T + t, pos = (size_t)(pos0 + t) * half;
            const float *c = cos_tab + pos, *s = sin_tab + pos;
            const float *xr = cpu_row_in(ctx, x, r, (size_t)ld, cols, tmp);
            float *outr = cpu_row_at(ctx, out, r, (size_t)ld, tmp + cols);
            for (int h = 0; h < H; h++) {
                size_t off = (size_t)h * D;
#pragma omp simd
                for (int i = 0; i < half; i++) {
                    float x1 = xr[off + i], x2 = xr[off + i + half], sn = sign * s[i];
                    outr[off + i] = x1 * c[i] - x2 * sn;
                    outr[off + i + half] = x1 * sn + x2 * c[i];
                }
            }
            cpu_row_out(ctx, out, r, (size_t)ld, cols, outr);
        }
    }
}

void cpu_rope_forward(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                      int B, int T, int H, int D, int ld) {
    rope_apply(ctx, out, x, cos_tab, sin_tab, B, T, H, D, 0, ld, 1.0f);
}

void cpu_rope_forward_at(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                         int B, int T, int H, int D, int pos0, int ld) {
    rope_apply(ctx, out, x, cos_tab, sin_tab, B, T, H, D, pos0, ld, 1.0f);
}

// The rotation is orthogonal: its transpose is the rotation by the negative angle.
void cpu_rope_backward(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                       int B, int T, int H, int D, int ld) {
    rope_apply(ctx, dx, dout, cos_tab, sin_tab, B, T, H, D, 0, ld, -1.0f);
}
