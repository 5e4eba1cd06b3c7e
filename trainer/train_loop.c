// The one training loop of `retort train` and `retort distill`: micro-batches -> forward/backward ->
// (allreduce) -> clip + AdamW -> report, evaluate, checkpoint. Pretraining, full fine-tuning and
// distillation differ only in the loss of a micro-batch (distill.c).
#define _XOPEN_SOURCE 700 // realpath, sigaction
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "train/batcher.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "commands.h"
#include "config/config.h"
#include "data/dataset.h"
#include "train/finetune.h"
#include "infer/evaluate.h"
#include "base/metrics.h"
#include "model/model.h"
#include "model/optimizer.h"
#include "train/peak.h"
#include "base/rng.h"
#include "infer/load.h"
#include "train_run.h"
#include "base/files.h"

static volatile sig_atomic_t stop_signal = 0;
static void on_signal(int sig) {
    stop_signal = sig;
}

// Returns 0, or the exit code for a usage/config error (2).
static int parse_args(train_run *r, int argc, char **argv, rt_error *err) {
    static const char *const value_opts[] = {"--stop-after", NULL};
    const char *config_path;
    int rc = rt_config_from_args(argc, argv, value_opts, &r->cfg, &config_path, err);
    if (rc) return rc;
    for (int i = 1; i < argc;) {
        const char *value = NULL;
        int got;
        if (strcmp(argv[i], "--resume") == 0) {
            r->resume = 1;
            i++;
        } else if ((got = rt_arg_value(argc, argv, &i, "--stop-after", &value, err)) != 0) {
            if (got < 0 || rt_arg_int("--stop-after", value, 1, INT64_MAX, &r->stop_after, err)) return 2;
        } else if (argv[i][0] == '-') {
            return rt_fail(err, "unknown option %s (see retort %s --help)", argv[i], argv[0]), 2;
        } else {
            i++;
        }
    }
    return 0;
}

static int model_sections_equal(const rt_config *a, const rt_config *b) {
    return memcmp(&a->model, &b->model, sizeof a->model) == 0;
}

static int latest_exists(const char *dir) {
    char path[RT_PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/ckpt-latest.h5", dir);
    return lstat(path, &st) == 0;
}

// Restore weights, moments, step, data position and RNG from the newest good checkpoint.
static int resume_from_checkpoint(train_run *r, rt_error *err) {
    rt_ckpt ck;
    char path[RT_PATH_MAX + 64];
    if (rt_ckpt_load_latest(r->cfg.run.out_dir, 1, &ck, path, sizeof path, err)) return -1;
    rt_config stored;
    int rc = rt_ckpt_parse_config(path, ck.config_yaml, &stored, err);
    if (rc == 0 && !model_sections_equal(&stored, &r->cfg))
        rc = rt_fail(err,
                     "%s was trained with a different model section than this config; resume needs the "
                     "same model (compare with `retort inspect %s`)",
                     path, path);
    if (rc == 0) rc = rt_run_check_resume_tokenizer(r, &ck, path, err);
    if (rc == 0 && ck.n_optim == 0)
        rc = rt_fail(err, "%s holds weights only (no optimizer state): it cannot be resumed exactly", path);
    int adapters = r->lora.freeze_base;
    if (rc == 0 && adapters != (ck.n_lora > 0))
        rc = rt_fail(err, "%s is %s checkpoint, but this run trains %s", path,
                     ck.n_lora > 0 ? "an adapter" : "a full", adapters ? "adapters" : "every weight");
    if (rc == 0 && adapters && strcmp(ck.base_hash, r->base_hash) != 0)
        rc = rt_fail(err,
                     "%s adapts the base %s (hash %s), but finetune.base %s has hash %s: resume needs the "
                     "base the adapters were trained on",
                     path, ck.base, ck.base_hash, r->base_path, r->base_hash);
    if (rc == 0 && adapters)
        rc = rt_model_import_adapters(&r->model, ck.lora, ck.n_lora, ck.adam_m, ck.adam_v, ck.n_optim, path,
                                      err);
    else if (rc == 0)
        rc = rt_model_import_tensors(&r->model, ck.model, ck.n_model, ck.adam_m, ck.adam_v, ck.n_optim, path,
                                     err);
    if (rc == 0) rc = rt_batcher_seek(&r->batcher, ck.state.data_epoch, ck.state.data_index, err);
    if (rc == 0) {
        r->state = ck.state;
        memcpy(r->rng.s, ck.state.rng, sizeof r->rng.s);
        int quiet = r->comm.rank != 0;
        if (!quiet && (stored.data.seq_len != r->cfg.data.seq_len ||
                       stored.train.batch_size != r->cfg.train.batch_size ||
                       stored.train.grad_accum != r->cfg.train.grad_accum ||
                       strcmp(stored.data.train, r->cfg.data.train)))
            fprintf(stderr,
                    "note: data, batch or accumulation settings differ from %s; the continuation is "
                    "valid but not identical to an uninterrupted run\n",
                    path);
        // The data position is global (every rank's window of a step comes from one draw), so another
        // world size continues at the same place; only the grouping of the sums changes.
        if (!quiet && ck.state.world_size != r->comm.world)
            fprintf(stderr,
                    "note: %s was written by %lld rank%s and this run has %d: the continuation is valid "
                    "(global batch %d x %d x %d) but not bit-identical to an uninterrupted run\n",
                    path, (long long)ck.state.world_size, ck.state.world_size == 1 ? "" : "s", r->comm.world,
                    r->comm.world, r->cfg.train.batch_size, r->cfg.train.grad_accum);
        if (!quiet) fprintf(stderr, "resuming from %s at step %lld\n", path, (long long)r->state.step);
    }
    rt_ckpt_free(&ck);
    return rc;
}

static int write_checkpoint(train_run *r, float *const host[3], rt_error *err);

// ZeRO-1: every rank's shard of the AdamW moments (and of the fp32 masters when they are sharded),
// gathered on rank 0's host ([arena.n] each there); out[0..2] = masters (or NULL), first and second moments.
static int gather_shards(train_run *r, float *out[3], rt_error *err) {
    const rt_param_arena *ar = &r->model.arena;
    size_t shard = ar->shard_n, all = ar->n;
    int root = r->comm.rank == 0, rc = 0;
    float *from[3] = {ar->master_sharded ? ar->master : NULL, ar->m, ar->v};
    float *mine = rt_malloc(shard * sizeof(float), "optimizer shard", err);
    int missing = !mine;
    for (int k = 0; k < 3; k++) {
        out[k] = root && from[k] ? rt_malloc(all * sizeof(float), "gathered shards", err) : NULL;
        missing |= root && from[k] && !out[k];
    }
    // the ranks agree that every buffer exists before any of them enters a gather
    rc = rt_comm_agree(&r->comm, missing, NULL, err);
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (!from[k]) continue;
        r->ctx.be->download(&r->ctx, mine, from[k], RT_F32, shard);
        rc = r->comm.gather_host(&r->comm, mine, shard * sizeof(float), out[k], 0, err);
    }
    free(mine);
    return rc;
}

