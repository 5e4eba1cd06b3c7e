// retort data synth|text|tasks: make datasets.
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "data/dataset.h"
#include "data/tasks.h"
#include "data/text_import.h"
#include "tokenizer/tokenizer_source.h"

static void print_help(void) {
    printf("usage: retort data <synth|text|tasks> [options]\n\n"
           "  retort data synth --task NAME --n N --out FILE [--split train|val] [--seed S]\n"
           "      N problems of a synthetic task with exact answers; the val split holds problems the train\n"
           "      split never contains (chosen by a hash of the prompt)\n"
           "  retort data text --in FILE --out FILE [--format lines|blank|whole|jsonl] [--tokenizer SOURCE]\n"
           "                   [--vocab-size V]\n"
           "      a text file as documents: one per line (lines, the default), separated by blank lines\n"
           "      (blank), the whole file (whole), or JSONL objects with \"text\" or \"prompt\" + "
           "\"completion\"\n"
           "      --tokenizer: a tokenizer.json, a Hugging Face folder, a GGUF file or a checkpoint (its\n"
           "      tokenizer); default the byte tokenizer. The dataset records it; training checks it\n"
           "  retort data tasks\n"
           "      the synthetic tasks\n\n"
           "tasks:\n");
    rt_task_list(stdout);
}

static void summary(const char *path) {
    rt_dataset ds;
    rt_error err;
    if (rt_dataset_load(&ds, path, 0, &err)) return;
    printf("wrote %s: %zu documents, %zu tokens (task %s, split %s, tokenizer %s%s%s)\n", path, ds.n_docs,
           ds.n_tokens, ds.task, ds.split, ds.tokenizer, ds.tokenizer_hash[0] ? " " : "", ds.tokenizer_hash);
    rt_dataset_free(&ds);
}

static int cmd_synth(int argc, char **argv) {
    rt_error err = {{0}};
    const char *task = NULL, *out = NULL, *split = "train", *v = NULL;
    int64_t n = 0, seed = 1;
    for (int i = 1; i < argc;) {
        int got;
        if ((got = rt_arg_value(argc, argv, &i, "--task", &task, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--split", &split, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--n", &v, &err))) {
            if (got > 0 && rt_arg_int("--n", v, 1, (int64_t)1 << 32, &n, &err)) got = -1;
        } else if ((got = rt_arg_value(argc, argv, &i, "--seed", &v, &err))) {
            if (got > 0 && rt_arg_int("--seed", v, 0, INT64_MAX, &seed, &err)) got = -1;
        } else {
            rt_fail(&err, "unexpected argument %s (see retort data --help)", argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error("data synth", err.msg);
            return 2;
        }
    }
    if (!task || !out || n == 0) {
        rt_cli_error("data synth", "--task, --n and --out are required (see retort data --help)");
        return 2;
    }
    if (strcmp(split, "train") && strcmp(split, "val")) {
        rt_fail(&err, "--split must be train or val, got '%s'", split);
        rt_cli_error("data synth", err.msg);
        return 2;
    }
    if (rt_task_write(task, (size_t)n, split, (uint64_t)seed, out, &err)) {
        rt_cli_error("data synth", err.msg);
        return strncmp(err.msg, "unknown task", 12) == 0 ? 2 : 1;
    }
    summary(out);
    return 0;
}

static int cmd_text(int argc, char **argv) {
    rt_error err = {{0}};
    const char *in = NULL, *out = NULL, *format = "lines", *v = NULL, *tokenizer = "";
    int64_t vocab = 0;
    for (int i = 1; i < argc;) {
        int got;
        if ((got = rt_arg_value(argc, argv, &i, "--in", &in, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--out", &out, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--format", &format, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--tokenizer", &tokenizer, &err))) {
        } else if ((got = rt_arg_value(argc, argv, &i, "--vocab-size", &v, &err))) {
            if (got > 0 && rt_arg_int("--vocab-size", v, 259, 1 << 24, &vocab, &err)) got = -1;
        } else {
            rt_fail(&err, "unexpected argument %s (see retort data --help)", argv[i]);
            got = -1;
        }
        if (got < 0) {
            rt_cli_error("data text", err.msg);
            return 2;
        }
    }
    if (!in || !out) {
        rt_cli_error("data text", "--in and --out are required (see retort data --help)");
        return 2;
    }
    if (strcmp(format, "lines") && strcmp(format, "blank") && strcmp(format, "whole") &&
        strcmp(format, "jsonl")) {
        rt_fail(&err, "--format must be lines, blank, whole or jsonl, got '%s'", format);
        rt_cli_error("data text", err.msg);
        return 2;
    }
    rt_tok_source src;
    rt_tokenizer *tok = NULL;
    if (rt_tok_source_load(tokenizer, &src, &tok, &err)) {
        rt_cli_error("data text", err.msg);
        return 1;
    }
    int need = strcmp(src.type, "byte") == 0 ? 259 : src.vocab_size;
    if (vocab == 0) vocab = need;
    int rc = 0;
    if (vocab < need) {
        rt_fail(&err, "--vocab-size %lld is smaller than the tokenizer's %d ids", (long long)vocab, need);
        rc = 2;
    } else if (rt_data_text_write(in, format, out, (int)vocab, tok, &src, &err)) {
        rc = 1;
    }
    rt_tokenizer_free(tok);
    rt_tok_source_free(&src);
    if (rc) {
        rt_cli_error("data text", err.msg);
        return rc;
    }
    summary(out);
    return 0;
}

int rt_cmd_data(int argc, char **argv) {
    if (argc < 2 || rt_arg_wants_help(argc, argv)) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    if (strcmp(argv[1], "text") == 0) return cmd_text(argc - 1, argv + 1);
    if (strcmp(argv[1], "tasks") == 0) {
        rt_task_list(stdout);
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "unknown subcommand '%s' (synth, text or tasks)", argv[1]);
    rt_cli_error("data", msg);
    return 2;
}
