// Datasets: round trip (checked against h5py, an independent reader), the writer refusing invalid input,
// and every documented load check failing with a message that names the file and the problem. Damaged
// variants are made with h5py, so they do not depend on our writer.
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "testutil.h"

#define NDOC 4

// Four documents: BOS, prompt, answer, EOS; the third has an empty answer.
static const int32_t TOKENS[] = {256, '1', '+', '2', '=', '3', 257, // doc 0: prompt_len 4
                                 256, 'a', 'b', 'c', 257,           // doc 1: prompt_len 1
                                 256, 'x', 257,                     // doc 2: prompt_len 1 (empty answer)
                                 256, 'h', 'i', 0,   255, 257};     // doc 3: prompt_len 0
static const int64_t OFFSETS[NDOC + 1] = {0, 7, 12, 15, 21};
static const int32_t PROMPT_LEN[NDOC] = {4, 1, 1, 0};
#define NTOK (sizeof TOKENS / sizeof TOKENS[0])

static rt_dataset_spec good_spec(void) {
    return (rt_dataset_spec){.tokens = TOKENS,
                             .n_tokens = NTOK,
                             .doc_offsets = OFFSETS,
                             .n_docs = NDOC,
                             .prompt_len = PROMPT_LEN,
                             .vocab_size = 259,
                             .task = "arithmetic",
                             .split = "train",
                             .seed = -7,
                             .source = "test_dataset \"quoted\" ✓"};
}

static int py(const char *file, const char *code) {
    char script[2048];
    snprintf(script, sizeof script, "%s.py", file);
    FILE *fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "import sys, h5py, numpy as np\nf = h5py.File(sys.argv[1], 'r+')\n%s\nf.close()\n", code);
    fclose(fp);
    int rc = rt_test_system("'%s' '%s' '%s'", rt_test_env("RT_PYTHON"), script, file);
    unlink(script);
    return rc;
}

// Write the good dataset to dir/name.h5, edit it with h5py, and expect the load to fail naming both the file
// and `needle` (and `needle2` when given).
static void expect_bad(const char *dir, const char *name, const char *edit, int max_vocab, const char *needle,
                       const char *needle2) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    rt_dataset_spec s = good_spec();
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    ck_assert_msg(py(path, edit) == 0, "%s: the h5py edit failed", name);
    rt_dataset ds;
    int rc = rt_dataset_load(&ds, path, max_vocab, &err);
    if (rc == 0) rt_dataset_free(&ds);
    ck_assert_msg(rc != 0, "%s: loaded although damaged", name);
    ck_assert_ptr_null(ds.tokens);
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s: message lacks the file: %s", name, err.msg);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", name, needle, err.msg);
    ck_assert_msg(!needle2 || strstr(err.msg, needle2) != NULL, "%s: message lacks '%s': %s", name, needle2,
                  err.msg);
}

