// Bias of a linear layer: forward adds bias[n] to every row of out [N, n]; backward sums the rows of the
// output gradient into dbias. The column sum runs per thread over a static block of rows into its own
// partial, and the partials are added in thread order, so results do not depend on scheduling.
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// out [N, n] += bias [n] on every row
void cpu_add_bias_rows(rt_ctx *ctx, void *out, const void *bias, int N, int n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_add_bias_rows(ctx, out, bias, N, n);
        return;
    }
    float *o = out;
    const float *b = bias;
    int nt = cpu_threads(ctx, (size_t)N * n);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < N; i++) {
        float *row = o + (size_t)i * n;
#pragma omp simd
        for (int c = 0; c < n; c++) row[c] += b[c];
    }
}

// dbias [n] += sum over rows of dout [N, n]
void cpu_bias_backward(rt_ctx *ctx, void *dbias, const void *dout, int N, int n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_bias_backward(ctx, dbias, dout, N, n);
        return;
    }
    float *db = dbias;
    const float *d = dout;
    if (N <= 0 || n <= 0) return;
    float *scratch = cpu_scratch(ctx, (size_t)n);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)N * n);
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num(), parts = omp_get_num_threads();
        float *acc = scratch + (size_t)tid * per; // [n] this thread's partial
        memset(acc, 0, (size_t)n * sizeof(float));
        size_t lo, hi;
        cpu_chunk((size_t)N, parts, tid, &lo, &hi);
        for (size_t i = lo; i < hi; i++) {
            const float *row = d + i * (size_t)n;
#pragma omp simd
            for (int c = 0; c < n; c++) acc[c] += row[c];
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int c = 0; c < n; c++) {
            float s = 0.0f;
            for (int t = 0; t < parts; t++) s += scratch[(size_t)t * per + c];
            db[c] += s;
        }
    }
}
