// Reductions to one device scalar. Each thread sums a static block in double, in fixed SIMD lanes; the
// partials are added in thread order, so the result does not depend on scheduling.
#include <math.h>
#include <omp.h>

#include "cpu_internal.h"

#define MAX_THREADS 1024
#define LANES       8

static double sum_blocks(rt_ctx *ctx, const float *x, size_t n, int squares) {
    double partial[MAX_THREADS];
    int nt = cpu_of(ctx)->n_threads < MAX_THREADS ? cpu_of(ctx)->n_threads : MAX_THREADS;
    int used = 1;
#pragma omp parallel num_threads(nt) if (n > 65536)
    {
        int tid = omp_get_thread_num(), parts = omp_get_num_threads();
        size_t lo, hi;
        cpu_chunk(n, parts, tid, &lo, &hi);
        double acc[LANES] = {0};
        size_t i = lo;
        if (squares) {
            for (; i + LANES <= hi; i += LANES)
                for (int j = 0; j < LANES; j++) acc[j] += (double)x[i + j] * x[i + j];
            for (int j = 0; i < hi; i++, j++) acc[j] += (double)x[i] * x[i];
        } else {
            for (; i + LANES <= hi; i += LANES)
                for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
            for (int j = 0; i < hi; i++, j++) acc[j] += x[i];
        }
        double s = 0.0;
        for (int j = 0; j < LANES; j++) s += acc[j];
        partial[tid] = s;
        if (tid == 0) used = parts;
    }
    double total = 0.0;
    for (int t = 0; t < used; t++) total += partial[t];
    return total;
}

void cpu_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n) {
    *acc += (float)sum_blocks(ctx, x, n, 1);
}

void cpu_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n) {
    *out = (float)sum_blocks(ctx, x, n, 0);
}

void cpu_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm) {
    float norm = sqrtf(*norm_sq);
    *scale = max_norm > 0.0f && norm > max_norm ? max_norm / norm : 1.0f;
}
