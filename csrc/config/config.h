// Run configuration: one schema table (config_schema.c) gives every key its type, default, range and
// help text; it drives YAML parsing, validation, command-line overrides, --help and the printed config.
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "base/common.h"

#define RT_PATH_MAX 1024
#define RT_NAME_MAX 64

typedef struct rt_config {
    struct {
        char out_dir[RT_PATH_MAX]; // run directory: config.yaml, metrics.jsonl, checkpoints
        int64_t seed;              // seeds init, data order and sampling
        int log_every;             // steps between status lines / metric records
    } run;
    struct {
        int vocab_size;                 // >= 259 for the byte tokenizer (256 bytes + BOS, EOS, PAD)
        int dim;                        // model width C
        int n_layers;                   // L
        int n_heads;                    // H
        int n_kv_heads;                 // KVH, divides n_heads
        int ffn_dim;                    // SwiGLU hidden width
        int max_seq_len;                // longest sequence the RoPE tables cover
        double rope_theta;              // RoPE base
        int head_dim;                   // per-head width D; 0 = dim / n_heads
        int attn_bias;                  // bool: q/k/v projections have biases (Qwen2)
        char rope_scaling[RT_NAME_MAX]; // "none", "linear" or "llama3" (model/rope_scaling.h)
        double rope_factor;             // linear, llama3: context extension factor
        double rope_low_freq_factor;    // llama3
        double rope_high_freq_factor;   // llama3
        int rope_original_max_seq_len;  // llama3: the pretraining context
        double norm_eps;                // RMSNorm epsilon
        int tie_embeddings;             // bool: output head shares token_embd.weight
        double init_std;                // std of the normal init of matrices
        char
            tokenizer[RT_PATH_MAX]; // "" = the byte tokenizer; else its source (tokenizer/tokenizer_source.h)
    } model;
    struct {
        char train[RT_PATH_MAX];   // training dataset (HDF5, from `retort data`)
        char val[RT_PATH_MAX];     // validation dataset, "" for none
        int seq_len;               // tokens per training sequence T
        char loss_on[RT_NAME_MAX]; // "all" targets, or only the "answer" ones of prompt/answer datasets
    } data;
    struct {
        int64_t steps;        // optimizer steps
        int batch_size;       // sequences per micro-batch B
        int grad_accum;       // micro-batches per optimizer step
        double lr;            // peak learning rate
        double min_lr;        // floor of the cosine schedule
        int64_t warmup_steps; // linear warmup length
        double weight_decay;  // decoupled, matrices only (not norms)
        double beta1;
        double beta2;
        double eps;
        double grad_clip;       // global-norm clip, 0 = off
        int64_t eval_every;     // steps between validation passes, 0 = off
        int eval_batches;       // batches per validation pass
        int64_t skip_nonfinite; // non-finite steps skipped in a row before the run stops; 0 = stop at once
        int zero;               // ZeRO stage: 0, or 1 = optimizer state sharded over ranks
    } train;
    struct {
        int64_t every; // steps between checkpoints, 0 = only at the end
        int keep;      // how many recent checkpoints to keep
    } checkpoint;
    struct {
        char device[RT_NAME_MAX];    // "cpu", "cuda" or "auto"
        char precision[RT_NAME_MAX]; // "fp32" or "bf16" (GPU, or CPU with oneDNN bf16 kernels)
        int threads;                 // CPU threads, 0 = the node's cores / ranks on the node
        char dist[RT_NAME_MAX];      // communicator: "auto", "single", "mpi" or "nccl"
        double peak_tflops;          // MFU's denominator; 0 = a known GPU's spec peak, else measured
    } system;
    struct {                       // retort synth: a teacher answers prompts
        char teacher[RT_PATH_MAX]; // teacher checkpoint
        char prompts[RT_PATH_MAX]; // JSONL of {"prompt": ...}; "" = prompts of synth.task
        char task[RT_NAME_MAX];    // synthetic task whose prompts the teacher answers
        int64_t n_prompts;         // prompts drawn from the task
        char split[RT_NAME_MAX];   // "train" or "val" problems of the task
        int samples;               // answers per prompt
        double temperature;        // 0 = greedy
        double top_p;              // nucleus sampling, 1 = off
        int top_k;                 // 0 = off
        int max_tokens;            // longest answer
        char stop[RT_PATH_MAX];    // stop strings separated by |, \| for a literal |
        int topk;                  // teacher top-k log-probs kept per answer position, 0 = none
        double topk_temperature;   // temperature of those log-probs
        char out[RT_PATH_MAX];     // dataset written
        int batch_size;            // sequences generated together
        int chunk;                 // prompts per resumable chunk
    } synth;
    struct {                          // retort distill: the student learns from a teacher
        char mode[RT_NAME_MAX];       // "sequence", "offline_topk" or "online"
        char teacher[RT_PATH_MAX];    // teacher checkpoint (online; offline checks it against the data)
        char divergence[RT_NAME_MAX]; // "forward_kl", "reverse_kl" or "jsd"
        double temperature;           // distillation temperature T
        double alpha;                 // weight of the distillation term
        double beta;                  // JSD mixture weight
        char topk_tail[RT_NAME_MAX];  // "bucket" or "renorm": the teacher mass outside its top k
    } distill;
    struct {                       // retort finetune: a base checkpoint adapted to new data
        char base[RT_PATH_MAX];    // the checkpoint whose weights the run starts from
        char method[RT_NAME_MAX];  // "full", "lora" or "qlora"
        char adapter[RT_PATH_MAX]; // an adapter checkpoint of the base to start from ("" = fresh adapters)
    } finetune;
    struct {                       // LoRA adapters (finetune.method lora or qlora)
        int rank;                  // r
        double alpha;              // scale alpha / r (alpha / sqrt(r) with rslora)
        double dropout;            // dropout on the adapter's input path
        char targets[RT_PATH_MAX]; // comma-separated projections: q,k,v,o,gate,up,down,head, or all
        int rslora;                // bool: rank-stabilised scaling
    } lora;
    struct {                      // QLoRA: the frozen base in NF4
        char layers[RT_NAME_MAX]; // "targets": the adapted projections; "all": every block projection
        int double_quant;         // bool: the block scales quantized to 8 bits in blocks of 256
    } qlora;
} rt_config;

