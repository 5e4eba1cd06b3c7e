// Generation with the KV cache against the whole-sequence forward, on random weights:
// - a prefill and then single positions (and a chunk of several) through rt_model_forward_cached give, at
//   every position of every sequence, the logits rt_model_forward gives over the whole sequence, for B > 1,
//   grouped-query attention, tied and untied output heads;
// - rt_generate (cached, falling back to a sliding window once the sequence outgrows the model) produces
//   the ids of the uncached loop it replaced, greedy and sampled;
// - misuse of the cache is refused with a message.
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "infer/sample.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "testutil.h"
#include "data/tokenizer.h"

static const rt_model_dims dims = {.V = 259,
                                   .C = 48,
                                   .L = 2,
                                   .H = 6,
                                   .KVH = 2,
                                   .D = 8,
                                   .F = 80,
                                   .T_max = 40,
                                   .eps = 1e-5f,
                                   .theta = 10000.0f,
                                   .tied = 1};

static rt_ctx ctx;

static void setup(void) {
    rt_error err;
    ck_assert_msg(rt_backend_cpu.ctx_init(&ctx, RT_F32, 2, &err) == 0, "%s", err.msg);
}
static void teardown(void) {
    rt_backend_cpu.ctx_free(&ctx);
}

// The untied model also has the options of imported architectures: q/k/v biases (random, so the cached
// path must add them as the whole forward does), a head dim of 10 with 6 heads on a width of 48, and llama3
// RoPE scaling.
static void make_model(rt_model *m, int tied, int B, int T, int training) {
    rt_error err;
    rt_model_dims d = dims;
    d.tied = tied;
    if (!tied) {
        d.D = 10;
        d.attn_bias = 1;
        d.rope = (rt_rope_scaling){RT_ROPE_SCALING_LLAMA3, 4.0f, 1.0f, 4.0f, 64};
    }
    ck_assert_msg(rt_model_create(m, &d, &ctx, B, T, training, &err) == 0, "%s", err.msg);
    // a wide init, so the logits are far from uniform and their differences mean something
    ck_assert_msg(rt_model_init_weights(m, 7 + (uint64_t)tied, 0.2f, &err) == 0, "%s", err.msg);
    rt_rng r;
    rt_rng_seed(&r, 3);
    for (int i = 0; i < m->n_params; i++) {
        rt_param *p = &m->params[i];
        if (!strstr(p->name, ".bias")) continue;
        float *h = malloc(p->n * sizeof(float));
        ck_assert_ptr_nonnull(h);
        rt_test_fill_uniform(&r, h, p->n, -0.5f, 0.5f);
        rt_model_set_weight(m, p, h);
        free(h);
    }
}

// Logits of the whole sequences [B, T] (rows b*T + t) by rt_model_forward.
static float *full_logits(rt_model *m, const int32_t *tok, int B, int T) {
    rt_error err;
    ck_assert_msg(rt_model_forward(m, tok, NULL, B, T, 1.0f, &err) == 0, "%s", err.msg);
    float *out = malloc((size_t)B * T * m->dims.V * sizeof(float));
    ck_assert_ptr_nonnull(out);
    for (int r = 0; r < B * T; r++) rt_model_logits_row(m, r, out + (size_t)r * m->dims.V);
    return out;
}