START_TEST(test_round_trip) {
    const char *dir = rt_test_tmpdir("ds-rt");
    char path[2048];
    snprintf(path, sizeof path, "%s/d.h5", dir);
    rt_dataset_spec s = good_spec();
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    rt_dataset ds;
    ck_assert_msg(rt_dataset_load(&ds, path, 259, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(ds.n_tokens, NTOK);
    ck_assert_uint_eq(ds.n_docs, NDOC);
    ck_assert_int_eq(memcmp(ds.tokens, TOKENS, sizeof TOKENS), 0);
    ck_assert_int_eq(memcmp(ds.doc_offsets, OFFSETS, sizeof OFFSETS), 0);
    ck_assert_ptr_nonnull(ds.prompt_len);
    ck_assert_int_eq(memcmp(ds.prompt_len, PROMPT_LEN, sizeof PROMPT_LEN), 0);
    ck_assert_int_eq(ds.vocab_size, 259);
    ck_assert_str_eq(ds.task, "arithmetic");
    ck_assert_str_eq(ds.split, "train");
    ck_assert_int_eq(ds.seed, -7);
    ck_assert_str_eq(ds.source, "test_dataset \"quoted\" ✓");
    ck_assert_str_eq(ds.path, path);
    rt_dataset_free(&ds);
    ck_assert_ptr_null(ds.tokens);
    // what h5py sees: the documented names, dtypes and attributes, strings as str, checksummed chunks
    ck_assert_int_eq(
        py(path, "assert f['tokens'].dtype == np.int32 and f['doc_offsets'].dtype == np.int64\n"
                 "assert f['prompt_len'].dtype == np.int32\n"
                 "assert f['tokens'][()].tolist()[:7] == [256, 49, 43, 50, 61, 51, 257]\n"
                 "assert f['doc_offsets'][()].tolist() == [0, 7, 12, 15, 21]\n"
                 "assert f['prompt_len'][()].tolist() == [4, 1, 1, 0]\n"
                 "a = f.attrs\n"
                 "assert a['format'] == 'retort-dataset' and a['version'] == 1 and a['tokenizer'] == 'byte'\n"
                 "assert (a['vocab_size'], a['n_docs'], a['n_tokens'], a['seed']) == (259, 4, 21, -7)\n"
                 "assert a['task'] == 'arithmetic' and a['split'] == 'train' and '\\u2713' in a['source']\n"
                 "assert all(f[k].fletcher32 and f[k].chunks for k in f)\n"),
        0);
    // a file from another writer without the optional attributes loads with the defaults
    ck_assert_int_eq(
        py(path, "for k in ('task', 'split', 'seed', 'source', 'strings_crc32'): del f.attrs[k]"), 0);
    ck_assert_msg(rt_dataset_load(&ds, path, 259, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(ds.task, "text");
    ck_assert_str_eq(ds.split, "all");
    ck_assert_str_eq(ds.source, "");
    ck_assert_int_eq(ds.seed, 0);
    rt_dataset_free(&ds);
    // no prompt split: prompt_len stays NULL
    s.prompt_len = NULL;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_dataset_load(&ds, path, 0, &err) == 0, "%s", err.msg);
    ck_assert_ptr_null(ds.prompt_len);
    rt_dataset_free(&ds);
    ck_assert_int_eq(rt_test_system("ls -a '%s' | grep -q tmp-", dir), 1);
}
END_TEST

START_TEST(test_empty_and_large) {
    const char *dir = rt_test_tmpdir("ds-sizes");
    char path[2048];
    snprintf(path, sizeof path, "%s/e.h5", dir);
    // three empty documents: zero tokens, a zero-length tokens dataset
    int64_t zero[4] = {0, 0, 0, 0};
    rt_dataset_spec s = {
        .doc_offsets = zero, .n_docs = 3, .vocab_size = 259, .task = "text", .split = "all", .source = ""};
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    rt_dataset ds;
    ck_assert_msg(rt_dataset_load(&ds, path, 259, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(ds.n_tokens, 0);
    ck_assert_uint_eq(ds.n_docs, 3);
    rt_dataset_free(&ds);
    ck_assert_int_eq(
        py(path, "assert f['tokens'].shape == (0,) and f['doc_offsets'][()].tolist() == [0, 0, 0, 0]"), 0);
    // 700k tokens in 1000 documents: several chunks, none over 1 MiB
    size_t n = 700000, nd = 1000;
    int32_t *tok = malloc(n * sizeof *tok);
    int64_t *off = malloc((nd + 1) * sizeof *off);
    rt_rng r;
    rt_rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) tok[i] = (int32_t)rt_rng_below(&r, 259);
    for (size_t d = 0; d <= nd; d++) off[d] = (int64_t)(n * d / nd);
    s = (rt_dataset_spec){.tokens = tok,
                          .n_tokens = n,
                          .doc_offsets = off,
                          .n_docs = nd,
                          .vocab_size = 259,
                          .task = "text",
                          .split = "val",
                          .seed = 1,
                          .source = "random"};
    snprintf(path, sizeof path, "%s/big.h5", dir);
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_dataset_load(&ds, path, 259, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(memcmp(ds.tokens, tok, n * sizeof *tok), 0);
    ck_assert_int_eq(memcmp(ds.doc_offsets, off, (nd + 1) * sizeof *off), 0);
    rt_dataset_free(&ds);
    size_t n_h5;
    int32_t *via_h5 = rt_test_h5_read_i32(path, "tokens", &n_h5); // the raw HDF5 API, not our reader
    ck_assert_uint_eq(n_h5, n);
    ck_assert_int_eq(memcmp(via_h5, tok, n * sizeof *tok), 0);
    free(via_h5);
    ck_assert_int_eq(py(path, "t = f['tokens']\n"
                              "assert t.chunks[0] * 4 <= 1 << 20 and t.chunks[0] < t.shape[0], t.chunks\n"
                              "assert f['doc_offsets'].chunks[0] <= f['doc_offsets'].shape[0]"),
                     0);
    free(tok);
    free(off);
    unlink(path); // 2.8 MB
}
END_TEST

START_TEST(test_writer_refuses_invalid) {
    const char *dir = rt_test_tmpdir("ds-refuse");
    char path[2048];
    snprintf(path, sizeof path, "%s/r.h5", dir);
    rt_error err;
    int32_t tok[NTOK];
    memcpy(tok, TOKENS, sizeof tok);
    rt_dataset_spec s = good_spec();
    s.tokens = tok;
    tok[3] = 300;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "token 3") && strstr(err.msg, "300"), "%s", err.msg);
    tok[3] = -2;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "token 3") && strstr(err.msg, "-2"), "%s", err.msg);
    tok[3] = TOKENS[3];
    int64_t off[NDOC + 1] = {0, 7, 12, 15, 20};
    s.doc_offsets = off;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "doc_offsets end") != NULL, "%s", err.msg);
    off[4] = 21, off[2] = 5;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "decrease") != NULL, "%s", err.msg);
    off[2] = 12;
    int32_t pl[NDOC] = {4, 1, 2, 0}; // doc 2 holds BOS x EOS: a prompt of 2 leaves no room for EOS
    s.prompt_len = pl;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "prompt_len[2]") != NULL, "%s", err.msg);
    s.prompt_len = PROMPT_LEN;
    s.n_docs = 0;
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    s.n_docs = NDOC;
    s.task = "a task name that is far longer than the sixty-three bytes a loaded dataset can hold";
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert(access(path, F_OK) != 0); // nothing written
    snprintf(path, sizeof path, "%s/missing-dir/r.h5", dir);
    s = good_spec();
    ck_assert(rt_dataset_write(path, &s, &err) != 0);
    ck_assert_msg(strstr(err.msg, "missing-dir") != NULL, "%s", err.msg);
    ck_assert_int_eq(rt_test_system("ls -a '%s' | grep -q tmp-", dir), 1);
}
END_TEST

