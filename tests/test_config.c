// The config schema, YAML parsing with file:line errors, overrides, validation, the YAML round trip and
// --help.
//
// References independent of the code under test: the defaults are restated here from the design brief and
// read through the struct's field names (not through the schema); round trips are read back by libyaml.
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/common.h"
#include "config/config.h"
#include "testutil.h"

// Parse text as "x.yaml" on top of defaults; returns the status and leaves the message in err.
static int parse(const char *text, rt_config *cfg, rt_error *err) {
    rt_config_defaults(cfg);
    err->msg[0] = '\0';
    return rt_config_load_string(cfg, text, strlen(text), "x.yaml", err);
}

#define EXPECT_ERROR(text, ...)                                                                              \
    do {                                                                                                     \
        rt_config c_;                                                                                        \
        rt_error e_;                                                                                         \
        ck_assert_msg(parse(text, &c_, &e_) != 0, "accepted: %s", text);                                     \
        const char *needles_[] = {__VA_ARGS__};                                                              \
        for (size_t k_ = 0; k_ < sizeof needles_ / sizeof needles_[0]; k_++)                                 \
            ck_assert_msg(strstr(e_.msg, needles_[k_]), "input '%s': message '%s' lacks '%s'", text, e_.msg, \
                          needles_[k_]);                                                                     \
    } while (0)

#define EXPECT_OVERRIDE_ERROR(assign, ...)                                                                   \
    do {                                                                                                     \
        rt_config c_;                                                                                        \
        rt_error e_;                                                                                         \
        rt_config_defaults(&c_);                                                                             \
        ck_assert_msg(rt_config_apply_override(&c_, assign, &e_) != 0, "accepted override %s", assign);      \
        const char *needles_[] = {__VA_ARGS__};                                                              \
        for (size_t k_ = 0; k_ < sizeof needles_ / sizeof needles_[0]; k_++)                                 \
            ck_assert_msg(strstr(e_.msg, needles_[k_]), "override '%s': message '%s' lacks '%s'", assign,    \
                          e_.msg, needles_[k_]);                                                             \
    } while (0)

static const rt_cfg_key *key(const char *path) {
    for (int i = 0; i < rt_config_schema_len; i++)
        if (strcmp(rt_config_schema[i].path, path) == 0) return &rt_config_schema[i];
    ck_abort_msg("no schema row %s", path);
    return NULL;
}

// Field-by-field equality (a memcmp would also compare padding and the bytes after a string's NUL).
static void assert_same_config(const rt_config *a, const rt_config *b, const char *context) {
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        const char *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
        int same = k->type == RT_CFG_STRING || k->type == RT_CFG_ENUM ? strcmp(fa, fb) == 0
                                                                      : memcmp(fa, fb, k->size) == 0;
        if (!same && k->type == RT_CFG_FLOAT)
            ck_abort_msg("%s: %s differs: %.17g vs %.17g", context, k->path, *(const double *)fa,
                         *(const double *)fb);
        ck_assert_msg(same, "%s: %s differs ('%.80s' vs '%.80s' for strings)", context, k->path,
                      k->type >= RT_CFG_STRING ? fa : "", k->type >= RT_CFG_STRING ? fb : "");
    }
}

START_TEST(test_schema_table) {
    static const char *const sections[] = {"run.",        "model.",  "data.",  "train.",
                                           "checkpoint.", "system.", "synth.", "distill.",
                                           "finetune.",   "lora.",   "qlora."};
    ck_assert_int_gt(rt_config_schema_len, 0);
    int last_section = 0;
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        ck_assert_ptr_nonnull(k->path);
        int s = -1;
        for (int j = 0; j < 11; j++)
            if (strncmp(k->path, sections[j], strlen(sections[j])) == 0) s = j;
        ck_assert_msg(s >= last_section, "%s: rows are grouped by section in order", k->path);
        last_section = s;
        ck_assert_msg(strchr(strchr(k->path, '.') + 1, '.') == NULL, "%s: two levels only", k->path);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(k->path, rt_config_schema[j].path) != 0, "%s twice", k->path);
        ck_assert_msg(k->help && strlen(k->help) > 5, "%s: no help", k->path);
        ck_assert_msg(k->dflt != NULL, "%s: no default", k->path);
        ck_assert_msg(k->offset + k->size <= sizeof(rt_config), "%s: outside rt_config", k->path);
        for (int j = 0; j < i; j++) { // no two rows share bytes
            const rt_cfg_key *o = &rt_config_schema[j];
            ck_assert_msg(k->offset >= o->offset + o->size || o->offset >= k->offset + k->size,
                          "%s overlaps %s", k->path, o->path);
        }
        switch (k->type) {
        case RT_CFG_INT:
            ck_assert_msg(k->size == sizeof(int) || k->size == sizeof(int64_t), "%s: size", k->path);
            ck_assert_msg(k->min <= k->max, "%s: empty range", k->path);
            if (k->size == sizeof(int))
                ck_assert_msg(k->min >= INT_MIN && k->max <= INT_MAX, "%s: range", k->path);
            ck_assert_msg(k->max <= 9007199254740992.0, "%s: max beyond what a double holds exactly",
                          k->path);
            break;
        case RT_CFG_FLOAT:
            ck_assert_msg(k->size == sizeof(double) && k->min <= k->max, "%s", k->path);
            break;
        case RT_CFG_BOOL:
            ck_assert_msg(k->size == sizeof(int), "%s", k->path);
            break;
        case RT_CFG_ENUM:
            ck_assert_msg(k->choices && strstr(k->choices, k->dflt), "%s: default not a choice", k->path);
            ck_assert_msg(strlen(k->choices) < k->size, "%s: choices longer than the field", k->path);
            break;
        case RT_CFG_STRING:
            ck_assert_msg(k->size > 1 && strlen(k->dflt) < k->size, "%s", k->path);
            break;
        }
    }
    ck_assert_int_eq(key("system.device")->type, RT_CFG_ENUM);
    ck_assert_str_eq(key("system.device")->choices, "cpu|cuda|auto");
    ck_assert_str_eq(key("system.precision")->choices, "fp32|bf16");
}
END_TEST