// Runs tok [B, T] through the cache in pieces of the given lengths (the first a prefill) and checks every
// position's logits against the whole forward.
static void check_pieces(int tied, int B, int T, const int *pieces, int n_pieces) {
    rt_model m;
    make_model(&m, tied, B, dims.T_max, 0);
    ck_assert_uint_gt(m.memory.activations, 0);
    int V = m.dims.V;
    rt_rng r;
    rt_rng_seed(&r, 100 + (uint64_t)B * 3 + (uint64_t)tied);
    int32_t *tok = malloc((size_t)B * T * sizeof(int32_t)), *piece = malloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)rt_rng_below(&r, (uint64_t)V);
    float *ref = full_logits(&m, tok, B, T), *got = malloc((size_t)V * sizeof(float));
    float scale = 0.0f;
    for (size_t i = 0; i < (size_t)B * T * V; i++) scale = fmaxf(scale, fabsf(ref[i]));
    rt_error err;
    int pos0 = 0;
    for (int p = 0; p < n_pieces; p++) {
        int n = pieces[p];
        for (int b = 0; b < B; b++)
            memcpy(piece + (size_t)b * n, tok + (size_t)b * T + pos0, (size_t)n * sizeof(int32_t));
        ck_assert_msg(rt_model_forward_cached(&m, piece, B, n, pos0, &err) == 0, "%s", err.msg);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < n; t++) {
                rt_model_logits_row(&m, b * n + t, got);
                char what[128];
                snprintf(what, sizeof what, "cached logits (tied=%d, B=%d) of sequence %d position %d", tied,
                         B, b, pos0 + t);
                rt_test_assert_close(what, got, ref + ((size_t)b * T + pos0 + t) * V, (size_t)V,
                                     1e-5f * scale, 1e-5f);
            }
        pos0 += n;
    }
    ck_assert_int_eq(pos0, T);
    ck_assert_int_eq(m.kv_len, T);
    free(tok), free(piece), free(ref), free(got);
    rt_model_free(&m);
}

START_TEST(test_prefill_then_steps) {
    int ones[1 + 26];
    ones[0] = 7; // prefill of 7, then 26 single steps up to 33 positions
    for (int i = 1; i < 27; i++) ones[i] = 1;
    for (int tied = 0; tied < 2; tied++) {
        check_pieces(tied, 3, 33, ones, 27);
        check_pieces(tied, 1, 33, ones, 27);
    }
    int chunks[] = {5, 1, 4, 1, 29}; // several positions per call, and the model's last position
    check_pieces(1, 2, 40, chunks, 5);
    int one_by_one[40];
    for (int i = 0; i < 40; i++) one_by_one[i] = 1; // a prefill of one id
    check_pieces(0, 2, 40, one_by_one, 40);
}
END_TEST

// A new prefill starts over: the same batch again gives the same logits, and a second batch after it is
// unaffected by the first.
START_TEST(test_prefill_resets) {
    rt_model m;
    make_model(&m, 1, 2, 20, 0);
    int32_t a[2 * 6], b[2 * 6];
    for (int i = 0; i < 12; i++) a[i] = i * 17 % 256, b[i] = (i * 31 + 5) % 256;
    rt_error err;
    int V = m.dims.V;
    float *first = malloc((size_t)V * 4), *again = malloc((size_t)V * 4);
    int32_t step_a[2] = {a[5], a[11]}, prefix_a[2 * 5];
    for (int s = 0; s < 2; s++) memcpy(prefix_a + s * 5, a + s * 6, 5 * sizeof(int32_t));
    for (int round = 0; round < 2; round++) {
        ck_assert_msg(rt_model_forward_cached(&m, prefix_a, 2, 5, 0, &err) == 0, "%s", err.msg);
        ck_assert_msg(rt_model_forward_cached(&m, step_a, 2, 1, 5, &err) == 0, "%s", err.msg);
        rt_model_logits_row(&m, 1, round ? again : first);
        if (round == 0) { // another batch in between
            ck_assert_msg(rt_model_forward_cached(&m, b, 2, 6, 0, &err) == 0, "%s", err.msg);
            ck_assert_msg(rt_model_forward_cached(&m, b, 2, 3, 6, &err) == 0, "%s", err.msg);
        }
    }
    ck_assert_msg(memcmp(first, again, (size_t)V * 4) == 0, "a fresh prefill did not start over");
    free(first), free(again);
    rt_model_free(&m);
}
END_TEST

