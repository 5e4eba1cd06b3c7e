// Building a run's execution context and loading models for inference (generate, eval, inspect-like tools).
#ifndef RT_RUNTIME_H
#define RT_RUNTIME_H

#include "backend.h"
#include "config.h"
#include "model.h"

// Pick the backend from system.device ("cpu", "cuda", "auto") and system.precision and create a context.
// "cuda" without a usable GPU is an error that says why; "auto" falls back to the CPU.
int rt_runtime_ctx_init(rt_ctx *ctx, const char *device, const char *precision, int threads, rt_error *err);

// Read a checkpoint's weights and resolved config and build a model for batches up to B x T (T = 0: the
// model's max_seq_len) on ctx. cfg receives the checkpoint's config. An adapter checkpoint loads its base
// (checked against the stored hash) with the adapters on it.
int rt_runtime_load_model(const char *ckpt_path, rt_ctx *ctx, int B, int T, rt_model *m, rt_config *cfg,
                          rt_error *err);

// Parse a checkpoint's stored config text.
int rt_runtime_parse_ckpt_config(const char *ckpt_path, const char *yaml, rt_config *cfg, rt_error *err);

#endif
