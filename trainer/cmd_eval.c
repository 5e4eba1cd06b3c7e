// retort eval CHECKPOINT... [--data FILE] [--task NAME] [--limit N] [--json]
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "commands.h"
#include "dataset.h"
#include "generate.h"
#include "runtime.h"
#include "synth.h"

static void print_help(void) {
    printf(
        "usage: retort eval CHECKPOINT [CHECKPOINT ...] [--data FILE] [--task NAME] [options]\n\n"
        "Reports next-token loss and perplexity on a dataset; for a task set also the loss on the answers\n"
        "alone and exact-match accuracy (task sets come from `retort data synth`; a greedy answer must\n"
        "equal the stored one, EOS included).\n"
        "  --data FILE      dataset to evaluate on\n"
        "  --task NAME      exact-match on task NAME: with --data the dataset must be of that task; without\n"
        "                   it, a held-out (val) set of --limit problems is generated on the fly\n"
        "  --limit N        at most N task problems (default: all of --data; 500 generated)\n"
        "  --seed S         seed of a generated task set (default 1)\n"
        "  --batch B        sequences per forward pass (default 16)\n"
        "  --json           print the results as JSON instead of a table\n"
        "  --device D       cpu, cuda or auto (default cpu)\n"
        "  --threads N      CPU threads, 0 = all cores (default 0)\n");
}

typedef struct eval_row {
    const char *ckpt;
    size_t params;
    double loss;
    int64_t tokens;
    double answer_loss; // over the answer tokens only, for prompt/answer datasets
    int64_t answer_tokens;
    rt_task_result task;
    int has_task;
} eval_row;

static int eval_one(const char *ckpt, rt_ctx *ctx, const rt_dataset *ds, int B, int64_t limit, eval_row *row,
                    rt_error *err) {
    rt_model m;
    rt_config cfg;
    memset(row, 0, sizeof *row);
    row->ckpt = ckpt;
    if (rt_runtime_load_model(ckpt, ctx, B, 0, &m, &cfg, err)) return -1;
    row->params = rt_model_param_count(&m);
    int rc = 0;
    if (ds->vocab_size > m.dims.V)
        rc = rt_fail(err, "%s: dataset vocabulary %d is larger than the model's %d", ds->path, ds->vocab_size,
                     m.dims.V);
    int T = cfg.data.seq_len <= m.T_max_batch ? cfg.data.seq_len : m.T_max_batch;
    if (rc == 0) rc = rt_eval_loss(&m, ds, NULL, B, T, 0, &row->loss, &row->tokens, err);
    if (rc == 0 && ds->prompt_len) {
        uint8_t *mask = NULL;
        rc = rt_dataset_answer_mask(ds, &mask, err);
        if (rc == 0) rc = rt_eval_loss(&m, ds, mask, B, T, 0, &row->answer_loss, &row->answer_tokens, err);
        free(mask);
    }
    if (rc == 0 && ds->prompt_len) {
        rc = rt_eval_task(&m, ds, limit, &row->task, err);
        row->has_task = 1;
    }
    rt_model_free(&m);
    return rc;
}

static void print_rows(const eval_row *rows, int n, const rt_dataset *ds, int json) {
    if (json) {
        printf("[");
        for (int i = 0; i < n; i++) {
            const eval_row *r = &rows[i];
            printf("%s{\"checkpoint\":\"%s\",\"data\":\"%s\",\"params\":%zu,\"loss\":%.6f,\"ppl\":%.6f,"
                   "\"tokens\":%lld",
                   i ? "," : "", r->ckpt, ds->path, r->params, r->loss, exp(r->loss), (long long)r->tokens);
            if (r->has_task)
                printf(",\"answer_loss\":%.6f,\"answer_tokens\":%lld", r->answer_loss,
                       (long long)r->answer_tokens);
            if (r->has_task)
                printf(",\"task\":\"%s\",\"correct\":%lld,\"total\":%lld,\"accuracy\":%.6f", ds->task,
                       (long long)r->task.correct, (long long)r->task.total,
                       r->task.total ? (double)r->task.correct / (double)r->task.total : 0.0);
            printf("}");
        }
        printf("]\n");
        return;
    }
    printf("data: %s (task %s, split %s)\n", ds->path, ds->task, ds->split);
    printf("%-40s %12s %9s %9s %s\n", "checkpoint", "params", "loss", "ppl",
           ds->prompt_len ? "answer-loss exact-match" : "");
    for (int i = 0; i < n; i++) {
        const eval_row *r = &rows[i];
        printf("%-40s %12zu %9.4f %9.3f", r->ckpt, r->params, r->loss, exp(r->loss));
        if (r->has_task) printf(" %11.4f", r->answer_loss);
        if (r->has_task)
            printf(" %6.2f%% (%lld/%lld)", r->task.total ? 100.0 * r->task.correct / r->task.total : 0.0,
                   (long long)r->task.correct, (long long)r->task.total);
        printf("\n");
    }
}

