// retort eval CHECKPOINT... [--data FILE] [--task NAME] [--teacher CKPT | --compare] [--limit N] [--json]
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "eval_report.h"
#include "data/dataset.h"
#include "infer/evaluate.h"
#include "infer/load.h"
#include "data/tasks.h"
#include "tokenizer/tokenizer_source.h"

static void print_help(void) {
    printf(
        "usage: retort eval CHECKPOINT [CHECKPOINT ...] [--data FILE] [--task NAME] [options]\n\n"
        "Reports next-token loss and perplexity on a dataset; for a task set also the loss on the answers\n"
        "alone and exact-match accuracy (task sets come from `retort data synth`; a greedy answer must\n"
        "equal the stored one, EOS included).\n"
        "With a teacher it also reports, per checkpoint, KL(teacher || student) over every position of the\n"
        "data and how often both rank the same token first; every row has the parameters, the checkpoint's\n"
        "size, the memory the model holds for a batch and its forward throughput.\n"
        "  --data FILE      dataset to evaluate on\n"
        "  --task NAME      exact-match on task NAME: with --data the dataset must be of that task; without\n"
        "                   it, a held-out (val) set of --limit problems is generated on the fly\n"
        "  --limit N        at most N task problems (default: all of --data; 500 generated)\n"
        "  --seed S         seed of a generated task set (default 1)\n"
        "  --batch B        sequences per forward pass (default 16)\n"
        "  --teacher CKPT   measure KL and top-1 agreement of every checkpoint against this teacher\n"
        "  --compare        the first checkpoint is the teacher, the others its students: adds a report of\n"
        "                   each student against it (accuracy retained, inference time and memory saved)\n"
        "  --json           print the results as JSON instead of a table\n"
        "  --device D       cpu, cuda or auto (default cpu)\n"
        "  --threads N      CPU threads, 0 = all cores (default 0)\n");
}

// Evaluates one checkpoint into row; teacher (may be NULL) is the model KL and agreement are measured
// against.
// The checkpoint's tokenizer must be the one the data was made with (and the teacher's, whose distributions
// are compared id by id). Synthetic tasks are byte-level.
static int check_tokenizer(const char *ckpt, const rt_dataset *ds, const rt_tok_source *teacher_tok,
                           rt_error *err) {
    rt_tok_source t;
    if (rt_tok_source_from_checkpoint(ckpt, &t, err)) return -1;
    int rc = 0;
    char a[64], b[64];
    if (strcmp(ds->task, "text") != 0 && strcmp(t.type, "byte") != 0)
        rc =
            rt_fail(err,
                    "%s: task '%s' is byte-level (synthetic tasks are made with the byte tokenizer), but the "
                    "model's tokenizer is %s: evaluate it on a dataset made with `retort data text "
                    "--tokenizer %s`",
                    ckpt, ds->task, rt_tok_describe(t.type, t.hash, a), ckpt);
    if (rc == 0) rc = rt_dataset_check_tokenizer(ds, t.type, t.hash, "--data", err);
    if (rc == 0 && teacher_tok && !rt_tok_source_same(&t, teacher_tok))
        rc = rt_fail(
            err, "%s has the tokenizer %s, the teacher %s: comparing distributions needs the same one", ckpt,
            rt_tok_describe(t.type, t.hash, a), rt_tok_describe(teacher_tok->type, teacher_tok->hash, b));
    rt_tok_source_free(&t);
    return rc;
}

static int eval_one(const char *ckpt, rt_ctx *ctx, const rt_dataset *ds, int B, int64_t limit,
                    rt_model *teacher, const rt_tok_source *teacher_tok, eval_row *row, rt_error *err) {
    rt_model m;
    rt_config cfg;
    memset(row, 0, sizeof *row);
    if (check_tokenizer(ckpt, ds, teacher ? teacher_tok : NULL, err)) return -1;
    row->ckpt = ckpt;
    struct stat st;
    if (stat(ckpt, &st) == 0) row->file_bytes = (int64_t)st.st_size;
    if (rt_load_model(ckpt, ctx, B, 0, &m, &cfg, err)) return -1;
    row->params = rt_model_param_count(&m);
    row->memory_bytes = (int64_t)(m.memory.parameters + m.memory.activations);
    int rc = 0;
    if (ds->vocab_size > m.dims.V)
        rc = rt_fail(err, "%s: dataset vocabulary %d is larger than the model's %d", ds->path, ds->vocab_size,
                     m.dims.V);
    int T = cfg.data.seq_len <= m.T_max_batch ? cfg.data.seq_len : m.T_max_batch;
    double t0 = rt_now();
    if (rc == 0) rc = rt_eval_loss(&m, ds, NULL, B, T, 0, &row->loss, &row->tokens, err);
    double dt = rt_now() - t0;
    row->tokens_per_s = dt > 0 ? (double)row->tokens / dt : 0.0;
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
    if (rc == 0 && teacher) {
        int Tt = T <= teacher->T_max_batch ? T : teacher->T_max_batch;
        rc = rt_eval_vs_teacher(&m, teacher, ds, B, Tt, 0, &row->kl, &row->top1_agree, &row->kl_positions,
                                err);
        if (rc) rt_fail_wrap(err, "%s against the teacher", ckpt);
        row->has_teacher = 1;
    }
    rt_model_free(&m);
    return rc;
}

