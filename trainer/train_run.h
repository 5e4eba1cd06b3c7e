// The state of one training run, shared by the loop (train_loop.c) and distillation (distill.c).
#ifndef RT_TRAIN_RUN_H
#define RT_TRAIN_RUN_H

#include <stdint.h>

#include "backend/backend.h"
#include "train/batcher.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "config/config.h"
#include "data/dataset.h"
#include "model/lora.h"
#include "base/metrics.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "base/rng.h"
#include "train/peak.h"

typedef enum rt_distill_mode {
    RT_DISTILL_SEQUENCE,
    RT_DISTILL_OFFLINE_TOPK,
    RT_DISTILL_ONLINE
} rt_distill_mode;

// What `retort distill` adds to a run: the teacher (online), or its stored top-k rows (offline_topk).
typedef struct rt_distill_state {
    rt_distill_mode mode;
    rt_kd_params kd;
    rt_ctx *ctx;      // the student's context (the teacher runs on it too)
    rt_model teacher; // online: frozen, no gradients or optimizer state
    int has_teacher;
    int64_t *answer_rows;   // offline_topk: top-k row of each token position of data.train, -1 for none
    int k;                  // top-k per position (offline_topk)
    int32_t *topk_ids_host; // [B*T, k] staging for one micro-batch
    float *topk_lp_host;
    int32_t *topk_ids_dev; // the same on the device
    float *topk_lp_dev;
    double teacher_flops_per_token; // online: the teacher's forward, for MFU
} rt_distill_state;

// Which command runs the loop.
typedef enum rt_run_kind { RT_RUN_TRAIN = 0, RT_RUN_DISTILL = 1, RT_RUN_FINETUNE = 2 } rt_run_kind;

typedef struct train_run {
    rt_config cfg;
    int resume;
    int64_t stop_after;          // 0 = run to train.steps
    int distill;                 // `retort distill`
    int finetune;                // `retort finetune`: starts from finetune.base
    rt_lora_spec lora;           // finetune: adapters and what is frozen (rank 0, nothing frozen: full)
    char base_path[RT_PATH_MAX]; // finetune: the base, resolved, and its content hash
    char base_hash[17];
    rt_ckpt base; // finetune: the base checkpoint, from read_base until its weights are in the model
    int has_base;
    rt_tok_source tok;    // the model's tokenizer, which every checkpoint stores (run_tokenizer.c)
    rt_ckpt init_adapter; // finetune.adapter: the adapters the run starts from, until load_base uses them
    int has_init_adapter;
    rt_ctx ctx;
    int ctx_ok;
    rt_model model;
    rt_comm comm;
    int stopped_by;          // the stop signal every rank agreed on (0: none)
    rt_error grad_ready_err; // why a sum started during backward failed
    rt_dataset train_ds, val_ds;
    int has_val;
    rt_batcher batcher;
    rt_metrics metrics;
    rt_rng rng;
    rt_train_state state;
    rt_adamw_config oc;
    uint8_t *train_mask, *val_mask; // answer-only loss (data.loss_on=answer), else NULL
    int32_t *tokens, *targets;      // [grad_accum, B, T] host staging: a whole step is drawn up front
    int64_t *positions;             // [grad_accum, B, T] each target's index in data.train (distillation)
    rt_peak peak;                   // MFU's denominator and the measured GEMM
    rt_distill_state kd;
    double ce_sum, kd_sum; // the last step's loss parts (distillation), summed over counted targets
    double comm_s;         // wall time in the communicator's calls of the steps since the last report
} train_run;

// `retort train`, `retort distill` and `retort finetune`: parse, set up, train, report.
int rt_train_main(int argc, char **argv, rt_run_kind kind, void (*print_help)(void));

// The run's tokenizer (run_tokenizer.c): a fine-tune's is its base's, else model.tokenizer's ("" = bytes);
// model.vocab_size must hold it, and the datasets must have been made with it.
int rt_run_tokenizer_setup(train_run *r, rt_error *err);
int rt_run_check_data_tokenizer(const train_run *r, rt_error *err);
// Resuming: the checkpoint's tokenizer must be the run's.
int rt_run_check_resume_tokenizer(const train_run *r, const rt_ckpt *ck, const char *path, rt_error *err);

// Distillation (distill.c): checks the config against the teacher and the data and builds what the mode
// needs (-2: a config that cannot work, a usage error; -1: a runtime failure); the loss of one
// micro-batch after the student's forward without targets; and the cleanup.
int rt_distill_setup(train_run *r, rt_error *err);
int rt_distill_micro(train_run *r, const int32_t *tokens, const int32_t *targets, const int64_t *positions,
                     float grad_scale, rt_error *err);
void rt_distill_free(train_run *r);

#endif
