// Reductions to one device scalar, in double: fixed pieces summed in fixed SIMD lanes, then the pieces'
// partials in order, so the result depends neither on scheduling nor on the number of threads.
#include <math.h>
#include <omp.h>

#include "bf16.h"
#include "cpu_internal.h"

#define LANES 8
// Elements one partial covers: the sum is cut into these fixed pieces whatever the thread count, so a
// reduction gives the same bits with 1 thread or 64 (and a gradient norm the same bits on 1 rank or 4).
#define PIECE ((size_t)16384)
// Pieces summed per pass (their partials live on the stack).
#define PASS 1024

// Sum of x[0..n) (or of squares), 8 lanes in double, in one fixed order.
static double sum_piece(const float *x, size_t n, int squares) {
    double acc[LANES] = {0};
    size_t i = 0;
    if (squares) {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (double)x[i + j] * x[i + j];
        for (int j = 0; i < n; i++, j++) acc[j] += (double)x[i] * x[i];
    } else {
        for (; i + LANES <= n; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += x[i + j];
        for (int j = 0; i < n; i++, j++) acc[j] += x[i];
    }
    double s = 0.0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

static double sum_blocks(rt_ctx *ctx, const float *x, size_t n, int squares) {
    double total = 0.0;
    size_t n_pieces = (n + PIECE - 1) / PIECE;
    for (size_t p0 = 0; p0 < n_pieces; p0 += PASS) {
        double partial[PASS];
        size_t count = n_pieces - p0 < PASS ? n_pieces - p0 : PASS;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, count *PIECE)) if (count > 1)
        for (size_t k = 0; k < count; k++) {
            size_t lo = (p0 + k) * PIECE, hi = lo + PIECE < n ? lo + PIECE : n;
            partial[k] = sum_piece(x + lo, hi - lo, squares);
        }
        for (size_t k = 0; k < count; k++) total += partial[k];
    }
    return total;
}

void cpu_sum_squares_segments(rt_ctx *ctx, float *partials, const float *x, size_t n, size_t seg) {
    size_t n_seg = (n + seg - 1) / seg;
#pragma omp parallel for schedule(static) num_threads(cpu_threads(ctx, n)) if (n_seg > 1)
    for (size_t s = 0; s < n_seg; s++) {
        size_t lo = s * seg, hi = lo + seg < n ? lo + seg : n;
        partials[s] = (float)sum_piece(x + lo, hi - lo, 1);
    }
}

void cpu_sum_squares(rt_ctx *ctx, float *acc, const void *x, size_t n) {
    if (ctx->act == RT_BF16) {
        cpu_bf16_sum_squares(ctx, acc, x, n);
        return;
    }
    *acc += (float)sum_blocks(ctx, x, n, 1);
}

void cpu_sum_f32(rt_ctx *ctx, float *out, const float *x, size_t n) {
    *out = (float)sum_blocks(ctx, x, n, 0);
}

void cpu_clip_scale(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm) {
    float norm = sqrtf(*norm_sq);
    *scale = max_norm > 0.0f && norm > max_norm ? max_norm / norm : 1.0f;
}