int rt_cmd_eval(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *data = NULL, *task = NULL, *device = "cpu", *v = NULL;
    const char **ckpts = calloc((size_t)argc, sizeof *ckpts);
    int n_ckpts = 0, json = 0;
    int64_t limit = 0, seed = 1, batch = 16, threads = 0;
    if (!ckpts) return 1;
    for (int i = 1; i < argc;) {
        int got = 0;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            i++;
        } else if ((got = rt_arg_value(argc, argv, &i, "--data", &data, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--task", &task, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--device", &device, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--limit", &v, &err))) {
            if (got > 0 && rt_arg_int("--limit", v, 1, INT64_MAX, &limit, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--seed", &v, &err))) {
            if (got > 0 && rt_arg_int("--seed", v, INT64_MIN, INT64_MAX, &seed, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--batch", &v, &err))) {
            if (got > 0 && rt_arg_int("--batch", v, 1, 4096, &batch, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--threads", &v, &err))) {
            if (got > 0 && rt_arg_int("--threads", v, 0, 4096, &threads, &err)) got = -1;
        } else if (argv[i][0] == '-') {
            rt_fail(&err, "unknown option %s (see retort eval --help)", argv[i]);
            got = -1;
        } else {
            ckpts[n_ckpts++] = argv[i++];
        }
        if (got < 0) {
            rt_cli_error("eval", err.msg);
            free(ckpts);
            return 2;
        }
    }
    if (n_ckpts == 0 || (!data && !task)) {
        rt_cli_error("eval", n_ckpts == 0 ? "no checkpoint given (usage: retort eval CHECKPOINT --data FILE)"
                                          : "give --data FILE or --task NAME");
        free(ckpts);
        return 2;
    }
    char tmp_path[256] = "";
    rt_dataset ds;
    memset(&ds, 0, sizeof ds);
    int rc = 0;
    if (!data) {
        // a held-out problem set of the task, generated deterministically from --seed
        snprintf(tmp_path, sizeof tmp_path, "/tmp/retort-eval-%ld.h5", (long)getpid());
        if (rt_synth_write(task, (size_t)(limit > 0 ? limit : 500), "val", (uint64_t)seed, tmp_path, &err))
            rc = 2;
        data = tmp_path;
    }
    if (rc == 0 && rt_dataset_load(&ds, data, 0, &err)) rc = 1;
    if (rc == 0 && task && strcmp(ds.task, task) != 0) {
        rt_fail(&err, "%s holds task '%s', not '%s'", data, ds.task, task);
        rc = 2;
    }
    rt_ctx ctx;
    int ctx_ok = 0;
    if (rc == 0) {
        if (rt_runtime_ctx_init(&ctx, device, "fp32", (int)threads, &err))
            rc = 1;
        else
            ctx_ok = 1;
    }
    eval_row *rows = rc == 0 ? calloc((size_t)n_ckpts, sizeof *rows) : NULL;
    for (int i = 0; rc == 0 && i < n_ckpts; i++) {
        if (!rows || eval_one(ckpts[i], &ctx, &ds, (int)batch, limit, &rows[i], &err)) rc = 1;
    }
    if (rc == 0)
        print_rows(rows, n_ckpts, &ds, json);
    else
        rt_cli_error("eval", err.msg);
    free(rows);
    if (ctx_ok) ctx.be->ctx_free(&ctx);
    if (ds.tokens) rt_dataset_free(&ds);
    if (tmp_path[0]) unlink(tmp_path);
    free(ckpts);
    return rc;
}