// The defaults as the design states them, read through the struct's field names.
static void assert_brief_defaults(const rt_config *c) {
    ck_assert_str_eq(c->run.out_dir, "runs/tiny");
    ck_assert_int_eq(c->run.seed, 1337);
    ck_assert_int_eq(c->run.log_every, 10);
    ck_assert_int_eq(c->model.vocab_size, 259);
    ck_assert_int_eq(c->model.dim, 128);
    ck_assert_int_eq(c->model.n_layers, 4);
    ck_assert_int_eq(c->model.n_heads, 4);
    ck_assert_int_eq(c->model.n_kv_heads, 2);
    ck_assert_int_eq(c->model.ffn_dim, 384);
    ck_assert_int_eq(c->model.max_seq_len, 128);
    ck_assert(c->model.rope_theta == 10000.0);
    ck_assert(c->model.norm_eps == 1e-5);
    ck_assert_int_eq(c->model.tie_embeddings, 1);
    ck_assert(c->model.init_std == 0.02);
    ck_assert_str_eq(c->model.tokenizer, "");
    ck_assert_int_eq(c->model.head_dim, 0);
    ck_assert_int_eq(c->model.attn_bias, 0);
    ck_assert_str_eq(c->model.rope_scaling, "none");
    ck_assert(c->model.rope_factor == 1.0);
    ck_assert(c->model.rope_low_freq_factor == 1.0);
    ck_assert(c->model.rope_high_freq_factor == 4.0);
    ck_assert_int_eq(c->model.rope_original_max_seq_len, 8192);
    ck_assert_str_eq(c->data.train, "data/addpad_train.h5");
    ck_assert_str_eq(c->data.val, "data/addpad_val.h5");
    ck_assert_int_eq(c->data.seq_len, 14);
    ck_assert_str_eq(c->data.loss_on, "all");
    ck_assert_int_eq(c->train.steps, 1500);
    ck_assert_int_eq(c->train.batch_size, 128);
    ck_assert_int_eq(c->train.grad_accum, 1);
    ck_assert(c->train.lr == 4e-3);
    ck_assert(c->train.min_lr == 3e-4);
    ck_assert_int_eq(c->train.warmup_steps, 50);
    ck_assert(c->train.weight_decay == 0.1);
    ck_assert(c->train.beta1 == 0.9);
    ck_assert(c->train.beta2 == 0.95);
    ck_assert(c->train.eps == 1e-8);
    ck_assert(c->train.grad_clip == 1.0);
    ck_assert_int_eq(c->train.eval_every, 250);
    ck_assert_int_eq(c->train.eval_batches, 8);
    ck_assert_int_eq(c->train.skip_nonfinite, 0);
    ck_assert_int_eq(c->train.zero, 0);
    ck_assert_int_eq(c->checkpoint.every, 500);
    ck_assert_int_eq(c->checkpoint.keep, 3);
    ck_assert_str_eq(c->system.device, "cpu");
    ck_assert_str_eq(c->system.precision, "fp32");
    ck_assert_int_eq(c->system.threads, 0);
    ck_assert(c->system.peak_tflops == 0.0);
    ck_assert_str_eq(c->system.dist, "auto");
    ck_assert_str_eq(c->synth.teacher, "runs/teacher/ckpt-latest.h5");
    ck_assert_str_eq(c->synth.prompts, "");
    ck_assert_str_eq(c->synth.task, "addpad");
    ck_assert_int_eq(c->synth.n_prompts, 2000);
    ck_assert_str_eq(c->synth.split, "train");
    ck_assert_int_eq(c->synth.samples, 1);
    ck_assert(c->synth.temperature == 0.0);
    ck_assert(c->synth.top_p == 1.0);
    ck_assert_int_eq(c->synth.top_k, 0);
    ck_assert_int_eq(c->synth.max_tokens, 32);
    ck_assert_str_eq(c->synth.stop, "");
    ck_assert_int_eq(c->synth.topk, 0);
    ck_assert(c->synth.topk_temperature == 1.0);
    ck_assert_str_eq(c->synth.out, "data/synth.h5");
    ck_assert_int_eq(c->synth.batch_size, 32);
    ck_assert_int_eq(c->synth.chunk, 256);
    ck_assert_str_eq(c->distill.mode, "sequence");
    ck_assert_str_eq(c->distill.teacher, "");
    ck_assert_str_eq(c->distill.divergence, "forward_kl");
    ck_assert(c->distill.temperature == 1.0);
    ck_assert(c->distill.alpha == 0.5);
    ck_assert(c->distill.beta == 0.5);
    ck_assert_str_eq(c->distill.topk_tail, "bucket");
    ck_assert_str_eq(c->finetune.base, "");
    ck_assert_str_eq(c->finetune.method, "lora");
    ck_assert_str_eq(c->finetune.adapter, "");
    ck_assert_int_eq(c->lora.rank, 8);
    ck_assert(c->lora.alpha == 16.0);
    ck_assert(c->lora.dropout == 0.0);
    ck_assert_str_eq(c->lora.targets, "q,k,v,o,gate,up,down");
    ck_assert_int_eq(c->lora.rslora, 0);
    ck_assert_str_eq(c->qlora.layers, "targets");
    ck_assert_int_eq(c->qlora.double_quant, 1);
}

