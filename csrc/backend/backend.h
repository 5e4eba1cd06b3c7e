// The backend operation table: every computation the model and the optimizer need, behind one struct of
// function pointers. Two implementations: csrc/cpu/ (C11 + OpenMP + oneDNN, the reference) and cuda/.
//
// Rules that let one model file run on either backend:
// - Tensor memory is device memory. Model code passes pointers around but never dereferences them; the only
//   way data crosses to or from the host is upload/download.
// - Every op is enqueued on an execution context (rt_ctx), which is the stream: ops on one context run in
//   order; sync() waits for all of them. The CPU backend runs each op immediately.
// - "act" buffers (activations, gradients, compute copies of weights) use the context's activation dtype
//   (fp32 on the CPU; bf16 or fp32 on the GPU). Buffers typed float * are always fp32: master weights, Adam
//   moments, norm statistics, attention log-sum-exps, per-token losses, scalars.
// - Matrices are row-major. Linear weights are stored [out, in] (GGUF / PyTorch layout).
// - Ops that read the model's fused projections (q | k | v, gate | up: docs/training.md, Fused projections)
//   take row strides (ld, in elements), so they work on column slices of the fused rows without copies.
// - A backward op *accumulates* (+=) into weight gradients and into the input gradient where the docs of
//   that op say so; the model zeroes gradient buffers with zero() at the start of each accumulation window.
#ifndef RT_BACKEND_H
#define RT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

typedef enum rt_dtype { RT_F32 = 0, RT_BF16 = 1 } rt_dtype;

static inline size_t rt_dtype_size(rt_dtype t) {
    return t == RT_BF16 ? 2 : 4;
}
const char *rt_dtype_name(rt_dtype t);

typedef struct rt_backend rt_backend;

// Execution context: one per device and stream.
typedef struct rt_ctx {
    const rt_backend *be;
    rt_dtype act;  // dtype of act buffers
    int n_threads; // CPU threads used by ops (0 = all available)
    void *impl;    // backend-private state (CUDA stream and handles, CPU scratch)
} rt_ctx;

// Knowledge distillation (distill_loss below; the formulas, for users, in docs/distillation.md).
typedef enum rt_kd_divergence { RT_KD_FORWARD_KL = 0, RT_KD_REVERSE_KL = 1, RT_KD_JSD = 2 } rt_kd_divergence;
// Sparse (top-k) teachers: what happens to the teacher mass outside the stored k ids.
typedef enum rt_kd_tail { RT_KD_TAIL_BUCKET = 0, RT_KD_TAIL_RENORM = 1 } rt_kd_tail;
typedef struct rt_kd_params {
    rt_kd_divergence divergence;
    float temperature;      // T > 0, the distillation temperature
    float alpha;            // weight of the distillation term in [0, 1]
    float beta;             // JSD mixture weight in (0, 1)
    rt_kd_tail tail;        // sparse teachers: the mass outside the top k
    float topk_temperature; // sparse teachers: temperature the stored log-probs were captured at
} rt_kd_params;

struct rt_backend {
    const char *name; // "cpu", "cuda"

