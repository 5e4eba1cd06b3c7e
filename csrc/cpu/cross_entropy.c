// Softmax cross-entropy fused with its gradient: one pass over a row for the max, one for the exponentials
// and their sum (cpu_exp_sum, written where the gradient goes: in place over the logits when dlogits ==
// logits, or a per-thread row), one to scale them into the gradient; no [N, V] buffer of probabilities.
// Row-parallel.
#include <math.h>
#include <omp.h>
#include <string.h>

#include "bf16.h"
#include "cpu_internal.h"

// logits [N, V]; targets [N] (< 0 ignored); losses [N]; dlogits [N, V] or NULL. A bf16 context converts each
// row in and out (cpu_row_in, bf16.h).
void cpu_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                       int N, int V, float grad_scale) {
    float *scratch = cpu_scratch(ctx, 2 * (size_t)V);
    size_t per = cpu_of(ctx)->scratch_per_thread;
    int nt = cpu_threads(ctx, (size_t)N * V);
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int i = 0; i < N; i++) {
        float *tmp = scratch + (size_t)omp_get_thread_num() * per; // [V] logits row, [V] gradient row
        const float *row = cpu_row_in(ctx, logits, (size_t)i, (size_t)V, V, tmp);
        float *drow = dlogits ? cpu_row_at(ctx, dlogits, (size_t)i, (size_t)V, tmp + V) : NULL;
        int tgt = targets[i];
        if (tgt < 0 || tgt >= V) {
            // ignored; an id past the vocabulary cannot get here after dataset validation, and shows as a NaN
            // loss rather than a plausible number
            losses[i] = tgt < 0 ? 0.0f : NAN;
            if (drow) {
                for (int j = 0; j < V; j++) drow[j] = 0.0f;
                cpu_row_out(ctx, dlogits, (size_t)i, (size_t)V, V, drow);
            }
            continue;
        }
        float mx = cpu_max(row, V), target_logit = row[tgt];
        float *e = drow ? drow : tmp + V; // exp(row - mx), then the gradient
        if (e != row) memcpy(e, row, (size_t)V * sizeof *e);
        float total = cpu_exp_sum(e, V, mx);
        losses[i] = logf(total) + mx - target_logit;
        if (drow) {
            float s = grad_scale / total;
#pragma omp simd
            for (int k = 0; k < V; k++) drow[k] *= s;
            drow[tgt] -= grad_scale;
            cpu_row_out(ctx, dlogits, (size_t)i, (size_t)V, V, drow);
        }
    }
}
