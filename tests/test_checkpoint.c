// Checkpoints: bit-exact round trip, atomic writes, rotation, fallback past damaged files, and damaged or
// garbage files of every kind failing with a message instead of crashing. The checks on the stored layout
// are independent of our reader: h5py (tests/check_ckpt_h5py.py) and python one-liners read the files.
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "testutil.h"
#include "base/files.h"

#define NT 3

typedef struct fake {
    rt_named_tensor w[NT], m[NT], v[NT];
    rt_ckpt c;
} fake;

static const char *CONFIG_TEXT =
    "run:\n  out_dir: \"a \\\"quoted\\\" dir\"\n  note: 'it''s'\n# ünïcødé ✓ 日本\n\n";

static void make_fake(fake *f, uint64_t seed, int64_t step) {
    memset(f, 0, sizeof *f);
    const char *names[NT] = {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight"};
    int64_t shapes[NT][2] = {{7, 5}, {5, 0}, {5, 3}};
    rt_rng r;
    rt_rng_seed(&r, seed);
    for (int i = 0; i < NT; i++) {
        rt_named_tensor *ts[3] = {&f->w[i], &f->m[i], &f->v[i]};
        for (int k = 0; k < 3; k++) {
            snprintf(ts[k]->name, sizeof ts[k]->name, "%s", names[i]);
            ts[k]->ndim = shapes[i][1] ? 2 : 1;
            ts[k]->shape[0] = shapes[i][0];
            ts[k]->shape[1] = shapes[i][1];
            size_t n = (size_t)shapes[i][0] * (size_t)(shapes[i][1] ? shapes[i][1] : 1);
            ts[k]->data = malloc(n * sizeof(float));
            rt_test_fill_uniform(&r, ts[k]->data, n, -3, 3);
        }
    }
    f->w[0].data[0] = -0.0f; // bit-exact means the sign of zero and subnormals survive too
    f->w[0].data[1] = 1.0e-45f;
    f->c.model = f->w;
    f->c.adam_m = f->m;
    f->c.adam_v = f->v;
    f->c.n_model = f->c.n_optim = NT;
    f->c.state = (rt_train_state){step, step * 1000, {UINT64_MAX, UINT64_MAX - 1, 0x8000000000000000ULL, 42},
                                  3,    17,          1};
    f->c.config_yaml = (char *)CONFIG_TEXT;
    snprintf(f->c.architecture, sizeof f->c.architecture, "llama");
    rt_tok_source_byte(&f->c.tokenizer, 259);
}

static void free_fake(fake *f) {
    for (int i = 0; i < NT; i++) free(f->w[i].data), free(f->m[i].data), free(f->v[i].data);
}

static void assert_same(const rt_named_tensor *a, const rt_named_tensor *b, int n) {
    for (int i = 0; i < n; i++) {
        const rt_named_tensor *t = rt_named_tensor_find(b, n, a[i].name);
        ck_assert_msg(t != NULL, "missing %s", a[i].name);
        ck_assert_int_eq(t->ndim, a[i].ndim);
        size_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_int_eq(t->shape[d], a[i].shape[d]);
            count *= (size_t)t->shape[d];
        }
        ck_assert_msg(memcmp(t->data, a[i].data, count * sizeof(float)) == 0, "%s differs", a[i].name);
    }
}

// Run a python snippet (h5py available) on a file: sys.argv[1] is the file, sys.argv[2] `extra`.
// Returns its exit status.
static int py_with(const char *file, const char *extra, const char *code) {
    char script[2048];
    snprintf(script, sizeof script, "%s.py", file);
    FILE *fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    fprintf(fp, "import sys, json, h5py, numpy as np\n%s\n", code);
    fclose(fp);
    int rc = rt_test_system("'%s' '%s' '%s' '%s'", rt_test_env("RT_PYTHON"), script, file, extra);
    unlink(script);
    return rc;
}

static int py(const char *file, const char *code) {
    return py_with(file, "", code);
}

static int no_temp_files(const char *dir) {
    return rt_test_system("ls -a '%s' | grep -q 'tmp-'", dir) == 1;
}