    // ---- lifetime and memory ----
    // Create a context. n_threads: CPU worker threads (0 = all). Fills err on failure.
    int (*ctx_init)(rt_ctx *ctx, rt_dtype act, int n_threads, rt_error *err);
    void (*ctx_free)(rt_ctx *ctx);
    // The device's name as its driver reports it ("NVIDIA H100 80GB HBM3"), which picks MFU's spec peak
    // (train/peak.h). NULL on a backend without one (the CPU, whose peak is measured).
    const char *(*device_name)(rt_ctx *ctx);
    // The context's cudaStream_t, for libraries that enqueue on it (NCCL's collectives). NULL on a backend
    // without streams (the CPU leaves it unset).
    void *(*stream)(rt_ctx *ctx);
    // Device allocation, zero-filled. NULL with err filled on failure.
    void *(*alloc)(rt_ctx *ctx, size_t bytes, const char *what, rt_error *err);
    void (*free)(rt_ctx *ctx, void *p);
    // Host fp32 <-> device buffer of dtype t (converting where t is not fp32). n elements.
    void (*upload)(rt_ctx *ctx, void *dst, rt_dtype t, const float *src, size_t n);
    void (*download)(rt_ctx *ctx, float *dst, const void *src, rt_dtype t, size_t n);
    // Host int32 -> device int32 (token ids, targets).
    void (*upload_i32)(rt_ctx *ctx, int32_t *dst, const int32_t *src, size_t n);
    // Wait until every op enqueued on ctx has finished.
    void (*sync)(rt_ctx *ctx);
    // 0 when every op enqueued so far has run; otherwise fills err with the first failure (which op, and
    // why) and returns -1. Ops return nothing, so callers check after a step or a batch of work; an op on a
    // failed context does nothing. Does not wait for enqueued ops (sync first for a complete answer).
    int (*check)(rt_ctx *ctx, rt_error *err);
    // Set bytes of device memory to zero.
    void (*zero)(rt_ctx *ctx, void *p, size_t bytes);
    // dst[i] = src[i] converting dtypes (fp32 master -> act copy, or act -> act).
    void (*convert)(rt_ctx *ctx, void *dst, rt_dtype dst_t, const void *src, rt_dtype src_t, size_t n);

    // ---- linear algebra (act buffers) ----
    // out[M,N] = alpha * op(a) @ op(b) + beta * out, op(a) is [M,K], op(b) is [K,N].
    // trans_a: a is stored [K,M]; trans_b: b is stored [N,K]. beta is 0 or 1.
    void (*matmul)(rt_ctx *ctx, void *out, const void *a, const void *b, int M, int N, int K, int trans_a,
                   int trans_b, float alpha, float beta);

    // ---- elementwise (act buffers, n elements) ----
    void (*add)(rt_ctx *ctx, void *out, const void *a, const void *b, size_t n); // out = a + b
    void (*add_inplace)(rt_ctx *ctx, void *acc, const void *x, size_t n);        // acc += x

    // ---- bias of a linear layer ----
    // out[N,n] += bias[n] on every row.
    void (*add_bias_rows)(rt_ctx *ctx, void *out, const void *bias, int N, int n);
    // dbias[n] += sum over the rows of dout[N,n] (the bias gradient of add_bias_rows).
    void (*bias_backward)(rt_ctx *ctx, void *dbias, const void *dout, int N, int n);

    // ---- embedding ----
    // out[N,C] = table[tokens[i], :]
    void (*embedding_forward)(rt_ctx *ctx, void *out, const int32_t *tokens, const void *table, int N, int C);
    // dtable[tokens[i], :] += dout[i, :]
    void (*embedding_backward)(rt_ctx *ctx, void *dtable, const void *dout, const int32_t *tokens, int N,
                               int C);

    // ---- RMSNorm ----
    // out[N,C] = x / rms(x) * weight[C]; rstd[N] (fp32) = 1 / sqrt(mean(x^2) + eps), kept for backward.
    void (*rmsnorm_forward)(rt_ctx *ctx, void *out, float *rstd, const void *x, const void *weight, int N,
                            int C, float eps);
    // dx[N,C] += d/dx, dweight[C] += d/dweight.
    void (*rmsnorm_backward)(rt_ctx *ctx, void *dx, void *dweight, const void *dout, const void *x,
                             const void *weight, const float *rstd, int N, int C);

    // ---- RoPE, rotate-half (Hugging Face) convention ----
    // x is [B, T, H, D] with rows (b, t) ld elements apart (ld >= H * D; ld = H * D when contiguous, more
    // for the q and k heads of a fused [N, (H + 2 KVH) D] projection), D even; position of row t is t.
    // cos/sin are fp32 [T_max, D/2] tables. Pairs (i, i + D/2) rotate by angle t * theta^(-2i/D). out has
    // the layout of x; in place is allowed (out == x).
    void (*rope_forward)(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                         int B, int T, int H, int D, int ld);
    // dx = R^T dout (rotation by the negative angle), the same layout. In place is allowed.
    void (*rope_backward)(rt_ctx *ctx, void *dx, const void *dout, const float *cos_tab, const float *sin_tab,
                          int B, int T, int H, int D, int ld);

