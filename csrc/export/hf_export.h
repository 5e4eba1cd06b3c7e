// A retort model as a Hugging Face folder that transformers (4.x and 5.x) loads with from_pretrained:
// config.json (LlamaForCausalLM, or Qwen2ForCausalLM with q/k/v biases), generation_config.json,
// model.safetensors under transformers' tensor names (hf_names.h), F32 or BF16, and the tokenizer files
// AutoTokenizer loads (tokenizer.json, tokenizer_config.json, special_tokens_map.json). A tied head writes no
// lm_head.weight and sets tie_word_embeddings. The folder is written whole and swapped in
// (export_folder.h). docs/import.md describes the files.
#ifndef RT_HF_EXPORT_H
#define RT_HF_EXPORT_H

#include <stddef.h>

#include "base/common.h"
#include "base/named_tensor.h"
#include "config/config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_source.h"

typedef struct rt_hf_export_opts {
    int bf16;                   // weights as BF16 (round to nearest even), else F32
    int bos_id, eos_id, pad_id; // the token ids config.json and generation_config.json name; -1: none
    // the model's tokenizer and its record (export_tokenizer.h): a real one's files, or retort's byte
    // tokenizer as a tokenizer.json when tok is NULL or the record is the byte one
    const rt_tokenizer *tok;
    const rt_tok_source *tok_src;
} rt_hf_export_opts;

typedef struct rt_hf_export_report {
    int n_tensors;
    size_t weights_bytes;     // model.safetensors
    const char *architecture; // "LlamaForCausalLM" or "Qwen2ForCausalLM"
} rt_hf_export_report;

// weights: row-major fp32 under retort's names, exactly the tensors cfg's model has.
int rt_hf_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg,
                       const rt_hf_export_opts *opts, const char *out_dir, rt_hf_export_report *rep,
                       rt_error *err);

#endif
