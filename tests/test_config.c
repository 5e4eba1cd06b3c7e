// The config schema, YAML parsing with file:line errors, overrides, validation and the YAML round trip.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

// Parse text as "x.yaml" on top of defaults; returns the status and leaves the message in err.
static int parse(const char *text, rt_config *cfg, rt_error *err) {
    rt_config_defaults(cfg);
    return rt_config_load_string(cfg, text, strlen(text), "x.yaml", err);
}

#define EXPECT_ERROR(text, ...)                                                                                \
    do {                                                                                                       \
        rt_config c_;                                                                                          \
        rt_error e_;                                                                                           \
        ck_assert_msg(parse(text, &c_, &e_) != 0, "accepted: %s", text);                                       \
        const char *needles_[] = {__VA_ARGS__};                                                                \
        for (size_t k_ = 0; k_ < sizeof needles_ / sizeof needles_[0]; k_++)                                   \
            ck_assert_msg(strstr(e_.msg, needles_[k_]), "message '%s' lacks '%s'", e_.msg, needles_[k_]);       \
    } while (0)

START_TEST(test_defaults_parse_and_validate) {
    rt_config cfg;
    rt_error err;
    rt_config_defaults(&cfg);
    ck_assert_int_eq(cfg.model.dim, 128);
    ck_assert_int_eq(cfg.model.tie_embeddings, 1);
    ck_assert_double_eq_tol(cfg.train.lr, 3e-3, 1e-15);
    ck_assert_str_eq(cfg.system.device, "cpu");
    ck_assert_msg(rt_config_validate(&cfg, &err) == 0, "%s", err.msg);
    // every schema default is accepted by its own key as an override
    for (int i = 0; i < rt_config_schema_len; i++) {
        char assign[512];
        snprintf(assign, sizeof assign, "%s=%s", rt_config_schema[i].path, rt_config_schema[i].dflt);
        ck_assert_msg(rt_config_apply_override(&cfg, assign, &err) == 0, "%s: %s", assign, err.msg);
        ck_assert_ptr_nonnull(rt_config_schema[i].help);
    }
}
END_TEST

