// Softmax cross-entropy fused with its gradient: one pass over a row for the max and the sum, one to write
// the gradient (in place over the logits when dlogits == logits); the probabilities are never stored.
#include <math.h>

#include "cpu_internal.h"

// logits [N, V]; targets [N] (< 0 ignored); losses [N]; dlogits [N, V] or NULL
void cpu_cross_entropy(rt_ctx *ctx, float *losses, void *dlogits, const void *logits, const int32_t *targets,
                       int N, int V, float grad_scale) {
    const float *x = logits;
    float *dx = dlogits;
#pragma omp parallel for schedule(static) num_threads(cpu_of(ctx)->n_threads)
    for (int i = 0; i < N; i++) {
        const float *row = x + (size_t)i * V;
        int tgt = targets[i];
        if (tgt < 0 || tgt >= V) {
            // ignored; an id outside the vocabulary cannot get here past dataset validation, and would show
            // as a NaN loss rather than a wrong number
            losses[i] = tgt < 0 ? 0.0f : NAN;
            if (dx)
                for (int j = 0; j < V; j++) dx[(size_t)i * V + j] = 0.0f;
            continue;
        }
        float mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < V; j++) sum += expf(row[j] - mx);
        float log_sum = logf(sum);
        losses[i] = log_sum + mx - row[tgt];
        if (dx) {
            float *drow = dx + (size_t)i * V;
            float inv = 1.0f / sum;
            for (int j = 0; j < V; j++) drow[j] = grad_scale * expf(row[j] - mx) * inv;
            drow[tgt] -= grad_scale;
        }
    }
}
