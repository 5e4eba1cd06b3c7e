// RMSNorm: out = x / rms(x) * weight, rms over the last dim. Row-parallel; sums use cpu_dot's fixed lanes.
// Written for fp32 rows; a bf16 context converts each row in and out (cpu_row_in, bf16.h).
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// x, out [N, C]; weight [C]; rstd [N]
void cpu_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N, int C,
                         float eps) {
    float *scratch = cpu_scratch(ctx, 3 * (size_t)C);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)N * C);
#pragma omp parallel num_threads(nt)
    {
        float *tmp = scratch + (size_t)omp_get_thread_num() * per; // [C] weight, x row, out row
        const float *w = cpu_row_in(ctx, weight, 0, 0, C, tmp);
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *row = cpu_row_in(ctx, x, (size_t)i, (size_t)C, C, tmp + C);
            float r = 1.0f / sqrtf(cpu_dot(row, row, C) / (float)C + eps);
            rstd[i] = r;
            float *orow = cpu_row_at(ctx, out, (size_t)i, (size_t)C, tmp + 2 * C);
#pragma omp simd
            for (int c = 0; c < C; c++) orow[c] = row[c] * r * w[c];
            cpu_row_out(ctx, out, (size_t)i, (size_t)C, C, orow);
        }
    }
}

// With xhat = x * rstd and g = dout * weight:
//   dx += rstd * (g - xhat * mean(g * xhat)),   dweight += sum over rows of dout * xhat.
// dweight is a sum over rows: each thread sums its static block of rows into its own partial, and the
// partials are added in thread order.
void cpu_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int N, int C) {
    float *scratch = cpu_scratch(ctx, 6 * (size_t)C);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)N * C);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), parts = omp_get_num_threads();
        // [C] each: dweight partial, dout * weight, then the rows: weight, dout, x, dx
        float *acc = scratch + (size_t)tid * per, *g = acc + C, *tmp = g + C;
        memset(acc, 0, (size_t)C * sizeof(float));
        const float *w = cpu_row_in(ctx, weight, 0, 0, C, tmp);
        size_t lo, hi;
        cpu_chunk((size_t)N, parts, tid, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const float *drow = cpu_row_in(ctx, dout, i, (size_t)C, C, tmp + C);
            const float *xrow = cpu_row_in(ctx, x, i, (size_t)C, C, tmp + 2 * C);
            float *dxrow = cpu_row_inout(ctx, dx, i, (size_t)C, C, tmp + 3 * C);
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
            cpu_row_out(ctx, dx, i, (size_t)C, C, dxrow);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int t = 0; t < parts; t++) s += scratch[(size_t)t * per + c];
            if (ctx->act == RT_BF16) {
                uint16_t *dw = dweight;
                dw[c] = cpu_bf16_store(cpu_bf16_load(dw[c]) + s);
            } else {
                ((float *)dweight)[c] += s;
            }
        }
    }
}
