// adapter_config.json of a PEFT LoRA adapter, read (`retort import peft`) and written (`retort export
// --format peft`). retort's adapters are plain LoRA: W x + s B A x on whole projections of every block (and
// the head), one rank and one alpha, s = alpha / r or alpha / sqrt(r) (rsLoRA), as PEFT computes its
// scaling. The reader refuses, naming the file and key, every setting that makes PEFT compute something else
// (DoRA, fan_in_fan_out, trained biases, modules_to_save, per-module ranks or alphas, QA-LoRA, aLoRA, ...).
// Which layers and projections an adapter covers is read from adapter_model.safetensors itself
// (peft_import.h) and checked against target_modules. docs/finetune.md lists the keys.
#ifndef RT_PEFT_CONFIG_H
#define RT_PEFT_CONFIG_H

#include <stddef.h>

#include "base/buf.h"
#include "base/common.h"
#include "model/lora.h"

#define RT_PEFT_NAME_MAX 1024

typedef struct rt_peft_config {
    int rank;         // r
    double alpha;     // lora_alpha
    double dropout;   // lora_dropout
    int rslora;       // use_rslora: scale alpha / sqrt(r)
    unsigned targets; // sites target_modules names (1 << rt_lora_site); all block sites for "all-linear"
    int pattern;      // target_modules is a regular expression: the tensors alone say what is adapted
    int layer_subset; // layers_to_transform is set: the tensors say which layers (retort needs all)
    // base_model_name_or_path, written by the export; the reader leaves it empty (--base names the base)
    char base_model[RT_PEFT_NAME_MAX];
} rt_peft_config;

// PEFT's module name of a site: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head.
const char *rt_peft_module_of_site(rt_lora_site s);

// Parse adapter_config.json text; path names the file in messages.
int rt_peft_config_parse(const char *text, size_t len, const char *path, rt_peft_config *out, rt_error *err);

// Read and parse DIR/adapter_config.json.
int rt_peft_config_read(const char *dir, rt_peft_config *out, rt_error *err);

// adapter_config.json as PEFT's save_pretrained writes it (keys sorted, two-space indent), with the keys
// every PEFT version since 0.9 knows, so none warns about an unknown key.
void rt_peft_config_json(rt_buf *b, const rt_peft_config *c);

#endif
