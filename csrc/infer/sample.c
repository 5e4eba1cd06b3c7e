#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scored {
    float p;
    int32_t id;
} scored;

static int by_prob_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id; // ties: lower id first
}

int32_t rt_sample_token(const float *logits, int V, const rt_sampling *s, rt_rng *rng, float *probs) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0.0f) return best;
    // Keep the top_k largest (ties broken by lower id) by finding the k-th largest value.
    float cutoff = -INFINITY;
    if (s->top_k > 0 && s->top_k < V) {
        memcpy(probs, logits, (size_t)V * sizeof(float));
        for (int k = 0; k < s->top_k; k++) { // k passes of selection: V is small (bytes) to mid-size
            int arg = -1;
            for (int i = 0; i < V; i++)
                if (probs[i] != -INFINITY && (arg < 0 || probs[i] > probs[arg])) arg = i;
            cutoff = probs[arg];
            probs[arg] = -INFINITY;
        }
    }
    double sum = 0.0;
    float mx = logits[best];
    for (int i = 0; i < V; i++) {
        double p = logits[i] >= cutoff ? exp((double)(logits[i] - mx) / s->temperature) : 0.0;
        probs[i] = (float)p;
        sum += p;
    }
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        // nucleus: the smallest set of likeliest ids whose mass reaches top_p; the rest get 0
        scored *order = malloc((size_t)V * sizeof *order);
        if (order) {
            for (int i = 0; i < V; i++) order[i] = (scored){probs[i], (int32_t)i};
            qsort(order, (size_t)V, sizeof *order, by_prob_desc);
            double acc = 0.0, kept = 0.0;
            int n_keep = 0;
            while (n_keep < V && (n_keep == 0 || acc < s->top_p * sum)) {
                acc += order[n_keep].p;
                n_keep++;
            }
            for (int i = n_keep; i < V; i++) probs[order[i].id] = 0.0f;
            for (int i = 0; i < n_keep; i++) kept += order[i].p;
            sum = kept;
            free(order);
        }
    }
    double u = (double)rt_rng_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < V; i++) {
        acc += probs[i];
        if (u < acc && probs[i] > 0) return i;
    }
    return best;
}

void rt_topk_logprobs(const float *logits, int V, int k, float temperature, int32_t *ids, float *logprobs) {
    double mx = -INFINITY;
    for (int i = 0; i < V; i++)
        if (logits[i] > mx) mx = logits[i];
    double z = 0.0;
    for (int i = 0; i < V; i++) z += exp(((double)logits[i] - mx) / temperature);
    double log_z = log(z);
    // k selection passes over the order (logit descending, then id ascending): pass j takes the first id
    // after pass j-1's, so no sort of the whole row and no bookkeeping of what was taken
    for (int j = 0; j < k; j++) {
        int arg = -1, prev = j ? ids[j - 1] : -1;
        for (int i = 0; i < V; i++) {
            if (prev >= 0 && !(logits[i] < logits[prev] || (logits[i] == logits[prev] && i > prev))) continue;
            if (arg < 0 || logits[i] > logits[arg]) arg = i;
        }
        ids[j] = arg;
        double lp = ((double)logits[arg] - mx) / temperature - log_z;
        logprobs[j] = (float)(lp < -1e30 ? -1e30 : lp);
    }
}

int64_t rt_generate(rt_model *m, int32_t *ids, int64_t n, int64_t max_new, int32_t eos, const rt_sampling *s,
                    rt_rng *rng, void (*on_token)(int32_t id, void *user), void *user, rt_error *err) {
    int V = m->dims.V, T_cap = m->T_max_batch;
    float *row = rt_malloc((size_t)V * 2 * sizeof(float), "logits row", err);
    if (!row) return -1;
    // ids[0 .. cached) are in the KV cache: the first step is a prefill of the prompt, each later one runs
    // the newest id. Once the sequence outgrows the model the context is the last T_cap ids, at positions
    // that shift every step, so every step is then a whole forward of that window.
    int64_t cached = 0;
    for (int64_t i = 0; i < max_new; i++) {
        int rc, last;
        if (n <= T_cap) {
            rc = rt_model_forward_cached(m, ids + cached, 1, (int)(n - cached), (int)cached, err);
            last = (int)(n - cached) - 1;
            cached = n;
        } else {
            rc = rt_model_forward(m, ids + n - T_cap, NULL, 1, T_cap, 1.0f, err);
            last = T_cap - 1;
        }
        if (rc) {
            free(row);
            return -1;
        }
        rt_model_logits_row(m, last, row);
        int32_t next = rt_sample_token(row, V, s, rng, row + V);
        ids[n++] = next;
        if (on_token) on_token(next, user);
        if (next == eos) break;
    }
    free(row);
    if (m->ctx->be->check(m->ctx, err)) return -1;
    return n;
}