START_TEST(test_defaults) {
    rt_config cfg;
    rt_error err;
    memset(&cfg, 0x5a, sizeof cfg);
    rt_config_defaults(&cfg);
    assert_brief_defaults(&cfg);
    ck_assert_int_eq(rt_config_schema_len, 81); // one row per field listed above
    ck_assert_msg(rt_config_validate(&cfg, &err) == 0, "%s", err.msg);
    // every schema default is accepted by its own key, and is in its range
    for (int i = 0; i < rt_config_schema_len; i++) {
        char assign[512];
        snprintf(assign, sizeof assign, "%s=%s", rt_config_schema[i].path, rt_config_schema[i].dflt);
        ck_assert_msg(rt_config_apply_override(&cfg, assign, &err) == 0, "%s: %s", assign, err.msg);
    }
    assert_brief_defaults(&cfg);
}
END_TEST

// Every field set to a random value in its range, with awkward strings (quotes, '#', ': ', line breaks,
// control characters, non-ASCII, YAML's own line separators).
static void random_config(rt_rng *r, rt_config *c) {
    static const char *const pieces[] = {"a",
                                         "Z",
                                         "0",
                                         " ",
                                         "\"",
                                         "\\",
                                         ":",
                                         ": ",
                                         "#",
                                         " #",
                                         "'",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x80\xa8",
                                         "\xc2\x85",
                                         "\xf0\x9f\x98\x80",
                                         "\xef\xbb\xbf",
                                         "-",
                                         "[",
                                         "{",
                                         "&",
                                         "*",
                                         "!",
                                         "%",
                                         "@",
                                         "`",
                                         "~",
                                         "null"};
    rt_config_defaults(c);
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        char *f = (char *)c + k->offset;
        double u = (double)(rt_rng_u64(r) >> 11) * 0x1p-53;
        switch (k->type) {
        case RT_CFG_INT: {
            double span = k->max - k->min;
            int64_t v = rt_rng_below(r, 4) == 0 ? (int64_t)k->max : (int64_t)k->min + (int64_t)(u * span);
            if (k->size == sizeof(int))
                *(int *)f = (int)v;
            else
                *(int64_t *)f = v;
            break;
        }
        case RT_CFG_FLOAT: {
            double v = k->min + u * (k->max - k->min);
            if (k->min > 0 && rt_rng_below(r, 2)) v = exp(log(k->min) + u * (log(k->max) - log(k->min)));
            *(double *)f = fmin(fmax(v, k->min), k->max);
            break;
        }
        case RT_CFG_BOOL:
            *(int *)f = (int)rt_rng_below(r, 2);
            break;
        case RT_CFG_ENUM: {
            const char *p = k->choices;
            for (uint64_t n = rt_rng_below(r, 3); n > 0 && strchr(p, '|'); n--) p = strchr(p, '|') + 1;
            size_t len = strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p);
            memcpy(f, p, len);
            f[len] = '\0';
            break;
        }
        case RT_CFG_STRING: {
            size_t len = 0, want = rt_rng_below(r, 40);
            f[0] = '\0';
            for (size_t n = 0; n < want; n++) {
                const char *p = pieces[rt_rng_below(r, sizeof pieces / sizeof pieces[0])];
                if (len + strlen(p) + 1 > k->size) break;
                memcpy(f + len, p, strlen(p) + 1);
                len += strlen(p);
            }
            break;
        }
        }
    }
}