START_TEST(test_tiny_yaml_equals_defaults) {
    char path[2048];
    snprintf(path, sizeof path, "%s/trainer/configs/tiny.yaml", rt_test_env("RT_SOURCE_DIR"));
    rt_config a, b;
    rt_error err;
    rt_config_defaults(&a);
    ck_assert_msg(rt_config_load_file(&a, path, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_config_validate(&a, &err) == 0, "%s", err.msg);
    rt_config_defaults(&b);
    char *ya = rt_config_to_yaml(&a), *yb = rt_config_to_yaml(&b);
    ck_assert_str_eq(ya, yb);  // the embedded default states the schema defaults
    free(ya), free(yb);
}
END_TEST

START_TEST(test_round_trip) {
    rt_config a, b;
    rt_error err;
    rt_config_defaults(&a);
    ck_assert(rt_config_apply_override(&a, "run.out_dir=runs/with \"quotes\" and \\ and :colon # hash", &err) == 0);
    ck_assert(rt_config_apply_override(&a, "train.lr=0.000123456789012345", &err) == 0);
    ck_assert(rt_config_apply_override(&a, "model.norm_eps=1e-6", &err) == 0);
    ck_assert(rt_config_apply_override(&a, "model.tie_embeddings=false", &err) == 0);
    ck_assert(rt_config_apply_override(&a, "data.val=", &err) == 0);
    ck_assert(rt_config_apply_override(&a, "train.steps=123456789012", &err) == 0);
    char *y = rt_config_to_yaml(&a);
    rt_config_defaults(&b);
    ck_assert_msg(rt_config_load_string(&b, y, strlen(y), "round-trip", &err) == 0, "%s\n%s", err.msg, y);
    char *y2 = rt_config_to_yaml(&b);
    ck_assert_str_eq(y, y2);
    ck_assert_str_eq(b.run.out_dir, "runs/with \"quotes\" and \\ and :colon # hash");
    ck_assert(b.train.lr == a.train.lr && b.model.norm_eps == a.model.norm_eps);
    ck_assert_int_eq(b.model.tie_embeddings, 0);
    ck_assert_str_eq(b.data.val, "");
    ck_assert_int_eq(b.train.steps, 123456789012LL);
    free(y), free(y2);
}
END_TEST

START_TEST(test_values) {
    rt_config c;
    rt_error e;
    ck_assert(parse("train:\n  lr: 3e-4\n  steps: 10\nmodel:\n  tie_embeddings: no\n", &c, &e) == 0);
    ck_assert(c.train.lr == 3e-4 && c.train.steps == 10 && c.model.tie_embeddings == 0);
    ck_assert_int_eq(parse("", &c, &e), 0);             // empty file: defaults
    ck_assert_int_eq(parse("# only a comment\n", &c, &e), 0);
    ck_assert_int_eq(parse("train:\n", &c, &e), 0);     // a section without keys
    ck_assert_int_eq(parse("data:\n  val: \"\"\n", &c, &e), 0);
    ck_assert_str_eq(c.data.val, "");
}
END_TEST

START_TEST(test_errors_name_file_line_key) {
    EXPECT_ERROR("train:\n  lr: 0.1\n  lrr: 3\n", "x.yaml:3:", "train.lrr", "unknown key", "did you mean train.lr?");
    EXPECT_ERROR("trian:\n  lr: 1\n", "x.yaml:1:", "unknown section", "did you mean train?");
    EXPECT_ERROR("model:\n  dim: abc\n", "x.yaml:2:", "model.dim", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 1.5\n", "x.yaml:2:", "model.dim", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 12abc\n", "x.yaml:2:", "expected an integer");
    EXPECT_ERROR("model:\n  dim: 99999999999999999999\n", "x.yaml:2:", "model.dim");
    EXPECT_ERROR("train:\n  lr: fast\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr: nan\n", "x.yaml:2:", "train.lr", "expected a number");
    EXPECT_ERROR("train:\n  lr:\n", "x.yaml:2:", "train.lr", "empty value");
    EXPECT_ERROR("model:\n  tie_embeddings: maybe\n", "x.yaml:2:", "model.tie_embeddings", "true or false");
    EXPECT_ERROR("system:\n  device: tpu\n", "x.yaml:2:", "system.device", "cpu|cuda|auto");
    EXPECT_ERROR("model:\n  dim: 4\n", "x.yaml:2:", "model.dim", "out of range", "[8, 65536]");
    EXPECT_ERROR("train:\n  beta1: 1.5\n", "x.yaml:2:", "train.beta1", "out of range");
    EXPECT_ERROR("train:\n  lr: 1\n  steps: 5\n  lr: 2\n", "x.yaml:4:", "train.lr", "duplicate key", "line 2");
    EXPECT_ERROR("train:\n  lr: 1\ntrain:\n  steps: 2\n", "x.yaml:3:", "duplicate section");
    EXPECT_ERROR("train:\n  lr: [1, 2]\n", "x.yaml:2:", "train.lr", "a list");
    EXPECT_ERROR("train: 5\n", "x.yaml:1:", "train", "expected a mapping");
    EXPECT_ERROR("- a\n- b\n", "x.yaml:1:", "expected a mapping of sections");
    EXPECT_ERROR("train:\n  lr: 1\n bad indent: 2\n", "x.yaml:", "YAML syntax error");
    EXPECT_ERROR("train:\n\tlr: 1\n", "x.yaml:", "YAML syntax error");
    EXPECT_ERROR("train:\n  lr: 1\n---\ntrain:\n  lr: 2\n", "x.yaml:4:", "second");
    EXPECT_ERROR("train:\n  lr: &a 1\n  min_lr: *a\n  x: 1\n", "x.yaml:4:", "train.x");
}
END_TEST

START_TEST(test_overrides) {
    rt_config c;
    rt_error e;
    rt_config_defaults(&c);
    ck_assert(rt_config_apply_override(&c, "train.lr=1e-3", &e) == 0 && c.train.lr == 1e-3);
    ck_assert(rt_config_apply_override(&c, "train.lr=abc", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "train.lr"));
    ck_assert_ptr_nonnull(strstr(e.msg, "expected a number"));
    ck_assert(rt_config_apply_override(&c, "train.lr", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "section.key=value"));
    ck_assert(rt_config_apply_override(&c, "train.lrate=1", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "unknown key"));
    ck_assert(rt_config_apply_override(&c, "model.n_layers=0", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "out of range"));
    char big[3000];
    memset(big, 'a', sizeof big);
    memcpy(big, "run.out_dir=", 12);
    big[sizeof big - 1] = '\0';
    ck_assert(rt_config_apply_override(&c, big, &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "limit"));
}
END_TEST

START_TEST(test_validate) {
    struct {
        const char *override, *needle;
    } cases[] = {
        {"model.n_kv_heads=3", "n_kv_heads"},   {"model.dim=132", "head dim"},
        {"data.seq_len=256", "max_seq_len"},    {"train.min_lr=1", "min_lr"},
        {"train.warmup_steps=100000", "warmup"}, {"data.train=", "data.train"},
        {"system.precision=bf16", "bf16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_config c;
        rt_error e;
        rt_config_defaults(&c);
        ck_assert(rt_config_apply_override(&c, cases[i].override, &e) == 0);
        ck_assert_msg(rt_config_validate(&c, &e) != 0, "%s passed validation", cases[i].override);
        ck_assert_msg(strstr(e.msg, cases[i].needle), "%s: '%s' lacks '%s'", cases[i].override, e.msg, cases[i].needle);
    }
}
END_TEST

START_TEST(test_garbage_never_crashes) {
    rt_rng r;
    rt_rng_seed(&r, 3);
    char buf[4096];
    rt_config c;
    rt_error e;
    for (int trial = 0; trial < 300; trial++) {
        size_t n = (size_t)rt_rng_below(&r, sizeof buf);
        for (size_t i = 0; i < n; i++) buf[i] = (char)rt_rng_below(&r, 256);
        rt_config_defaults(&c);
        rt_config_load_string(&c, buf, n, "garbage.yaml", &e);  // any outcome but a crash
    }
    // mutations of a valid file
    const char *valid = "train:\n  lr: 0.1\n  steps: 10\nmodel:\n  dim: 64\n";
    for (int trial = 0; trial < 300; trial++) {
        size_t n = strlen(valid);
        memcpy(buf, valid, n);
        for (int k = 0; k < 3; k++) buf[rt_rng_below(&r, n)] = (char)rt_rng_below(&r, 256);
        rt_config_defaults(&c);
        rt_config_load_string(&c, buf, n, "mutated.yaml", &e);
    }
    // deep nesting and a 10 MB scalar
    size_t big = 10u << 20;
    char *huge = malloc(big + 64);
    strcpy(huge, "run:\n  out_dir: ");
    size_t k = strlen(huge);
    memset(huge + k, 'x', big);
    strcpy(huge + k + big, "\n");
    rt_config_defaults(&c);
    ck_assert(rt_config_load_string(&c, huge, strlen(huge), "huge.yaml", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "run.out_dir"));
    size_t depth = 5000, pos = 0;
    for (size_t i = 0; i < depth; i++) huge[pos++] = '[';
    for (size_t i = 0; i < depth; i++) huge[pos++] = ']';
    rt_config_defaults(&c);
    ck_assert(rt_config_load_string(&c, huge, pos, "deep.yaml", &e) != 0);
    free(huge);
    ck_assert(rt_config_load_file(&c, "/nonexistent/dir/cfg.yaml", &e) != 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent/dir/cfg.yaml"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_defaults_parse_and_validate);
    tcase_add_test(tc, test_tiny_yaml_equals_defaults);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_values);
    tcase_add_test(tc, test_errors_name_file_line_key);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_garbage_never_crashes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
