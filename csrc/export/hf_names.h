// The tensors of a Llama-family model under both conventions: Hugging Face transformers' names
// (model.layers.0.self_attn.q_proj.weight) and retort's GGUF-style ones (blk.0.attn_q.weight), with the
// shape the config gives each. The importer (csrc/import/hf_import.c) and the exporter (hf_export.c) read
// the same table, so the two directions cannot drift apart.
//
// Both sides store matrices [out, in] row-major and rotate RoPE pairs (j, j + D/2) within each head, so a
// tensor crosses unchanged: no transpose, no q/k row permutation (unlike GGUF's llama architecture).
#ifndef RT_HF_NAMES_H
#define RT_HF_NAMES_H

#include <stdint.h>

#include "base/common.h"
#include "base/named_tensor.h"
#include "config/config.h"

typedef struct rt_hf_tensor {
    char hf[RT_TENSOR_NAME_MAX]; // model.layers.0.self_attn.q_proj.weight
    char rt[RT_TENSOR_NAME_MAX]; // blk.0.attn_q.weight
    int ndim;                    // 1 (norms) or 2 (matrices)
    int64_t shape[2];            // [out, in], or [C]
} rt_hf_tensor;

// Every tensor of the model cfg describes, in retort's order (token_embd, then per block attn_norm, q, k, v,
// their biases with model.attn_bias, o, ffn_norm, gate, up, down, then output_norm and, unless the head is
// tied, output). *out is malloc'd.
int rt_hf_tensor_list(const rt_config *cfg, rt_hf_tensor **out, int *n, rt_error *err);

// The HF name of the head: absent from files whose head is tied to the embedding.
#define RT_HF_LM_HEAD "lm_head.weight"

// 1 for tensors real HF files carry that hold no weights: the RoPE inverse frequencies older transformers
// versions saved (model.layers.N.self_attn.rotary_emb.inv_freq, model.rotary_emb.inv_freq). retort
// computes those from the config.
int rt_hf_ignorable(const char *hf_name);

// "[a, b]" or "[a]" for messages.
void rt_hf_shape_str(int ndim, const int64_t *shape, char *out, size_t cap);

#endif
