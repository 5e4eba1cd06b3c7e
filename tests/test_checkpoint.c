// Checkpoints: bit-exact round trip, atomic writes, rotation, fallback past damaged files, and damaged or
// garbage files of every kind failing with a message instead of crashing.
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "testutil.h"

#define NT 3

typedef struct fake {
    rt_named_tensor w[NT], m[NT], v[NT];
    rt_ckpt c;
} fake;

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
    f->c.model = f->w;
    f->c.adam_m = f->m;
    f->c.adam_v = f->v;
    f->c.n_model = f->c.n_optim = NT;
    f->c.state = (rt_train_state){step, step * 1000, {UINT64_MAX, 1, 0x8000000000000000ULL, 42}, 3, 17, 1};
    f->c.config_yaml = "run:\n  out_dir: \"a \\\"quoted\\\" dir\"\n# ünïcødé\n";
    snprintf(f->c.architecture, sizeof f->c.architecture, "llama");
    f->c.tokenizer = (rt_tokenizer_info){"byte", 259, 256, 257, 258};
}

static void free_fake(fake *f) {
    for (int i = 0; i < NT; i++) free(f->w[i].data), free(f->m[i].data), free(f->v[i].data);
}

static void assert_same(const rt_named_tensor *a, const rt_named_tensor *b, int n) {
    for (int i = 0; i < n; i++) {
        const rt_named_tensor *t = rt_ckpt_find(b, n, a[i].name);
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
    ck_assert_str_eq(back.config_yaml, f.c.config_yaml);
    ck_assert_str_eq(back.architecture, "llama");
    ck_assert_str_eq(back.tokenizer.type, "byte");
    ck_assert_int_eq(back.tokenizer.eos_id, 257);
    rt_ckpt_free(&back);
    ck_assert_msg(rt_ckpt_read(path, 0, &back, &err) == 0, "%s", err.msg);  // weights only
    ck_assert_int_eq(back.n_optim, 0);
    rt_ckpt_free(&back);
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
    float *keep = f.w[1].data;
    f.w[1].data = NULL;  // an invalid tensor: the write must fail before touching path
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "blk.0.attn_norm.weight"));
    f.w[1].data = keep;
    f.w[0].shape[0] = -1;
    ck_assert(rt_ckpt_write(path, &f.c, &err) != 0);
    f.w[0].shape[0] = 7;
    char bad[2048];
    snprintf(bad, sizeof bad, "%s/no-such-dir/b.h5", dir);
    ck_assert(rt_ckpt_write(bad, &f.c, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "no-such-dir"));
    ck_assert(stat(path, &after) == 0);
    ck_assert_int_eq(before.st_size, after.st_size);
    rt_ckpt back;
    ck_assert_msg(rt_ckpt_read(path, 1, &back, &err) == 0, "%s", err.msg);
    rt_ckpt_free(&back);
    ck_assert_int_eq(rt_test_system("ls '%s' | grep -q tmp", dir), 1);  // no temp file left behind
    free_fake(&f);
}
END_TEST

static int count_ckpts(const char *dir) {
    return rt_test_system("exit $(ls '%s' | grep -c '^ckpt-[0-9]*\\.h5$')", dir);
}