START_TEST(test_round_trip) {
    rt_rng r;
    rt_rng_seed(&r, 42);
    for (int trial = 0; trial < 500; trial++) {
        rt_config a, b;
        rt_error err;
        random_config(&r, &a);
        char *y = rt_config_to_yaml(&a);
        ck_assert_ptr_nonnull(y);
        rt_config_defaults(&b);
        ck_assert_msg(rt_config_load_string(&b, y, strlen(y), "round-trip", &err) == 0, "%s\n%s", err.msg, y);
        char context[64];
        snprintf(context, sizeof context, "round trip %d", trial);
        assert_same_config(&a, &b, context);
        free(y);
    }
    // the printed form is the short one
    rt_config a;
    rt_config_defaults(&a);
    char *y = rt_config_to_yaml(&a);
    ck_assert_msg(strstr(y, "\n  lr: 0.004\n") && strstr(y, "\n  min_lr: 0.0003\n") &&
                      strstr(y, "norm_eps: 1e-05"),
                  "%s", y);
    ck_assert_msg(strstr(y, "rope_theta: 10000\n") && strstr(y, "grad_clip: 1\n"), "%s", y);
    ck_assert_msg(strstr(y, "train:\n  steps: 1500\n") && strstr(y, "out_dir: \"runs/tiny\""), "%s", y);
    free(y);
}
END_TEST

