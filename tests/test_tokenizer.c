// The tokenizer object's facts that need no reference program: the byte tokenizer is today's byte encoding
// (data/tokenizer.h) behind the common interface, BPE merges go by rank and SentencePiece by score on small
// hand-made vocabularies, and every refusal names what it refuses. Parity with HF tokenizers and llama.cpp on
// real and trained vocabularies is in check_tokenizer_vocab.py and check_tokenizer_trained.py.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/tokenizer.h"
#include "gguf/gguf.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"

static rt_tokenizer *from_json(const char *json) {
    rt_tokenizer *t;
    rt_error err;
    ck_assert_msg(rt_tokenizer_from_json(json, strlen(json), "t.json", &t, &err) == 0, "%s", err.msg);
    return t;
}

static void expect_ids(rt_tokenizer *t, const char *text, int add_special, const int32_t *want, size_t n) {
    rt_tok_ids ids = {0};
    rt_error err;
    ck_assert_msg(rt_tokenizer_encode(t, text, strlen(text), add_special, &ids, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(ids.n, n);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(ids.ids[i], want[i]);
    rt_tok_ids_free(&ids);
}

START_TEST(test_bytes) {
    rt_tokenizer *t;
    rt_error err;
    ck_assert_int_eq(rt_tokenizer_bytes(&t, &err), 0);
    ck_assert_str_eq(rt_tokenizer_kind(t), "bytes");
    ck_assert_int_eq(rt_tokenizer_vocab_size(t), RT_TOK_N_BASE);
    ck_assert_int_eq(rt_tokenizer_bos(t), RT_TOK_BOS);
    ck_assert_int_eq(rt_tokenizer_eos(t), RT_TOK_EOS);
    ck_assert_int_eq(rt_tokenizer_pad(t), RT_TOK_PAD);
    ck_assert(rt_tokenizer_adds_bos(t));
    const char text[] = "caf\xc3\xa9 <s>\n\xff\x00x";
    size_t len = sizeof text - 1;
    int32_t want[64];
    size_t n = rt_tok_encode(text, len, want);
    rt_tok_ids ids = {0};
    ck_assert_int_eq(rt_tokenizer_encode(t, text, len, 1, &ids, &err), 0);
    ck_assert_uint_eq(ids.n, n + 1);
    ck_assert_int_eq(ids.ids[0], RT_TOK_BOS);
    for (size_t i = 0; i < n; i++) ck_assert_int_eq(ids.ids[i + 1], want[i]);
    ids.ids[ids.n++] = RT_TOK_EOS;
    rt_buf out = {0};
    ck_assert_int_eq(rt_tokenizer_decode(t, ids.ids, ids.n, 0, &out, &err), 0);
    char legacy[64];
    size_t m = rt_tok_decode(ids.ids, ids.n, legacy);
    ck_assert_uint_eq(out.len, m);
    ck_assert_mem_eq(out.data, legacy, m);
    rt_buf_free(&out);
    // the GGUF export's texts: bytes in GPT-2's alphabet, then the control tokens
    size_t tl;
    char c[4] = {0};
    rt_tok_byte_unicode(' ', c);
    ck_assert_str_eq(rt_tokenizer_token(t, ' ', &tl), c);
    ck_assert_str_eq(rt_tokenizer_token(t, RT_TOK_BOS, &tl), "<s>");
    ck_assert_int_eq(rt_tokenizer_token_type(t, RT_TOK_BOS), RT_TOKEN_CONTROL);
    rt_tok_ids_free(&ids);
    rt_tokenizer_free(t);
}
END_TEST

// A minimal tokenizer.json: a vocabulary, merges and whatever extra top-level members are given.
#define VOCAB "\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5"
static char *json_with(const char *merges, const char *model_extra, const char *top_extra) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"version\":\"1.0\",%s\"model\":{\"type\":\"BPE\",%s\"vocab\":{" VOCAB "},\"merges\":[%s]}}",
             top_extra, model_extra, merges);
    return buf;
}

