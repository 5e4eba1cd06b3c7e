// The Llama-style decoder: token embedding, L blocks of (RMSNorm, grouped-query attention with RoPE,
// RMSNorm, SwiGLU MLP) with residuals, final RMSNorm, output head (optionally tied to the embedding).
//
// Written once in terms of backend operations (backend.h): this file never touches tensor memory, so the
// same code runs on the CPU and on the GPU.
#ifndef RT_MODEL_H
#define RT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "base/named_tensor.h"
#include "config/config.h"
#include "model/arena.h"
#include "model/lora.h"
#include "model/rope_scaling.h"

typedef struct rt_model_dims {
    int V;     // vocabulary
    int C;     // width
    int L;     // layers
    int H;     // query heads
    int KVH;   // key/value heads
    int D;     // head dim (model.head_dim; C / H when that is 0); H * D need not equal C
    int F;     // SwiGLU hidden width
    int T_max; // longest sequence (RoPE table rows)
    float eps;
    float theta;
    int tied;             // output head is token_embd.weight
    int attn_bias;        // q/k/v projections add biases blk.N.attn_{q,k,v}.bias
    rt_rope_scaling rope; // frequency scaling of the RoPE tables (zero: none)
} rt_model_dims;

// A frozen weight held only in NF4 (QLoRA; layout in nf4.h), device pointers.
typedef struct rt_nf4_weight {
    uint8_t *codes;
    float *absmax;       // without double quantization
    int8_t *absmax_q;    // with it
    float *absmax_scale; // with it
    float absmax_offset;
} rt_nf4_weight;

typedef struct rt_param {
    char name[RT_TENSOR_NAME_MAX]; // GGUF llama name; adapters add .lora_a / .lora_b to their weight's name
    int ndim;
    int64_t shape[2];   // [out, in] for matrices, [C] for norms
    size_t n;           // elements
    float *master;      // fp32 master weight (device); NULL for a frozen weight in bf16 or NF4
    void *w;            // compute copy in act dtype; == master when act is fp32; NULL when NF4
    void *grad;         // act dtype, NULL when not trainable
    float *m, *v;       // AdamW moments (fp32, device), NULL when not trainable
    int decay;          // weight decay applies (matrices, not norms)
    int frozen;         // the base of LoRA / QLoRA: no gradient, no optimizer state
    int adapter;        // a LoRA A [r, in] or B [out, r]
    rt_nf4_weight *nf4; // QLoRA: the weight exists only in NF4 (master and w are NULL)
    int in_arena;       // a trainable weight of a training model: its buffers are slices of m->arena
    size_t off;         // its first element in the arena
    int bucket;         // the arena bucket (rt_grad_bucket) its gradient completes in
    // Fused projections: wq, wk, wv (and bq, bk, bv) of a layer are one [(H + 2 KVH) D, C] matrix for one
    // matmul, wgate and wup one [2F, C]. Each stays its own parameter (own name, shape and checkpoint
    // tensor) whose buffers (master, compute copy, gradient, moments) are rows of the group's.
    int fuse_next; // the next parameter follows this one directly in every buffer (same group)
    int view;      // a later member of a group outside the arena: its buffers belong to the group's first
} rt_param;

// Per-layer parameters as indices into rt_model.params. wq, wk, wv and bq, bk, bv and wgate, wup are
// fused groups (rt_param.fuse_next).
typedef struct rt_layer_params {
    int attn_norm, wq, wk, wv, wo, ffn_norm, wgate, wup, wdown;
    int bq, bk, bv; // q/k/v biases [H*D], [KVH*D], [KVH*D] with dims.attn_bias, else -1
    int lora_a[RT_N_BLOCK_SITES], lora_b[RT_N_BLOCK_SITES]; // adapters by site (rt_lora_site), -1 = none
} rt_layer_params;

