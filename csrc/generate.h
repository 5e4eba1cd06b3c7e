// Text generation and the exact-match task metric.
#ifndef RT_GENERATE_H
#define RT_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "model.h"
#include "rng.h"

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

// Continue ids[0 .. n) (BOS first) by up to max_new ids, stopping after EOS. ids must hold n + max_new.
// m is an inference model (its KV cache holds the sequence: a prefill of ids[0 .. n), then one position per
// new id). The context is the last T_max ids once the sequence outgrows the model (each step then a whole
// forward of that window). Returns the new count, or -1. on_token (may be NULL) is called with each new id
// as it is produced.
int64_t rt_generate(rt_model *m, int32_t *ids, int64_t n, int64_t max_new, const rt_sampling *s, rt_rng *rng,
                    void (*on_token)(int32_t id, void *user), void *user, rt_error *err);

typedef struct rt_task_result {
    int64_t correct, total;
} rt_task_result;

// Exact match over the documents of a dataset with prompt_len: greedy continuation of BOS + prompt must be
// the stored answer followed by EOS. Documents are batched (up to the model's B_max) by prompt length and
// advance in lockstep through the KV cache of m (an inference model). limit 0 = every document.
int rt_eval_task(rt_model *m, const rt_dataset *ds, int64_t limit, rt_task_result *res, rt_error *err);

// Mean next-token loss over consecutive windows of T + 1 ids of the dataset, in batches of up to B.
// max_batches 0 = the whole dataset. mask (from rt_dataset_answer_mask, or NULL for every token) picks the
// targets that count. Returns the loss and the number of predicted tokens that counted.
int rt_eval_loss(rt_model *m, const rt_dataset *ds, const uint8_t *mask, int B, int T, int64_t max_batches,
                 double *loss, int64_t *n_tokens, rt_error *err);

// Against a teacher of the same vocabulary, over the same windows as rt_eval_loss (every position): the mean
// KL(p_teacher || p_student) at temperature 1 and the fraction of positions where both rank the same id
// first. Both models must hold batches of B x T.
int rt_eval_vs_teacher(rt_model *student, rt_model *teacher, const rt_dataset *ds, int B, int T,
                       int64_t max_batches, double *kl, double *top1_agree, int64_t *n_positions,
                       rt_error *err);

#endif
