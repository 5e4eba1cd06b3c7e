// retort inspect FILE [--json]: what a checkpoint or a dataset holds, found by its root format attribute.
// Everything shown comes through the same validating readers training uses, so a file inspect accepts is
// a file training accepts.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "train/checkpoint.h"
#include "commands.h"
#include "data/dataset.h"
#include "base/h5util.h"
#include "data/tokenizer.h"

#define SHOW_DOCS       3
#define SHOW_DOC_TOKENS 200 // text output shortens longer documents

static void print_help(void) {
    printf(
        "usage: retort inspect FILE [--json]\n\n"
        "Shows what a retort checkpoint or dataset holds; the kind is read from the file's format "
        "attribute.\n\n"
        "  checkpoint  format, version, architecture, producer; training state (step, tokens seen, data\n"
        "              position, RNG); tokenizer; the stored config YAML; every tensor with its shape,\n"
        "              element count, L2 norm, min, max and mean |x|; total parameters; optimizer moments\n"
        "  dataset     attributes, document and token counts, token statistics, the first %d documents\n\n"
        "options:\n"
        "  --json      print one JSON object instead of text\n"
        "  -h, --help  this help\n\n"
        "exit status: 0 shown, 1 the file is missing, damaged or not a retort file, 2 usage error\n",
        SHOW_DOCS);
}

// ---------------------------------------------------------------------------------------------------
// JSON output helpers

// A JSON string. Invalid UTF-8 (datasets may hold any bytes) becomes U+FFFD so the output stays valid JSON.
static void json_str(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            if (c == '\n')
                printf("\\n");
            else if (c == '\t')
                printf("\\t");
            else if (c == '\r')
                printf("\\r");
            else
                printf("\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            putchar(c);
            i++;
        } else {
            size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            size_t k = 1;
            while (len && k < len && i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80) k++;
            if (len && k == len) {
                fwrite(s + i, 1, len, stdout);
                i += len;
            } else {
                printf("\\ufffd");
                i++;
            }
        }
    }
    putchar('"');
}

static void json_cstr(const char *s) {
    json_str(s ? s : "", s ? strlen(s) : 0);
}

static void json_num(double x) {
    if (isfinite(x))
        printf("%.9g", x);
    else
        printf("null");
}

// ---------------------------------------------------------------------------------------------------
// checkpoints

typedef struct tensor_stats {
    size_t n, nonfinite;
    double l2, min, max, mean_abs;
} tensor_stats;

static size_t elements(const rt_named_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d]; // shapes were validated by the reader
    return n;
}

static tensor_stats stats_of(const rt_named_tensor *t) {
    tensor_stats s = {elements(t), 0, 0, INFINITY, -INFINITY, 0};
    double ss = 0, abs_sum = 0;
    for (size_t i = 0; i < s.n; i++) {
        double x = t->data[i];
        if (!isfinite(x)) {
            s.nonfinite++;
            continue;
        }
        ss += x * x;
        abs_sum += fabs(x);
        s.min = x < s.min ? x : s.min;
        s.max = x > s.max ? x : s.max;
    }
    s.l2 = sqrt(ss);
    s.mean_abs = s.n > s.nonfinite ? abs_sum / (double)(s.n - s.nonfinite) : 0;
    if (s.n == s.nonfinite) s.min = s.max = NAN;
    return s;
}