    // ---- causal grouped-query attention ----
    // q [B,T,H,D], k,v [B,T,KVH,D] with H % KVH == 0 (head h reads kv head h / (H/KVH)); rows (b, t) of q
    // are ldq elements apart (ldq >= H * D), of k and v ldkv apart (ldkv >= KVH * D). In the model all three
    // are slices of one fused [B*T, (H + 2 KVH) D] projection and ldq = ldkv = (H + 2 KVH) D.
    // out [B,T,H,D] (contiguous) = softmax(q k^T / sqrt(D), causal) v; lse [B,H,T] (fp32) = log-sum-exp of
    // each scaled score row, kept so backward can rebuild the probabilities without storing a T x T matrix.
    void (*attention_forward)(rt_ctx *ctx, void *out, float *lse, const void *q, const void *k, const void *v,
                              int B, int T, int H, int KVH, int D, int ldq, int ldkv);
    // dq (rows ldq apart, like q), dk, dv (ldkv apart) are overwritten (not accumulated); dout, out
    // contiguous.
    void (*attention_backward)(rt_ctx *ctx, void *dq, void *dk, void *dv, const void *dout, const void *q,
                               const void *k, const void *v, const void *out, const float *lse, int B, int T,
                               int H, int KVH, int D, int ldq, int ldkv);

    // ---- SwiGLU ----
    // out [N, F] (contiguous) = silu(gate) * up, gate and up [N, F] with rows ld elements apart (ld >= F;
    // in the model the two halves of one fused [N, 2F] projection, ld = 2F).
    void (*swiglu_forward)(rt_ctx *ctx, void *out, const void *gate, const void *up, int N, int F, int ld);
    // dgate, dup (rows ld apart, like gate and up) overwritten; dout [N, F] contiguous.
    void (*swiglu_backward)(rt_ctx *ctx, void *dgate, void *dup, const void *dout, const void *gate,
                            const void *up, int N, int F, int ld);

    // ---- fused softmax cross-entropy ----
    // logits [N,V]; targets [N] (int32, < 0 = ignored). losses[N] (fp32) = -log softmax(logits)[target]
    // (0 where ignored). If dlogits is not NULL it receives grad_scale * (softmax - onehot) (zero rows where
    // ignored); dlogits may equal logits (in place).
    void (*cross_entropy)(rt_ctx *ctx, float *losses, void *dlogits, const void *logits,
                          const int32_t *targets, int N, int V, float grad_scale);

    // ---- reductions and optimizer (fp32 scalars live in device memory) ----
    // *acc += sum(x[i]^2) for an act buffer x of n elements.
    void (*sum_squares)(rt_ctx *ctx, float *acc, const void *x, size_t n);
    // *out = sum(x[i]) over fp32 x[n].
    void (*sum_f32)(rt_ctx *ctx, float *out, const float *x, size_t n);
    // *scale = max_norm > 0 && sqrt(*norm_sq) > max_norm ? max_norm / sqrt(*norm_sq) : 1.
    void (*clip_scale)(rt_ctx *ctx, float *scale, const float *norm_sq, float max_norm);
    // partials[s] = sum(x[i]^2) over segment s = x[s * seg .. min(n, (s + 1) * seg)) of fp32 x, for every
    // segment. Each segment's sum has a fixed order (not the thread or block count's), so the gradient norm
    // built from these partials is the same bits on any machine size and any number of ranks.
    void (*sum_squares_segments)(rt_ctx *ctx, float *partials, const float *x, size_t n, size_t seg);
    // acc = x (first) or acc += x, fp32 acc [n] and act x [n]: micro-batch gradients summed in fp32.
    void (*accumulate_f32)(rt_ctx *ctx, float *acc, const void *x, size_t n, int first);
    // AdamW on fp32 master weights with decoupled weight decay, for one tensor of n elements:
    //   g = grad * (*grad_scale); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    //   w -= lr * (m / bc1 / (sqrt(v / bc2) + eps) + wd * w), bc1 = 1 - b1^step, bc2 = 1 - b2^step.
    // param (act dtype) receives the updated weight; it may equal master when act is fp32. grad is fp32 (the
    // step's gradient summed over micro-batches and ranks).
    void (*adamw)(rt_ctx *ctx, float *master, void *param, const float *grad, float *m, float *v, size_t n,
                  float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  const float *grad_scale);