START_TEST(test_load_checks) {
    const char *d = rt_test_tmpdir("ds-bad");
    // ids
    expect_bad(d, "id-large", "f['tokens'][9] = 300", 0, "token 9", "300");
    expect_bad(d, "id-negative", "f['tokens'][5] = -1", 0, "token 5", "-1");
    // offsets
    expect_bad(d, "off-first", "f['doc_offsets'][0] = 1", 0, "doc_offsets[0]", NULL);
    expect_bad(d, "off-decrease", "f['doc_offsets'][2] = 3", 0, "decrease", "document 1");
    expect_bad(d, "off-end", "f['doc_offsets'][4] = 20", 0, "doc_offsets end", NULL);
    expect_bad(d, "off-negative", "f['doc_offsets'][1] = -5", 0, "decrease", NULL);
    // prompt_len
    expect_bad(d, "pl-long", "f['prompt_len'][2] = 2", 0, "prompt_len[2]", NULL);
    expect_bad(d, "pl-negative", "f['prompt_len'][1] = -1", 0, "prompt_len[1] = -1", NULL);
    expect_bad(d, "pl-count", "del f['prompt_len']; f['prompt_len'] = np.zeros(3, np.int32)", 0, "prompt_len",
               "expected 4");
    // attributes
    expect_bad(d, "format", "f.attrs['format'] = 'retort-checkpoint'", 0, "format attribute",
               "retort-checkpoint");
    expect_bad(d, "no-format", "del f.attrs['format']", 0, "no 'format' attribute", "not a retort dataset");
    expect_bad(d, "version", "f.attrs['version'] = np.int64(2)", 0, "version 2", NULL);
    expect_bad(d, "tokenizer", "f.attrs['tokenizer'] = 'wordpiece'", 0, "tokenizer", "wordpiece");
    expect_bad(d, "tokenizer-hash", "f.attrs['tokenizer'] = 'bpe'", 0, "tokenizer_hash", NULL);
    expect_bad(d, "tokenizer-edited",
               "f.attrs['tokenizer'] = 'bpe'; f.attrs['tokenizer_hash'] = '0123456789abcdef'", 0,
               "strings_crc32", NULL);
    expect_bad(d, "n-docs", "f.attrs['n_docs'] = np.int64(5)", 0, "n_docs = 5", NULL);
    expect_bad(d, "n-tokens", "f.attrs['n_tokens'] = np.int64(22)", 0, "n_tokens = 22", NULL);
    expect_bad(d, "no-vocab", "del f.attrs['vocab_size']", 0, "vocab_size", NULL);
    expect_bad(d, "task-edited", "f.attrs['task'] = 'kv'", 0, "strings_crc32", NULL);
    expect_bad(d, "str-vocab", "f.attrs['vocab_size'] = '259'", 0, "vocab_size", "integer");
    // datasets: missing, wrong class, wrong rank
    expect_bad(d, "no-tokens", "del f['tokens']", 0, "tokens is missing", NULL);
    expect_bad(d, "no-offsets", "del f['doc_offsets']", 0, "doc_offsets is missing", NULL);
    expect_bad(d, "float-tokens", "t = f['tokens'][()]; del f['tokens']; f['tokens'] = t.astype(np.float32)",
               0, "expected integer", NULL);
    expect_bad(d, "2d-offsets", "del f['doc_offsets']; f['doc_offsets'] = np.zeros((5, 1), np.int64)", 0,
               "rank 2", NULL);
    expect_bad(d, "group-tokens", "del f['tokens']; f.create_group('tokens')", 0, "tokens", NULL);
    // the model's vocabulary: a 300-id dataset holding id 280
    expect_bad(d, "model-vocab", "f.attrs['vocab_size'] = np.int64(300); f['tokens'][8] = 280", 259,
               "token 8", "model's vocab_size is 259 (the dataset's vocab_size is 300)");
}
END_TEST