int rt_cmd_eval(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    rt_error err = {{0}};
    const char *data = NULL, *task = NULL, *device = "cpu", *v = NULL, *teacher_path = NULL;
    const char **ckpts = calloc((size_t)argc, sizeof *ckpts);
    int n_ckpts = 0, json = 0, compare = 0;
    int64_t limit = 0, seed = 1, batch = 16, threads = 0;
    if (!ckpts) return 1;
    for (int i = 1; i < argc;) {
        int got = 0;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            i++;
        } else if (strcmp(argv[i], "--compare") == 0) {
            compare = 1;
            i++;
        } else if ((got = rt_arg_value(argc, argv, &i, "--teacher", &teacher_path, &err))) {
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
    if (n_ckpts == 0 || (!data && !task) || (compare && n_ckpts < 2) || (compare && teacher_path)) {
        rt_cli_error("eval", n_ckpts == 0 ? "no checkpoint given (usage: retort eval CHECKPOINT --data FILE)"
                             : compare && teacher_path
                                 ? "--compare takes the teacher as its first checkpoint, not --teacher"
                             : compare ? "--compare needs the teacher and at least one student: "
                                         "retort eval --compare TEACHER STUDENT... --task NAME"
                                       : "give --data FILE or --task NAME");
        free(ckpts);
        return 2;
    }
    if (compare) teacher_path = ckpts[0];
    char tmp_path[256] = "";
    rt_dataset ds;
    memset(&ds, 0, sizeof ds);
    int rc = 0;
    if (!data) {
        // a held-out problem set of the task, generated deterministically from --seed
        snprintf(tmp_path, sizeof tmp_path, "/tmp/retort-eval-%ld.h5", (long)getpid());
        if (rt_task_write(task, (size_t)(limit > 0 ? limit : 500), "val", (uint64_t)seed, tmp_path, &err))
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
        if (rt_ctx_init_device(&ctx, device, "fp32", (int)threads, 0, &err))
            rc = 1;
        else
            ctx_ok = 1;
    }
    rt_model teacher;
    rt_tok_source teacher_tok;
    memset(&teacher_tok, 0, sizeof teacher_tok);
    int have_teacher = 0;
    if (rc == 0 && teacher_path) {
        rt_config tcfg;
        if (rt_tok_source_from_checkpoint(teacher_path, &teacher_tok, &err)) {
            rt_fail_wrap(&err, "--teacher");
            rc = 1;
        } else if (rt_load_model(teacher_path, &ctx, (int)batch, 0, &teacher, &tcfg, &err)) {
            rt_fail_wrap(&err, "--teacher");
            rc = 1;
        } else {
            have_teacher = 1;
        }
    }
    eval_row *rows = rc == 0 ? calloc((size_t)n_ckpts, sizeof *rows) : NULL;
    for (int i = 0; rc == 0 && i < n_ckpts; i++) {
        if (!rows || eval_one(ckpts[i], &ctx, &ds, (int)batch, limit, have_teacher ? &teacher : NULL,
                              &teacher_tok, &rows[i], &err))
            rc = 1;
    }
    if (have_teacher) rt_model_free(&teacher);
    rt_tok_source_free(&teacher_tok);
    if (rc == 0)
        rt_eval_print(rows, n_ckpts, &ds, json, compare);
    else
        rt_cli_error("eval", err.msg);
    free(rows);
    if (ctx_ok) ctx.be->ctx_free(&ctx);
    if (ds.tokens) rt_dataset_free(&ds);
    if (tmp_path[0]) unlink(tmp_path);
    free(ckpts);
    return rc;
}
