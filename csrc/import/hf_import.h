// `retort import hf`: a Hugging Face model folder (config.json + model.safetensors, or shards with
// model.safetensors.index.json) as an ordinary retort checkpoint: fp32 weights under retort's names, a full
// resolved config whose model.* keys describe the model, step 0, no optimizer state. docs/import.md says
// what is read and what is refused.
#ifndef RT_HF_IMPORT_H
#define RT_HF_IMPORT_H

#include <stddef.h>

#include "base/common.h"
#include "config/config.h"
#include "import/hf_config.h"

typedef struct rt_hf_import_opts {
    int max_seq_len;  // 0: the config's max_position_embeddings; else a shorter context (less memory)
    int no_tokenizer; // store the byte record instead of the folder's tokenizer.json (--no-tokenizer)
} rt_hf_import_opts;

// What the checkpoint stores as the tokenizer.
enum {
    RT_HF_TOK_STORED = 0, // the folder's tokenizer.json (with tokenizer_config.json's special tokens)
    RT_HF_TOK_ABSENT,     // the folder has no tokenizer.json: the byte record (give the model ids)
    RT_HF_TOK_SKIPPED,    // --no-tokenizer: the byte record
};

typedef struct rt_hf_import_report {
    rt_hf_config hf;
    int n_tensors;               // written to the checkpoint
    size_t n_params;             // their elements
    size_t n_f32, n_f16, n_bf16; // elements stored in each type in the files
    int tied;                    // the head is the embedding
    int head_missing;            // tied because lm_head.weight is missing while tie_word_embeddings is false
    int head_ignored;            // tie_word_embeddings with an lm_head.weight in the files, which is not used
    int n_ignored;               // tensors without weights skipped (RoPE inverse frequencies)
    int window_ignored;          // a sliding window no longer than the context, so it never applies
    int tokenizer;               // RT_HF_TOK_*
    char tok_type[16];           // the stored tokenizer's type ("bpe", "spm") when RT_HF_TOK_STORED
    int tok_vocab;               // and its ids
} rt_hf_import_report;

// The retort config of a model: every default, then the model.* keys from hf with the context max_seq_len
// (0: hf's max_position_embeddings) and the head tied or not. Refuses what retort's model cannot compute,
// naming config.json's key.
int rt_hf_to_config(const rt_hf_config *hf, const char *config_path, int max_seq_len, int tied,
                    rt_config *cfg, rt_error *err);

// Import the model in dir into the checkpoint out (written atomically). Each weight is read from the
// memory-mapped files into fp32 once. The folder's tokenizer.json is read (and refused when retort cannot
// read it or it has more ids than the embedding has rows) before any weight is converted.
int rt_hf_import(const char *dir, const char *out, const rt_hf_import_opts *opts, rt_hf_import_report *rep,
                 rt_error *err);

#endif