// Activations kept for backward, per layer, for a batch of N = B*T rows.
typedef struct rt_layer_acts {
    void *x;                        // [N, C]     block input (residual stream)
    void *xn1;                      // [N, C]     attn_norm(x)
    float *rstd1;                   // [N]
    void *qkv;                      // [N, (H + 2 KVH) D] q | k | v per row, q and k after RoPE
    void *att;                      // [N, H*D]   attention output (before attn_output)
    float *lse;                     // [B, H, T]
    void *xmid;                     // [N, C]     x + attn_output(att)
    void *xn2;                      // [N, C]     ffn_norm(xmid)
    float *rstd2;                   // [N]
    void *gu;                       // [N, 2F]    gate | up per row
    void *h;                        // [N, F]     silu(gate) * up
    void *lora_u[RT_N_BLOCK_SITES]; // [N, r] adapter inputs projected by A, kept for backward (or NULL)
} rt_layer_acts;

// Device memory the model holds, by what it is for (bytes).
typedef struct rt_model_memory {
    size_t base;        // frozen weights (LoRA / QLoRA base): compute copies or NF4 codes and scales
    size_t parameters;  // trainable weights: fp32 masters and their compute copies (the adapters of LoRA)
    size_t gradients;   // one per trainable parameter, act dtype
    size_t optimizer;   // AdamW moments, fp32
    size_t activations; // kept for backward, backward scratch, logits, token ids, tables, KV cache
} rt_model_memory;

typedef struct rt_model {
    rt_model_dims dims;
    rt_model_memory memory;
    rt_ctx *ctx;
    int B_max, T_max_batch; // activation buffers are sized for this batch
    int training;           // gradients and optimizer moments allocated
    rt_data_parallel dp;    // training: the ranks the step is split over
    rt_param_arena arena;   // training: the trainable weights and their gradients and moments
    int micro_count;        // backward passes since rt_model_zero_grad
    // Overlap of the gradient sum with backward: with reduce_in_backward set, the backward pass calls
    // grad_ready for each arena range of the step's gradient sum as soon as backward has completed it (the
    // training loop starts its sum over ranks there), in bucket order; a failed call sets grad_ready_failed
    // and stops the calls. buckets_reduced: the last backward made every call.
    int (*grad_ready)(void *user, float *acc, size_t n);
    void *grad_ready_user;
    int reduce_in_backward, grad_ready_failed, buckets_reduced;

    rt_param *params; // [n_params] in GGUF order
    int n_params;
    int tok_embd, out_norm, out_head; // indices (out_head == tok_embd when tied)
    rt_layer_params *layer;           // [L]

    // LoRA / QLoRA (model_lora.c); lora.rank == 0 and nothing frozen for a plain model
    rt_lora_spec lora;
    int head_lora_a, head_lora_b; // output head adapter, -1 = none
    void *head_lora_u;            // [N, r]
    void *lora_du;                // [N, r]       backward scratch
    void *lora_xd, *lora_dxd;     // [N, in_max]  dropped-out adapter input and its gradient
    void *lora_slice;             // [N, out_max] an adapter's output, or its slice of a fused gradient
    void *wtmp;                   // dequantized NF4 weight of a projection or fused group (act dtype)
    void *dnorm_sink;             // [C] receives the unused norm gradients of a frozen base
    int dropout_on;               // training forward: adapter dropout applies
    uint64_t dropout_run_seed; // with dropout_step and dropout_micro, seeds the masks (rt_lora_dropout_seed)
    int64_t dropout_step;
    int dropout_micro;

    float *rope_cos, *rope_sin; // [T_max, D/2] fp32 (device)
    int32_t *tokens, *targets;  // [B_max * T] (device)
    rt_layer_acts *acts;        // [L]
    void *resid_out;            // [N, C]  output of the last block
    void *xf;                   // [N, C]  output_norm(resid_out)
    float *rstdf;               // [N]
    void *logits;               // [N, V]  (holds dlogits after a training forward)
    float *losses;              // [N]  per-token cross-entropy
    float *kd_losses;           // [N]  per-token divergence from a teacher (training models)
    float *scalars;             // [4] device scratch: grad norm^2, clip scale, loss sum
    // backward scratch
    void *dresid, *dx, *dC, *datt, *dh;
    void *dqkv; // [N, (H + 2 KVH) D] dq | dk | dv per row
    void *dgu;  // [N, 2F] dgate | dup per row
    // KV cache of inference models (NULL when training): per layer [B_max, T_max_batch, KVH, D] act dtype,
    // keys after RoPE and values of positions 0 .. kv_len - 1 of a batch of kv_B sequences
    void **cache_k, **cache_v; // [L]
    int kv_len, kv_B;
} rt_model;

