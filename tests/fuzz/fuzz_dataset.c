// libFuzzer harness: the dataset reader (rt_dataset_load) on edited valid datasets (fuzz_h5edit.h; one base
// of a real tokenizer, with tokenizer_hash), then the functions that trust what it validated (answer mask,
// answer rows).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "data/tokenizer.h"
#include "fuzz_h5edit.h"

#define N_BASES 4
static uint8_t *base[N_BASES];
static size_t base_len[N_BASES];
static fz_h5_names names;

// Three small valid datasets: plain documents, prompt/answer documents, and a teacher's answers with top-k.
static void make_bases(void) {
    int32_t tokens[] = {RT_TOK_BOS, 'a', 'b', RT_TOK_EOS, RT_TOK_BOS, '1', '+', '1', '=', '2', RT_TOK_EOS};
    int64_t offsets[] = {0, 4, 11};
    int32_t prompt_len[] = {1, 4};
    // answer positions: doc 0 has 'b', EOS (2), doc 1 has '2', EOS (2)
    int32_t ids[4 * 2] = {'b', 'c', RT_TOK_EOS, 'a', '2', '3', RT_TOK_EOS, 0};
    float logprobs[4 * 2] = {-0.1f, -2.5f, -0.2f, -3.0f, -0.05f, -3.2f, -0.01f, -5.0f};
    rt_dataset_topk topk = {2, 1.0, 4, ids, logprobs};
    rt_dataset_spec specs[N_BASES] = {
        {tokens, 11, offsets, 2, NULL, 259, "text", "all", 1, "fuzz base", NULL, NULL, 0, NULL, NULL, NULL},
        {tokens, 11, offsets, 2, prompt_len, 260, "add", "train", 2, "fuzz base", NULL, NULL, 0, NULL, NULL,
         NULL},
        {tokens, 11, offsets, 2, prompt_len, 259, "add", "val", 3, "fuzz base", "teacher.h5",
         "0123456789abcdef", 300, &topk, NULL, NULL},
        // a dataset of a real tokenizer: tokenizer = "bpe" with tokenizer_hash
        {tokens, 11, offsets, 2, NULL, 259, "text", "all", 4, "fuzz base", NULL, NULL, 0, NULL, "bpe",
         "fedcba9876543210"},
    };
    for (int i = 0; i < N_BASES; i++) {
        char name[32];
        snprintf(name, sizeof name, "base%d.h5", i);
        const char *path = fz_path(name);
        rt_error err;
        if (rt_dataset_write(path, &specs[i], &err)) {
            fprintf(stderr, "fuzz_dataset: cannot write its base file: %s\n", err.msg);
            abort();
        }
        fz_h5_collect(&names, path);
        base[i] = fz_read(path, &base_len[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base[0]) make_bases();
    fz_in in = {data, size};
    int which = fz_u8(&in) % N_BASES;
    static const int vocabs[] = {0, 259, 260, 300, 1 << 24};
    int max_vocab = vocabs[fz_u8(&in) % 5];
    char path[600];
    snprintf(path, sizeof path, "%s", fz_path("work.h5"));
    fz_write(path, base[which], base_len[which]);
    fz_h5_edit(path, &in, &names);
    long ids = fz_h5_open_ids();
    rt_dataset ds;
    rt_error err;
    if (rt_dataset_load(&ds, path, max_vocab, &err) == 0) {
        size_t answers = rt_dataset_answer_count(&ds);
        uint8_t *mask = NULL;
        int64_t *rows = NULL;
        if (rt_dataset_answer_mask(&ds, &mask, &err) == 0 && rt_dataset_answer_rows(&ds, &rows, &err) == 0) {
            size_t marked = 0;
            for (size_t i = 0; i < ds.n_tokens; i++) {
                marked += mask[i];
                if ((rows[i] >= 0) != (mask[i] != 0) || rows[i] >= (int64_t)answers) abort();
            }
            if (marked != answers) abort();
            if (ds.topk.k && ds.topk.n_rows != answers) abort();
        }
        free(mask);
        free(rows);
        rt_dataset_free(&ds);
    }
    if (fz_h5_open_ids() != ids) {
        fprintf(stderr, "fuzz_dataset: rt_dataset_load left HDF5 ids open\n");
        abort();
    }
    return 0;
}
