// Evaluation of a model on a dataset: exact match on task datasets, mean loss, and agreement with a teacher.
#ifndef RT_EVALUATE_H
#define RT_EVALUATE_H

#include <stdint.h>

#include "data/dataset.h"
#include "model/model.h"

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