typedef enum rt_cfg_type { RT_CFG_INT, RT_CFG_FLOAT, RT_CFG_BOOL, RT_CFG_STRING, RT_CFG_ENUM } rt_cfg_type;

// One row of the schema table.
typedef struct rt_cfg_key {
    const char *path;    // "train.lr"
    rt_cfg_type type;    //
    size_t offset;       // offsetof(rt_config, ...)
    size_t size;         // sizeof the field (int vs int64_t; char array size for strings)
    const char *dflt;    // default, as YAML text
    double min, max;     // inclusive range for INT and FLOAT
    const char *choices; // ENUM: "cpu|cuda|auto"
    const char *help;    //
} rt_cfg_key;

extern const rt_cfg_key rt_config_schema[];
extern const int rt_config_schema_len;

// Fill cfg with every default from the schema.
void rt_config_defaults(rt_config *cfg);

// Parse a YAML file on top of cfg. Errors name "file:line: key: what was expected".
int rt_config_load_file(rt_config *cfg, const char *path, rt_error *err);

// Parse YAML text (name is used in messages in place of a file name).
int rt_config_load_string(rt_config *cfg, const char *yaml, size_t len, const char *name, rt_error *err);

// Apply one "a.b=value" override (validated like the file).
int rt_config_apply_override(rt_config *cfg, const char *assignment, rt_error *err);

// The per-head width D: model.head_dim, or dim / n_heads when it is 0.
int rt_config_head_dim(const rt_config *cfg);

// Cross-key checks (n_kv_heads divides n_heads, dim divisible by n_heads, even head dim, seq_len <=
// max_seq_len, min_lr <= lr, vocab_size >= 259, ...).
int rt_config_validate(const rt_config *cfg, rt_error *err);

// train.warmup_steps above train.steps becomes train.steps: returns 1 and writes a one-line note saying so
// (without a newline) into note, else 0. Run before rt_config_validate, which rejects the conflict.
int rt_config_fit_warmup(rt_config *cfg, char *note, size_t cap);

// Write the resolved config as YAML (every key, grouped by section). Returns a malloc'd string.
char *rt_config_to_yaml(const rt_config *cfg);

// Print the schema as help text: key, type, default, range, help.
void rt_config_print_help(FILE *out, const char *section_filter);

#endif