// Dims from the config (validated by rt_config_validate).
rt_model_dims rt_model_dims_from_config(const rt_config *cfg);

// Allocate parameters and activation buffers for batches up to B x T. training = 1 also allocates
// gradients and AdamW moments. Weights are zero until init_weights or load_weights.
int rt_model_create(rt_model *m, const rt_model_dims *dims, rt_ctx *ctx, int B, int T, int training,
                    rt_error *err);
// The same with LoRA adapters and a frozen (optionally NF4) base as lora says; lora == NULL or rank 0 with
// nothing frozen is rt_model_create. Load the base with rt_model_import_tensors, then either
// rt_model_init_adapters or rt_model_import_adapters.
int rt_model_create_adapted(rt_model *m, const rt_model_dims *dims, const rt_lora_spec *lora, rt_ctx *ctx,
                            int B, int T, int training, rt_error *err);
// A training model split over data-parallel ranks (dp): the arenas are laid out for dp->world shards and,
// with dp->zero, hold the AdamW moments of this rank's shard only. rt_model_create_adapted with training
// = 1 is this with one rank and one micro-batch per step.
int rt_model_create_parallel(rt_model *m, const rt_model_dims *dims, const rt_lora_spec *lora, rt_ctx *ctx,
                             int B, int T, const rt_data_parallel *dp, rt_error *err);
void rt_model_free(rt_model *m);

// Seeded init on the host, uploaded: matrices N(0, std) (output projections scaled by 1/sqrt(2L)),
// norms 1.
int rt_model_init_weights(rt_model *m, uint64_t seed, float std, rt_error *err);

// Adapters as PEFT starts them: A uniform in +-1/sqrt(in) (Kaiming-uniform with a = sqrt(5)), B zero, so
// the adapted model computes exactly the base model until the first update.
int rt_model_init_adapters(rt_model *m, uint64_t seed, rt_error *err);

// Parameter count and the matmul FLOPs of one training token (6N + 12 L H D T; docs/training.md, FLOPs per
// token).
size_t rt_model_param_count(const rt_model *m);
double rt_model_train_flops_per_token(const rt_model *m, int T);

// Forward over tokens [B, T] (host ids). With targets (host, < 0 = ignored) it computes per-token losses
// and, when the model is training, leaves grad_scale * dloss/dlogits in place of the logits for backward.
// Without targets it leaves logits [B*T, V] in m->logits.
int rt_model_forward(rt_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                     float grad_scale, rt_error *err);
// The embedding, blocks, final norm and head over m->tokens (already uploaded) for B x T positions starting
// at pos0, leaving logits in m->logits; cached = 1 uses and fills the KV cache. Shared by rt_model_forward
// and rt_model_forward_cached so the two run the same ops.
void rt_model_run_blocks(rt_model *m, int B, int T, int pos0, int cached);

// Distillation: after a forward without targets, the fused loss (1 - alpha) CE + alpha T^2 D over
// m->logits against a teacher, dense (teacher_logits [B*T, V], device, act dtype) or sparse (topk_ids /
// topk_logprobs [B*T, k] on the device). targets are host ids (< 0 = ignored). Leaves per-token CE in
// m->losses, D in m->kd_losses, and grad_scale * dloss/dlogits in place of the logits for backward.
int rt_model_distill_loss(rt_model *m, const int32_t *targets, const void *teacher_logits,
                          const int32_t *topk_ids, const float *topk_logprobs, int k, const rt_kd_params *p,
                          int B, int T, float grad_scale, rt_error *err);