// Rank 0 writes; a failure there (or in gathering) is agreed by every rank, so all stop together.
static int save_checkpoint(train_run *r, rt_error *err) {
    float *host[3] = {NULL, NULL, NULL};
    int rc = r->model.dp.zero ? gather_shards(r, host, err) : 0; // agreed, or an MPI failure all see
    int failed = rc == 0 && r->comm.rank == 0 && write_checkpoint(r, host, err) != 0;
    for (int k = 0; k < 3; k++) free(host[k]);
    if (rc) return -1;
    return rt_comm_agree(&r->comm, failed, NULL, err);
}

static int write_checkpoint(train_run *r, float *const host[3], rt_error *err) {
    rt_named_tensor *w = NULL, *m = NULL, *v = NULL;
    int n = 0;
    if (rt_model_export_tensors_gathered(&r->model, host[0], host[1], host[2], &w, &m, &v, &n, err))
        return -1;
    rt_ckpt ck;
    memset(&ck, 0, sizeof ck);
    if (r->lora.freeze_base) { // an adapter checkpoint: the base stays where it is
        ck.lora = w;
        ck.n_lora = n;
        snprintf(ck.base, sizeof ck.base, "%s", r->base_path);
        snprintf(ck.base_hash, sizeof ck.base_hash, "%s", r->base_hash);
    } else {
        ck.model = w;
        ck.n_model = n;
    }
    ck.adam_m = m;
    ck.adam_v = v;
    ck.n_optim = n;
    r->state.data_epoch = r->batcher.epoch;
    r->state.data_index = r->batcher.index;
    r->state.world_size = r->comm.world;
    memcpy(r->state.rng, r->rng.s, sizeof r->state.rng);
    ck.state = r->state;
    ck.config_yaml = rt_config_to_yaml(&r->cfg);
    snprintf(ck.architecture, sizeof ck.architecture, "llama");
    ck.tokenizer = r->tok; // borrowed
    char written[RT_PATH_MAX + 64];
    int rc = 0;
    if (!ck.config_yaml) rc = rt_fail(err, "out of memory writing the config");
    if (rc == 0)
        rc = rt_ckpt_save_rotating(r->cfg.run.out_dir, &ck, r->cfg.checkpoint.keep, written, sizeof written,
                                   err);
    if (rc == 0) rt_metrics_note(&r->metrics, "saved %s", written);
    free(ck.config_yaml);
    rt_model_free_host_tensors(w, n);
    rt_model_free_host_tensors(m, n);
    rt_model_free_host_tensors(v, n);
    return rc;
}

