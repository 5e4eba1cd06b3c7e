// The data order: a permutation per epoch, a pure function of (seed, epoch, index), and ranks that split
// each global draw without overlap.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/batcher.h"
#include "testutil.h"

// A dataset whose token i is i, so a window's first token says which window it is.
static rt_dataset make_ds(size_t n) {
    rt_dataset ds;
    memset(&ds, 0, sizeof ds);
    snprintf(ds.path, sizeof ds.path, "synthetic");
    ds.tokens = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) ds.tokens[i] = (int32_t)i;
    ds.n_tokens = n;
    ds.vocab_size = (int)n;
    return ds;
}

START_TEST(test_epoch_is_permutation_and_targets_shift) {
    rt_dataset ds = make_ds(8 * 10 + 1); // exactly 10 windows of T = 8
    rt_batcher b;
    rt_error err;
    ck_assert_int_eq(rt_batcher_init(&b, &ds, 8, 42, 1, 0, 1, &err), 0);
    ck_assert_int_eq(b.n_windows, 10);
    int seen[10] = {0}, in_order = 1;
    int32_t tok[2 * 8], tgt[2 * 8];
    for (int k = 0; k < 5; k++) {
        rt_batcher_next(&b, 2, tok, tgt);
        for (int r = 0; r < 2; r++) {
            ck_assert_int_eq(tok[r * 8] % 8, 0);
            int w = tok[r * 8] / 8;
            seen[w]++;
            if (w != k * 2 + r) in_order = 0;
            for (int t = 0; t < 8; t++) ck_assert_int_eq(tgt[r * 8 + t], tok[r * 8 + t] + 1);
        }
    }
    for (int w = 0; w < 10; w++) ck_assert_int_eq(seen[w], 1);
    ck_assert_msg(!in_order, "shuffled order equals file order");
    ck_assert_int_eq(b.epoch, 0);
    rt_batcher_next(&b, 1, tok, tgt); // rolls into epoch 1
    ck_assert_int_eq(b.epoch, 1);
    rt_batcher_free(&b);
    free(ds.tokens);
}
END_TEST

START_TEST(test_seek_reproduces_stream) {
    rt_dataset ds = make_ds(16 * 37 + 5);
    rt_batcher a, b;
    rt_error err;
    ck_assert_int_eq(rt_batcher_init(&a, &ds, 16, 7, 1, 0, 1, &err), 0);
    int32_t tok[3 * 16], tgt[3 * 16], tok2[3 * 16], tgt2[3 * 16];
    for (int k = 0; k < 29; k++) rt_batcher_next(&a, 3, tok, tgt); // crosses two epochs
    ck_assert_int_eq(rt_batcher_init(&b, &ds, 16, 7, 1, 0, 1, &err), 0);
    ck_assert_int_eq(rt_batcher_seek(&b, a.epoch, a.index, &err), 0);
    for (int k = 0; k < 20; k++) {
        rt_batcher_next(&a, 3, tok, tgt);
        rt_batcher_next(&b, 3, tok2, tgt2);
        ck_assert_int_eq(memcmp(tok, tok2, sizeof tok), 0);
        ck_assert_int_eq(memcmp(tgt, tgt2, sizeof tgt), 0);
    }
    ck_assert_int_ne(rt_batcher_seek(&b, 0, 38, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "synthetic"));
    rt_batcher_free(&a);
    rt_batcher_free(&b);
    free(ds.tokens);
}
END_TEST

START_TEST(test_ranks_partition_each_draw) {
    rt_dataset ds = make_ds(4 * 24 + 1);
    rt_batcher one, r0, r1;
    rt_error err;
    ck_assert_int_eq(rt_batcher_init(&one, &ds, 4, 3, 1, 0, 1, &err), 0);
    ck_assert_int_eq(rt_batcher_init(&r0, &ds, 4, 3, 1, 0, 2, &err), 0);
    ck_assert_int_eq(rt_batcher_init(&r1, &ds, 4, 3, 1, 1, 2, &err), 0);
    int32_t all[4 * 4], a[2 * 4], b[2 * 4], tg[4 * 4];
    for (int k = 0; k < 9; k++) {
        rt_batcher_next(&one, 4, all, tg); // the single-rank stream of 4 windows ...
        rt_batcher_next(&r0, 2, a, tg);    // ... is rank 0's 2 then rank 1's 2
        rt_batcher_next(&r1, 2, b, tg);
        ck_assert_int_eq(memcmp(all, a, sizeof a), 0);
        ck_assert_int_eq(memcmp(all + 8, b, sizeof b), 0);
    }
    rt_batcher_free(&one);
    rt_batcher_free(&r0);
    rt_batcher_free(&r1);
    free(ds.tokens);
}
END_TEST

START_TEST(test_too_small_dataset) {
    rt_dataset ds = make_ds(8);
    rt_batcher b;
    rt_error err;
    ck_assert_int_ne(rt_batcher_init(&b, &ds, 8, 1, 1, 0, 1, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "seq_len 8"));
    free(ds.tokens);
}
END_TEST

// Answer-only targets: documents of 6 ids (BOS, 2 prompt ids, 2 answer ids, EOS) from prompt_len = 2. The
// targets that count are the answer ids and EOS; BOS and the prompt become -1, across window borders too.
START_TEST(test_answer_mask) {
    rt_dataset ds = make_ds(6 * 7); // 7 documents
    int64_t offsets[8];
    int32_t plen[7];
    for (int d = 0; d <= 7; d++) offsets[d] = 6 * d;
    for (int d = 0; d < 7; d++) plen[d] = 2;
    ds.doc_offsets = offsets;
    ds.n_docs = 7;
    ds.prompt_len = plen;
    uint8_t *mask = NULL;
    rt_error err;
    ck_assert_int_eq(rt_dataset_answer_mask(&ds, &mask, &err), 0);
    for (int i = 0; i < 42; i++) ck_assert_int_eq(mask[i], i % 6 >= 3); // ids 3, 4, 5 of each document
    rt_batcher b;
    ck_assert_int_eq(rt_batcher_init(&b, &ds, 5, 9, 1, 0, 1, &err), 0); // windows straddle documents
    rt_batcher_set_mask(&b, mask);
    int32_t tok[3 * 5], tgt[3 * 5];
    for (int k = 0; k < 4; k++) {
        int64_t counted = rt_batcher_next(&b, 3, tok, tgt), want = 0;
        for (int i = 0; i < 15; i++) {
            int32_t next = tok[i] + 1; // token ids are positions
            int answer = next % 6 >= 3;
            ck_assert_int_eq(tgt[i], answer ? next : -1);
            want += answer;
        }
        ck_assert_int_eq(counted, want);
    }
    rt_batcher_free(&b);
    free(mask);
    ds.prompt_len = NULL; // a dataset without prompts has no answer to mask
    ck_assert_int_ne(rt_dataset_answer_mask(&ds, &mask, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "prompt_len"));
    ck_assert_ptr_null(mask);
    free(ds.tokens);
}
END_TEST

int main(void) {
    Suite *s = suite_create("batcher");
    TCase *tc = tcase_create("batcher");
    tcase_add_test(tc, test_epoch_is_permutation_and_targets_shift);
    tcase_add_test(tc, test_seek_reproduces_stream);
    tcase_add_test(tc, test_ranks_partition_each_draw);
    tcase_add_test(tc, test_too_small_dataset);
    tcase_add_test(tc, test_answer_mask);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
