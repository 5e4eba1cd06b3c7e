// A retort model as a GGUF file llama.cpp loads (docs/export.md, What the file holds): llama metadata (qwen2
// for a model with q/k/v biases that llama.cpp's qwen2 can hold) with the exact types, the byte vocabulary as
// a gpt2 tokenizer with empty merges, the Q/K rows permuted for llama.cpp's RoPE in the llama architecture,
// RoPE scaling as llama.cpp reads it, and either the whole model or its LoRA adapters alone (general.type
// adapter, for llama.cpp --lora).
#ifndef RT_GGUF_EXPORT_H
#define RT_GGUF_EXPORT_H

#include "train/checkpoint.h"
#include "config/config.h"

typedef struct rt_gguf_export_report {
    int n_tensors;
    int n_fallback;          // matrices written in another type because their rows do not split into blocks
    char fallback_note[256]; // which, for the message
    size_t bytes;            // of the tensor data
} rt_gguf_export_report;

// The model's weights (row-major fp32, GGUF llama names) in type (rt_ggml_type) for the matrices; norms stay
// F32. A matrix whose rows do not split into the type's blocks falls back to Q8_0, then F16.
int rt_gguf_export_model(const rt_named_tensor *weights, int n, const rt_config *cfg, int type,
                         const char *model_name, const char *path, rt_gguf_export_report *rep, rt_error *err);

// The adapters of an adapter checkpoint as a llama.cpp LoRA GGUF (F32), alpha written so that llama.cpp's
// alpha / rank is retort's scale. A head adapter on tied embeddings has no llama.cpp equivalent: refused.
int rt_gguf_export_adapter(const rt_named_tensor *adapters, int n, const rt_config *cfg, float scale,
                           const char *path, rt_gguf_export_report *rep, rt_error *err);

// Rows of a Q or K weight [heads * hd, in] from rotate-half order to llama.cpp's adjacent pairs.
void rt_gguf_permute_rope_rows(const float *w, float *out, int heads, int hd, int64_t cols);

#endif
