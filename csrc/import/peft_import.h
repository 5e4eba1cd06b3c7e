// `retort import peft DIR --base CKPT --out ADAPTER_CKPT`: a PEFT LoRA adapter folder (adapter_config.json +
// adapter_model.safetensors) as a retort adapter checkpoint tied to a base checkpoint (its path and content
// hash), which eval, generate, merge and export read and `retort finetune` continues from
// (finetune.adapter). The base is the retort checkpoint of the model the adapter was trained on (`retort
// import hf` of it). Every factor's shape is checked against the base's config; what PEFT computes that
// retort's adapters cannot is refused (peft_config.h, and below). docs/finetune.md describes it.
#ifndef RT_PEFT_IMPORT_H
#define RT_PEFT_IMPORT_H

#include <stddef.h>

#include "base/common.h"
#include "export/peft_config.h"

typedef struct rt_peft_import_report {
    rt_peft_config peft;
    unsigned targets;  // the sites the adapter covers (1 << rt_lora_site)
    int n_tensors;     // factors written
    int n_layers;      // of the base
    int head_layer_ok; // lm_head.base_layer.weight was in the file and equals the base's head
    char base[4096];   // the base's resolved path, as recorded
    char base_hash[17];
} rt_peft_import_report;

// Reads the adapter in dir against the base checkpoint base_path and writes the adapter checkpoint out
// (atomically). Refuses, naming the tensor or key: factors of another shape or rank, modules that are not a
// projection of the base, a projection adapted in only some layers, a factor without its partner,
// target_modules naming a projection the file has no factors for (or the reverse), a head weight that
// differs from the base's, and any other tensor.
int rt_peft_import(const char *dir, const char *base_path, const char *out, rt_peft_import_report *rep,
                   rt_error *err);

#endif
