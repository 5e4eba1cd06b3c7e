// The rows `retort eval` measures and how they are printed: a table or JSON, with --compare a report of
// each student against the teacher (the first row).
#ifndef RT_EVAL_REPORT_H
#define RT_EVAL_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"
#include "infer/evaluate.h"

typedef struct eval_row {
    const char *ckpt;
    size_t params;
    int64_t file_bytes;   // the checkpoint file
    int64_t memory_bytes; // what the model holds on its device for a batch (weights + activations)
    double tokens_per_s;  // forward throughput over the data
    double loss;
    int64_t tokens;
    double answer_loss; // over the answer tokens only, for prompt/answer datasets
    int64_t answer_tokens;
    rt_task_result task;
    int has_task;
    double kl, top1_agree; // against the teacher
    int64_t kl_positions;
    int has_teacher;
} eval_row;

void rt_eval_print(const eval_row *rows, int n, const rt_dataset *ds, int json, int compare);

#endif
