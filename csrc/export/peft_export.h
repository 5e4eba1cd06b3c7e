// An adapter checkpoint (LoRA / QLoRA) as a PEFT adapter folder that peft's PeftModel.from_pretrained loads
// onto the Hugging Face export of the base (`retort export BASE --format hf`): adapter_config.json
// (peft_config.h) and adapter_model.safetensors with PEFT's tensor names (peft_names.h), F32 or BF16. The
// folder is written whole and swapped in (export_folder.h). docs/finetune.md describes it.
#ifndef RT_PEFT_EXPORT_H
#define RT_PEFT_EXPORT_H

#include <stddef.h>

#include "base/common.h"
#include "config/config.h"
#include "train/checkpoint.h"

typedef struct rt_peft_export_opts {
    int bf16;              // factors as BF16 (round to nearest even), else F32
    const char *base_name; // base_model_name_or_path; NULL: the base checkpoint's path
} rt_peft_export_opts;

typedef struct rt_peft_export_report {
    int n_tensors;
    size_t bytes;  // adapter_model.safetensors
    int tied_head; // an adapter on a tied head: PEFT warns, and its merge_and_unload also moves the embedding
    int nf4;       // trained against an NF4 base (QLoRA)
} rt_peft_export_report;

// adapter: an adapter checkpoint read with rt_ckpt_read; cfg: its parsed config.
int rt_peft_export(const rt_ckpt *adapter, const rt_config *cfg, const rt_peft_export_opts *opts,
                   const char *out_dir, rt_peft_export_report *rep, rt_error *err);

#endif