START_TEST(test_round_trip) {
    const char *dir = rt_test_tmpdir("ckpt-rt");
    char path[2048];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    fake f;
    make_fake(&f, 1, 12);
    rt_error err;
    ck_assert_msg(rt_ckpt_write(path, &f.c, &err) == 0, "%s", err.msg);
    rt_ckpt back;
    ck_assert_msg(rt_ckpt_read(path, 1, &back, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(back.n_model, NT);
    ck_assert_int_eq(back.n_optim, NT);
    assert_same(f.w, back.model, NT);
    assert_same(f.m, back.adam_m, NT);
    assert_same(f.v, back.adam_v, NT);
    ck_assert_int_eq(memcmp(&back.state, &f.c.state, sizeof back.state), 0);
    ck_assert_str_eq(back.config_yaml, CONFIG_TEXT);
    ck_assert_str_eq(back.architecture, "llama");
    ck_assert_str_eq(back.tokenizer.type, "byte");
    ck_assert_int_eq(back.tokenizer.vocab_size, 259);
    ck_assert_int_eq(back.tokenizer.bos_id, 256);
    ck_assert_int_eq(back.tokenizer.eos_id, 257);
    ck_assert_int_eq(back.tokenizer.pad_id, 258);
    rt_ckpt_free(&back);
    ck_assert_msg(rt_ckpt_read(path, 0, &back, &err) == 0, "%s", err.msg); // weights only
    ck_assert_int_eq(back.n_optim, 0);
    ck_assert_ptr_null(back.adam_m);
    assert_same(f.w, back.model, NT);
    rt_ckpt_free(&back);
    // the same values seen by h5py: text as str, rng words, tensors bit for bit, every dataset checksummed
    ck_assert_int_eq(
        py(path, "f = h5py.File(sys.argv[1], 'r')\n"
                 "y = f['config'].attrs['yaml']\n"
                 "assert isinstance(y, str) and '\\u65e5\\u672c' in y and '\\\\\"quoted' in y, repr(y)\n"
                 "assert list(f['state'].attrs['rng']) == [2**64 - 1, 2**64 - 2, 2**63, 42]\n"
                 "assert f['state'].attrs['step'] == 12 and f.attrs['format'] == 'retort-checkpoint'\n"
                 "w = f['model/token_embd.weight'][()]\n"
                 "assert w.shape == (7, 5) and w.dtype == np.float32\n"
                 "assert np.signbit(w[0, 0]) and w[0, 0] == 0 and w[0, 1] == np.float32(1e-45)\n"
                 "for g in ('model', 'optim/adam_m', 'optim/adam_v'):\n"
                 "    for d in f[g].values(): assert d.fletcher32 and d.chunks, d.name\n"),
        0);
    free_fake(&f);
}
END_TEST

START_TEST(test_weights_only_file) {
    const char *dir = rt_test_tmpdir("ckpt-wo");
    char path[2048];
    snprintf(path, sizeof path, "%s/w.h5", dir);
    fake f;
    make_fake(&f, 6, 3);
    f.c.n_optim = 0;
    rt_error err;
    ck_assert_msg(rt_ckpt_write(path, &f.c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(py(path, "assert 'optim' not in h5py.File(sys.argv[1], 'r')"), 0);
    rt_ckpt back;
    ck_assert_msg(rt_ckpt_read(path, 1, &back, &err) == 0, "%s", err.msg); // with_optim, but none stored
    ck_assert_int_eq(back.n_optim, 0);
    assert_same(f.w, back.model, NT);
    rt_ckpt_free(&back);
    free_fake(&f);
}
END_TEST

START_TEST(test_moments_must_mirror_model) {
    const char *dir = rt_test_tmpdir("ckpt-moments");
    char path[2048];
    snprintf(path, sizeof path, "%s/m.h5", dir);
    fake f;
    make_fake(&f, 7, 3);
    rt_error err;
    snprintf(f.m[2].name, RT_TENSOR_NAME_MAX, "blk.9.ffn_up.weight"); // a moment of no model tensor
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "blk.9.ffn_up.weight") != NULL, "%s", err.msg);
    snprintf(f.m[2].name, RT_TENSOR_NAME_MAX, "blk.0.ffn_down.weight");
    f.v[2].shape[0] = 3, f.v[2].shape[1] = 5; // adam_v transposed
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "blk.0.ffn_down.weight") && strstr(err.msg, "[3, 5]"), "%s", err.msg);
    f.v[2].shape[0] = 5, f.v[2].shape[1] = 3;
    ck_assert(access(path, F_OK) != 0); // nothing written by the refused calls
    ck_assert_msg(rt_ckpt_write(path, &f.c, &err) == 0, "%s", err.msg);
    // files edited behind our back: adam_v loses a tensor; adam_m gains a wrongly shaped one
    char p2[2048];
    snprintf(p2, sizeof p2, "%s/m2.h5", dir);
    ck_assert_int_eq(rt_test_system("cp '%s' '%s'", path, p2), 0);
    ck_assert_int_eq(
        py(path, "f = h5py.File(sys.argv[1], 'r+'); del f['optim/adam_v/blk.0.ffn_down.weight']"), 0);
    rt_ckpt back;
    ck_assert(rt_ckpt_read(path, 1, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "adam_v") != NULL, "%s", err.msg);
    ck_assert_msg(rt_ckpt_read(path, 0, &back, &err) == 0, "%s", err.msg); // weights alone are fine
    rt_ckpt_free(&back);
    ck_assert_int_eq(
        py(p2, "f = h5py.File(sys.argv[1], 'r+'); del f['optim/adam_m/blk.0.ffn_down.weight']\n"
               "f['optim/adam_m'].create_dataset('blk.0.ffn_down.weight', data=np.zeros((3, 5), 'f4'))"),
        0);
    ck_assert(rt_ckpt_read(p2, 1, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "blk.0.ffn_down.weight") && strstr(err.msg, "m2.h5"), "%s", err.msg);
    // a string changed behind our back no longer matches strings_crc32
    char p3[2048];
    snprintf(p3, sizeof p3, "%s/m3.h5", dir);
    ck_assert_msg(rt_ckpt_write(p3, &f.c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(py(p3, "h5py.File(sys.argv[1], 'r+').attrs['architecture'] = 'llamb'"), 0);
    ck_assert(rt_ckpt_read(p3, 0, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "strings_crc32") && strstr(err.msg, "m3.h5"), "%s", err.msg);
    free_fake(&f);
}
END_TEST

// A real tokenizer travels in /tokenizer: its source bytes come back as they were, it builds (with the stored
// special ids), rt_tokenizer_load reads it from the file, and a changed byte is caught by the hash.
static const char tiny_tokenizer[] =
    "{\"added_tokens\": [{\"id\": 3, \"content\": \"<|endoftext|>\", \"special\": true}], \"pre_tokenizer\": "
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}, \"decoder\": {\"type\": "
    "\"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": "
    "[\"a b\"]}}";

START_TEST(test_real_tokenizer) {
    const char *dir = rt_test_tmpdir("ckpt-tok");
    char path[2048];
    snprintf(path, sizeof path, "%s/tok.h5", dir);
    fake f;
    make_fake(&f, 3, 5);
    rt_tok_source *t = &f.c.tokenizer;
    snprintf(t->type, sizeof t->type, "bpe");
    snprintf(t->format, sizeof t->format, "tokenizer.json");
    t->bytes = (uint8_t *)tiny_tokenizer;
    t->len = sizeof tiny_tokenizer - 1;
    t->vocab_size = 4;
    t->bos_id = 3; // as a tokenizer_config.json could name it: the stored id wins over tokenizer.json's
    t->eos_id = 3;
    t->pad_id = -1;
    rt_bytes_hash(t->bytes, t->len, t->hash);
    rt_error err;
    ck_assert_msg(rt_ckpt_write(path, &f.c, &err) == 0, "%s", err.msg);
    rt_ckpt back;
    ck_assert_msg(rt_ckpt_read(path, 0, &back, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(back.tokenizer.type, "bpe");
    ck_assert_str_eq(back.tokenizer.format, "tokenizer.json");
    ck_assert_str_eq(back.tokenizer.hash, t->hash);
    ck_assert_uint_eq(back.tokenizer.len, t->len);
    ck_assert(memcmp(back.tokenizer.bytes, tiny_tokenizer, t->len) == 0);
    ck_assert_int_eq(back.tokenizer.pad_id, -1);
    rt_tokenizer *tok = NULL;
    ck_assert_msg(rt_ckpt_tokenizer(&back, &tok, &err) == 0, "%s", err.msg);
    ck_assert_str_eq(rt_tokenizer_kind(tok), "bpe");
    ck_assert_int_eq(rt_tokenizer_bos(tok), 3);
    rt_tok_ids ids = {0};
    ck_assert_msg(rt_tokenizer_encode(tok, "abab<|endoftext|>b", 18, 0, &ids, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(ids.n, 4);
    ck_assert(ids.ids[0] == 2 && ids.ids[1] == 2 && ids.ids[2] == 3 && ids.ids[3] == 1);
    rt_tok_ids_free(&ids);
    rt_tokenizer_free(tok);
    rt_ckpt_free(&back);
    ck_assert_msg(rt_tokenizer_load(path, &tok, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(rt_tokenizer_vocab_size(tok), 4);
    rt_tokenizer_free(tok);
    // the source rewritten with one byte changed (a valid dataset, so only the hash can tell)
    ck_assert_int_eq(py(path, "f = h5py.File(sys.argv[1], 'r+'); s = f['tokenizer/source'][:]; s[10] ^= 1\n"
                              "del f['tokenizer/source']; f['tokenizer'].create_dataset('source', data=s)"),
                     0);
    ck_assert(rt_ckpt_read(path, 0, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "/tokenizer/source hashes to") && strstr(err.msg, "tok.h5"), "%s", err.msg);
    ck_assert(rt_tokenizer_load(path, &tok, &err) != 0);
    // a real tokenizer without its bytes is refused before anything is written
    t->bytes = NULL;
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "source bytes"), "%s", err.msg);
    free_fake(&f);
}
END_TEST

START_TEST(test_failed_write_leaves_old_file) {
    const char *dir = rt_test_tmpdir("ckpt-atomic");
    char path[2048];
    snprintf(path, sizeof path, "%s/a.h5", dir);
    fake f;
    make_fake(&f, 2, 5);
    rt_error err;
    ck_assert(rt_ckpt_write(path, &f.c, &err) == 0);
    struct stat before, after;
    ck_assert(stat(path, &before) == 0);
    free_fake(&f);
    make_fake(&f, 3, 6);
    float *keep = f.w[1].data;
    f.w[1].data = NULL; // an invalid tensor: the write must fail before touching path
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "blk.0.attn_norm.weight") && strstr(err.msg, "a.h5"), "%s", err.msg);
    f.w[1].data = keep;
    f.w[0].shape[0] = -1;
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "token_embd.weight") != NULL, "%s", err.msg);
    f.w[0].shape[0] = 7;
    char bad[2048];
    snprintf(bad, sizeof bad, "%s/no-such-dir/b.h5", dir);
    ck_assert(rt_ckpt_write(bad, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "no-such-dir") != NULL, "%s", err.msg);
    // a failure after the temp file was written in full: the final name is a non-empty directory
    char isdir[2048];
    snprintf(isdir, sizeof isdir, "%s/isdir.h5", dir);
    ck_assert_int_eq(rt_test_system("mkdir -p '%s/x'", isdir), 0);
    ck_assert(rt_ckpt_write(isdir, &f.c, &err) != 0);
    ck_assert_msg(strstr(err.msg, "isdir.h5") != NULL, "%s", err.msg);
    ck_assert(stat(path, &after) == 0);
    ck_assert_int_eq(before.st_size, after.st_size);
    ck_assert_int_eq(before.st_mtime, after.st_mtime);
    rt_ckpt back;
    ck_assert_msg(rt_ckpt_read(path, 1, &back, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(back.state.step, 5); // still the first file
    rt_ckpt_free(&back);
    ck_assert_msg(no_temp_files(dir), "a temp file was left behind");
    free_fake(&f);
}
END_TEST

static int count_ckpts(const char *dir) {
    return rt_test_system("exit $(ls '%s' | grep -c '^ckpt-[0-9]*\\.h5$')", dir);
}

static long dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

START_TEST(test_rotation_and_latest) {
    const char *dir = rt_test_tmpdir("ckpt-rot");
    fake f;
    make_fake(&f, 3, 0);
    rt_error err;
    char written[2048];
    // a crashed writer's temp file: never counted as a checkpoint, removed by the next save
    ck_assert_int_eq(rt_test_system("echo junk > '%s/ckpt-00000099.h5.tmp-%ld'", dir, dead_pid()), 0);
    for (int64_t step = 10; step <= 50; step += 10) {
        f.c.state.step = step;
        ck_assert_msg(rt_ckpt_save_rotating(dir, &f.c, 2, written, sizeof written, &err) == 0, "%s", err.msg);
        ck_assert_ptr_nonnull(strstr(written, "ckpt-000000"));
        char link[2048], target[256] = {0};
        snprintf(link, sizeof link, "%s/ckpt-latest.h5", dir);
        ck_assert(readlink(link, target, sizeof target - 1) > 0);
        char want[64];
        snprintf(want, sizeof want, "ckpt-%08lld.h5", (long long)step);
        ck_assert_str_eq(target, want);
        ck_assert_int_eq(count_ckpts(dir), step == 10 ? 1 : 2);
    }
    ck_assert_int_eq(rt_test_system("test -f '%s/ckpt-00000040.h5' -a -f '%s/ckpt-00000050.h5'", dir, dir),
                     0);
    ck_assert_msg(no_temp_files(dir), "stale temp file not removed");
    rt_ckpt back;
    char path[2048];
    ck_assert_msg(rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(back.state.step, 50);
    rt_ckpt_free(&back);
    // the link resolves to a file h5py reads as the newest step
    char link[2048];
    snprintf(link, sizeof link, "%s/ckpt-latest.h5", dir);
    ck_assert_int_eq(py(link, "assert h5py.File(sys.argv[1], 'r')['state'].attrs['step'] == 50"), 0);
    // resuming from step 40 after 50 was lost: saving 45 drops the abandoned 50 and keeps 40, 45
    f.c.state.step = 45;
    ck_assert(rt_ckpt_save_rotating(dir, &f.c, 2, written, sizeof written, &err) == 0);
    ck_assert_int_eq(rt_test_system("test -f '%s/ckpt-00000040.h5' -a -f '%s/ckpt-00000045.h5' -a ! -e "
                                    "'%s/ckpt-00000050.h5'",
                                    dir, dir, dir),
                     0);
    f.c.state.step = 60; // keep = 0 still keeps the one just written
    ck_assert(rt_ckpt_save_rotating(dir, &f.c, 0, written, sizeof written, &err) == 0);
    ck_assert_int_eq(count_ckpts(dir), 1);
    free_fake(&f);
}
END_TEST

START_TEST(test_fallback_past_damaged) {
    const char *dir = rt_test_tmpdir("ckpt-fallback");
    fake f;
    make_fake(&f, 4, 0);
    rt_error err;
    char written[2048];
    for (int64_t step = 1; step <= 3; step++) {
        f.c.state.step = step;
        ck_assert(rt_ckpt_save_rotating(dir, &f.c, 3, written, sizeof written, &err) == 0);
    }
    // newest truncated, the one before has a flipped byte inside a tensor's data (located with h5py)
    char p3[2048], p2[2048];
    snprintf(p3, sizeof p3, "%s/ckpt-00000003.h5", dir);
    snprintf(p2, sizeof p2, "%s/ckpt-00000002.h5", dir);
    struct stat st;
    ck_assert(stat(p3, &st) == 0);
    ck_assert_int_eq(rt_test_system("truncate -s %ld '%s'", (long)st.st_size * 2 / 3, p3), 0);
    ck_assert_int_eq(py(p2,
                        "off = h5py.File(sys.argv[1], 'r')['model/token_embd.weight'].id.get_chunk_info(0)"
                        ".byte_offset\n"
                        "fp = open(sys.argv[1], 'r+b'); fp.seek(off + 9); b = fp.read(1); fp.seek(off + 9)\n"
                        "fp.write(bytes([b[0] ^ 0x55])); fp.close()"),
                     0);
    rt_ckpt back;
    char path[2048];
    ck_assert_msg(rt_ckpt_read(p2, 1, &back, &err) != 0, "a flipped byte read back as weights");
    ck_assert_msg(strstr(err.msg, "token_embd.weight") && strstr(err.msg, "checksum"), "%s", err.msg);
    // the warnings go to stderr: capture them
    char log[2048];
    snprintf(log, sizeof log, "%s/stderr.log", dir);
    fflush(stderr);
    int saved = dup(2);
    ck_assert(freopen(log, "w", stderr) != NULL);
    int rc = rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_int_eq(back.state.step, 1);
    ck_assert_ptr_nonnull(strstr(path, "ckpt-00000001.h5"));
    assert_same(f.w, back.model, NT);
    rt_ckpt_free(&back);
    ck_assert_int_eq(
        rt_test_system("grep -q 'warning: skipping damaged checkpoint .*ckpt-00000003.h5' '%s'", log), 0);
    ck_assert_int_eq(
        rt_test_system("grep -q 'warning: skipping damaged checkpoint .*ckpt-00000002.h5: .*checksum' '%s'",
                       log),
        0);
    ck_assert_int_eq(rt_test_system("truncate -s 100 '%s/ckpt-00000001.h5'", dir), 0);
    ck_assert(rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err) != 0);
    ck_assert_msg(strstr(err.msg, "every checkpoint in") && strstr(err.msg, "damaged") &&
                      strstr(err.msg, "ckpt-00000003.h5"),
                  "%s", err.msg);
    const char *empty = rt_test_tmpdir("ckpt-empty");
    ck_assert(rt_ckpt_load_latest(empty, 1, &back, path, sizeof path, &err) != 0);
    ck_assert_msg(strstr(err.msg, "no checkpoint in") != NULL, "%s", err.msg);
    free_fake(&f);
}
END_TEST

START_TEST(test_truncation_and_garbage_sweep) {
    const char *dir = rt_test_tmpdir("ckpt-sweep");
    char good[2048], cut[2048];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    fake f;
    make_fake(&f, 5, 9);
    rt_error err;
    ck_assert(rt_ckpt_write(good, &f.c, &err) == 0);
    struct stat st;
    ck_assert(stat(good, &st) == 0);
    rt_ckpt back;
    for (int k = 0; k < 24; k++) { // cut points spread over the file, and the last byte
        long size = k < 23 ? (long)st.st_size * k / 23 : (long)st.st_size - 1;
        ck_assert_int_eq(rt_test_system("head -c %ld '%s' > '%s'", size, good, cut), 0);
        ck_assert_msg(rt_ckpt_read(cut, 1, &back, &err) != 0, "a file cut to %ld bytes read back", size);
        ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
    }
    rt_rng r;
    rt_rng_seed(&r, 9);
    FILE *fp;
    for (int k = 0; k < 20; k++) { // random bytes, and random bytes after a valid HDF5 signature
        fp = fopen(cut, "wb");
        if (k % 2) fwrite("\x89HDF\r\n\x1a\n", 1, 8, fp);
        for (int i = 0; i < 4096; i++) fputc((int)rt_rng_below(&r, 256), fp);
        fclose(fp);
        ck_assert(rt_ckpt_read(cut, 1, &back, &err) != 0);
        ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
    }
    // bytes flipped at random places of a valid file: either an error naming the file or, when the flip
    // hits unused space, an identical read; never a crash and never different weights
    for (int k = 0; k < 60; k++) {
        ck_assert_int_eq(rt_test_system("cp '%s' '%s'", good, cut), 0);
        long off = (long)rt_rng_below(&r, (uint64_t)st.st_size);
        fp = fopen(cut, "r+b");
        fseek(fp, off, SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, off, SEEK_SET);
        fputc(c ^ (1 + (int)rt_rng_below(&r, 255)), fp);
        fclose(fp);
        if (rt_ckpt_read(cut, 1, &back, &err) == 0) {
            assert_same(f.w, back.model, NT);
            assert_same(f.m, back.adam_m, NT);
            ck_assert_int_eq(memcmp(&back.state, &f.c.state, sizeof back.state), 0);
            rt_ckpt_free(&back);
        } else {
            ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
        }
    }
    // wrong kind of file: a directory, a missing path, a valid HDF5 file that is not a checkpoint
    ck_assert(rt_ckpt_read(dir, 1, &back, &err) != 0);
    ck_assert(rt_ckpt_read("/nonexistent/x.h5", 1, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "/nonexistent/x.h5") != NULL, "%s", err.msg);
    ck_assert_int_eq(
        py(cut, "f = h5py.File(sys.argv[1], 'w'); f['x'] = np.zeros(3); f.attrs['format'] = 'other'"), 0);
    ck_assert(rt_ckpt_read(cut, 1, &back, &err) != 0);
    ck_assert_msg(strstr(err.msg, "not a retort checkpoint") != NULL, "%s", err.msg);
    free_fake(&f);
}
END_TEST

// `retort inspect` on a checkpoint: the JSON statistics against numpy over the file read with h5py, the
// text form, and the exit codes for damaged files and usage errors.
START_TEST(test_inspect_cli) {
    const char *dir = rt_test_tmpdir("ckpt-inspect");
    const char *bin = rt_test_env("RETORT_BIN");
    char path[2048], out[2048], errf[2048];
    snprintf(path, sizeof path, "%s/i.h5", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(errf, sizeof errf, "%s/err.txt", dir);
    fake f;
    make_fake(&f, 8, 33);
    f.w[2].data[4] = NAN; // a diverged tensor: counted, kept out of the statistics
    rt_error err;
    ck_assert_msg(rt_ckpt_write(path, &f.c, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' --json > '%s'", bin, path, out), 0);
    int rc = py_with(
        path, out,
        "j = json.load(open(sys.argv[2])); f = h5py.File(sys.argv[1], 'r')\n"
        "assert j['kind'] == 'checkpoint' and j['format'] == 'retort-checkpoint' and j['version'] == 1\n"
        "assert j['architecture'] == 'llama' and j['producer'] == f.attrs['producer']\n"
        "assert j['producer'].startswith('retort ')\n"
        "assert [t['name'] for t in j['tensors']] == sorted(f['model'])\n"
        "def close(a, b): assert abs(a - b) <= 1e-6 * abs(b) + 1e-12, (a, b)\n"
        "for t in j['tensors']:\n"
        "    a = f['model'][t['name']][()].astype(np.float64); fin = a[np.isfinite(a)]\n"
        "    assert t['shape'] == list(a.shape) and t['elements'] == a.size\n"
        "    assert t['nonfinite'] == a.size - fin.size\n"
        "    close(t['l2'], np.sqrt((fin ** 2).sum())); close(t['min'], fin.min())\n"
        "    close(t['max'], fin.max()); close(t['mean_abs'], np.abs(fin).mean())\n"
        "assert {t['name']: t['nonfinite'] for t in j['tensors']}['blk.0.ffn_down.weight'] == 1\n"
        "assert j['total_parameters'] == sum(d.size for d in f['model'].values()) == 55\n"
        "m = j['optimizer']; assert m['tensors'] == 3 and m['elements'] == 55 and m['bytes'] == 440\n"
        "st = f['state'].attrs\n"
        "assert j['state'] == {'step': 33, 'tokens_seen': 33000, 'data_epoch': 3, 'data_index': 17,\n"
        "    'world_size': 1, 'rng': [int(x) for x in st['rng']]}, j['state']\n"
        "assert j['config_yaml'] == f['config'].attrs['yaml']\n"
        "assert j['tokenizer'] == {'type': 'byte', 'vocab_size': 259, 'bos_id': 256, 'eos_id': 257,\n"
        "    'pad_id': 258}\n");
    ck_assert_msg(rc == 0, "inspect --json disagrees with h5py + numpy (see the traceback above)");
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' > '%s'", bin, path, out), 0);
    ck_assert_int_eq(
        rt_test_system("grep -q 'total: 55 parameters in 3 tensors' '%s' && grep -q 'step 33' '%s' && "
                       "grep -q 'AdamW moments for 3 tensors' '%s' && grep -q 'out_dir' '%s' && "
                       "grep -q 'non-finite' '%s'",
                       out, out, out, out, out),
        0);
    // damaged and foreign files: exit 1 with the file named; usage errors: exit 2
    ck_assert_int_eq(rt_test_system("head -c 2000 '%s' > '%s/cut.h5'", path, dir), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s/cut.h5' > /dev/null 2> '%s'", bin, dir, errf), 1);
    ck_assert_int_eq(rt_test_system("grep -q 'retort inspect: error: .*cut.h5' '%s'", errf), 0);
    ck_assert_int_eq(rt_test_system("head -c 5000 /dev/urandom > '%s/junk.h5'", dir), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s/junk.h5' 2> '%s'", bin, dir, errf), 1);
    ck_assert_int_eq(rt_test_system("grep -q 'junk.h5: not an HDF5 file' '%s'", errf), 0);
    ck_assert_int_eq(
        py(out, "f = h5py.File(sys.argv[1], 'w'); f['x'] = np.zeros(3); f.attrs['format'] = 'other'"), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' 2> '%s'", bin, out, errf), 1);
    ck_assert_int_eq(rt_test_system("grep -q \"unknown format attribute 'other'\" '%s'", errf), 0);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s/missing.h5' 2> /dev/null", bin, dir), 1);
    ck_assert_int_eq(rt_test_system("'%s' inspect 2> /dev/null", bin), 2);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' '%s' 2> /dev/null", bin, path, path), 2);
    ck_assert_int_eq(rt_test_system("'%s' inspect '%s' --bogus 2> /dev/null", bin, path), 2);
    ck_assert_int_eq(rt_test_system("'%s' inspect --help | grep -q -- --json", bin), 0);
    free_fake(&f);
}
END_TEST

// A checkpoint with the exact layout of a small model (V=259, C=16, L=2, H=4, KVH=2, F=24, tied), for
// check_ckpt_h5py.py to read with h5py (registered as the ckpt_h5py test, which needs this one first).
START_TEST(test_write_layout_example) {
    const char *names[] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                           "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
    // H*D = 16, KVH*D = 8 with D = 4
    int64_t shapes[9][2] = {{16, 0}, {16, 16}, {8, 16},  {8, 16}, {16, 16},
                            {16, 0}, {24, 16}, {24, 16}, {16, 24}};
    rt_named_tensor ts[20], ms[20], vs[20];
    int n = 0;
    memset(ts, 0, sizeof ts);
    snprintf(ts[n].name, RT_TENSOR_NAME_MAX, "token_embd.weight");
    ts[n].ndim = 2, ts[n].shape[0] = 259, ts[n].shape[1] = 16, n++;
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++, n++) {
            snprintf(ts[n].name, RT_TENSOR_NAME_MAX, "blk.%d.%s.weight", l, names[k]);
            ts[n].ndim = shapes[k][1] ? 2 : 1, ts[n].shape[0] = shapes[k][0], ts[n].shape[1] = shapes[k][1];
        }
    snprintf(ts[n].name, RT_TENSOR_NAME_MAX, "output_norm.weight");
    ts[n].ndim = 1, ts[n].shape[0] = 16, n++;
    rt_rng r;
    rt_rng_seed(&r, 11);
    for (int i = 0; i < n; i++) {
        ts[i].data = malloc(259 * 16 * sizeof(float));
        rt_test_fill_uniform(&r, ts[i].data, 259 * 16, -1, 1);
        ms[i] = vs[i] = ts[i];
    }
    rt_ckpt c;
    memset(&c, 0, sizeof c);
    c.model = ts;
    c.adam_m = ms;
    c.adam_v = vs;
    c.n_model = c.n_optim = n;
    c.state = (rt_train_state){7, 7 * 64, {1, 2, 3, 4}, 0, 7, 1};
    c.config_yaml =
        "run:\n  out_dir: \"runs/x\"\nmodel:\n  vocab_size: 259\n  dim: 16\n  n_layers: 2\n  n_heads: 4\n"
        "  n_kv_heads: 2\n  ffn_dim: 24\n  max_seq_len: 64\n  tie_embeddings: true\ntrain:\n  lr: 0.001\n";
    rt_tok_source_byte(&c.tokenizer, 259);
    char dir[2048], path[2100];
    snprintf(dir, sizeof dir, "%s/tests/ref", rt_test_env("RT_BUILD_DIR"));
    snprintf(path, sizeof path, "%s/layout-example.h5", dir);
    rt_error err;
    ck_assert_msg(rt_mkdir_p(dir, &err) == 0, "%s", err.msg);
    ck_assert_msg(rt_ckpt_write(path, &c, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++) free(ts[i].data);
}
END_TEST

int main(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_weights_only_file);
    tcase_add_test(tc, test_moments_must_mirror_model);
    tcase_add_test(tc, test_real_tokenizer);
    tcase_add_test(tc, test_failed_write_leaves_old_file);
    tcase_add_test(tc, test_rotation_and_latest);
    tcase_add_test(tc, test_fallback_past_damaged);
    tcase_add_test(tc, test_truncation_and_garbage_sweep);
    tcase_add_test(tc, test_inspect_cli);
    tcase_add_test(tc, test_write_layout_example);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