    // ---- knowledge distillation: CE and a divergence from a teacher, fused with the gradient ----
    // Per row i of student logits z [N,V] (act) with target y = targets[i]:
    //   ce[i] = -log softmax(z)[y] (temperature 1); kd[i] = D(teacher || student) at temperature T =
    //   p->temperature over the categories below: the bare divergence, without alpha or T^2. Both fp32 [N].
    //   dlogits (act [N,V], may be NULL, may equal logits) is OVERWRITTEN with
    //   grad_scale * ((1 - alpha) dce/dz + alpha T^2 dkd/dz).
    // y < 0: row ignored (ce = kd = 0, zero gradient row). y >= V, or a top-k id outside [0, V) in a row
    // that has a teacher: ce = kd = NaN and a zero gradient row (cannot happen after dataset validation).
    // Exactly one teacher is given:
    // - dense: teacher_logits [N,V] (act); teacher r = softmax(v/T), student q = softmax(z/T) over all V.
    // - sparse: topk_ids [N,k] (int32, distinct) and topk_logprobs [N,k] (fp32 log-probabilities captured
    //   at p->topk_temperature), 1 <= k <= 1024; topk_ids[i*k] < 0 = no teacher for row i (kd = 0, CE
    //   gradient only). p->tail: RT_KD_TAIL_BUCKET compares the k ids plus one bucket holding the rest of
    //   the mass (stored log-probs used as they are: needs T == topk_temperature); RT_KD_TAIL_RENORM
    //   compares the k ids only, the teacher re-tempered to T and both renormalised over the k ids.
    // Divergences: forward KL(r||q), reverse KL(q||r), generalised JSD(beta) with M = beta r + (1-beta) q.
    void (*distill_loss)(rt_ctx *ctx, float *ce, float *kd, void *dlogits, const void *logits,
                         const void *teacher_logits, const int32_t *topk_ids, const float *topk_logprobs,
                         int k, const int32_t *targets, int N, int V, const rt_kd_params *p,
                         float grad_scale);

    // ---- inference with a KV cache (generation: a prefill, then one new position per step) ----
    // rope_forward for rows at positions pos0 .. pos0 + T - 1: row t of x [B, T, H, D] (rows ld apart, as
    // rope_forward) rotates by the angle of position pos0 + t (pos0 + T <= the tables' rows). In place is
    // allowed (out == x).
    void (*rope_forward_at)(rt_ctx *ctx, void *out, const void *x, const float *cos_tab, const float *sin_tab,
                            int B, int T, int H, int D, int pos0, int ld);
    // Causal grouped-query attention of new queries against a cache: q [B, Tq, H, D] (rows ld apart, ld >=
    // H * D) holds positions T_ctx - Tq .. T_ctx - 1; k_cache, v_cache are [B, cache_stride_T, KVH, D] of
    // which positions 0 .. T_ctx - 1 are valid (Tq <= T_ctx <= cache_stride_T). The query at position p sees
    // keys 0 .. p: out [B, Tq, H, D] (contiguous) = softmax(q k^T / sqrt(D), causal) v, the rows
    // attention_forward gives for those positions of the whole sequence. fp32 softmax, no T x T buffer; no
    // lse (nothing runs backward).
    void (*attention_forward_cached)(rt_ctx *ctx, void *out, const void *q, const void *k_cache,
                                     const void *v_cache, int B, int Tq, int T_ctx, int H, int KVH, int D,
                                     int cache_stride_T, int ld);
    // cache [B, cache_stride_T, KVH, D] rows pos0 .. pos0 + T - 1 of each batch = x [B, T, KVH, D] with rows
    // ld elements apart (ld >= KVH * D) (act buffers; pos0 + T <= cache_stride_T). Other rows are left as
    // they are.
    void (*kv_append)(rt_ctx *ctx, void *cache, const void *x, int B, int T, int KVH, int D, int pos0,
                      int cache_stride_T, int ld);