START_TEST(test_bpe_rank_order) {
    // (b, c) ranks before (a, b): "abc" is a + bc, and no merge joins those two
    rt_tokenizer *t = from_json(json_with("\"b c\",\"a b\"", "", ""));
    expect_ids(t, "abc", 0, (const int32_t[]){0, 4}, 2);
    rt_tokenizer_free(t);
    // the other order, with ["a","b"] pairs, and ab + c listed: "abc" becomes one token
    t = from_json(json_with("[\"a\",\"b\"],[\"b\",\"c\"],[\"ab\",\"c\"]", "", ""));
    expect_ids(t, "abcabc", 0, (const int32_t[]){5, 5}, 2);
    ck_assert_uint_eq(rt_tokenizer_n_merges(t), 3);
    int32_t l, r;
    rt_tokenizer_merge(t, 2, &l, &r);
    ck_assert_int_eq(l, 3);
    ck_assert_int_eq(r, 2);
    rt_tokenizer_free(t);
    // ignore_merges: a piece that is a token is that token, even where the merges would not build it
    t = from_json(json_with("\"b c\"", "\"ignore_merges\":true,", ""));
    expect_ids(t, "abc", 0, (const int32_t[]){5}, 1);
    rt_tokenizer_free(t);
    // unk for characters outside the vocabulary, fused into one with fuse_unk (what tokenizers 0.23 gives)
    static const char unk_vocab[] = "{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":%s,"
                                    "\"vocab\":{" VOCAB ",\"<unk>\":6},\"merges\":[\"b c\"]}}";
    char json[512];
    snprintf(json, sizeof json, unk_vocab, "false");
    t = from_json(json);
    expect_ids(t, "axxbc", 0, (const int32_t[]){0, 6, 6, 4}, 4);
    ck_assert_int_eq(rt_tokenizer_unk(t), 6);
    ck_assert_int_eq(rt_tokenizer_token_type(t, 6), RT_TOKEN_UNKNOWN);
    rt_tokenizer_free(t);
    snprintf(json, sizeof json, unk_vocab, "true");
    t = from_json(json);
    expect_ids(t, "axxbc", 0, (const int32_t[]){0, 6, 4}, 3);
    rt_tokenizer_free(t);
    // a character outside the vocabulary without unk or byte fallback is dropped, as HF drops it
    t = from_json(json_with("", "", ""));
    expect_ids(t, "axb", 0, (const int32_t[]){0, 1}, 2);
    rt_tokenizer_free(t);
}
END_TEST

START_TEST(test_added_tokens) {
    // an added token splits out of the raw text; lstrip/rstrip take the spaces next to it; the template
    // adds BOS only with add_special
    rt_tokenizer *t = from_json(json_with(
        "\"a b\"", "",
        "\"added_tokens\":[{\"id\":6,\"content\":\"<s>\",\"special\":true},"
        "{\"id\":7,\"content\":\"[m]\",\"lstrip\":true,\"rstrip\":true}],"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
        "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[6]}}},"));
    expect_ids(t, "ab<s>c", 0, (const int32_t[]){3, 6, 2}, 3);
    expect_ids(t, "c", 1, (const int32_t[]){6, 2}, 2);
    expect_ids(t, "a  [m]  b", 0, (const int32_t[]){0, 7, 1}, 3);
    ck_assert_int_eq(rt_tokenizer_bos(t), 6);
    ck_assert(rt_tokenizer_adds_bos(t));
    ck_assert_int_eq(rt_tokenizer_token_type(t, 6), RT_TOKEN_CONTROL);
    ck_assert_int_eq(rt_tokenizer_token_type(t, 7), RT_TOKEN_USER_DEFINED);
    rt_buf out = {0};
    rt_error err;
    ck_assert_int_eq(rt_tokenizer_decode(t, (const int32_t[]){6, 3, 7}, 3, 1, &out, &err), 0);
    ck_assert_uint_eq(out.len, 6); // no decoder: HF joins with spaces; <s> skipped
    ck_assert_mem_eq(out.data, "ab [m]", 6);
    ck_assert_int_eq(rt_tokenizer_decode(t, (const int32_t[]){3, 8}, 2, 0, &out, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "token id 8 is outside the vocabulary"));
    rt_buf_free(&out);
    rt_tokenizer_free(t);
}
END_TEST

