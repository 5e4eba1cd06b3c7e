// Datasets are HDF5 files:
//   /tokens        int32 [N]      every document's ids back to back (each document: BOS, bytes, EOS)
//   /doc_offsets   int64 [D+1]    document d is tokens[doc_offsets[d] : doc_offsets[d+1]]
//   /prompt_len    int32 [D]      optional: how many ids of document d (after BOS) are the prompt; the rest
//                                 up to EOS is the exact answer that `retort eval --task` checks
//   root attributes: format = "retort-dataset", version = 1, tokenizer ("byte", or "bpe" / "spm" with
//                    tokenizer_hash, the hash of the tokenizer's source: tokenizer/tokenizer_source.h),
//                    vocab_size, n_docs, n_tokens, task, split, seed, source (how it was made)
// A document is a start id (BOS, or EOS for a tokenizer without BOS), the text's ids, and EOS.
// Written by `retort synth` (a teacher's answers), optionally:
//   /topk_ids      int32 [A, k]    the teacher's k most likely ids at each answer position, most likely first
//   /topk_logprobs float32 [A, k]  their log-probabilities under softmax(teacher logits / topk_temperature)
//   A counts answer positions: for each document in order, its ids after BOS + prompt (EOS included); row r
//   is the teacher's distribution over answer token r given every id before it.
//   attributes: teacher (the checkpoint's path), teacher_hash (of its bytes), teacher_vocab_size, and with
//   the top-k datasets topk_k, topk_temperature (float64)
#ifndef RT_DATASET_H
#define RT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/files.h"
#include "tokenizer/tokenizer.h"

#define RT_DATASET_FORMAT  "retort-dataset"
#define RT_DATASET_VERSION 1

// Teacher distributions of a synthesised dataset (k == 0: none).
typedef struct rt_dataset_topk {
    int k;
    double temperature; // at which the log-probabilities were captured
    size_t n_rows;      // answer positions
    int32_t *ids;       // [n_rows, k]
    float *logprobs;    // [n_rows, k]
} rt_dataset_topk;

typedef struct rt_dataset {
    char path[1024];
    int32_t *tokens; // [n_tokens]
    size_t n_tokens;
    int64_t *doc_offsets; // [n_docs + 1]
    size_t n_docs;
    int32_t *prompt_len;     // [n_docs] or NULL when the dataset has no prompt/answer split
    int vocab_size;          // from the attributes
    char tokenizer[16];      // "byte", "bpe" or "spm"
    char tokenizer_hash[17]; // "" for byte
    char task[64];           // "arithmetic", "kv", "text", ...
    char split[16];          // "train", "val", "all"
    int64_t seed;
    char source[256];
    char teacher[1024];     // the checkpoint that wrote the answers ("" when not synthesised)
    char teacher_hash[32];  // its content hash (rt_file_hash, hex)
    int teacher_vocab_size; // 0 when not synthesised
    rt_dataset_topk topk;
} rt_dataset;

// Describes a dataset being written (tokens, offsets and prompt_len are borrowed).
typedef struct rt_dataset_spec {
    const int32_t *tokens;
    size_t n_tokens;
    const int64_t *doc_offsets; // [n_docs + 1]
    size_t n_docs;
    const int32_t *prompt_len; // may be NULL
    int vocab_size;
    const char *task;
    const char *split;
    int64_t seed;
    const char *source;
    const char *teacher;         // NULL unless synthesised
    const char *teacher_hash;    //
    int teacher_vocab_size;      //
    const rt_dataset_topk *topk; // NULL, or the teacher's top-k per answer position
    const char *tokenizer;       // NULL or "byte"; else "bpe" / "spm" with its hash
    const char *tokenizer_hash;  //
} rt_dataset_spec;

// Load and validate a dataset (format attribute, shapes, offsets monotonic and in range, every id <
// vocab_size and >= 0, prompt_len within its document). Errors name the file and the dataset/attribute.
// max_vocab: the model's vocabulary; ids >= max_vocab are an error naming the position (0 = skip check).
int rt_dataset_load(rt_dataset *ds, const char *path, int max_vocab, rt_error *err);
void rt_dataset_free(rt_dataset *ds);

// Which targets count for an answer-only loss: mask[j] = 1 when token j is part of its document's answer
// (the ids after BOS + prompt, EOS included), 0 for BOS and the prompt. Needs /prompt_len; the caller
// frees the [n_tokens] mask.
int rt_dataset_answer_mask(const rt_dataset *ds, uint8_t **mask, rt_error *err);

// Number of answer positions (the ids after BOS + prompt of every document); 0 without /prompt_len.
size_t rt_dataset_answer_count(const rt_dataset *ds);
// For each token position, its row in the answer-position tables (topk), or -1 for BOS and prompt ids.
// Needs /prompt_len; the caller frees the [n_tokens] array.
int rt_dataset_answer_rows(const rt_dataset *ds, int64_t **rows, rt_error *err);

// The ids a document of tok starts and ends with: BOS (EOS for a tokenizer without BOS, as GPT-2 separates
// its documents) and EOS. A tokenizer without EOS cannot make documents: an error.
int rt_dataset_doc_ids(const rt_tokenizer *tok, int32_t *start, int32_t *end, rt_error *err);
// Whether ds was tokenized with the tokenizer recorded as (type, hash); else an error naming both, with
// what (the config key or command the dataset came in by).
int rt_dataset_check_tokenizer(const rt_dataset *ds, const char *type, const char *hash, const char *what,
                               rt_error *err);

// Write atomically (temp file in the same directory, fsync, rename).
int rt_dataset_write(const char *path, const rt_dataset_spec *spec, rt_error *err);

#endif
