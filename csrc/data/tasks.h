// Synthetic task corpora for measuring training and distillation with an exact-match metric.
// Every task makes documents "prompt" + "answer"; a problem belongs to the held-out split by a hash of its
// prompt, so train and val never share a problem whatever n and seed are.
#ifndef RT_TASKS_H
#define RT_TASKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/common.h"

// Writes n_docs documents of task ("arithmetic", "kv", ...) from split ("train" or "val") to an HDF5
// dataset at out_path (with prompt_len set). Errors for an unknown task name list the known ones.
int rt_task_write(const char *task, size_t n_docs, const char *split, uint64_t seed, const char *out_path,
                  rt_error *err);

// One problem of a synthetic task: the prompt and its exact answer (text).
typedef struct rt_problem {
    char prompt[96];
    char answer[32];
} rt_problem;

// The first n problems of task from split, in the order rt_task_write writes them for the same seed. The
// caller frees *out.
int rt_task_problems(const char *task, size_t n, const char *split, uint64_t seed, rt_problem **out,
                     rt_error *err);

// One line per task: name and what it generates.
void rt_task_list(FILE *out);

#endif