// finetune.adapter: an adapter checkpoint of this base whose adapters the run starts from. The adapters
// define the function the run continues, so their lora section (rank, alpha, rslora, targets) becomes the
// run's; dropout, the method (lora or qlora) and the optimizer (fresh) are this run's own.
static int read_init_adapter(train_run *r, rt_error *err) {
    rt_config *c = &r->cfg;
    const char *path = c->finetune.adapter;
    if (!path[0]) return 0;
    if (r->lora.rank == 0 && strcmp(c->finetune.method, "full") == 0)
        return rt_fail(
            err,
            "finetune.adapter needs finetune.method lora or qlora (to fine-tune every weight from "
            "adapters, fold them in with `retort merge %s --out merged.h5` and use that as the base)",
            path);
    rt_ckpt *a = &r->init_adapter;
    if (rt_ckpt_read(path, 0, a, err)) return rt_fail_wrap(err, "finetune.adapter");
    r->has_init_adapter = 1;
    if (a->n_lora == 0) return rt_fail(err, "finetune.adapter %s holds full weights, not adapters", path);
    if (strcmp(a->base_hash, r->base_hash) != 0)
        return rt_fail(err,
                       "finetune.adapter %s adapts the base %s (hash %s), but finetune.base %s has hash %s: "
                       "start from adapters of this base",
                       path, a->base, a->base_hash, r->base_path, r->base_hash);
    rt_config acfg;
    unsigned mine, theirs;
    if (rt_ckpt_parse_config(path, a->config_yaml, &acfg, err) ||
        rt_lora_parse_targets(c->lora.targets, &mine, err) ||
        rt_lora_parse_targets(acfg.lora.targets, &theirs, err))
        return -1;
    if (r->comm.rank == 0 && (c->lora.rank != acfg.lora.rank || c->lora.alpha != acfg.lora.alpha ||
                              c->lora.rslora != acfg.lora.rslora || mine != theirs))
        fprintf(stderr,
                "note: lora.rank, alpha, rslora and targets come from finetune.adapter %s (r %d, alpha %g%s, "
                "%s)\n",
                path, acfg.lora.rank, acfg.lora.alpha, acfg.lora.rslora ? ", rsLoRA" : "", acfg.lora.targets);
    c->lora.rank = acfg.lora.rank;
    c->lora.alpha = acfg.lora.alpha;
    c->lora.rslora = acfg.lora.rslora;
    snprintf(c->lora.targets, sizeof c->lora.targets, "%s", acfg.lora.targets);
    return 0;
}

// finetune: the base's model section becomes the run's (a fine-tune cannot change the architecture), and
// its resolved path and hash are what adapter checkpoints record.
static int read_base(train_run *r, rt_error *err) {
    rt_config *c = &r->cfg;
    if (!c->finetune.base[0]) // a config that cannot work: a usage error
        return rt_fail(err, "finetune.base is empty: name the checkpoint to fine-tune (base=PATH)"), -2;
    char *resolved = realpath(c->finetune.base, NULL);
    if (!resolved) return rt_fail(err, "finetune.base %s: %s", c->finetune.base, strerror(errno));
    int fits = strlen(resolved) < sizeof r->base_path;
    if (fits) snprintf(r->base_path, sizeof r->base_path, "%s", resolved);
    free(resolved);
    if (!fits) return rt_fail(err, "finetune.base %s: the resolved path is too long", c->finetune.base);
    rt_config base_cfg;
    if (rt_finetune_read_base(r->base_path, NULL, "finetune.base", &r->base, &base_cfg, r->base_hash, err))
        return -1;
    r->has_base = 1; // held until load_base puts its weights into the model
    if (!model_sections_equal(&base_cfg, c))
        fprintf(stderr, "note: the model section comes from the base %s\n", r->base_path);
    c->model = base_cfg.model;
    if (c->data.seq_len > c->model.max_seq_len)
        return rt_fail(err, "data.seq_len %d exceeds the base's model.max_seq_len %d", c->data.seq_len,
                       c->model.max_seq_len);
    if (rt_lora_spec_from_config(c, &r->lora, err) || read_init_adapter(r, err)) return -1;
    return rt_lora_spec_from_config(c, &r->lora, err);
}

// The base's weights into the model (quantized to NF4 where the spec says), then its host copy is
// released; unless resuming, fresh adapters or those of finetune.adapter (with no optimizer state).
static int load_base(train_run *r, int init_adapters, rt_error *err) {
    int rc =
        rt_model_import_tensors(&r->model, r->base.model, r->base.n_model, NULL, NULL, 0, r->base_path, err);
    rt_ckpt_free(&r->base);
    r->has_base = 0;
    const rt_ckpt *a = &r->init_adapter;
    if (rc == 0 && init_adapters && r->has_init_adapter) {
        rc = rt_model_import_adapters(&r->model, a->lora, a->n_lora, NULL, NULL, 0, r->cfg.finetune.adapter,
                                      err);
        if (rc == 0 && r->comm.rank == 0)
            fprintf(stderr, "finetune: adapters from %s (the optimizer starts fresh)\n",
                    r->cfg.finetune.adapter);
    } else if (rc == 0 && init_adapters) {
        rc = rt_model_init_adapters(&r->model, (uint64_t)r->cfg.run.seed, err);
    }
    if (r->has_init_adapter) rt_ckpt_free(&r->init_adapter);
    r->has_init_adapter = 0;
    if (rc == 0)
        fprintf(stderr, "finetune: %s from %s (hash %s)%s\n", r->cfg.finetune.method, r->base_path,
                r->base_hash, r->lora.rank ? "" : ", every weight trains");
    return rc;
}

// A fresh clone has no datasets (they are generated, not committed): name the command that makes them
// rather than let HDF5 report a file it cannot open.
static int check_data_exists(const train_run *r, const char *key, const char *path, rt_error *err) {
    struct stat st;
    if (stat(path, &st) == 0 || errno != ENOENT) return 0; // other failures: the dataset reader explains
    if (r->distill && strcmp(key, "data.train") == 0)      // a student learns from the teacher's answers
        return rt_fail(err,
                       "data.train %s does not exist. It holds the teacher's answers: make it with `retort "
                       "synth CONFIG synth.out=%s` (distillation's first stage; data/README.md)",
                       path, path);
    return rt_fail(
        err,
        "%s %s does not exist. Make the datasets the embedded configs read with "
        "./data/make_datasets.sh, or one from a synthetic task with `retort data synth --task addpad "
        "--n 40000 --split %s --out %s` (data/README.md has the other tasks, text and JSONL)",
        key, path, strcmp(key, "data.val") == 0 ? "val" : "train", path);
}