    // ---- fine-tuning: LoRA dropout and the NF4 base of QLoRA ----
    // Host bytes -> device bytes (NF4 codes and scales).
    void (*upload_bytes)(rt_ctx *ctx, void *dst, const void *src, size_t bytes);
    // out[n] (act) = the weights of an NF4 tensor in the layout of nf4.h (device pointers): exactly one of
    // absmax (fp32 [n_blocks]) or absmax_q (int8 [n_blocks]) with absmax_scale (fp32 [n_scales]) and
    // absmax_offset. Dequantized in fp32, rounded once to the act dtype.
    void (*nf4_dequantize)(rt_ctx *ctx, void *out, const uint8_t *codes, const float *absmax,
                           const int8_t *absmax_q, const float *absmax_scale, float absmax_offset, size_t n);
    // out[i] = x[i] / (1 - p) where rt_dropout_bits(seed, i) >= rt_dropout_threshold(p), else 0 (act
    // buffers, n elements, 0 <= p < 1; in place allowed). Applied to a gradient with the same seed it is the
    // dropout's backward.
    void (*dropout)(rt_ctx *ctx, void *out, const void *x, size_t n, float p, uint64_t seed);
    // dst[r, c] = src[r, c] (accumulate 0) or dst[r, c] += src[r, c] (accumulate 1) for r < rows, c < cols,
    // rows of dst ld_dst elements apart and of src ld_src apart (act buffers, not overlapping): a LoRA
    // adapter's slice of a fused projection's output or gradient.
    void (*copy_rows)(rt_ctx *ctx, void *dst, int ld_dst, const void *src, int ld_src, int rows, int cols,
                      int accumulate);
};

// The CPU backend (always present).
extern const rt_backend rt_backend_cpu;
// The CPU backend's GEMM library, its version and the kernels it picked for this CPU, e.g. "oneDNN 2.6.3,
// AVX-512 BF16 kernels" (for --version and the training log).
const char *rt_cpu_gemm_library(void);
// The CPU threads when system.threads is 0 (threads.c): the CPUs of this process's affinity mask, shared
// among local_ranks ranks on the node, capped by SLURM_CPUS_PER_TASK and OMP_NUM_THREADS. why (NULL or
// why_size bytes) says which of them set the count, for the training log.
int rt_cpu_default_threads(int local_ranks, char *why, size_t why_size);
// Call first in main: unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY, sets a short spin count for
// OpenMP's idle threads and executes this program again with it (threads.c says why); returns only when the
// variable was already set or the exec failed.
void rt_cpu_wait_policy_exec(char **argv);
// How this CPU runs bf16 GEMMs: natively (AVX512-BF16 or AMX instructions), emulated (AVX-512 without
// them: oneDNN converts in software, typically no faster than fp32), or not at all (below AVX-512, where a
// bf16 CPU context is refused). For the training log of a bf16 run on the CPU.
const char *rt_cpu_bf16_kernels(void);

// The CUDA backend, or NULL when retort was built without CUDA. rt_cuda_available() is 1 when a usable
// GPU exists at run time; otherwise it fills err with why not.
const rt_backend *rt_backend_cuda(void);
int rt_cuda_available(rt_error *err);
// A CUDA context on GPU device_index (0 .. visible GPUs - 1), which also becomes the calling thread's current
// device; the table's ctx_init uses whichever device is current. Fails naming the index and the GPU count.
int rt_cuda_ctx_init(rt_ctx *ctx, rt_dtype act, int n_threads, int device_index, rt_error *err);
// GPUs the CUDA runtime sees (0 without a driver, or in a build without CUDA).
int rt_cuda_device_count(void);
// system.device with "auto" settled: "cuda" when a usable GPU exists, else "cpu"; other names unchanged.
// The communicator is chosen for the device the run will use, so it is resolved first.
const char *rt_device_resolve(const char *device);

// Pick the backend from system.device ("cpu", "cuda", "auto") and system.precision and create a context.
// "cuda" without a usable GPU is an error that says why; "auto" falls back to the CPU. device_index: which
// GPU (a data-parallel rank's local rank; 0 for one process); the CPU ignores it.
int rt_ctx_init_device(rt_ctx *ctx, const char *device, const char *precision, int threads, int device_index,
                       rt_error *err);

#endif