START_TEST(test_max_vocab) {
    const char *dir = rt_test_tmpdir("ds-vocab");
    char path[2048];
    snprintf(path, sizeof path, "%s/v.h5", dir);
    int32_t tok[NTOK];
    memcpy(tok, TOKENS, sizeof tok);
    tok[13] = 280; // doc 2's 'x'
    rt_dataset_spec s = good_spec();
    s.tokens = tok;
    s.vocab_size = 300;
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    rt_dataset ds;
    ck_assert_msg(rt_dataset_load(&ds, path, 0, &err) == 0, "%s", err.msg);
    rt_dataset_free(&ds);
    ck_assert_msg(rt_dataset_load(&ds, path, 300, &err) == 0, "%s", err.msg);
    rt_dataset_free(&ds);
    ck_assert(rt_dataset_load(&ds, path, 259, &err) != 0);
    ck_assert_msg(strstr(err.msg, "token 13") && strstr(err.msg, "document 2") && strstr(err.msg, "280") &&
                      strstr(err.msg, "259") && strstr(err.msg, "300") && strstr(err.msg, "v.h5"),
                  "%s", err.msg);
}
END_TEST

START_TEST(test_damaged_files) {
    const char *dir = rt_test_tmpdir("ds-damage");
    char good[2048], cut[2048];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    rt_dataset_spec s = good_spec();
    rt_error err;
    ck_assert(rt_dataset_write(good, &s, &err) == 0);
    struct stat st;
    ck_assert(stat(good, &st) == 0);
    rt_dataset ds;
    for (int k = 0; k < 20; k++) {
        long size = (long)st.st_size * k / 20;
        ck_assert_int_eq(rt_test_system("head -c %ld '%s' > '%s'", size, good, cut), 0);
        ck_assert_msg(rt_dataset_load(&ds, cut, 0, &err) != 0, "a file cut to %ld bytes loaded", size);
        ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
    }
    rt_rng r;
    rt_rng_seed(&r, 21);
    for (int k = 0; k < 10; k++) {
        FILE *fp = fopen(cut, "wb");
        if (k % 2) fwrite("\x89HDF\r\n\x1a\n", 1, 8, fp);
        for (int i = 0; i < 3000; i++) fputc((int)rt_rng_below(&r, 256), fp);
        fclose(fp);
        ck_assert(rt_dataset_load(&ds, cut, 0, &err) != 0);
        ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
    }
    // a flipped byte inside the token data: the checksum catches it
    ck_assert_int_eq(rt_test_system("cp '%s' '%s'", good, cut), 0);
    ck_assert_int_eq(py(cut,
                        "off = f['tokens'].id.get_chunk_info(0).byte_offset\nf.close()\n"
                        "fp = open(sys.argv[1], 'r+b'); fp.seek(off + 2); b = fp.read(1); fp.seek(off + 2)\n"
                        "fp.write(bytes([b[0] ^ 1])); fp.close()\nf = h5py.File(sys.argv[1], 'r')"),
                     0);
    ck_assert(rt_dataset_load(&ds, cut, 0, &err) != 0);
    ck_assert_msg(strstr(err.msg, "tokens") && strstr(err.msg, "checksum"), "%s", err.msg);
    ck_assert(rt_dataset_load(&ds, "/nonexistent/d.h5", 0, &err) != 0);
    ck_assert_msg(strstr(err.msg, "/nonexistent/d.h5") != NULL, "%s", err.msg);
}
END_TEST