static void shape_text(const rt_named_tensor *t, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

static size_t moment_elements(const rt_ckpt *c) {
    size_t n = 0;
    for (int i = 0; i < c->n_optim; i++) n += elements(&c->adam_m[i]);
    return n;
}

static void ckpt_text(const char *path, const rt_ckpt *c, long long version, const char *producer) {
    const rt_train_state *s = &c->state;
    printf("%s: retort checkpoint\n", path);
    printf("  format        %s, version %lld\n  architecture  %s\n  producer      %s\n\n", RT_CKPT_FORMAT,
           version, c->architecture, producer);
    printf("state\n  step %lld, tokens seen %lld, data epoch %lld index %lld, world size %lld\n",
           (long long)s->step, (long long)s->tokens_seen, (long long)s->data_epoch, (long long)s->data_index,
           (long long)s->world_size);
    printf("  rng %016llx %016llx %016llx %016llx\n\n", (unsigned long long)s->rng[0],
           (unsigned long long)s->rng[1], (unsigned long long)s->rng[2], (unsigned long long)s->rng[3]);
    printf("tokenizer\n  %s, vocab %d, bos %d, eos %d, pad %d\n", c->tokenizer.type, c->tokenizer.vocab_size,
           c->tokenizer.bos_id, c->tokenizer.eos_id, c->tokenizer.pad_id);
    if (c->tokenizer.bytes)
        printf("  from %s, %zu bytes, hash %s\n", c->tokenizer.format, c->tokenizer.len, c->tokenizer.hash);
    printf("\nconfig\n");
    for (const char *p = c->config_yaml; p && *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  %.*s\n", len, p);
        p += len + (nl ? 1 : 0);
    }
    if (c->n_lora > 0)
        printf("\nadapters (LoRA; the weights are those of the base)\n  base %s\n  base hash %s\n", c->base,
               c->base_hash);
    printf("\ntensors%s\n  %-32s %-14s %10s %11s %11s %11s %11s\n", c->n_lora > 0 ? " (/lora)" : "", "name",
           "shape", "elements", "L2", "min", "max", "mean|x|");
    size_t total = 0;
    for (int i = 0; i < c->n_model + c->n_lora; i++) {
        const rt_named_tensor *t = i < c->n_model ? &c->model[i] : &c->lora[i - c->n_model];
        tensor_stats st = stats_of(t);
        char shape[80];
        shape_text(t, shape, sizeof shape);
        printf("  %-32s %-14s %10zu %11.5g %11.5g %11.5g %11.5g\n", t->name, shape, st.n, st.l2, st.min,
               st.max, st.mean_abs);
        if (st.nonfinite)
            printf("  warning: %s holds %zu non-finite values (left out of the statistics)\n", t->name,
                   st.nonfinite);
        total += st.n;
    }
    printf("  total: %zu parameters in %d tensors (%.2f MiB fp32)\n\n", total, c->n_model + c->n_lora,
           (double)total * 4 / (1 << 20));
    if (c->n_optim) {
        size_t n = moment_elements(c);
        printf("optimizer\n  AdamW moments for %d tensors: %zu elements each in adam_m and adam_v (%.2f MiB "
               "fp32)\n",
               c->n_optim, n, (double)n * 8 / (1 << 20));
    } else {
        printf("optimizer\n  none (a weights-only file: it can be evaluated or exported, not resumed "
               "exactly)\n");
    }
}

static void ckpt_json(const char *path, const rt_ckpt *c, long long version, const char *producer) {
    const rt_train_state *s = &c->state;
    printf("{\"path\": ");
    json_cstr(path);
    printf(", \"kind\": \"checkpoint\", \"format\": \"%s\", \"version\": %lld, \"architecture\": ",
           RT_CKPT_FORMAT, version);
    json_cstr(c->architecture);
    printf(", \"producer\": ");
    json_cstr(producer);
    printf(
        ",\n \"state\": {\"step\": %lld, \"tokens_seen\": %lld, \"data_epoch\": %lld, \"data_index\": %lld, "
        "\"world_size\": %lld, \"rng\": [%llu, %llu, %llu, %llu]},\n",
        (long long)s->step, (long long)s->tokens_seen, (long long)s->data_epoch, (long long)s->data_index,
        (long long)s->world_size, (unsigned long long)s->rng[0], (unsigned long long)s->rng[1],
        (unsigned long long)s->rng[2], (unsigned long long)s->rng[3]);
    printf(" \"tokenizer\": {\"type\": ");
    json_cstr(c->tokenizer.type);
    printf(", \"vocab_size\": %d, \"bos_id\": %d, \"eos_id\": %d, \"pad_id\": %d", c->tokenizer.vocab_size,
           c->tokenizer.bos_id, c->tokenizer.eos_id, c->tokenizer.pad_id);
    if (c->tokenizer.bytes)
        printf(", \"format\": \"%s\", \"hash\": \"%s\", \"source_bytes\": %zu", c->tokenizer.format,
               c->tokenizer.hash, c->tokenizer.len);
    printf("},\n \"config_yaml\": ");
    json_cstr(c->config_yaml);
    if (c->n_lora > 0) {
        printf(",\n \"adapter\": {\"base\": ");
        json_cstr(c->base);
        printf(", \"base_hash\": ");
        json_cstr(c->base_hash);
        printf("}");
    }
    printf(",\n \"tensors\": [");
    size_t total = 0;
    for (int i = 0; i < c->n_model + c->n_lora; i++) {
        const rt_named_tensor *t = i < c->n_model ? &c->model[i] : &c->lora[i - c->n_model];
        tensor_stats st = stats_of(t);
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_cstr(t->name);
        printf(", \"shape\": [");
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("], \"elements\": %zu, \"l2\": ", st.n);
        json_num(st.l2);
        printf(", \"min\": ");
        json_num(st.min);
        printf(", \"max\": ");
        json_num(st.max);
        printf(", \"mean_abs\": ");
        json_num(st.mean_abs);
        printf(", \"nonfinite\": %zu}", st.nonfinite);
        total += st.n;
    }
    size_t m = moment_elements(c);
    printf("],\n \"total_parameters\": %zu,\n \"optimizer\": {\"tensors\": %d, \"elements\": %zu, \"bytes\": "
           "%zu}}\n",
           total, c->n_optim, m, m * 8);
}

static int inspect_checkpoint(const char *path, int json, long long version, const char *producer) {
    rt_ckpt c;
    rt_error err;
    if (rt_ckpt_read(path, 1, &c, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    if (json)
        ckpt_json(path, &c, version, producer);
    else
        ckpt_text(path, &c, version, producer);
    rt_ckpt_free(&c);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// datasets

typedef struct ds_stats {
    int32_t min_id, max_id;
    size_t distinct, bos, eos, pad, other_control;
    int64_t min_len, max_len;
} ds_stats;

static int ds_stats_of(const rt_dataset *ds, ds_stats *s) {
    memset(s, 0, sizeof *s);
    unsigned char *seen = calloc((size_t)ds->vocab_size, 1);
    if (!seen) return -1;
    s->min_id = ds->n_tokens ? ds->tokens[0] : 0;
    s->max_id = s->min_id;
    for (size_t i = 0; i < ds->n_tokens; i++) {
        int32_t id = ds->tokens[i]; // in [0, vocab_size): checked by the loader
        s->min_id = id < s->min_id ? id : s->min_id;
        s->max_id = id > s->max_id ? id : s->max_id;
        if (!seen[id]) seen[id] = 1, s->distinct++;
        if (id == RT_TOK_BOS)
            s->bos++;
        else if (id == RT_TOK_EOS)
            s->eos++;
        else if (id == RT_TOK_PAD)
            s->pad++;
        else if (id >= 256)
            s->other_control++;
    }
    free(seen);
    s->min_len = INT64_MAX;
    for (size_t d = 0; d < ds->n_docs; d++) {
        int64_t len = ds->doc_offsets[d + 1] - ds->doc_offsets[d];
        s->min_len = len < s->min_len ? len : s->min_len;
        s->max_len = len > s->max_len ? len : s->max_len;
    }
    return 0;
}

// Byte datasets show their text; others their ids (the tokenizer is not in the dataset, only its hash).
static void print_doc_text(const rt_dataset *ds, size_t d) {
    int64_t a = ds->doc_offsets[d], b = ds->doc_offsets[d + 1];
    int byte = strcmp(ds->tokenizer, "byte") == 0;
    printf("  [%zu] %lld tokens: ", d, (long long)(b - a));
    char buf[16];
    for (int64_t i = a; i < b && i < a + SHOW_DOC_TOKENS; i++) {
        if (ds->prompt_len && i == a + 1 + ds->prompt_len[d]) printf(" | ");
        if (byte)
            printf("%s", rt_tok_piece(ds->tokens[i], buf));
        else
            printf("%s%d", i > a ? " " : "", ds->tokens[i]);
    }
    printf("%s\n", b - a > SHOW_DOC_TOKENS ? " ..." : "");
}

// Decoded bytes of ids [a, b) as a JSON string; for a dataset of another tokenizer, the ids as an array.
static int json_decoded(const rt_dataset *ds, int64_t a, int64_t b) {
    const int32_t *ids = ds->tokens;
    if (strcmp(ds->tokenizer, "byte") != 0) {
        printf("[");
        for (int64_t i = a; i < b; i++) printf("%s%d", i > a ? ", " : "", ids[i]);
        printf("]");
        return 0;
    }
    size_t n = b > a ? (size_t)(b - a) : 0;
    char *text = malloc(n + 1);
    if (!text) return -1;
    size_t len = rt_tok_decode(ids + a, n, text);
    json_str(text, len);
    free(text);
    return 0;
}

static int ds_json(const char *path, const rt_dataset *ds, const ds_stats *s, long long version) {
    printf("{\"path\": ");
    json_cstr(path);
    printf(", \"kind\": \"dataset\", \"format\": \"%s\", \"version\": %lld, \"tokenizer\": \"%s\", "
           "\"tokenizer_hash\": \"%s\", \"vocab_size\": %d, \"task\": ",
           RT_DATASET_FORMAT, version, ds->tokenizer, ds->tokenizer_hash, ds->vocab_size);
    json_cstr(ds->task);
    printf(", \"split\": ");
    json_cstr(ds->split);
    printf(", \"seed\": %lld, \"source\": ", (long long)ds->seed);
    json_cstr(ds->source);
    if (ds->teacher[0]) {
        printf(", \"teacher\": ");
        json_cstr(ds->teacher);
        printf(", \"teacher_hash\": \"%s\", \"teacher_vocab_size\": %d", ds->teacher_hash,
               ds->teacher_vocab_size);
    }
    if (ds->topk.k) {
        printf(", \"topk_k\": %d, \"topk_temperature\": ", ds->topk.k);
        json_num(ds->topk.temperature);
        printf(", \"topk_rows\": %zu", ds->topk.n_rows);
    }
    printf(",\n \"n_docs\": %zu, \"n_tokens\": %zu, \"has_prompt_len\": %s,\n", ds->n_docs, ds->n_tokens,
           ds->prompt_len ? "true" : "false");
    printf(" \"token_stats\": {\"min_id\": %d, \"max_id\": %d, \"distinct_ids\": %zu, \"bos\": %zu, \"eos\": "
           "%zu, "
           "\"pad\": %zu, \"other_control\": %zu, \"min_doc_len\": %lld, \"max_doc_len\": %lld, "
           "\"mean_doc_len\": ",
           s->min_id, s->max_id, s->distinct, s->bos, s->eos, s->pad, s->other_control, (long long)s->min_len,
           (long long)s->max_len);
    json_num((double)ds->n_tokens / (double)ds->n_docs);
    printf("},\n \"documents\": [");
    for (size_t d = 0; d < ds->n_docs && d < SHOW_DOCS; d++) {
        int64_t a = ds->doc_offsets[d], b = ds->doc_offsets[d + 1];
        printf("%s\n  {\"index\": %zu, \"tokens\": %lld, \"text\": ", d ? "," : "", d, (long long)(b - a));
        if (json_decoded(ds, a, b)) return -1;
        if (ds->prompt_len) {
            int64_t cut = a + 1 + ds->prompt_len[d]; // BOS, then the prompt
            printf(", \"prompt\": ");
            if (json_decoded(ds, a, cut)) return -1;
            printf(", \"answer\": ");
            if (json_decoded(ds, cut, b)) return -1;
        }
        printf("}");
    }
    printf("]}\n");
    return 0;
}

static void ds_text(const char *path, const rt_dataset *ds, const ds_stats *s, long long version) {
    printf("%s: retort dataset\n", path);
    printf(
        "  format      %s, version %lld\n  tokenizer   %s%s%s, vocab %d\n  task        %s\n  split       %s\n"
        "  seed        %lld\n  source      %s\n\n",
        RT_DATASET_FORMAT, version, ds->tokenizer, ds->tokenizer_hash[0] ? " hash " : "", ds->tokenizer_hash,
        ds->vocab_size, ds->task, ds->split, (long long)ds->seed, ds->source);
    if (ds->teacher[0])
        printf("teacher\n  %s (hash %s, vocab %d)\n%s", ds->teacher, ds->teacher_hash, ds->teacher_vocab_size,
               ds->topk.k ? "" : "\n");
    if (ds->topk.k)
        printf("  top-%d log-probs at temperature %g for each of %zu answer positions\n\n", ds->topk.k,
               ds->topk.temperature, ds->topk.n_rows);
    printf("counts\n  %zu documents, %zu tokens%s\n  document length: min %lld, mean %.1f, max %lld\n\n",
           ds->n_docs, ds->n_tokens, ds->prompt_len ? ", each split into prompt and answer" : "",
           (long long)s->min_len, (double)ds->n_tokens / (double)ds->n_docs, (long long)s->max_len);
    printf("tokens\n  ids %d..%d, %zu distinct; bos %zu, eos %zu, pad %zu, other control ids %zu\n\n",
           s->min_id, s->max_id, s->distinct, s->bos, s->eos, s->pad, s->other_control);
    printf("first documents%s\n", ds->prompt_len ? " (prompt | answer)" : "");
    for (size_t d = 0; d < ds->n_docs && d < SHOW_DOCS; d++) print_doc_text(ds, d);
}

static int inspect_dataset(const char *path, int json, long long version) {
    rt_dataset ds;
    rt_error err;
    if (rt_dataset_load(&ds, path, 0, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    ds_stats s;
    int rc = ds_stats_of(&ds, &s);
    if (rc == 0 && json)
        rc = ds_json(path, &ds, &s, version);
    else if (rc == 0)
        ds_text(path, &ds, &s, version);
    if (rc) rt_cli_error("inspect", "out of memory");
    rt_dataset_free(&ds);
    return rc ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------

// Root attributes that say what the file is: format (required), version and producer (shown).
static int read_kind(const char *path, char **format, long long *version, char *producer, size_t cap,
                     rt_error *err) {
    hid_t f = rt_h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = 0;
    if (rt_h5_attr_exists(f, "format") == 0)
        rc = rt_fail(err, "%s: not a retort checkpoint or dataset: the file has no 'format' attribute", path);
    else
        rc = rt_h5_attr_read_str(f, "format", format, path, "the file", err);
    int64_t v = 0;
    if (rc == 0 && rt_h5_attr_exists(f, "version") == 1 &&
        rt_h5_attr_read_i64(f, "version", &v, path, "the file", err))
        rc = -1;
    *version = (long long)v;
    char *p = NULL;
    snprintf(producer, cap, "(not recorded)");
    if (rc == 0 && rt_h5_attr_exists(f, "producer") == 1 &&
        rt_h5_attr_read_str(f, "producer", &p, path, "the file", err) == 0)
        snprintf(producer, cap, "%s", p);
    free(p);
    H5Fclose(f);
    return rc;
}

int rt_cmd_inspect(int argc, char **argv) {
    if (rt_arg_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        char msg[512];
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            snprintf(msg, sizeof msg, "unknown option '%s' (usage: retort inspect FILE [--json])", argv[i]);
            rt_cli_error("inspect", msg);
            return 2;
        } else if (path) {
            snprintf(msg, sizeof msg,
                     "expected one file, got '%s' and '%s' (usage: retort inspect FILE [--json])", path,
                     argv[i]);
            rt_cli_error("inspect", msg);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        rt_cli_error("inspect", "expected a file (usage: retort inspect FILE [--json])");
        return 2;
    }
    char magic[4] = {0};
    FILE *probe = fopen(path, "rb");
    if (probe) {
        size_t got = fread(magic, 1, 4, probe);
        fclose(probe);
        if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return rt_inspect_gguf(path, json);
    }
    rt_error err;
    char *format = NULL, producer[256];
    long long version = 0;
    if (read_kind(path, &format, &version, producer, sizeof producer, &err)) {
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    int is_ckpt = strcmp(format, RT_CKPT_FORMAT) == 0, is_data = strcmp(format, RT_DATASET_FORMAT) == 0;
    if (!is_ckpt && !is_data) {
        rt_fail(&err, "%s: unknown format attribute '%.64s' (expected %s or %s)", path, format,
                RT_CKPT_FORMAT, RT_DATASET_FORMAT);
        free(format);
        rt_cli_error("inspect", err.msg);
        return 1;
    }
    free(format);
    fflush(stdout);
    return is_ckpt ? inspect_checkpoint(path, json, version, producer) : inspect_dataset(path, json, version);
}
