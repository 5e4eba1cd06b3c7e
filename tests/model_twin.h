// What the whole-model GPU tests (test_cuda_model.c, test_cuda_lora.c) share: a model and its GPU twin, and
// the bf16 training run against the CPU.
#ifndef RT_TEST_MODEL_TWIN_H
#define RT_TEST_MODEL_TWIN_H

#include <stdint.h>

#include "base/rng.h"
#include "model/model.h"
#include "model/optimizer.h"

// A model on the CPU (fp32) and its twin on the GPU, each with its context.
typedef struct rt_test_model_twin {
    rt_ctx cpu_ctx, gpu_ctx;
    rt_model cpu, gpu;
} rt_test_model_twin;

// Opens the two contexts: the CPU's in fp32 with 2 threads, the GPU's with activations in gpu_act (the
// caller then creates the two models on them).
void rt_test_twin_open(rt_test_model_twin *tw, rt_dtype gpu_act);

// Fails the test when the GPU context recorded a failure; frees both models and both contexts.
void rt_test_twin_free(rt_test_model_twin *tw);

// Draws a batch of B * T tokens and their targets.
typedef void (*rt_test_batch_fn)(rt_rng *r, int32_t *tok, int32_t *tgt);

// `steps` AdamW steps of cpu (fp32) and gpu (bf16, the same initial weights) on the same batches, drawn
// from a stream seeded with seed. Asserts at every step |gpu - cpu| <= 0.05 + 0.03 cpu (bf16 rounding of
// weights and activations, not a drift), and at the end that both losses fell below fall x their first;
// prints both curves' ends. `what` names the run in messages. RT_TEST_STEPS_MAX (the ThreadSanitizer
// emulation run sets it: every step runs the same kernels at the same shapes) cuts the run to that many
// steps; the per-step check still holds, the loss-fall check is then left out.
void rt_test_bf16_tracks_cpu(rt_model *cpu, rt_model *gpu, const rt_adamw_config *oc, int steps,
                             uint64_t seed, rt_test_batch_fn batch, int B, int T, float fall,
                             const char *what);

#endif