START_TEST(test_rotation_and_latest) {
    const char *dir = rt_test_tmpdir("ckpt-rot");
    fake f;
    make_fake(&f, 3, 0);
    rt_error err;
    char written[2048];
    for (int64_t step = 10; step <= 50; step += 10) {
        f.c.state.step = step;
        ck_assert_msg(rt_ckpt_save_rotating(dir, &f.c, 2, written, sizeof written, &err) == 0, "%s", err.msg);
    }
    ck_assert_int_eq(count_ckpts(dir), 2);
    ck_assert_int_eq(rt_test_system("test -f '%s/ckpt-00000040.h5' -a -f '%s/ckpt-00000050.h5'", dir, dir), 0);
    char link[2048], target[256] = {0};
    snprintf(link, sizeof link, "%s/ckpt-latest.h5", dir);
    ck_assert(readlink(link, target, sizeof target - 1) > 0);
    ck_assert_str_eq(target, "ckpt-00000050.h5");
    rt_ckpt back;
    char path[2048];
    ck_assert(rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err) == 0);
    ck_assert_int_eq(back.state.step, 50);
    rt_ckpt_free(&back);
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
    // newest truncated, the one before has a flipped byte inside a tensor's data
    ck_assert_int_eq(rt_test_system("truncate -s 3000 '%s/ckpt-00000003.h5'", dir), 0);
    char p2[2048];
    snprintf(p2, sizeof p2, "%s/ckpt-00000002.h5", dir);
    ck_assert_int_eq(rt_test_system("'%s' -c \"import h5py,sys; f=h5py.File(sys.argv[1],'r'); "
                                    "print(f['model/token_embd.weight'].id.get_chunk_info(0).byte_offset)\" "
                                    "'%s' > '%s.off'", rt_test_env("RT_PYTHON"), p2, p2), 0);
    ck_assert_int_eq(rt_test_system("off=$(cat '%s.off'); printf '\\x55' | dd of='%s' bs=1 seek=$((off+9)) "
                                    "conv=notrunc status=none", p2, p2), 0);
    rt_ckpt back;
    char path[2048];
    ck_assert_msg(rt_ckpt_read(p2, 1, &back, &err) != 0, "a flipped byte read back as weights");
    ck_assert_ptr_nonnull(strstr(err.msg, "token_embd.weight"));
    ck_assert_msg(rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(back.state.step, 1);
    ck_assert_ptr_nonnull(strstr(path, "ckpt-00000001.h5"));
    rt_ckpt_free(&back);
    ck_assert_int_eq(rt_test_system("truncate -s 100 '%s/ckpt-00000001.h5'", dir), 0);
    ck_assert(rt_ckpt_load_latest(dir, 1, &back, path, sizeof path, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "damaged"));
    const char *empty = rt_test_tmpdir("ckpt-empty");
    ck_assert(rt_ckpt_load_latest(empty, 1, &back, path, sizeof path, &err) != 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "no checkpoint"));
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
    for (int k = 0; k < 24; k++) {  // cut points spread over the file
        long size = (long)st.st_size * k / 24;
        ck_assert_int_eq(rt_test_system("head -c %ld '%s' > '%s'", size, good, cut), 0);
        ck_assert_msg(rt_ckpt_read(cut, 1, &back, &err) != 0, "a file cut to %ld bytes read back", size);
        ck_assert_msg(strstr(err.msg, "cut.h5") != NULL, "message lacks the file name: %s", err.msg);
    }
    rt_rng r;
    rt_rng_seed(&r, 9);
    FILE *fp;
    for (int k = 0; k < 20; k++) {  // random bytes, and random bytes after a valid HDF5 signature
        fp = fopen(cut, "wb");
        if (k % 2) fwrite("\x89HDF\r\n\x1a\n", 1, 8, fp);
        for (int i = 0; i < 4096; i++) fputc((int)rt_rng_below(&r, 256), fp);
        fclose(fp);
        ck_assert(rt_ckpt_read(cut, 1, &back, &err) != 0);
    }
    // bytes flipped at random places of a valid file: either an error or, when the flip hits unused
    // space, an identical read — never a crash and never different weights
    for (int k = 0; k < 40; k++) {
        ck_assert_int_eq(rt_test_system("cp '%s' '%s'", good, cut), 0);
        long off = (long)rt_rng_below(&r, (uint64_t)st.st_size);
        fp = fopen(cut, "r+b");
        fseek(fp, off, SEEK_SET);
        int c = fgetc(fp);
        fseek(fp, off, SEEK_SET);
        fputc(c ^ 0x5a, fp);
        fclose(fp);
        if (rt_ckpt_read(cut, 1, &back, &err) == 0) {
            assert_same(f.w, back.model, NT);
            rt_ckpt_free(&back);
        }
    }
    free_fake(&f);
}
END_TEST

// A checkpoint with the exact layout of a small model (V=259, C=16, L=2, H=4, KVH=2, F=24, tied), for
// check_ckpt_h5py.py to read with h5py (registered as the ckpt_h5py test).
START_TEST(test_write_layout_example) {
    const char *names[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};
    int64_t shapes[9][2] = {{16, 0}, {16, 16}, {8, 16}, {8, 16}, {16, 16}, {16, 0}, {24, 16}, {24, 16}, {16, 24}};
    rt_named_tensor ts[20];
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
    for (int i = 0; i < n; i++) ts[i].data = calloc(259 * 16, sizeof(float));
    rt_ckpt c;
    memset(&c, 0, sizeof c);
    c.model = c.adam_m = c.adam_v = ts;
    c.n_model = c.n_optim = n;
    c.state.world_size = 1;
    c.config_yaml = "model:\n  vocab_size: 259\n  dim: 16\n  n_layers: 2\n  n_heads: 4\n  n_kv_heads: 2\n"
                    "  ffn_dim: 24\n  tie_embeddings: true\n";
    c.tokenizer = (rt_tokenizer_info){"byte", 259, 256, 257, 258};
    char path[2048];
    snprintf(path, sizeof path, "%s/tests/ref/layout-example.h5", rt_test_env("RT_BUILD_DIR"));
    rt_error err;
    ck_assert_msg(rt_ckpt_write(path, &c, &err) == 0, "%s", err.msg);
    for (int i = 0; i < n; i++) free(ts[i].data);
}
END_TEST

int main(void) {
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_failed_write_leaves_old_file);
    tcase_add_test(tc, test_rotation_and_latest);
    tcase_add_test(tc, test_fallback_past_damaged);
    tcase_add_test(tc, test_truncation_and_garbage_sweep);
    tcase_add_test(tc, test_write_layout_example);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