// Sum of the per-token divergences of the last distillation loss (synchronises).
float rt_model_kd_sum(rt_model *m, int B, int T);

// Generation with the KV cache (inference models only): runs tokens [B, T_new] (host ids), the positions
// pos0 .. pos0 + T_new - 1 of each sequence, through the model against the pos0 positions already cached,
// appends their keys and values, and leaves logits [B*T_new, V] in m->logits (row b*T_new + t is position
// pos0 + t of sequence b). pos0 = 0 is a prefill that starts a new batch; pos0 > 0 continues the batch of the
// last call (same B, pos0 <= the positions cached). pos0 + T_new <= T_max_batch. The math per position is
// rt_model_forward's, so the logits equal those of a forward over the whole sequence to fp32 rounding.
int rt_model_forward_cached(rt_model *m, const int32_t *tokens, int B, int T_new, int pos0, rt_error *err);

// The parameter gradients of the last forward (which must have had targets): each backward computes its
// micro-batch's gradient (p->grad) and adds it to the step's fp32 sum (arena.acc) in order, so a step of k
// micro-batches sums ((g0 + g1) + g2) + ... exactly as k ranks of one micro-batch each do.
void rt_model_backward(rt_model *m, int B, int T);
// Starts a step: the next backward is its first micro-batch.
void rt_model_zero_grad(rt_model *m);
// Calls grad_ready for every bucket range, in the order a backward pass would: a rank whose step failed
// before its last backward still makes the same calls as the others.
void rt_model_reduce_buckets(rt_model *m);

// Sum of the per-token losses of the last forward with targets (synchronises).
float rt_model_loss_sum(rt_model *m, int B, int T);
// Copy logits row `row` of the last forward to host (V floats; synchronises).
void rt_model_logits_row(rt_model *m, int row, float *out);

// Host copies of weights (and optimizer moments) for checkpoints; the arrays and their data are owned by
// the caller and released with rt_model_free_host_tensors. A model with a frozen base exports its adapters
// only (an adapter checkpoint); otherwise every weight.
int rt_model_export_tensors(rt_model *m, rt_named_tensor **weights, rt_named_tensor **adam_m,
                            rt_named_tensor **adam_v, int *n, rt_error *err);
// The same with the AdamW moments (and, when arena.master_sharded, the fp32 masters) taken from host copies
// of the whole arena ([arena.n] each), for a model whose device holds only its shard of them (ZeRO-1: the
// ranks' shards gathered on the writer). NULL: from the device.
int rt_model_export_tensors_gathered(rt_model *m, const float *host_master, const float *host_m,
                                     const float *host_v, rt_named_tensor **weights, rt_named_tensor **adam_m,
                                     rt_named_tensor **adam_v, int *n, rt_error *err);
void rt_model_free_host_tensors(rt_named_tensor *ts, int n);
// Load weights (and moments when given) from host tensors, checking every name and shape: every weight
// but the adapters (a full checkpoint, or the base of an adapted model, quantized to NF4 where the spec
// says). rt_model_import_adapters loads the adapters (and their moments) of an adapter checkpoint.
int rt_model_import_adapters(rt_model *m, const rt_named_tensor *adapters, int n_adapters,
                             const rt_named_tensor *adam_m, const rt_named_tensor *adam_v, int n_optim,
                             const char *source, rt_error *err);
int rt_model_import_tensors(rt_model *m, const rt_named_tensor *weights, int n_weights,
                            const rt_named_tensor *adam_m, const rt_named_tensor *adam_v, int n_optim,
                            const char *source, rt_error *err);

#endif
