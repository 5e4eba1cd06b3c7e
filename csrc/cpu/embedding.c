// Token embedding: a row gather forward, a scatter-add backward.
#include <string.h>

#include <omp.h>

#include "bf16.h"
#include "cpu_internal.h"

// out[N,C] = table[tokens[i], :]
void cpu_embedding_forward(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C) {
    // a gather: the same bytes in fp32 and bf16
    size_t es = rt_dtype_size(ctx->act), row = (size_t)C * es;
    char *o = out;
    const char *tab = table;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, (size_t)N *C))
    for (int i = 0; i < N; i++) memcpy(o + (size_t)i * row, tab + (size_t)tokens[i] * row, row);
}

// dtable[tokens[i], :] += dout[i, :]. Rows repeat across tokens, so threads split the columns instead of
// the rows: no two threads ever add into the same element, and each element sums in row order.
void cpu_embedding_backward(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                            int C) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_embedding_backward(ctx, dtable, dout, tokens, N, C);
        return;
    }
    float *dt = dtable;
    const float *d = dout;
    size_t work = (size_t)N * C;
#pragma omp parallel num_threads(cpu_threads(ctx, work))
    {
        size_t lo, hi;
        cpu_chunk((size_t)C, omp_get_num_threads(), omp_get_thread_num(), &lo, &hi);
        for (int i = 0; i < N; i++) {
            float *row = dt + (size_t)tokens[i] * C;
            const float *src = d + (size_t)i * C;
#pragma omp simd
            for (size_t c = lo; c < hi; c++) row[c] += src[c];
        }
    }
}
