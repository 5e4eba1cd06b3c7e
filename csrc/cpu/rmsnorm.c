// RMSNorm: out = x / rms(x) * weight, rms over the last dim.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_internal.h"

// x, out [N, C]; weight [C]; rstd [N]
void cpu_rmsnorm_forward(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N, int C,
                         float eps) {
    float *o = out;
    const float *xs = x, *w = weight;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (int i = 0; i < N; i++) {
        const float *row = xs + (size_t)i * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += row[c] * row[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        rstd[i] = r;
        float *orow = o + (size_t)i * C;
        for (int c = 0; c < C; c++) orow[c] = row[c] * r * w[c];
    }
}

// With xhat = x * rstd and g = dout * weight:
//   dx += rstd * (g - xhat * mean(g * xhat)),   dweight += sum over rows of dout * xhat.
// dweight is a sum over rows: each thread sums its static block of rows into its own partial, and the
// partials are added in thread order.
void cpu_rmsnorm_backward(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                          const void *weight, const float *rstd, int N, int C) {
    float *dxs = dx, *dw = dweight;
    const float *d = dout, *xs = x, *w = weight;
    int nt = cpu_of(ctx)->n_threads;
    float *partial = cpu_scratch(ctx, (size_t)C);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), parts = omp_get_num_threads();
        float *acc = partial + (size_t)tid * cpu_of(ctx)->scratch_per_thread;
        memset(acc, 0, (size_t)C * sizeof(float));
        size_t lo, hi;
        cpu_chunk((size_t)N, parts, tid, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const float *drow = d + i * C, *xrow = xs + i * C;
            float *dxrow = dxs + i * C;
            float r = rstd[i], dot = 0.0f;
            for (int c = 0; c < C; c++) dot += drow[c] * w[c] * xrow[c] * r;
            float mean = dot / (float)C;
            for (int c = 0; c < C; c++) {
                float xhat = xrow[c] * r;
                dxrow[c] += r * (drow[c] * w[c] - xhat * mean);
                acc[c] += drow[c] * xhat;
            }
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int t = 0; t < parts; t++) s += partial[(size_t)t * cpu_of(ctx)->scratch_per_thread + c];
            dw[c] += s;
        }
    }
}