START_TEST(test_tiny_yaml) {
    char path[2048];
    snprintf(path, sizeof path, "%s/trainer/configs/tiny.yaml", rt_test_env("RT_SOURCE_DIR"));
    rt_rng r;
    rt_rng_seed(&r, 7);
    rt_config a, defaults;
    rt_error err;
    // start from random values: the file must set every key itself
    random_config(&r, &a);
    ck_assert_msg(rt_config_load_file(&a, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_config_validate(&a, &err) == 0, "%s", err.msg);
    rt_config_defaults(&defaults);
    assert_same_config(&a, &defaults, "tiny.yaml");
    assert_brief_defaults(&a);
}
END_TEST

START_TEST(test_values) {
    rt_config c;
    rt_error e;
    ck_assert(parse("train:\n  lr: 3e-4\n  steps: 10\nmodel:\n  tie_embeddings: no\n", &c, &e) == 0);
    ck_assert(c.train.lr == 3e-4 && c.train.steps == 10 && c.model.tie_embeddings == 0);
    for (int i = 0; i < 8; i++) {
        static const char *const forms[] = {"true", "True", "yes", "on", "false", "FALSE", "no", "off"};
        char text[64];
        snprintf(text, sizeof text, "model:\n  tie_embeddings: %s\n", forms[i]);
        ck_assert_msg(parse(text, &c, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(c.model.tie_embeddings, i < 4);
    }
    ck_assert_int_eq(parse("", &c, &e), 0); // empty file: defaults
    ck_assert_int_eq(parse("# only a comment\n", &c, &e), 0);
    ck_assert_int_eq(parse("---\n...\n", &c, &e), 0);
    ck_assert_int_eq(parse("train:\n", &c, &e), 0); // a section without keys
    assert_brief_defaults(&c);
    ck_assert_int_eq(parse("data:\n  val: \"\"\n", &c, &e), 0);
    ck_assert_str_eq(c.data.val, "");
    ck_assert_int_eq(parse("data:\n  val: ~\n", &c, &e), 0); // null string: empty
    ck_assert_str_eq(c.data.val, "");
    ck_assert_int_eq(parse("data:\n  val: \"null\"\n  train: '~'\n", &c, &e), 0); // quoted: literal text
    ck_assert_str_eq(c.data.val, "null");
    ck_assert_str_eq(c.data.train, "~");
    ck_assert_int_eq(parse("run:\n  out_dir: 123\n  seed: \"77\"\n", &c, &e), 0); // plain number as a string
    ck_assert_str_eq(c.run.out_dir, "123");
    ck_assert_int_eq(c.run.seed, 77);
    ck_assert_int_eq(parse("{train: {lr: 0.5, steps: +20}, system: {device: auto, precision: bf16}}", &c, &e),
                     0);
    ck_assert(c.train.lr == 0.5 && c.train.steps == 20);
    ck_assert_str_eq(c.system.precision, "bf16");
    ck_assert_int_eq(
        parse("train:\r\n  lr: 1E-3\r\n  min_lr: &low .0001\r\n  weight_decay: *low\r\n", &c, &e), 0);
    ck_assert(c.train.lr == 1e-3 && c.train.min_lr == 1e-4 && c.train.weight_decay == 1e-4);
    ck_assert_int_eq(parse("train:\n  steps: 9007199254740992\n", &c, &e), 0);
    ck_assert_int_eq(c.train.steps, 9007199254740992LL);
    ck_assert_int_eq(parse("run:\n  out_dir: \"caf\xc3\xa9 #1: \\\"x\\\"\"  # comment\n", &c, &e), 0);
    ck_assert_str_eq(c.run.out_dir, "caf\xc3\xa9 #1: \"x\"");
}
END_TEST

START_TEST(test_errors_name_file_line_key) {
    // unknown keys and sections, with suggestions
    EXPECT_ERROR("train:\n  lr: 0.1\n  lrr: 3\n", "x.yaml:3:", "train.lrr", "unknown key",
                 "did you mean train.lr?");
    EXPECT_ERROR("model:\n  dim: 64\n  lr: 3\n", "x.yaml:3:", "model.lr", "unknown key",
                 "did you mean train.lr?");
    EXPECT_ERROR("model:\n  colour: 1\n", "x.yaml:2:", "model.colour", "unknown key");
    EXPECT_ERROR("trian:\n  lr: 1\n", "x.yaml:1:", "trian", "unknown section", "did you mean train?");
    EXPECT_ERROR("model:\n  dim: 64\noptim:\n  lr: 1\n", "x.yaml:3:", "optim", "unknown section");
    // wrong types
    EXPECT_ERROR("model:\n  dim: abc\n", "x.yaml:2:", "model.dim", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 1.5\n", "x.yaml:2:", "model.dim", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 12abc\n", "x.yaml:2:", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 0x40\n", "x.yaml:2:", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 064\n", "x.yaml:2:", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 1e3\n", "x.yaml:2:", "expected an integer");
    EXPECT_ERROR("model:\n  dim: ~\n", "x.yaml:2:", "model.dim", "expected an integer", "empty value");
    EXPECT_ERROR("train:\n  lr: fast\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr: nan\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr: .inf\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr: 0x1p-3\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr: 1e-3 \n  min_lr: 1e-4x\n", "x.yaml:3:", "train.min_lr", "expected a number");
    EXPECT_ERROR("train:\n  steps: 5\n  lr:\n", "x.yaml:3:", "train.lr", "empty value");
    EXPECT_ERROR("train:\n  lr: null\n", "x.yaml:2:", "train.lr", "empty value");
    EXPECT_ERROR("model:\n  tie_embeddings: maybe\n", "x.yaml:2:", "model.tie_embeddings",
                 "expected true or false");
    EXPECT_ERROR("model:\n  tie_embeddings: 1\n", "x.yaml:2:", "model.tie_embeddings",
                 "expected true or false");
    EXPECT_ERROR("model:\n  tie_embeddings:\n", "x.yaml:2:", "model.tie_embeddings", "true or false");
    EXPECT_ERROR("system:\n  device: tpu\n", "x.yaml:2:", "system.device", "expected one of cpu|cuda|auto");
    EXPECT_ERROR("system:\n  precision: fp16\n", "x.yaml:2:", "system.precision",
                 "expected one of fp32|bf16");
    EXPECT_ERROR("system:\n  device: CPU\n", "x.yaml:2:", "system.device", "cpu|cuda|auto");
    EXPECT_ERROR("system:\n  device:\n", "x.yaml:2:", "system.device", "cpu|cuda|auto");
    // out of range, including values past int and int64
    EXPECT_ERROR("model:\n  dim: 4\n", "x.yaml:2:", "model.dim", "out of range", "must be in [8, 65536]");
    EXPECT_ERROR("checkpoint:\n  keep: 0\n", "x.yaml:2:", "checkpoint.keep", "must be in [1, 1000]");
    EXPECT_ERROR("model:\n  dim: 3000000000\n", "x.yaml:2:", "model.dim", "out of range");
    EXPECT_ERROR("model:\n  dim: -3000000000\n", "x.yaml:2:", "model.dim", "out of range");
    EXPECT_ERROR("train:\n  steps: 99999999999999999999\n", "x.yaml:2:", "train.steps", "out of range");
    EXPECT_ERROR("train:\n  steps: -1\n", "x.yaml:2:", "train.steps", "out of range");
    EXPECT_ERROR("train:\n  beta1: 1.5\n", "x.yaml:2:", "train.beta1", "out of range");
    EXPECT_ERROR("train:\n  beta2: 1\n", "x.yaml:2:", "train.beta2", "out of range");
    EXPECT_ERROR("train:\n  lr: 0\n", "x.yaml:2:", "train.lr", "out of range");
    EXPECT_ERROR("train:\n  lr: 1e999\n", "x.yaml:2:", "train.lr", "out of range");
    EXPECT_ERROR("system:\n  threads: 5000\n", "x.yaml:2:", "system.threads", "out of range");
    EXPECT_ERROR("run:\n  log_every: 0\n", "x.yaml:2:", "run.log_every", "out of range");
    // duplicates name both lines
    EXPECT_ERROR("train:\n  lr: 1\n  steps: 5\n  lr: 2\n", "x.yaml:4:", "train.lr", "duplicate key",
                 "line 2");
    EXPECT_ERROR("train:\n  lr: 1\nmodel:\n  dim: 64\ntrain:\n  steps: 2\n", "x.yaml:5:", "train",
                 "duplicate section", "line 1");
    // a list or mapping where a single value belongs
    EXPECT_ERROR("train:\n  lr: [1, 2]\n", "x.yaml:2:", "train.lr", "expected a single value", "a list");
    EXPECT_ERROR("train:\n  lr:\n    - 1\n", "x.yaml:3:", "train.lr", "a list");
    EXPECT_ERROR("train:\n  steps: 1\n  lr:\n    peak: 1\n", "x.yaml:4:", "train.lr", "a mapping");
    EXPECT_ERROR("train:\n  lr: &a 1\n  min_lr: *b\n", "x.yaml:3:", "train.min_lr", "alias");
    EXPECT_ERROR("train: 5\n", "x.yaml:1:", "train", "expected a mapping of keys");
    EXPECT_ERROR("run:\n  seed: 1\ntrain:\n  - lr\n", "x.yaml:4:", "train", "expected a mapping", "a list");
    EXPECT_ERROR("- a\n- b\n", "x.yaml:1:", "expected a mapping of sections", "a list");
    EXPECT_ERROR("hello\n", "x.yaml:1:", "expected a mapping of sections");
    EXPECT_ERROR("train:\n  ? [lr]\n  : 1\n", "x.yaml:2:", "train", "keys must be plain names");
    // strings too long for the field, NUL bytes, invalid UTF-8
    {
        char text[3000] = "model:\n  dim: 64\nrun:\n  out_dir: ";
        size_t n = strlen(text);
        memset(text + n, 'd', 1100);
        strcpy(text + n + 1100, "\n");
        EXPECT_ERROR(text, "x.yaml:4:", "run.out_dir", "1100 characters", "limit is 1023");
    }
    EXPECT_ERROR("system:\n  device: cudaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
                 "x.yaml:2:", "system.device");
    EXPECT_ERROR("data:\n  train: \"a\\0b\"\n", "x.yaml:2:", "data.train", "NUL");
    EXPECT_ERROR("train:\n  lr: 1\n  steps: \xff\n", "x.yaml:3:", "YAML syntax error");
    // YAML syntax
    EXPECT_ERROR("train:\n  lr: 1\n bad indent: 2\n", "x.yaml:3:", "YAML syntax error");
    EXPECT_ERROR("train:\n\tlr: 1\n", "x.yaml:2:", "YAML syntax error");
    EXPECT_ERROR("train:\n  lr: \"open\n\n", "x.yaml:", "YAML syntax error");
    EXPECT_ERROR("train: {lr: 1\n", "x.yaml:", "YAML syntax error");
    EXPECT_ERROR("train:\n  lr: 1\n---\ntrain:\n  lr: 2\n", "x.yaml:3:", "second YAML document");
    EXPECT_ERROR("train:\n  lr: &a 1\n  min_lr: *a\n  x: 1\n", "x.yaml:4:", "train.x");
}
END_TEST

START_TEST(test_overrides) {
    rt_config c;
    rt_error e;
    rt_config_defaults(&c);
    ck_assert(rt_config_apply_override(&c, "train.lr=1e-3", &e) == 0 && c.train.lr == 1e-3);
    ck_assert(rt_config_apply_override(&c, "model.tie_embeddings=off", &e) == 0 &&
              c.model.tie_embeddings == 0);
    ck_assert(rt_config_apply_override(&c, "system.device=cuda", &e) == 0);
    ck_assert_str_eq(c.system.device, "cuda");
    ck_assert(rt_config_apply_override(&c, "run.out_dir=runs/a=b", &e) == 0); // only the first '=' splits
    ck_assert_str_eq(c.run.out_dir, "runs/a=b");
    ck_assert(rt_config_apply_override(&c, "data.val=", &e) == 0);
    ck_assert_str_eq(c.data.val, "");
    ck_assert(rt_config_apply_override(&c, "train.steps=123456789012", &e) == 0 &&
              c.train.steps == 123456789012LL);

    EXPECT_OVERRIDE_ERROR("train.lr=abc", "override train.lr=abc", "train.lr", "expected a number");
    EXPECT_OVERRIDE_ERROR("train.lr", "section.key=value");
    EXPECT_OVERRIDE_ERROR("train.lr 1e-3", "section.key=value");
    EXPECT_OVERRIDE_ERROR("train.lrate=1", "train.lrate", "unknown key");
    EXPECT_OVERRIDE_ERROR("train.l_r=1", "train.l_r", "unknown key", "did you mean train.lr?");
    EXPECT_OVERRIDE_ERROR("model.lr=1", "model.lr", "unknown key", "did you mean train.lr?");
    EXPECT_OVERRIDE_ERROR("lr=1", "unknown key");
    EXPECT_OVERRIDE_ERROR("=1", "unknown key");
    EXPECT_OVERRIDE_ERROR("train=1", "unknown key");
    EXPECT_OVERRIDE_ERROR("model.n_layers=0", "model.n_layers", "out of range", "[1, ");
    EXPECT_OVERRIDE_ERROR("train.steps=", "train.steps", "empty value");
    EXPECT_OVERRIDE_ERROR("train.steps= 5", "train.steps", "expected an integer");
    EXPECT_OVERRIDE_ERROR("train.steps=5.0", "train.steps", "expected an integer");
    EXPECT_OVERRIDE_ERROR("model.tie_embeddings=2", "model.tie_embeddings", "true or false");
    EXPECT_OVERRIDE_ERROR("system.device=gpu", "system.device", "cpu|cuda|auto");
    EXPECT_OVERRIDE_ERROR("model.rope_factor=0.5", "model.rope_factor");
    EXPECT_OVERRIDE_ERROR("model.rope_scaling=yarn", "model.rope_scaling", "none|linear|llama3");
    EXPECT_OVERRIDE_ERROR("run.out_dir=\xff\xfe", "run.out_dir", "UTF-8");
    EXPECT_OVERRIDE_ERROR("run.out_dir=\xed\xa0\x80", "run.out_dir", "UTF-8"); // a surrogate
    char big[3000];
    memset(big, 'a', sizeof big);
    memcpy(big, "run.out_dir=", 12);
    big[sizeof big - 1] = '\0';
    EXPECT_OVERRIDE_ERROR(big, "run.out_dir", "limit");
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "train.lr", 8); // a 3000-character key: no '=' at all
    EXPECT_OVERRIDE_ERROR(big, "section.key=value");
    big[200] = '=';
    EXPECT_OVERRIDE_ERROR(big, "key too long");
    // a failed override leaves the config as it was
    rt_config before = c;
    ck_assert(rt_config_apply_override(&c, "train.lr=-1", &e) != 0);
    assert_same_config(&before, &c, "failed override");
}
END_TEST

START_TEST(test_validate) {
    struct {
        const char *override, *needle;
    } cases[] = {
        {"model.n_kv_heads=3", "model.n_kv_heads 3 must divide model.n_heads 4"},
        {"model.dim=132", "head dim"}, // 132 / 4 = 33, odd
        {"model.dim=130", "model.dim 130 / model.n_heads 4"},
        {"data.seq_len=256", "max_seq_len"},
        {"train.min_lr=1", "train.min_lr"},
        {"train.warmup_steps=100000", "train.warmup_steps"},
        {"data.train=", "data.train"},
        {"run.out_dir=", "run.out_dir"},
        {"model.head_dim=33", "model.head_dim 33 must be even"},
        {"model.rope_high_freq_factor=0.5", "model.rope_high_freq_factor 0.5 must exceed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_config c;
        rt_error e;
        rt_config_defaults(&c);
        ck_assert(rt_config_apply_override(&c, cases[i].override, &e) == 0);
        ck_assert_msg(rt_config_validate(&c, &e) != 0, "%s passed validation", cases[i].override);
        ck_assert_msg(strstr(e.msg, cases[i].needle), "%s: '%s' lacks '%s'", cases[i].override, e.msg,
                      cases[i].needle);
    }
    // accepted combinations
    rt_config c;
    rt_error e;
    const char *ok[] = {"system.precision=bf16",  "system.device=auto",  "model.n_kv_heads=4",
                        "model.dim=64",           "data.seq_len=128",    "train.min_lr=3e-3",
                        "train.warmup_steps=600", "model.head_dim=48",   "model.rope_scaling=llama3",
                        "model.rope_factor=8",    "model.attn_bias=true"};
    rt_config_defaults(&c);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert(rt_config_apply_override(&c, ok[i], &e) == 0);
    ck_assert_msg(rt_config_validate(&c, &e) == 0, "%s", e.msg);
    // a struct filled in code gets the schema's checks too (and no division by zero)
    rt_config_defaults(&c);
    c.model.n_kv_heads = 0;
    ck_assert(rt_config_validate(&c, &e) != 0 && strstr(e.msg, "model.n_kv_heads"));
    rt_config_defaults(&c);
    c.model.vocab_size = 100;
    ck_assert(rt_config_validate(&c, &e) != 0 && strstr(e.msg, "model.vocab_size"));
    rt_config_defaults(&c);
    c.train.lr = NAN;
    ck_assert(rt_config_validate(&c, &e) != 0 && strstr(e.msg, "train.lr"));
    rt_config_defaults(&c);
    strcpy(c.system.device, "tpu");
    ck_assert(rt_config_validate(&c, &e) != 0 && strstr(e.msg, "system.device"));
    rt_config_defaults(&c);
    memset(c.data.val, 'v', sizeof c.data.val); // no terminator
    ck_assert(rt_config_validate(&c, &e) != 0 && strstr(e.msg, "data.val"));
}
END_TEST

START_TEST(test_garbage_never_crashes) {
    rt_rng r;
    rt_rng_seed(&r, 3);
    char buf[4096];
    rt_config c;
    rt_error e;
    for (int trial = 0; trial < 500; trial++) { // random bytes, NULs included
        size_t n = (size_t)rt_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (char)rt_rng_below(&r, 256);
        rt_config_defaults(&c);
        rt_config_load_string(&c, buf, n, "garbage.yaml", &e); // any outcome but a crash
    }
    const char *valid = "train:\n  lr: 0.1\n  steps: 10\nmodel:\n  dim: 64\n  tie_embeddings: true\n";
    for (int trial = 0; trial < 2000; trial++) { // a valid file with a few bytes changed
        size_t n = strlen(valid);
        memcpy(buf, valid, n);
        for (int k = 0; k < 3; k++) {
            static const char pick[] = "\t\n\0 :#-[]{}&*\"'!|>~";
            buf[rt_rng_below(&r, n)] =
                rt_rng_below(&r, 2) ? (char)rt_rng_below(&r, 256) : pick[rt_rng_below(&r, sizeof pick - 1)];
        }
        rt_config_defaults(&c);
        if (rt_config_load_string(&c, buf, n, "mutated.yaml", &e) == 0) {
            // whatever was accepted is in range
            ck_assert_msg(rt_config_validate(&c, &e) == 0 || !strstr(e.msg, "out of range"), "%s", e.msg);
        } else {
            ck_assert_msg(strncmp(e.msg, "mutated.yaml:", 13) == 0, "message without file:line: %s", e.msg);
        }
    }
    // a 10 MB scalar
    size_t big = 10u << 20;
    char *huge = malloc(big + 64);
    ck_assert_ptr_nonnull(huge);
    strcpy(huge, "run:\n  out_dir: ");
    size_t k = strlen(huge);
    memset(huge + k, 'x', big);
    strcpy(huge + k + big, "\n");
    rt_config_defaults(&c);
    ck_assert(rt_config_load_string(&c, huge, strlen(huge), "huge.yaml", &e) != 0);
    ck_assert_msg(strstr(e.msg, "huge.yaml:2:") && strstr(e.msg, "run.out_dir"), "%s", e.msg);
    // a 10 MB line of key characters
    strcpy(huge, "train:\n  ");
    memset(huge + 9, 'k', big);
    strcpy(huge + 9 + big, ": 1\n");
    ck_assert(rt_config_load_string(&c, huge, strlen(huge), "longkey.yaml", &e) != 0);
    ck_assert_msg(strstr(e.msg, "longkey.yaml:2:"), "%s", e.msg);
    // deep flow nesting, at the root and under a key: libyaml's scanner is quadratic in the depth, so this
    // must stop early (a million levels took hours through the document loader)
    const char *prefixes[] = {"", "train:\n  lr: ", "train: "};
    for (int p = 0; p < 3; p++) {
        for (int bracket = 0; bracket < 2; bracket++) {
            size_t depth = 1000000, pos = strlen(prefixes[p]);
            memcpy(huge, prefixes[p], pos);
            for (size_t i = 0; i < depth; i++) huge[pos++] = bracket ? '[' : '{';
            double t0 = rt_now();
            rt_config_defaults(&c);
            ck_assert(rt_config_load_string(&c, huge, pos, "deep.yaml", &e) != 0);
            ck_assert_msg(rt_now() - t0 < 5.0, "deep nesting took %.1f s", rt_now() - t0);
            ck_assert_msg(strstr(e.msg, "deep.yaml:"), "%s", e.msg);
        }
    }
    // deep block nesting
    size_t pos = 0;
    pos += (size_t)sprintf(huge, "train:\n");
    for (int level = 1; level < 2000; level++)
        pos += (size_t)sprintf(huge + pos, "%*sk%d:\n", 2 * level, "", level);
    ck_assert(rt_config_load_string(&c, huge, pos, "block.yaml", &e) != 0);
    ck_assert_msg(strstr(e.msg, "block.yaml:2:") && strstr(e.msg, "train.k1"), "%s", e.msg);
    // many documents
    pos = 0;
    for (int i = 0; i < 100000; i++) pos += (size_t)sprintf(huge + pos, "---\ntrain: {lr: 1}\n");
    ck_assert(rt_config_load_string(&c, huge, pos, "docs.yaml", &e) != 0);
    ck_assert_msg(strstr(e.msg, "docs.yaml:3:") && strstr(e.msg, "second"), "%s", e.msg);
    free(huge);
    ck_assert(rt_config_load_file(&c, "/nonexistent/dir/cfg.yaml", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/dir/cfg.yaml"));
}
END_TEST

START_TEST(test_help) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    rt_config_print_help(f, NULL);
    fclose(f);
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        const char *line = strstr(text, k->path);
        ck_assert_msg(line, "help lacks %s", k->path);
        const char *eol = strchr(line, '\n');
        char row[512];
        snprintf(row, sizeof row, "%.*s", (int)(eol - line), line);
        ck_assert_msg(strstr(row, k->dflt) && strstr(row, k->help), "row for %s: %s", k->path, row);
        if (k->type == RT_CFG_ENUM) ck_assert_msg(strstr(row, k->choices), "%s", row);
    }
    ck_assert_ptr_nonnull(strstr(text, "[8, 65536]"));
    free(text);

    f = open_memstream(&text, &len);
    rt_config_print_help(f, "train");
    fclose(f);
    ck_assert_msg(strstr(text, "train.lr") && strstr(text, "train.eval_batches") &&
                      !strstr(text, "model.dim") && !strstr(text, "run.seed"),
                  "%s", text);
    free(text);

    f = open_memstream(&text, &len);
    rt_config_print_help(f, "train.lr");
    fclose(f);
    ck_assert_msg(strstr(text, "train.lr") && !strstr(text, "train.min_lr") && !strstr(text, "train.steps"),
                  "%s", text);
    free(text);
}
END_TEST

// Every config shipped in trainer/configs loads and validates.
START_TEST(test_shipped_configs) {
    static const char *const names[] = {"tiny.yaml",        "distill.yaml", "gpu_teacher.yaml",
                                        "gpu_distill.yaml", "lora.yaml",    "qlora.yaml"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/trainer/configs/%s", rt_test_env("RT_SOURCE_DIR"), names[i]);
        rt_config c;
        rt_error err;
        rt_config_defaults(&c);
        ck_assert_msg(rt_config_load_file(&c, path, &err) == 0, "%s", err.msg);
        ck_assert_msg(rt_config_validate(&c, &err) == 0, "%s: %s", names[i], err.msg);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_schema_table);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_tiny_yaml);
    tcase_add_test(tc, test_shipped_configs);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_errors_name_file_line_key);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_garbage_never_crashes);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
