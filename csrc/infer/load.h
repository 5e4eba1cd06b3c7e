// Loading models for inference (generate, eval, synth, distillation's teacher).
#ifndef RT_LOAD_H
#define RT_LOAD_H

#include "backend/backend.h"
#include "config/config.h"
#include "model/model.h"

// Read a checkpoint's weights and resolved config and build a model for batches up to B x T (T = 0: the
// model's max_seq_len) on ctx. cfg receives the checkpoint's config. An adapter checkpoint loads its base
// (checked against the stored hash) with the adapters on it.
int rt_load_model(const char *ckpt_path, rt_ctx *ctx, int B, int T, rt_model *m, rt_config *cfg,
                  rt_error *err);

#endif
