// The one table of config keys: type, default, range, help. Parsing, validation, overrides, --help and the
// printed config all read it, so a key added here is everywhere at once.
#include <float.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define FIELD(f) offsetof(rt_config, f), sizeof(((rt_config *)0)->f)
#define INT(path, f, dflt, lo, hi, help)                                                                     \
    { path, RT_CFG_INT, FIELD(f), dflt, lo, hi, NULL, help }
#define FLT(path, f, dflt, lo, hi, help)                                                                     \
    { path, RT_CFG_FLOAT, FIELD(f), dflt, lo, hi, NULL, help }
#define BOOL(path, f, dflt, help)                                                                            \
    { path, RT_CFG_BOOL, FIELD(f), dflt, 0, 1, NULL, help }
#define STR(path, f, dflt, help)                                                                             \
    { path, RT_CFG_STRING, FIELD(f), dflt, 0, 0, NULL, help }
#define ENUM(path, f, dflt, choices, help)                                                                   \
    { path, RT_CFG_ENUM, FIELD(f), dflt, 0, 0, choices, help }

// 2^53: the largest integer a double (the range type) holds exactly
#define BIG 9007199254740992.0

const rt_cfg_key rt_config_schema[] = {
    STR("run.out_dir", run.out_dir, "runs/tiny", "run directory: config.yaml, metrics.jsonl, checkpoints"),
    INT("run.seed", run.seed, "1337", 0, BIG, "seeds the weight init, the data order and sampling"),
    INT("run.log_every", run.log_every, "10", 1, 1e9, "steps between status lines and metric records"),

    INT("model.vocab_size", model.vocab_size, "259", 259, 1 << 20,
        "vocabulary; >= 259 for the byte tokenizer"),
    INT("model.dim", model.dim, "128", 8, 65536, "model width C"),
    INT("model.n_layers", model.n_layers, "4", 1, 1024, "transformer blocks"),
    INT("model.n_heads", model.n_heads, "4", 1, 1024, "query heads"),
    INT("model.n_kv_heads", model.n_kv_heads, "2", 1, 1024, "key/value heads (grouped-query attention)"),
    INT("model.ffn_dim", model.ffn_dim, "384", 1, 1 << 20, "SwiGLU hidden width"),
    INT("model.max_seq_len", model.max_seq_len, "128", 2, 1 << 20, "longest sequence the model handles"),
    FLT("model.rope_theta", model.rope_theta, "10000", 1, 1e12, "RoPE base"),
    INT("model.head_dim", model.head_dim, "0", 0, 65536,
        "per-head width, even; 0 = dim / n_heads (q_proj is [n_heads * head_dim, dim])"),
    BOOL("model.attn_bias", model.attn_bias, "false", "q/k/v projections have biases (Qwen2)"),
    ENUM(
        "model.rope_scaling", model.rope_scaling, "none", "none|linear|llama3",
        "RoPE frequency scaling for longer contexts (linear: all divided by rope_factor; llama3: Llama 3.1)"),
    FLT("model.rope_factor", model.rope_factor, "1", 1, 1e6, "linear and llama3: context extension factor"),
    FLT("model.rope_low_freq_factor", model.rope_low_freq_factor, "1", 1e-6, 1e6,
        "llama3: wavelengths above rope_original_max_seq_len / this are divided by rope_factor"),
    FLT("model.rope_high_freq_factor", model.rope_high_freq_factor, "4", 1e-6, 1e6,
        "llama3: wavelengths below rope_original_max_seq_len / this are kept"),
    INT("model.rope_original_max_seq_len", model.rope_original_max_seq_len, "8192", 1, 1 << 30,
        "llama3: the context the model was pretrained on"),
    FLT("model.norm_eps", model.norm_eps, "1e-5", 1e-12, 1, "RMSNorm epsilon"),
    BOOL("model.tie_embeddings", model.tie_embeddings, "true", "output head shares token_embd.weight"),
    FLT("model.init_std", model.init_std, "0.02", 1e-6, 10, "std of the normal weight init"),
    STR("model.tokenizer", model.tokenizer, "",
        "tokenizer of a model trained from scratch: empty = bytes; a tokenizer.json, a Hugging Face folder, "
        "a "
        "GGUF file or a checkpoint (its tokenizer); checkpoints store it"),

    STR("data.train", data.train, "data/addpad_train.h5", "training dataset (HDF5 from retort data)"),
    STR("data.val", data.val, "data/addpad_val.h5", "validation dataset; empty for none"),
    INT("data.seq_len", data.seq_len, "14", 2, 1 << 20, "tokens per training sequence, <= model.max_seq_len"),
    ENUM("data.loss_on", data.loss_on, "all", "all|answer",
         "which targets the loss counts: every token, or only the answers of a prompt/answer dataset"),

    INT("train.steps", train.steps, "1500", 1, BIG, "optimizer steps"),
    INT("train.batch_size", train.batch_size, "128", 1, 1 << 20, "sequences per micro-batch"),
    INT("train.grad_accum", train.grad_accum, "1", 1, 1 << 20, "micro-batches per optimizer step"),
    FLT("train.lr", train.lr, "4e-3", 1e-12, 10, "peak learning rate"),
    FLT("train.min_lr", train.min_lr, "3e-4", 0, 10, "learning rate at the end of the cosine decay"),
    INT("train.warmup_steps", train.warmup_steps, "50", 0, BIG, "linear warmup steps"),
    FLT("train.weight_decay", train.weight_decay, "0.1", 0, 10, "decoupled weight decay on matrices"),
    FLT("train.beta1", train.beta1, "0.9", 0, 0.999999, "AdamW beta1"),
    FLT("train.beta2", train.beta2, "0.95", 0, 0.999999999, "AdamW beta2"),
    FLT("train.eps", train.eps, "1e-8", 1e-30, 1, "AdamW epsilon"),
    FLT("train.grad_clip", train.grad_clip, "1.0", 0, 1e9, "clip the global gradient norm to this; 0 = off"),
    INT("train.eval_every", train.eval_every, "250", 0, BIG, "steps between validation passes; 0 = off"),
    INT("train.eval_batches", train.eval_batches, "8", 1, 1 << 20, "batches per validation pass"),
    INT("train.skip_nonfinite", train.skip_nonfinite, "0", 0, BIG,
        "a step whose loss or gradient norm is NaN or infinite changes nothing; 0 = stop there with an "
        "error, N = skip it (counted in metrics.jsonl and the status line) and stop at the N+1st in a row"),
    INT("train.zero", train.zero, "0", 0, 1,
        "ZeRO stage over data-parallel ranks: 0 = every rank keeps the whole optimizer state, 1 = each rank "
        "keeps and updates its 1/world shard of the AdamW moments (and bf16 master weights)"),

    INT("checkpoint.every", checkpoint.every, "500", 0, BIG,
        "steps between checkpoints; 0 = only at the end"),
    INT("checkpoint.keep", checkpoint.keep, "3", 1, 1000, "most recent checkpoints kept"),

    ENUM("system.device", system.device, "cpu", "cpu|cuda|auto", "where to train"),
    ENUM("system.precision", system.precision, "fp32", "fp32|bf16",
         "compute precision (bf16: GPU, or a CPU with AVX-512)"),
    INT("system.threads", system.threads, "0", 0, 4096,
        "CPU threads; 0 = the CPUs this process may run on (affinity mask), shared by the ranks on the node, "
        "capped by SLURM_CPUS_PER_TASK and OMP_NUM_THREADS"),
    ENUM("system.dist", system.dist, "auto", "auto|single|mpi|nccl",
         "communicator between ranks: auto = nccl on cuda with more than one rank, mpi under mpirun or "
         "srun, single otherwise"),
    FLT("system.peak_tflops", system.peak_tflops, "0", 0, 1e6,
        "peak TFLOP/s that MFU is reported against; 0 = a known GPU's spec peak, else a measured GEMM"),

    STR("synth.teacher", synth.teacher, "runs/teacher/ckpt-latest.h5", "teacher checkpoint that answers"),
    STR("synth.prompts", synth.prompts, "",
        "JSONL file, one {\"prompt\": ...} per line; empty: the prompts of the synthetic task below"),
    STR("synth.task", synth.task, "addpad",
        "synthetic task whose prompts the teacher answers (retort data tasks)"),
    INT("synth.n_prompts", synth.n_prompts, "2000", 1, 1e9, "prompts drawn from synth.task"),
    ENUM("synth.split", synth.split, "train", "train|val", "which problems of synth.task"),
    INT("synth.samples", synth.samples, "1", 1, 1024, "answers sampled per prompt"),
    FLT("synth.temperature", synth.temperature, "0", 0, 100, "sampling temperature; 0 = greedy"),
    FLT("synth.top_p", synth.top_p, "1", 1e-6, 1,
        "nucleus sampling: smallest set of ids with this mass; 1 = off"),
    INT("synth.top_k", synth.top_k, "0", 0, 1 << 20, "sample among the k likeliest ids; 0 = off"),
    INT("synth.max_tokens", synth.max_tokens, "32", 1, 1 << 20, "longest answer, in tokens"),
    STR("synth.stop", synth.stop, "",
        "stop strings, separated by | (\\| for a literal |); the answer ends before one"),
    INT("synth.topk", synth.topk, "0", 0, 1024,
        "keep the teacher's top-k log-probs at every answer position (offline_topk distillation); 0 = none"),
    FLT("synth.topk_temperature", synth.topk_temperature, "1", 1e-3, 100,
        "temperature of the kept log-probs"),
    STR("synth.out", synth.out, "data/synth.h5",
        "dataset written (chunks in <out>.part/ until it is complete)"),
    INT("synth.batch_size", synth.batch_size, "32", 1, 1 << 16, "sequences generated together"),
    INT("synth.chunk", synth.chunk, "256", 1, 1 << 24, "prompts per resumable chunk"),

    ENUM("distill.mode", distill.mode, "sequence", "sequence|offline_topk|online",
         "sequence: CE on the teacher's text; offline_topk: the stored top-k; online: the teacher runs"),
    STR("distill.teacher", distill.teacher, "",
        "teacher checkpoint (online; offline_topk checks it against the data)"),
    ENUM("distill.divergence", distill.divergence, "forward_kl", "forward_kl|reverse_kl|jsd",
         "D(teacher || student) of the distillation term"),
    FLT("distill.temperature", distill.temperature, "1", 1e-3, 100,
        "temperature T of both distributions in D"),
    FLT("distill.alpha", distill.alpha, "0.5", 0, 1, "loss = (1 - alpha) CE + alpha T^2 D"),
    FLT("distill.beta", distill.beta, "0.5", 1e-6, 0.999999,
        "JSD mixture M = beta p_teacher + (1 - beta) p_student"),
    ENUM("distill.topk_tail", distill.topk_tail, "bucket", "bucket|renorm",
         "offline_topk: the teacher mass outside its top k is one bucket, or dropped and both renormalised"),

    STR("finetune.base", finetune.base, "",
        "retort finetune: the base checkpoint the run starts from (also `base=` on the command line)"),
    ENUM("finetune.method", finetune.method, "lora", "full|lora|qlora",
         "full: every weight trains; lora: adapters on a frozen base; qlora: adapters on an NF4 base"),
    STR("finetune.adapter", finetune.adapter, "",
        "lora/qlora: start from the adapters of this adapter checkpoint of the same base (e.g. one `retort "
        "import peft` wrote) instead of fresh ones; its lora rank, alpha, rslora and targets become the "
        "run's, "
        "and the optimizer starts fresh"),

    INT("lora.rank", lora.rank, "8", 1, 4096, "adapter rank r"),
    FLT("lora.alpha", lora.alpha, "16", 1e-6, 1e6, "the adapter's output is scaled by alpha / r"),
    FLT("lora.dropout", lora.dropout, "0", 0, 0.9, "dropout on the adapter's input path (training only)"),
    STR("lora.targets", lora.targets, "q,k,v,o,gate,up,down",
        "projections that get adapters: any of q,k,v,o,gate,up,down,head, or all"),
    BOOL("lora.rslora", lora.rslora, "false", "rank-stabilised LoRA: scale by alpha / sqrt(r)"),

    ENUM("qlora.layers", qlora.layers, "targets", "targets|all",
         "block projections stored in NF4: the adapted ones, or all seven of every block"),
    BOOL("qlora.double_quant", qlora.double_quant, "true",
         "quantize the NF4 block scales to 8 bits in blocks of 256 (4.127 bits per weight)"),
};

const int rt_config_schema_len = (int)(sizeof rt_config_schema / sizeof rt_config_schema[0]);
