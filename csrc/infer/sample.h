// Sampling and text generation with a KV cache.
#ifndef RT_SAMPLE_H
#define RT_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "model/model.h"
#include "base/rng.h"

typedef struct rt_sampling {
    float temperature; // 0 = greedy (ties go to the lowest id)
    int top_k;         // 0 = the whole vocabulary
    float top_p;       // nucleus: sample among the likeliest ids holding this mass; 0 or 1 = off
} rt_sampling;

// Pick the next id from one row of logits [V]: softmax(logits / temperature) restricted to the top_k
// likeliest ids, then to the smallest set of them holding top_p of the mass. probs is scratch of V floats.
int32_t rt_sample_token(const float *logits, int V, const rt_sampling *s, rt_rng *rng, float *probs);

// The k likeliest ids of a row of logits [V] (most likely first, ties to the lower id) and their
// log-probabilities under softmax(logits / temperature). k <= V.
void rt_topk_logprobs(const float *logits, int V, int k, float temperature, int32_t *ids, float *logprobs);

// Continue ids[0 .. n) by up to max_new ids, stopping after eos (-1: never). ids must hold n + max_new.
// m is an inference model (its KV cache holds the sequence: a prefill of ids[0 .. n), then one position per
// new id). The context is the last T_max ids once the sequence outgrows the model (each step then a whole
// forward of that window). Returns the new count, or -1. on_token (may be NULL) is called with each new id
// as it is produced.
int64_t rt_generate(rt_model *m, int32_t *ids, int64_t n, int64_t max_new, int32_t eos, const rt_sampling *s,
                    rt_rng *rng, void (*on_token)(int32_t id, void *user), void *user, rt_error *err);

#endif