// A tokenizer.json with 100k added tokens (and a repeated text, which HF gives the first one's id) reads in
// well under a second: earlier added tokens are found by hash and the list grows by doubling, where a rescan
// of the list took 17 s and growing it by one entry at a time 121 s under ASan.
START_TEST(test_many_added_tokens) {
    enum { N = 100000 };
    rt_buf json = {0};
    rt_buf_printf(&json, "{\"version\":\"1.0\",\"added_tokens\":[");
    for (int i = 0; i < N; i++) rt_buf_printf(&json, "{\"id\":%d,\"content\":\"<x%d>\"},", 6 + i, i);
    rt_buf_printf(&json, "{\"id\":11,\"content\":\"<x5>\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{" VOCAB
                         "},\"merges\":[]}}");
    ck_assert(!json.oom);
    rt_tokenizer *t;
    rt_error err;
    clock_t start = clock();
    ck_assert_msg(rt_tokenizer_from_json((const char *)json.data, json.len, "many.json", &t, &err) == 0, "%s",
                  err.msg);
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    ck_assert_msg(seconds < 5.0, "reading %d added tokens took %.1f s of CPU time", N, seconds);
    ck_assert_int_eq(rt_tokenizer_vocab_size(t), 6 + N);
    expect_ids(t, "a<x99999>b<x5>", 0, (const int32_t[]){0, 6 + N - 1, 1, 11}, 4);
    rt_tokenizer_free(t);
    rt_buf_free(&json);
}
END_TEST

