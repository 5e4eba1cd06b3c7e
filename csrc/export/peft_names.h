// The tensor names of a PEFT LoRA adapter for retort's adaptable weights. PEFT's save_pretrained names the
// factors of module M base_model.model.M.lora_A.weight [r, in] and base_model.model.M.lora_B.weight [out, r],
// M the module's path in the transformers model (model.layers.0.self_attn.q_proj, lm_head); retort's adapter
// checkpoints name them after the weight they adapt, blk.0.attn_q.weight.lora_a and .lora_b, with the same
// shapes, so the factors cross unchanged. The module paths come from the HF name table (hf_names.h).
#ifndef RT_PEFT_NAMES_H
#define RT_PEFT_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/named_tensor.h"
#include "config/config.h"
#include "model/lora.h"

#define RT_PEFT_PREFIX "base_model.model."

typedef struct rt_peft_site {
    char module[RT_TENSOR_NAME_MAX]; // model.layers.0.self_attn.q_proj, lm_head
    // retort's name of the adapted weight, which its adapters extend with .lora_a / .lora_b:
    // blk.0.attn_q.weight, output.weight, or token_embd.weight for the head of a tied model
    char weight[RT_TENSOR_NAME_MAX];
    rt_lora_site site;
    int layer;       // -1 for the head
    int64_t out, in; // the weight's shape
} rt_peft_site;

// Every site of cfg's model that targets (1 << rt_lora_site) selects, block by block in retort's order, the
// head last. *out is malloc'd.
int rt_peft_site_list(const rt_config *cfg, unsigned targets, rt_peft_site **out, int *n, rt_error *err);

// PEFT's name of a site's factor: base_model.model.<module>.lora_A.weight (b = 0) or .lora_B.weight (b = 1).
void rt_peft_key(const rt_peft_site *s, int b, char *out, size_t cap);

// retort's name of a site's factor: <weight>.lora_a or .lora_b.
void rt_peft_rt_key(const rt_peft_site *s, int b, char *out, size_t cap);

#endif
