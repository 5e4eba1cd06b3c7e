// A Hugging Face model's config.json as transformers 4.x and 5.x write it, for the Llama family retort
// imports (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM). The reader checks every key retort's
// model depends on and refuses, naming config.json, the key and what was expected, anything that would
// make the imported model compute something else (other activations, MLP biases, unknown RoPE scaling).
// docs/import.md lists the keys.
#ifndef RT_HF_CONFIG_H
#define RT_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

typedef enum rt_hf_arch { RT_HF_LLAMA, RT_HF_MISTRAL, RT_HF_QWEN2 } rt_hf_arch;

typedef enum rt_hf_rope_type { RT_HF_ROPE_DEFAULT, RT_HF_ROPE_LINEAR, RT_HF_ROPE_LLAMA3 } rt_hf_rope_type;

typedef struct rt_hf_config {
    rt_hf_arch arch;
    char architecture[32]; // "LlamaForCausalLM", as written
    int vocab_size, hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads;
    int head_dim;                // as written, or hidden_size / n_heads when absent or null
    int max_position_embeddings; // the context the model was made for
    double rope_theta, rms_norm_eps;
    rt_hf_rope_type rope_type;
    double rope_factor;                        // linear, llama3
    double rope_low_freq_factor;               // llama3
    double rope_high_freq_factor;              // llama3
    int rope_original_max_position_embeddings; // llama3
    int tie_word_embeddings;                   // the config's word (a missing lm_head.weight also ties)
    int attn_bias;                             // q/k/v projections carry biases (Qwen2)
    int sliding_window;                        // the attention window in effect, 0 = none
    char dtype[16];                            // "float32", "bfloat16", "float16"; "" when absent
    int bos_token_id, eos_token_id;            // -1 when absent or null (the first of a list)
} rt_hf_config;

// Parse config.json text; path names the file in messages.
int rt_hf_config_parse(const char *text, size_t len, const char *path, rt_hf_config *out, rt_error *err);

// Read and parse DIR/config.json.
int rt_hf_config_read(const char *dir, rt_hf_config *out, rt_error *err);

const char *rt_hf_rope_type_name(rt_hf_rope_type t);

#endif