// `retort inspect` on a dataset: decoded documents and token statistics against the file read with h5py.
START_TEST(test_inspect_cli) {
    const char *dir = rt_test_tmpdir("ds-inspect");
    const char *bin = rt_test_env("RETORT_BIN");
    char path[2048], out[2048], script[2048];
    snprintf(path, sizeof path, "%s/i.h5", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(script, sizeof script, "%s/check.py", dir);
    rt_dataset_spec s = good_spec();
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(rt_test_system("'%s' inspect --json '%s' > '%s'", bin, path, out), 0);
    FILE *fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("import sys, json, h5py, numpy as np\n"
          "j = json.load(open(sys.argv[2])); f = h5py.File(sys.argv[1], 'r')\n"
          "tok, off, pl = f['tokens'][()], f['doc_offsets'][()], f['prompt_len'][()]\n"
          "dec = lambda ids: bytes(int(i) for i in ids if i < 256).decode('utf-8', errors='replace')\n"
          "assert j['kind'] == 'dataset' and j['n_docs'] == len(off) - 1 and j['n_tokens'] == len(tok)\n"
          "for k in ('task', 'split', 'source', 'vocab_size', 'seed', 'format', 'version'):\n"
          "    assert j[k] == f.attrs[k], k\n"
          "assert len(j['documents']) == 3\n"
          "for d in j['documents']:\n"
          "    i = d['index']; a, b = off[i], off[i + 1]; c = a + 1 + pl[i]\n"
          "    assert d['tokens'] == b - a and d['text'] == dec(tok[a:b]), d\n"
          "    assert d['prompt'] == dec(tok[a:c]) and d['answer'] == dec(tok[c:b]), d\n"
          "t = j['token_stats']; L = np.diff(off)\n"
          "assert (t['min_id'], t['max_id'], t['distinct_ids']) == (tok.min(), tok.max(), "
          "len(set(tok.tolist())))\n"
          "assert (t['bos'], t['eos'], t['pad']) == ((tok == 256).sum(), (tok == 257).sum(), (tok == "
          "258).sum())\n"
          "assert (t['min_doc_len'], t['max_doc_len']) == (L.min(), L.max())\n",
          fp);
    fclose(fp);
    ck_assert_int_eq(rt_test_system("'%s' '%s' '%s' '%s'", rt_test_env("RT_PYTHON"), script, path, out), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' > '%s'", bin, path, out), 0);
    ck_assert_int_eq(
        rt_test_system("grep -q '4 documents, 21 tokens' '%s' && grep -qF '<bos>1+2= | 3<eos>' '%s' && "
                       "grep -q 'task        arithmetic' '%s'",
                       out, out, out),
        0);
    // a damaged dataset: exit 1 naming the file and the problem
    ck_assert_int_eq(py(path, "f['tokens'][9] = 300"), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' 2> '%s'", bin, path, out), 1);
    ck_assert_int_eq(rt_test_system("grep -q 'i.h5: token 9 .* is 300' '%s'", out), 0);
}
END_TEST

// Teacher distributions (retort synth): a round trip, the row of each answer position, the layout read by
// h5py, the writer's refusals and a damaged id caught at load.
START_TEST(test_teacher_topk) {
    const char *dir = rt_test_tmpdir("ds-topk");
    char path[2048];
    snprintf(path, sizeof path, "%s/t.h5", dir);
    enum { K = 3, ROWS = 11 }; // answer positions: 2 + 3 + 1 + 5
    int32_t ids[ROWS * K];
    float lp[ROWS * K];
    for (int i = 0; i < ROWS * K; i++) {
        ids[i] = (i * 7) % 300;
        lp[i] = -0.5f * (float)(i % K + 1) - 0.01f * (float)(i / K);
    }
    rt_dataset_topk topk = {.k = K, .temperature = 1.5, .n_rows = ROWS, .ids = ids, .logprobs = lp};
    rt_dataset_spec s = good_spec();
    s.teacher = "runs/teacher/ckpt-00000100.h5";
    s.teacher_hash = "0123456789abcdef";
    s.teacher_vocab_size = 300;
    s.topk = &topk;
    rt_error err;
    ck_assert_msg(rt_dataset_write(path, &s, &err) == 0, "%s", err.msg);
    rt_dataset ds;
    ck_assert_msg(rt_dataset_load(&ds, path, 0, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ds.topk.k, K);
    ck_assert_uint_eq(ds.topk.n_rows, ROWS);
    ck_assert(ds.topk.temperature == 1.5);
    ck_assert_int_eq(ds.teacher_vocab_size, 300);
    ck_assert_str_eq(ds.teacher, "runs/teacher/ckpt-00000100.h5");
    ck_assert_str_eq(ds.teacher_hash, "0123456789abcdef");
    ck_assert_int_eq(memcmp(ds.topk.ids, ids, sizeof ids), 0);
    ck_assert_int_eq(memcmp(ds.topk.logprobs, lp, sizeof lp), 0);
    ck_assert_uint_eq(rt_dataset_answer_count(&ds), ROWS);
    int64_t *rows = NULL;
    ck_assert_int_eq(rt_dataset_answer_rows(&ds, &rows, &err), 0);
    // doc 0's answer is tokens 5 and 6, doc 1's 9..11, doc 2's 14, doc 3's 16..20
    static const int64_t want[NTOK] = {-1, -1, -1, -1, -1, 0, 1, -1, -1, 2, 3,
                                       4,  -1, -1, 5,  -1, 6, 7, 8,  9,  10};
    ck_assert_int_eq(memcmp(rows, want, sizeof want), 0);
    free(rows);
    rt_dataset_free(&ds);
    ck_assert_msg(py(path,
                     "assert f['topk_ids'].shape == (11, 3) and f['topk_logprobs'].dtype == 'float32'\n"
                     "assert f['topk_ids'][1, 2] == 35 and abs(f.attrs['topk_temperature'] - 1.5) < 1e-12\n"
                     "assert f.attrs['topk_k'] == 3 and f.attrs['teacher_vocab_size'] == 300\n"
                     "assert f.attrs['teacher'] == 'runs/teacher/ckpt-00000100.h5'") == 0,
                  "h5py does not read the documented top-k layout");

    // the writer refuses what the loader would
    char bad[2048];
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    topk.n_rows = ROWS - 1;
    ck_assert(rt_dataset_write(bad, &s, &err) != 0 && strstr(err.msg, "answer positions"));
    topk.n_rows = ROWS;
    ids[4] = 300;
    ck_assert(rt_dataset_write(bad, &s, &err) != 0 && strstr(err.msg, "topk_ids[1][1]"));
    ids[4] = 5;
    lp[7] = 0.5f;
    ck_assert(rt_dataset_write(bad, &s, &err) != 0 && strstr(err.msg, "topk_logprobs[2][1]"));
    lp[7] = -1.0f;
    s.prompt_len = NULL;
    ck_assert(rt_dataset_write(bad, &s, &err) != 0 && strstr(err.msg, "prompt_len"));
    s.prompt_len = PROMPT_LEN;
    s.teacher = NULL;
    ck_assert(rt_dataset_write(bad, &s, &err) != 0 && strstr(err.msg, "teacher"));
    ck_assert_int_ne(access(bad, F_OK), 0);

    // a damaged id in the file is caught at load, naming the table and the row
    ck_assert_msg(py(path, "import numpy as np\nf['topk_ids'][3, 0] = 12345") == 0, "h5py edit failed");
    ck_assert(rt_dataset_load(&ds, path, 0, &err) != 0 && strstr(err.msg, "topk_ids[3][0]") &&
              strstr(err.msg, path));
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_empty_and_large);
    tcase_add_test(tc, test_writer_refuses_invalid);
    tcase_add_test(tc, test_load_checks);
    tcase_add_test(tc, test_max_vocab);
    tcase_add_test(tc, test_damaged_files);
    tcase_add_test(tc, test_inspect_cli);
    tcase_add_test(tc, test_teacher_topk);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
