// Fine-tuning around the model: reading the base a run adapts, loading adapter checkpoints for inference,
// and merging adapters into the base weights (`retort merge`).
#ifndef RT_FINETUNE_H
#define RT_FINETUNE_H

#include "train/checkpoint.h"
#include "config/config.h"
#include "model/lora.h"
#include "model/model.h"

// Read the base checkpoint of a fine-tune (weights only) and its stored config. A base must hold full
// weights: an adapter checkpoint is refused (merge it first). want_hash (NULL or "") checks the file's
// content hash; hash receives it. what names the setting in messages ("finetune.base").
int rt_finetune_read_base(const char *path, const char *want_hash, const char *what, rt_ckpt *base,
                          rt_config *base_cfg, char hash[17], rt_error *err);

// An adapter checkpoint with its config, for inference: reads its base (checking the hash), builds the
// adapted model (frozen, NF4 where the config says) for batches up to B x T on ctx and loads both.
int rt_finetune_load_adapted(const char *ckpt_path, const rt_ckpt *adapter, const rt_config *cfg, rt_ctx *ctx,
                             int B, int T, rt_model *m, rt_error *err);

// The base's weights with the adapters folded in: W + scale * B A for every adapted projection, where W is
// the NF4 round trip of the base weight for an NF4 site (what QLoRA trained against). A head adapter on a
// tied embedding gives a separate output.weight (merged_cfg->model.tie_embeddings becomes false).
// merged receives owned tensors (free with rt_model_free_host_tensors(merged, *n_merged)).
int rt_finetune_merge(const rt_ckpt *adapter, const rt_config *cfg, const rt_ckpt *base,
                      rt_named_tensor **merged, int *n_merged, rt_config *merged_cfg, rt_error *err);

#endif
