// Synthetic task corpora for measuring training and distillation with an exact-match metric.
// Every task makes documents "prompt" + "answer"; a problem belongs to the held-out split by a hash of its
// prompt, so train and val never share a problem whatever n and seed are.
#ifndef RT_SYNTH_H
#define RT_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

// Writes n_docs documents of task ("arithmetic", "kv", ...) from split ("train" or "val") to an HDF5
// dataset at out_path (with prompt_len set). Errors for an unknown task name list the known ones.
int rt_synth_write(const char *task, size_t n_docs, const char *split, uint64_t seed, const char *out_path,
                   rt_error *err);

// One problem of a synthetic task: the prompt and its exact answer (text).
typedef struct rt_problem {
    char prompt[96];
    char answer[32];
} rt_problem;

// The first n problems of task from split, in the order rt_synth_write writes them for the same seed. The
// caller frees *out.
int rt_synth_problems(const char *task, size_t n, const char *split, uint64_t seed, rt_problem **out,
                      rt_error *err);

// One line per task: name and what it generates.
void rt_synth_list_tasks(FILE *out);

// Turns a text file into a dataset. format: "lines" (one document per non-empty line), "blank" (documents
// separated by blank lines), "whole" (the file is one document) or "jsonl" (one JSON object per line with
// "text", or "prompt" and "completion", which sets prompt_len). Errors name the file and line.
int rt_data_text_write(const char *in_path, const char *format, const char *out_path, int vocab_size,
                       rt_error *err);

#endif
