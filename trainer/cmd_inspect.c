// retort inspect FILE: what a checkpoint or a dataset holds.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "commands.h"
#include "dataset.h"
#include "h5util.h"
#include "tokenizer.h"

static void print_help(void) {
    printf("usage: retort inspect FILE\n\n"
           "Prints what a retort checkpoint holds (format, training state, tokenizer, the stored config, every\n"
           "tensor with its shape, L2 norm, min, max and mean |x|) or a dataset (attributes, sizes, the first\n"
           "documents).\n");
}

static void tensor_line(const rt_named_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    double ss = 0, abs_sum = 0;
    float mn = n ? t->data[0] : 0, mx = mn;
    for (size_t i = 0; i < n; i++) {
        float x = t->data[i];
        ss += (double)x * x;
        abs_sum += fabs(x);
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    char shape[64];
    if (t->ndim == 1) snprintf(shape, sizeof shape, "[%lld]", (long long)t->shape[0]);
    else snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)t->shape[0], (long long)t->shape[1]);
    printf("  %-28s %-14s %10zu %10.4f %10.4f %10.4f %10.5f\n", t->name, shape, n, sqrt(ss), mn, mx,
           n ? abs_sum / (double)n : 0.0);
}

static int inspect_checkpoint(const char *path) {
    rt_ckpt c;
    rt_error err;
    if (rt_ckpt_read(path, 1, &c, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    printf("%s: retort checkpoint, architecture %s\n", path, c.architecture);
    printf("state: step %lld, %lld tokens seen, data epoch %lld index %lld, world size %lld\n", (long long)c.state.step,
           (long long)c.state.tokens_seen, (long long)c.state.data_epoch, (long long)c.state.data_index,
           (long long)c.state.world_size);
    printf("tokenizer: %s, vocab %d, bos %d, eos %d, pad %d\n", c.tokenizer.type, c.tokenizer.vocab_size,
           c.tokenizer.bos_id, c.tokenizer.eos_id, c.tokenizer.pad_id);
    printf("optimizer state: %s\n\nconfig:\n", c.n_optim ? "AdamW moments for every tensor" : "none (weights only)");
    for (const char *p = c.config_yaml; p && *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  %.*s\n", len, p);
        p += len + (nl ? 1 : 0);
    }
    printf("\ntensors:\n  %-28s %-14s %10s %10s %10s %10s %10s\n", "name", "shape", "elements", "L2", "min", "max",
           "mean|x|");
    size_t total = 0;
    for (int i = 0; i < c.n_model; i++) {
        tensor_line(&c.model[i]);
        size_t n = 1;
        for (int d = 0; d < c.model[i].ndim; d++) n *= (size_t)c.model[i].shape[d];
        total += n;
    }
    printf("total: %zu parameters in %d tensors\n", total, c.n_model);
    rt_ckpt_free(&c);
    return 0;
}

static void print_doc(const rt_dataset *ds, size_t d) {
    int64_t a = ds->doc_offsets[d], b = ds->doc_offsets[d + 1];
    printf("  [%zu] ", d);
    char buf[16];
    for (int64_t i = a; i < b && i < a + 200; i++) {
        if (ds->prompt_len && i == a + 1 + ds->prompt_len[d]) printf(" | ");
        printf("%s", rt_tok_piece(ds->tokens[i], buf));
    }
    printf("%s\n", b - a > 200 ? " ..." : "");
}

static int inspect_dataset(const char *path) {
    rt_dataset ds;
    rt_error err;
    if (rt_dataset_load(&ds, path, 0, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    printf("%s: retort dataset\n", path);
    printf("task %s, split %s, seed %lld, tokenizer byte, vocab %d\nsource: %s\n", ds.task, ds.split, (long long)ds.seed,
           ds.vocab_size, ds.source);
    printf("%zu documents, %zu tokens (mean %.1f per document)%s\n", ds.n_docs, ds.n_tokens,
           (double)ds.n_tokens / (double)ds.n_docs, ds.prompt_len ? ", with prompt/answer split" : "");
    printf("first documents%s:\n", ds.prompt_len ? " (prompt | answer)" : "");
    for (size_t d = 0; d < ds.n_docs && d < 3; d++) print_doc(&ds, d);
    rt_dataset_free(&ds);
    return 0;
}

int rt_cmd_inspect(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    if (argc != 2) {
        rt_cli_error("inspect", "expected one file (usage: retort inspect FILE)");
        return 2;
    }
    const char *path = argv[1];
    rt_error err;
    hid_t f = rt_h5_open_read(path, &err);
    if (f < 0) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    char *format = NULL;
    int rc = rt_h5_attr_read_str(f, "format", &format, path, "the file", &err);
    H5Fclose(f);
    if (rc) {
        rt_fail_wrap(&err, "not a retort checkpoint or dataset");
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    int is_ckpt = strcmp(format, RT_CKPT_FORMAT) == 0, is_data = strcmp(format, RT_DATASET_FORMAT) == 0;
    free(format);
    if (is_ckpt) return inspect_checkpoint(path);
    if (is_data) return inspect_dataset(path);
    rt_fail(&err, "%s: unknown format attribute (expected %s or %s)", path, RT_CKPT_FORMAT, RT_DATASET_FORMAT);
    rt_cli_error("inspect", err.msg);
    return 1;
}
