// LoRA and QLoRA (docs/training.md, LoRA): which projections get adapters, their scale, and which frozen base
// weights are stored in NF4. The model (model.c, model_lora.c) reads an rt_lora_spec; finetune builds it
// from the config.
#ifndef RT_LORA_H
#define RT_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "config/config.h"

// The linear layers an adapter can sit on: the seven projections of every block and the output head.
typedef enum rt_lora_site {
    RT_SITE_Q = 0,
    RT_SITE_K,
    RT_SITE_V,
    RT_SITE_O,
    RT_SITE_GATE,
    RT_SITE_UP,
    RT_SITE_DOWN,
    RT_SITE_HEAD,
    RT_N_SITES
} rt_lora_site;
#define RT_N_BLOCK_SITES 7

typedef struct rt_lora_spec {
    int rank;           // r >= 1; 0: no adapters (full fine-tuning, pretraining)
    float scale;        // alpha / r, or alpha / sqrt(r) with rsLoRA
    float dropout;      // probability an adapter input element is dropped (training forward only)
    unsigned targets;   // bit (1 << site) for every site with an adapter
    int freeze_base;    // every non-adapter weight is frozen: no gradient, no optimizer state
    unsigned nf4_sites; // block sites whose frozen weight is stored in NF4 (QLoRA)
    int double_quant;   // NF4 block scales quantized to 8 bits
} rt_lora_spec;

// Short name of a site ("q", "gate", "head") and the GGUF suffix of its weight ("attn_q", "output").
const char *rt_lora_site_name(rt_lora_site s);

// The site of a weight under retort's names (blk.N.attn_q.weight, output.weight), or -1 for a weight no
// adapter sits on. layer (may be NULL) receives N, or -1 for the head.
int rt_lora_site_of(const char *weight_name, int *layer);

// Parse lora.targets ("q,v", "all"); err names the key and the token it did not know.
int rt_lora_parse_targets(const char *text, unsigned *mask, rt_error *err);

// lora.targets text of a site mask ("q,v,head"), in site order. cap >= RT_LORA_TARGETS_MAX holds any mask.
#define RT_LORA_TARGETS_MAX 40
void rt_lora_targets_text(unsigned mask, char *out, size_t cap);

// The spec of a finetune config: full (no adapters, nothing frozen), lora or qlora.
int rt_lora_spec_from_config(const rt_config *cfg, rt_lora_spec *spec, rt_error *err);

// Seed of the dropout mask of one adapter input in one micro-batch: the same on every backend, and
// reproduced after a resume because it depends only on these numbers.
uint64_t rt_lora_dropout_seed(uint64_t run_seed, int64_t step, int micro, int layer, int site);

#endif