// Each bad tokenizer.json is refused with a message that names the problem.
START_TEST(test_json_refusals) {
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"model\": ", "invalid JSON"},
        {"[]", "top level must be an object"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model.type is WordPiece"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a x\"]}}",
         "merge 0 ('a' 'x'): 'x' is not"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a a\"]}}",
         "merges[0] 'a a a' is not two"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a a\"]}}",
         "merged token 'aa' is not"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", "two tokens have id 0"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999},\"merges\":[]}}", "far beyond"},
        {"{\"model\":{\"type\":\"BPE\",\"dropout\":0.1,\"vocab\":{\"a\":0},\"merges\":[]}}", "dropout"},
        {"{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "unk_token '<unk>' is not in the vocabulary"},
        {"{\"added_tokens\":[{\"id\":5,\"content\":\"<x>\"}],\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
         "\"merges\":[]}}",
         "has id 5, but HF tokenizers gives it id 1"},
        {"{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}"
         "}",
         "normalizer is a NFKC normalizer"},
        {"{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":"
         "\"Isolated\"},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "the Split pattern '\\w+' is not one"},
        {"{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Whitespace\"}]},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "pre_tokenizer.pretokenizers[0] is a Whitespace pre-tokenizer"},
        {"{\"pre_tokenizer\":{\"type\":\"Digits\",\"individual_digits\":false},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "Digits with individual_digits true only"},
        {"{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[]},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "single has no $A"},
        {"{\"post_processor\":{\"type\":\"BertProcessing\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
         "\"merges\":[]}}",
         "BertProcessing post-processor"},
        {"{\"decoder\":{\"type\":\"WordPiece\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]"
         "}}",
         "decoder is a WordPiece decoder"},
        {"{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"},"
         "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
         "regex pattern ' +'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_tokenizer *t = NULL;
        rt_error err = {{0}};
        ck_assert_int_eq(rt_tokenizer_from_json(cases[i].json, strlen(cases[i].json), "bad.json", &t, &err),
                         -1);
        ck_assert_msg(strstr(err.msg, cases[i].want) && strstr(err.msg, "bad.json"),
                      "case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
    }
}
END_TEST

// A small GGUF vocabulary: <unk> <s> a b c ab bc <0x78> ▁, with scores when asked (bc's given).
static int gguf_tokenizer(const char *model, const char *pre, int with_scores, float bc_score,
                          rt_tokenizer **t, rt_error *err) {
    const char *path = rt_test_tmpdir("tok-gguf");
    char file[512];
    snprintf(file, sizeof file, "%s/v.gguf", path);
    static const char *const tokens[] = {"<unk>", "<s>", "a", "b", "c", "ab", "bc", "<0x78>", "\xE2\x96\x81"};
    int32_t types[] = {RT_TOKEN_UNKNOWN, RT_TOKEN_CONTROL, 1, 1, 1, 1, 1, RT_TOKEN_BYTE, 1};
    float scores[] = {0, 0, -3, -3, -3, -1, bc_score, 0, -3};
    rt_gguf_writer w;
    rt_gguf_writer_init(&w);
    rt_gguf_add_string(&w, "tokenizer.ggml.model", model);
    rt_gguf_add_string(&w, "tokenizer.ggml.pre", pre);
    rt_gguf_add_string_array(&w, "tokenizer.ggml.tokens", tokens, 9);
    rt_gguf_add_i32_array(&w, "tokenizer.ggml.token_type", types, 9);
    if (with_scores) rt_gguf_add_f32_array(&w, "tokenizer.ggml.scores", scores, 9);
    rt_gguf_add_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    int rc = rt_gguf_write(&w, file, err);
    rt_gguf_writer_free(&w);
    return rc ? rc : rt_tokenizer_load(file, t, err);
}

// SentencePiece from GGUF merges by score ("▁" is prepended, as Llama 2 does).
START_TEST(test_gguf_spm_by_score) {
    rt_tokenizer *t;
    rt_error err;
    ck_assert_msg(gguf_tokenizer("llama", "default", 1, -2.0f, &t, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(rt_tokenizer_kind(t), "spm");
    expect_ids(t, "abc", 0, (const int32_t[]){8, 5, 4}, 3); // ab scores above bc
    rt_tokenizer_free(t);
    ck_assert_msg(gguf_tokenizer("llama", "default", 1, -0.5f, &t, &err) == 0, "%s", err.msg);
    expect_ids(t, "abcx", 1, (const int32_t[]){1, 8, 2, 6, 7}, 5); // bc above ab; x is its byte token
    rt_buf out = {0};
    ck_assert_int_eq(rt_tokenizer_decode(t, (const int32_t[]){1, 8, 2, 6, 7}, 5, 1, &out, &err), 0);
    ck_assert_uint_eq(out.len, 4);
    ck_assert_mem_eq(out.data, "abcx", 4);
    rt_buf_free(&out);
    rt_tokenizer_free(t);
}
END_TEST

START_TEST(test_gguf_refusals) {
    rt_tokenizer *t;
    rt_error err;
    ck_assert_int_eq(gguf_tokenizer("bert", "default", 0, 0, &t, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer.ggml.model 'bert' is not supported"));
    ck_assert_int_eq(gguf_tokenizer("gpt2", "starcoder", 0, 0, &t, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "tokenizer.ggml.pre 'starcoder' is not supported"));
    ck_assert_int_eq(gguf_tokenizer("llama", "default", 0, 0, &t, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "needs tokenizer.ggml.scores"));
    ck_assert_int_eq(rt_tokenizer_load("/nonexistent/tokenizer.json", &t, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "a tokenizer source is"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_bpe_rank_order);
    tcase_add_test(tc, test_added_tokens);
    tcase_add_test(tc, test_many_added_tokens);
    tcase_add_test(tc, test_json_refusals);
    tcase_add_test(tc, test_gguf_spm_by_score);
    tcase_add_test(tc, test_gguf_refusals);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