START_TEST(test_misuse_is_refused) {
    rt_model m;
    rt_error err;
    int32_t tok[4 * 20] = {0};
    make_model(&m, 1, 2, 20, 0);
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 2, 3, 1, &err), 0); // nothing cached yet
    ck_assert_msg(strstr(err.msg, "cache holds"), "%s", err.msg);
    ck_assert_int_eq(rt_model_forward_cached(&m, tok, 2, 4, 0, &err), 0);
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 2, 1, 5, &err), 0);  // a gap after position 4
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 1, 1, 4, &err), 0);  // another batch size
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 2, 17, 4, &err), 0); // past T_max_batch
    ck_assert_msg(strstr(err.msg, "exceeds"), "%s", err.msg);
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 3, 1, 0, &err), 0); // past B_max
    ck_assert_int_eq(rt_model_forward_cached(&m, tok, 2, 1, 4, &err), 0);
    ck_assert_int_eq(rt_model_forward_cached(&m, tok, 2, 2, 3, &err), 0); // rewinding overwrites
    rt_model_free(&m);
    make_model(&m, 1, 2, 20, 1);
    ck_assert_ptr_null(m.cache_k);
    ck_assert_int_ne(rt_model_forward_cached(&m, tok, 2, 3, 0, &err), 0);
    ck_assert_msg(strstr(err.msg, "inference"), "%s", err.msg);
    rt_model_free(&m);
}
END_TEST

// The generation loop before the KV cache: a whole forward of the last T_cap ids per new id.
static int64_t generate_uncached(rt_model *m, int32_t *ids, int64_t n, int64_t max_new, const rt_sampling *s,
                                 rt_rng *rng) {
    int V = m->dims.V, T_cap = m->T_max_batch;
    float *row = malloc((size_t)V * 2 * sizeof(float));
    rt_error err;
    for (int64_t i = 0; i < max_new; i++) {
        int64_t start = n > T_cap ? n - T_cap : 0;
        int T = (int)(n - start);
        ck_assert_msg(rt_model_forward(m, ids + start, NULL, 1, T, 1.0f, &err) == 0, "%s", err.msg);
        rt_model_logits_row(m, T - 1, row);
        int32_t next = rt_sample_token(row, V, s, rng, row + V);
        ids[n++] = next;
        if (next == RT_TOK_EOS) break;
    }
    free(row);
    return n;
}

START_TEST(test_generate_matches_uncached) {
    const rt_sampling modes[3] = {{0.0f, 0, 1.0f}, {0.8f, 0, 1.0f}, {1.0f, 20, 0.9f}};
    for (int tied = 0; tied < 2; tied++) {
        rt_model m;
        make_model(&m, tied, 1, 24, 0); // 24 < T_max: the window slides after 24 ids
        for (int mode = 0; mode < 3; mode++) {
            enum { P = 6, NEW = 40 };
            int32_t want[P + NEW], got[P + NEW];
            want[0] = RT_TOK_BOS;
            for (int i = 1; i < P; i++) want[i] = 'a' + i * 3;
            memcpy(got, want, sizeof want[0] * P);
            rt_rng r1, r2;
            rt_rng_seed(&r1, 9 + (uint64_t)mode);
            rt_rng_seed(&r2, 9 + (uint64_t)mode);
            int64_t n_want = generate_uncached(&m, want, P, NEW, &modes[mode], &r1);
            rt_error err;
            int64_t n_got = rt_generate(&m, got, P, NEW, &modes[mode], &r2, NULL, NULL, &err);
            ck_assert_msg(n_got >= 0, "%s", err.msg);
            ck_assert_msg(n_got == n_want && memcmp(got, want, (size_t)n_got * sizeof(int32_t)) == 0,
                          "rt_generate (tied=%d, mode %d) made %lld ids, the uncached loop %lld, or others",
                          tied, mode, (long long)n_got, (long long)n_want);
            if (mode == 0) ck_assert_int_gt(n_got, 24); // greedy reached the sliding window
        }
        rt_model_free(&m);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("kv cache");
    TCase *tc = tcase_create("kv cache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_prefill_then_steps);
    tcase_add_test(tc, test_prefill_resets);
    tcase_add_test(tc, test_misuse_is_refused);
    tcase_add_test(tc, test_generate_matches_uncached);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