// Adds the wall time since t0 to the communicator's share of the reporting window (comm_s in the train
// record). The CPU communicator blocks until the data has arrived, so this includes waiting for a slower
// rank.
static void comm_time(train_run *r, double t0) {
    r->comm_s += rt_now() - t0;
}

// grad_ready of the model: a completed part of the step's gradient sum goes to the other ranks while
// backward goes on.
static int start_sum(void *user, float *acc, size_t n) {
    train_run *r = user;
    double t0 = rt_now(); // mpi sums here, inside backward; nccl only enqueues
    int rc = r->comm.allreduce_sum_start(&r->comm, &r->ctx, acc, n, &r->grad_ready_err);
    comm_time(r, t0);
    return rc;
}

static int setup(train_run *r, rt_error *err) {
    rt_config *c = &r->cfg;
    if (check_data_exists(r, "data.train", c->data.train, err)) return -1;
    if (c->data.val[0] && check_data_exists(r, "data.val", c->data.val, err)) return -1;
    const char *device = rt_device_resolve(c->system.device); // "auto" settles before the communicator
    if (rt_comm_init(&r->comm, c->system.dist, device, err)) return -1;
    if (rt_mkdir_p(c->run.out_dir, err)) return -1;
    if (!r->resume && latest_exists(c->run.out_dir))
        return rt_fail(err,
                       "run.out_dir %s already holds checkpoints: pass --resume to continue that run, or "
                       "choose another run.out_dir",
                       c->run.out_dir);
    int rc_base = r->finetune ? read_base(r, err) : 0;
    if (rc_base) return rc_base;
    if (rt_run_tokenizer_setup(r, err)) return -1;
    int writer = r->comm.rank == 0; // rank 0 writes the run directory and reports; the others stay quiet
    if (writer) {
        char *yaml = rt_config_to_yaml(c);
        if (!yaml) return rt_fail(err, "out of memory");
        char path[RT_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/config.yaml", c->run.out_dir);
        int rc = rt_write_file_atomic(path, yaml, strlen(yaml), err);
        if (rc == 0) printf("# resolved config (also in %s)\n%s\n", path, yaml);
        free(yaml);
        if (rc) return -1;
        fflush(stdout);
    }

    if (rt_dataset_load(&r->train_ds, c->data.train, c->model.vocab_size, err))
        return rt_fail_wrap(err, "data.train");
    if (c->data.val[0]) {
        if (rt_dataset_load(&r->val_ds, c->data.val, c->model.vocab_size, err))
            return rt_fail_wrap(err, "data.val");
        r->has_val = 1;
    }
    if (rt_run_check_data_tokenizer(r, err)) return -1;
    if (rt_batcher_init(&r->batcher, &r->train_ds, c->data.seq_len, (uint64_t)c->run.seed, 1, r->comm.rank,
                        r->comm.world, err))
        return -1;
    if (strcmp(c->data.loss_on, "answer") == 0) {
        if (rt_dataset_answer_mask(&r->train_ds, &r->train_mask, err))
            return rt_fail_wrap(err, "data.loss_on=answer (data.train)");
        if (r->has_val && rt_dataset_answer_mask(&r->val_ds, &r->val_mask, err))
            return rt_fail_wrap(err, "data.loss_on=answer (data.val)");
        rt_batcher_set_mask(&r->batcher, r->train_mask);
    }
    // ranks sharing a node share its cores
    char threads_why[160];
    int threads = rt_comm_threads(&r->comm, c->system.threads, threads_why, sizeof threads_why);
    if (rt_ctx_init_device(&r->ctx, device, c->system.precision, threads, r->comm.local_rank, err)) return -1;
    r->ctx_ok = 1;
    rt_model_dims dims = rt_model_dims_from_config(c);
    int B = c->train.batch_size, T = c->data.seq_len;
    rt_data_parallel dp = {r->comm.world, r->comm.rank, c->train.zero, c->train.grad_accum};
    if (rt_model_create_parallel(&r->model, &dims, &r->lora, &r->ctx, B, T, &dp, err)) return -1;
    // Without ZeRO the sum over ranks overlaps backward: each bucket's sum starts as soon as the last
    // micro-batch's backward completes it (ZeRO-1 reduce-scatters the whole arena after backward).
    r->model.grad_ready = r->comm.world > 1 && !c->train.zero ? start_sum : NULL;
    r->model.grad_ready_user = r;
    size_t step_ids = (size_t)c->train.grad_accum * (size_t)B * (size_t)T;
    r->tokens = rt_malloc(step_ids * sizeof(int32_t), "batch", err);
    r->targets = rt_malloc(step_ids * sizeof(int32_t), "batch", err);
    r->positions = rt_malloc(step_ids * sizeof(int64_t), "batch", err);
    if (!r->tokens || !r->targets || !r->positions) return -1;
    r->oc = rt_adamw_config_from(c);
    memset(&r->state, 0, sizeof r->state);
    rt_rng_seed(&r->rng, rt_seed_mix((uint64_t)c->run.seed, 0x7261696eULL));
    int resuming = r->resume && latest_exists(c->run.out_dir);
    if (r->resume && !resuming && writer)
        fprintf(stderr, "note: --resume found no checkpoint in %s; starting from step 0\n", c->run.out_dir);
    if (r->finetune && load_base(r, !resuming, err)) return -1;
    if (resuming) {
        if (resume_from_checkpoint(r, err)) return -1;
    } else if (!r->finetune) {
        if (rt_model_init_weights(&r->model, (uint64_t)c->run.seed, (float)c->model.init_std, err)) return -1;
    }
    if (!writer)
        rt_metrics_open_quiet(&r->metrics);
    else if (rt_metrics_open(&r->metrics, c->run.out_dir, err))
        return -1;
    rt_metrics_run(&r->metrics, r->state.step, r->comm.world);
    rt_peak_resolve(&r->ctx, c->system.peak_tflops, &r->peak);
    if (r->ctx.be->check(&r->ctx, err)) return -1;
    if (!writer) return 0;
    if (r->comm.world > 1)
        fprintf(stderr,
                "ranks: %d (%s communicator), %d on this node; global batch %d x %d x %d sequences%s; the "
                "memory, model and data lines are per rank, tokens/s and MFU over all ranks\n",
                r->comm.world, r->comm.name, r->comm.local_world, r->comm.world, B, c->train.grad_accum,
                c->train.zero ? "; ZeRO-1: AdamW moments sharded over the ranks" : "");
    const rt_model_memory *mem = &r->model.memory;
    if (r->lora.freeze_base)
        fprintf(stderr,
                "memory: base %.2f MiB (%s), adapters %.2f MiB, gradients %.2f MiB, optimizer %.2f MiB, "
                "activations %.1f MiB (batch %d x %d)\n",
                mem->base / 1048576.0, r->lora.nf4_sites ? "NF4 where quantized" : rt_dtype_name(r->ctx.act),
                mem->parameters / 1048576.0, mem->gradients / 1048576.0, mem->optimizer / 1048576.0,
                mem->activations / 1048576.0, B, T);
    else
        fprintf(stderr,
                "memory: parameters %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, activations %.1f MiB "
                "(batch %d x %d)\n",
                mem->parameters / 1048576.0, mem->gradients / 1048576.0, mem->optimizer / 1048576.0,
                mem->activations / 1048576.0, B, T);
    fprintf(stderr,
            "model: %zu parameters, %.1f MFLOP per training token | backend %s (%s, %d threads, %s) | "
            "measured matmul peak %.1f GFLOP/s\n",
            rt_model_param_count(&r->model), rt_model_train_flops_per_token(&r->model, T) / 1e6,
            r->ctx.be->name, rt_dtype_name(r->ctx.act), r->ctx.n_threads,
            r->ctx.be == &rt_backend_cpu ? rt_cpu_gemm_library() : "cuBLASLt", r->peak.gemm / 1e9);
    if (r->ctx.be == &rt_backend_cpu) {
        // how OpenMP's idle threads wait matters as much as how many there are (docs/cpu_threads.md)
        const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
        fprintf(stderr, "threads: %d, from %s; waiting threads: %s%s\n", r->ctx.n_threads, threads_why,
                policy ? "OMP_WAIT_POLICY="
                : spin ? "GOMP_SPINCOUNT="
                       : "libgomp's default spin",
                policy ? policy
                : spin ? spin
                       : "");
    }
    if (r->ctx.be == &rt_backend_cpu && r->ctx.act == RT_BF16)
        fprintf(stderr, "bf16 on the CPU: GEMMs %s; master weights, moments and statistics fp32\n",
                rt_cpu_bf16_kernels());
    char peak[32], gemm[32];
    rt_format_rate(peak, sizeof peak, r->peak.flops);
    rt_format_rate(gemm, sizeof gemm, r->peak.gemm);
    const char *device_name = r->ctx.be->device_name ? r->ctx.be->device_name(&r->ctx) : r->ctx.be->name;
    if (r->peak.flops > 0)
        fprintf(stderr, "MFU: against %s %s (%s, %s); the GEMM measured at start ran at %s\n", r->peak.source,
                peak, device_name, rt_dtype_name(r->ctx.act), gemm);
    fprintf(stderr, "data: %s, %zu tokens, %lld sequences of %d per epoch; %d x %d x %d tokens per step\n",
            c->data.train, r->train_ds.n_tokens, (long long)r->batcher.n_windows, T, B, T,
            c->train.grad_accum);
    return 0;
}

// The loss of the micro-batch just run, added to sums[0..2] (loss, ce, kd); reading it waits for the device.
static void add_micro_loss(train_run *r, int soft, double sums[3]) {
    int B = r->cfg.train.batch_size, T = r->cfg.data.seq_len;
    double alpha = r->kd.kd.alpha, t2 = (double)r->kd.kd.temperature * r->kd.kd.temperature;
    double ce = rt_model_loss_sum(&r->model, B, T), kd = soft ? rt_model_kd_sum(&r->model, B, T) : 0.0;
    sums[0] += soft ? (1.0 - alpha) * ce + alpha * t2 * kd : ce;
    sums[1] += ce;
    sums[2] += kd;
}

// The step's gradient summed over ranks, and the squared norm and clip factor from it. ZeRO-1 sums each
// rank's shard only (reduce-scatter), norms it, adds the ranks' norm partials (each is non-zero on one rank
// only, so the sum is exact) and finishes the norm from them: the same bits as without sharding.
static int reduce_gradients(train_run *r, rt_error *err) {
    rt_model *m = &r->model;
    rt_param_arena *ar = &m->arena;
    double t0 = rt_now();
    if (m->grad_ready) { // the sums were started bucket by bucket during the last backward
        if (!m->buckets_reduced) rt_model_reduce_buckets(m); // this rank's step failed before it
        if (m->grad_ready_failed) return rt_fail(err, "%s", r->grad_ready_err.msg);
        if (r->comm.allreduce_wait(&r->comm, &r->ctx, err)) return -1;
        comm_time(r, t0);
        rt_optimizer_prepare(m, &r->oc);
        return 0;
    }
    if (!m->dp.zero) {
        if (r->comm.allreduce_sum(&r->comm, &r->ctx, ar->acc, ar->n_used, err)) return -1;
        comm_time(r, t0);
        rt_optimizer_prepare(m, &r->oc);
        return 0;
    }
    if (r->comm.reduce_scatter_sum(&r->comm, &r->ctx, ar->acc, ar->n / (size_t)r->comm.world, err)) return -1;
    comm_time(r, t0);
    rt_optimizer_norm_partials(m);
    t0 = rt_now();
    if (r->comm.allreduce_sum(&r->comm, &r->ctx, ar->partials, ar->n_segments, err)) return -1;
    comm_time(r, t0);
    rt_optimizer_finish_norm(m, &r->oc);
    return 0;
}

// ZeRO-1 after the update: every rank's shard of the new weights to every rank: the fp32 masters, or in a
// bf16 run, whose masters are sharded, the compute copies.
static int gather_weights(train_run *r, rt_error *err) {
    rt_model *m = &r->model;
    rt_param_arena *ar = &m->arena;
    if (!m->dp.zero || r->comm.world == 1) return 0;
    size_t shard = ar->n / (size_t)r->comm.world;
    double t0 = rt_now();
    if (ar->master_sharded) { // each rank's updated compute copies (AdamW wrote them from the master shard)
        int rc = r->comm.allgather(&r->comm, &r->ctx, ar->w, shard * rt_dtype_size(r->ctx.act), err);
        comm_time(r, t0);
        return rc;
    }
    if (r->comm.allgather(&r->comm, &r->ctx, ar->master, shard * sizeof(float), err)) return -1;
    comm_time(r, t0);
    if (ar->w != (void *)ar->master)
        r->ctx.be->convert(&r->ctx, ar->w, r->ctx.act, ar->master, RT_F32, ar->n_used);
    return 0;
}

// One optimizer step: grad_accum micro-batches, then the update. *loss receives the mean loss over the
// targets that count. When the loss or the gradient norm is not finite, nothing is updated (weights and
// AdamW moments stay as they were) and *nonfinite is set; the step still counts. *stop: a stop signal of
// this process before the call; afterwards the one every rank agreed on.
//
// Every rank makes the same collective calls whatever happens: a failure in a micro-batch (a teacher's
// file that cannot be read) is remembered, the rank goes on through the sums with what it has, and the
// agreement at the end stops every rank with that rank's message instead of leaving the others waiting.
static int train_step(train_run *r, double *loss, int *nonfinite, int *stop, rt_error *err) {
    rt_model *m = &r->model;
    int B = r->cfg.train.batch_size, T = r->cfg.data.seq_len, accum = r->cfg.train.grad_accum;
    size_t micro_ids = (size_t)B * T;
    // The loss is a mean over every counted target of the step on every rank, so the count must be known
    // before the first forward pass scales its gradient: the step's micro-batches are drawn first.
    double counted = 0.0;
    for (int micro = 0; micro < accum; micro++)
        counted +=
            (double)rt_batcher_next_pos(&r->batcher, B, r->tokens + micro * micro_ids,
                                        r->targets + micro * micro_ids, r->positions + micro * micro_ids);
    double t0 = rt_now();
    if (r->comm.allreduce_host(&r->comm, &counted, 1, err)) return -1;
    comm_time(r, t0);
    // A step without a counted target (answer-only loss over windows of prompts) contributes no gradient.
    float grad_scale = counted > 0 ? (float)(1.0 / counted) : 0.0f;
    double sums[3] = {0.0, 0.0, 0.0}; // loss, ce, kd
    int soft = r->distill && r->kd.mode != RT_DISTILL_SEQUENCE;
    int failed = 0;
    rt_model_zero_grad(m);
    m->dropout_on = 1; // adapter dropout, masks seeded by (run.seed, step, micro-batch, layer, site)
    m->dropout_run_seed = (uint64_t)r->cfg.run.seed;
    m->dropout_step = r->state.step;
    for (int micro = 0; micro < accum; micro++) {
        const int32_t *tok = r->tokens + micro * micro_ids, *tgt = r->targets + micro * micro_ids;
        // the micro-batch's place in the global draw (batcher.h), so masks differ between ranks and a run
        // of W ranks draws the masks of one rank accumulating W times as many micro-batches
        m->dropout_micro = micro * r->comm.world + r->comm.rank;
        if (soft) { // the student's logits, then the fused distillation loss in their place
            if (rt_model_forward(m, tok, NULL, B, T, 1.0f, err) ||
                rt_distill_micro(r, tok, tgt, r->positions + micro * micro_ids, grad_scale, err))
                failed = 1;
        } else if (rt_model_forward(m, tok, tgt, B, T, grad_scale, err)) {
            failed = 1;
        }
        if (failed) break;
        m->reduce_in_backward = micro == accum - 1;
        rt_model_backward(m, B, T);
        m->reduce_in_backward = 0;
        if (micro + 1 < accum) add_micro_loss(r, soft, sums); // the last one is read with the norm below
    }
    m->dropout_on = 0;
    // The gradient norm is computed on device before the last loss is read, so the one wait for the
    // device that reading the loss always cost also brings the norm: the update is decided on the host
    // without a second round trip.
    if (reduce_gradients(r, err)) return -1;
    if (!failed) add_micro_loss(r, soft, sums);
    if (!failed && r->ctx.be->check(&r->ctx, err)) failed = 1;
    t0 = rt_now();
    if (rt_comm_agree(&r->comm, failed, stop, err)) return -1;
    float norm = rt_optimizer_grad_norm(m);
    if (r->comm.allreduce_host(&r->comm, sums, 3, err)) return -1;
    comm_time(r, t0);
    double loss_sum = sums[0], ce_sum = sums[1], kd_sum = sums[2];
    r->ce_sum = counted > 0 ? ce_sum / counted : 0.0;
    r->kd_sum = counted > 0 ? kd_sum / counted : 0.0;
    // every rank sees the same reduced loss and norm, so all of them skip or update together
    *nonfinite = !isfinite(loss_sum) || !isfinite(ce_sum) || !isfinite(kd_sum) || !isfinite(norm);
    float lr = rt_lr_at(&r->oc, r->state.step);
    if (!*nonfinite) {
        rt_optimizer_update(m, &r->oc, r->state.step + 1, lr);
        if (gather_weights(r, err)) return -1;
    }
    r->state.step++;
    r->state.tokens_seen += (int64_t)micro_ids * accum * r->comm.world;
    *loss = counted > 0 ? loss_sum / counted : 0.0;
    return r->ctx.be->check(&r->ctx, err);
}

// Rank 0 writes the metrics; when a record could not be written (a full disk) every rank stops together.
static int metrics_agree(train_run *r, rt_error *err) {
    return rt_comm_agree(&r->comm, rt_metrics_check(&r->metrics, err) != 0, NULL, err);
}

static int run_eval(train_run *r, rt_error *err) {
    double loss;
    int64_t n;
    int B = r->cfg.train.batch_size, T = r->cfg.data.seq_len;
    int failed = rt_eval_loss(&r->model, &r->val_ds, r->val_mask, B, T, r->cfg.train.eval_batches, &loss, &n,
                              err) != 0;
    if (rt_comm_agree(&r->comm, failed, NULL, err)) return -1;
    rt_metrics_eval(&r->metrics, r->state.step, loss, n);
    return metrics_agree(r, err);
}

static int train_loop(train_run *r, rt_error *err) {
    const rt_config *c = &r->cfg;
    int64_t total = c->train.steps;
    int64_t end = r->stop_after > 0 && r->stop_after < total ? r->stop_after : total;
    double t_start = rt_now(), busy = 0.0;
    int64_t steps_mark = 0, tokens_mark = r->state.tokens_seen;
    // online distillation also pays for the teacher's forward pass, 2 N_t + 4 L_t A_t T per token
    // (docs/training.md, FLOPs per token)
    double flops_per_token =
        rt_model_train_flops_per_token(&r->model, c->data.seq_len) + r->kd.teacher_flops_per_token;
    if (r->state.step >= end) {
        rt_metrics_note(&r->metrics, "already at step %lld of %lld: nothing to do", (long long)r->state.step,
                        (long long)end);
        return 0;
    }
    int64_t skipped = 0, in_a_row = 0; // non-finite steps of this process, and the current streak
    while (r->state.step < end) {
        double t0 = rt_now();
        double loss = 0.0;
        int nonfinite = 0, stop = (int)stop_signal;
        if (train_step(r, &loss, &nonfinite, &stop, err)) return -1;
        busy += rt_now() - t0;
        steps_mark++;
        in_a_row = nonfinite ? in_a_row + 1 : 0;
        if (nonfinite && in_a_row > c->train.skip_nonfinite) {
            double norm = rt_optimizer_grad_norm(&r->model);
            if (c->train.skip_nonfinite == 0)
                return rt_fail(err,
                               "step %lld: the loss is %g and the gradient norm %g, so the weights were not "
                               "updated; lower train.lr or raise train.warmup_steps, or set "
                               "train.skip_nonfinite=N to skip up to N such steps in a row (the last "
                               "checkpoint is intact)",
                               (long long)r->state.step, loss, norm);
            return rt_fail(err,
                           "steps %lld to %lld: %lld non-finite steps in a row (loss %g, gradient norm %g), "
                           "more than train.skip_nonfinite=%lld: stopping (the weights were not updated by "
                           "any of them; the last checkpoint is intact)",
                           (long long)(r->state.step - in_a_row + 1), (long long)r->state.step,
                           (long long)in_a_row, loss, norm, (long long)c->train.skip_nonfinite);
        }
        if (nonfinite) {
            skipped++;
            rt_metrics_skip(&r->metrics, r->state.step, loss, rt_optimizer_grad_norm(&r->model), in_a_row,
                            skipped);
        }
        int64_t step = r->state.step;
        int last = step == end;
        if (step % c->run.log_every == 0 || last || stop) {
            rt_train_report rep;
            memset(&rep, 0, sizeof rep);
            rep.step = step;
            rep.total_steps = total;
            rep.loss = loss;
            rep.lr = rt_lr_at(&r->oc, step - 1);
            rep.grad_norm = rt_optimizer_grad_norm(&r->model);
            rep.tokens_seen = r->state.tokens_seen;
            rep.tokens_per_s = (double)(r->state.tokens_seen - tokens_mark) / busy;
            rep.flops_per_s = rep.tokens_per_s * flops_per_token;
            // tokens/s are over every rank, so the peak is too (ranks are alike)
            rep.peak_flops = r->peak.flops * r->comm.world;
            rep.mfu = r->peak.flops > 0 ? rep.flops_per_s / rep.peak_flops : -1.0;
            rep.peak_source = r->peak.source;
            rep.gemm_flops = r->peak.gemm * r->comm.world;
            rep.elapsed_s = rt_now() - t_start;
            rep.eta_s = (double)(total - step) * busy / (double)steps_mark;
            rep.has_kd = r->distill && r->kd.mode != RT_DISTILL_SEQUENCE;
            rep.ce = r->ce_sum;
            rep.kd = r->kd_sum;
            rep.skipped = skipped;
            rep.world = r->comm.world;
            rep.comm_s = r->comm_s;
            rep.comm_frac = busy > 0 ? r->comm_s / busy : 0.0;
            rt_metrics_train(&r->metrics, &rep);
            if (metrics_agree(r, err)) return -1;
            busy = 0.0;
            r->comm_s = 0.0;
            steps_mark = 0;
            tokens_mark = r->state.tokens_seen;
        }
        if (r->has_val && c->train.eval_every > 0 && (step % c->train.eval_every == 0 || step == total))
            if (run_eval(r, err)) return -1;
        int periodic = c->checkpoint.every > 0 && step % c->checkpoint.every == 0;
        if (periodic || last || stop) {
            if (save_checkpoint(r, err)) return -1;
        }
        if (stop) {
            r->stopped_by = stop;
            rt_metrics_note(&r->metrics,
                            "stopped by signal %d after step %lld%s: checkpointed, exit %d; continue with "
                            "--resume",
                            stop, (long long)step, r->comm.world > 1 ? " (every rank)" : "",
                            RT_EXIT_CHECKPOINTED);
            return 0;
        }
    }
    if (end < total)
        rt_metrics_note(&r->metrics, "stopped after step %lld of %lld (--stop-after); continue with --resume",
                        (long long)end, (long long)total);
    else
        rt_metrics_note(&r->metrics, "done: %lld steps, %lld tokens, %.1f s", (long long)total,
                        (long long)r->state.tokens_seen, rt_now() - t_start);
    return 0;
}

static void cleanup(train_run *r) {
    if (r->has_base) rt_ckpt_free(&r->base);
    rt_tok_source_free(&r->tok);
    if (r->has_init_adapter) rt_ckpt_free(&r->init_adapter);
    rt_metrics_close(&r->metrics);
    if (r->model.ctx) rt_model_free(&r->model);
    if (r->ctx_ok) r->ctx.be->ctx_free(&r->ctx);
    rt_batcher_free(&r->batcher);
    if (r->train_ds.tokens || r->train_ds.doc_offsets) rt_dataset_free(&r->train_ds);
    if (r->has_val) rt_dataset_free(&r->val_ds);
    if (r->comm.destroy) r->comm.destroy(&r->comm);
    free(r->tokens);
    free(r->targets);
    free(r->positions);
    free(r->train_mask);
    free(r->val_mask);
}

int rt_train_main(int argc, char **argv, rt_run_kind kind, void (*print_help)(void)) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    static train_run run; // large (the config holds paths); static keeps it off the stack
    memset(&run, 0, sizeof run);
    run.distill = kind == RT_RUN_DISTILL;
    run.finetune = kind == RT_RUN_FINETUNE;
    rt_error err = {{0}};
    int rc = parse_args(&run, argc, argv, &err);
    if (rc) {
        rt_cli_error(argv[0], err.msg);
        return rc;
    }
    rt_catch_stop_signals(on_signal);
    rc = setup(&run, &err);
    if (rc == 0 && run.distill) rc = rt_distill_setup(&run, &err);
    // a rank that failed to set up must not leave the others waiting in the first step's sums
    if (run.comm.max_host && rt_comm_agree(&run.comm, rc != 0, NULL, &err) && rc == 0) rc = -1;
    if (rc == 0) rc = train_loop(&run, &err);
    if (rc == -2) {
        rt_cli_error(argv[0], err.msg); // a distill config that cannot work: a usage error
        rc = 2;
    } else if (rc) {
        rt_cli_error(argv[0], err.msg);
        rc = 1;
    }
    if (run.distill) rt_distill_free(&run);
    cleanup(&run);
    if (rc == 0 && run.stopped_by) rc = RT_EXIT_CHECKPOINTED;
    return rc;
}
