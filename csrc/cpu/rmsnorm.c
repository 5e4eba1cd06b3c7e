// RMSNorm: out = x / rms(x) * weight, rms over the last dim. Row-parallel; sums use cpu_dot's fixed lanes.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// x, out [N, C]; weight [C]; rstd [N]
void cpu_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N, int C,
                         float eps) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_rmsnorm_forward(ctx, out, rstd, x, weight, N, C, eps);
        return;
    }
    float *o = out;
    const float *xs = x, *w = weight;
    int nt = cpu_threads(ctx, (size_t)N * C);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < N; i++) {
        const float *row = xs + (size_t)i * C;
        float r = 1.0f / sqrtf(cpu_dot(row, row, C) / (float)C + eps);
        rstd[i] = r;
        float *orow = o + (size_t)i * C;
#pragma omp simd
        for (int c = 0; c < C; c++) orow[c] = row[c] * r * w[c];
    }
}

// With xhat = x * rstd and g = dout * weight:
//   dx += rstd * (g - xhat * mean(g * xhat)),   dweight += sum over rows of dout * xhat.
// dweight is a sum over rows: each thread sums its static block of rows into its own partial, and the
// partials are added in thread order.
void cpu_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int N, int C) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_rmsnorm_backward(ctx, dx, dweight, dout, x, weight, rstd, N, C);
        return;
    }
    float *dxs = dx, *dw = dweight;
    const float *d = dout, *xs = x, *w = weight;
    float *scratch = cpu_scratch(ctx, 2 * (size_t)C);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)N * C);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), parts = omp_get_num_threads();
        float *acc = scratch + (size_t)tid * per, *g = acc + C; // [C] dweight partial, [C] dout * weight
        memset(acc, 0, (size_t)C * sizeof(float));
        size_t lo, hi;
        cpu_chunk((size_t)N, parts, tid, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const float *drow = d + i * C, *xrow = xs + i * C;
            float *dxrow = dxs + i * C;
            float r = rstd[i];
#pragma omp simd
            for (int c = 0; c < C; c++) g[c] = drow[c] * w[c];
            float mean = cpu_dot(g, xrow, C) * r / (float)C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float xhat = xrow[c] * r;
                dxrow[c] += r * (g[c] - xhat * mean);
                acc[c] += drow[c] * xhat;
            }
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int t = 0; t < parts; t++) s += scratch[(size_t)t * per + c];
            dw[c] += s;
        }
    }
}
