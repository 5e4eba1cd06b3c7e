// libFuzzer harness: the checkpoint reader (rt_ckpt_read, with and without the optimizer state) on edited
// valid checkpoints (fuzz_h5edit.h), then the parse of the config text a checkpoint stores and the tokenizer
// built from its /tokenizer group (the third base stores a tokenizer.json in /tokenizer/source), also as
// rt_tokenizer_load reads it from the file alone.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_h5edit.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"

#define N_BASES 3
static uint8_t *base[N_BASES];
static size_t base_len[N_BASES];
static fz_h5_names names;

static rt_named_tensor tensor(const char *name, int64_t rows, int64_t cols, float *data) {
    rt_named_tensor t = {.ndim = cols ? 2 : 1, .shape = {rows, cols}, .data = data};
    snprintf(t.name, sizeof t.name, "%s", name);
    return t;
}

// A byte-level BPE tokenizer.json: a, b, ab (one merge) and a special token.
static const char tiny_tokenizer[] =
    "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 3, \"content\": \"<|endoftext|>\", \"single_word\": "
    "false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}], "
    "\"normalizer\": "
    "null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, "
    "\"use_regex\": true}, \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": "
    "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}}";

// A full checkpoint with optimizer moments, an adapter checkpoint (/lora and its base), and a full
// checkpoint of a model with a real tokenizer.
static void make_bases(void) {
    static float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i / 64.0f - 0.5f;
    rt_config cfg;
    rt_config_defaults(&cfg);
    char *yaml = rt_config_to_yaml(&cfg);
    if (!yaml) abort();
    rt_named_tensor model[3] = {tensor("token_embd.weight", 8, 4, w),
                                tensor("blk.0.attn_norm.weight", 4, 0, w),
                                tensor("output_norm.weight", 4, 0, w)};
    rt_named_tensor lora[2] = {tensor("blk.0.attn_q.weight.lora_a", 2, 4, w),
                               tensor("blk.0.attn_q.weight.lora_b", 4, 2, w)};
    rt_ckpt c[N_BASES];
    memset(c, 0, sizeof c);
    for (int i = 0; i < N_BASES; i++) {
        c[i].state = (rt_train_state){.step = 7, .tokens_seen = 448, .rng = {1, 2, 3, 4}, .world_size = 1};
        c[i].config_yaml = yaml;
        snprintf(c[i].architecture, sizeof c[i].architecture, "llama");
        rt_tok_source_byte(&c[i].tokenizer, 259);
    }
    c[0].model = model;
    c[0].n_model = 3;
    c[0].adam_m = model;
    c[0].adam_v = model;
    c[0].n_optim = 3;
    c[1].lora = lora;
    c[1].n_lora = 2;
    c[1].adam_m = lora;
    c[1].adam_v = lora;
    c[1].n_optim = 2;
    snprintf(c[1].base, sizeof c[1].base, "base.h5");
    snprintf(c[1].base_hash, sizeof c[1].base_hash, "0123456789abcdef");
    c[2].model = model;
    c[2].n_model = 3;
    rt_tok_source *t = &c[2].tokenizer;
    snprintf(t->type, sizeof t->type, "bpe");
    snprintf(t->format, sizeof t->format, "tokenizer.json");
    t->vocab_size = 4;
    t->bos_id = -1;
    t->eos_id = 3;
    t->pad_id = -1;
    t->bytes = (uint8_t *)tiny_tokenizer;
    t->len = sizeof tiny_tokenizer - 1;
    rt_bytes_hash(t->bytes, t->len, t->hash);
    for (int i = 0; i < N_BASES; i++) {
        char name[32];
        snprintf(name, sizeof name, "base%d.h5", i);
        const char *path = fz_path(name);
        rt_error err;
        if (rt_ckpt_write(path, &c[i], &err)) {
            fprintf(stderr, "fuzz_checkpoint: cannot write its base file: %s\n", err.msg);
            abort();
        }
        fz_h5_collect(&names, path);
        base[i] = fz_read(path, &base_len[i]);
    }
    free(yaml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base[0]) make_bases();
    fz_in in = {data, size};
    int which = fz_u8(&in) % N_BASES, with_optim = fz_u8(&in) % 2;
    char path[600];
    snprintf(path, sizeof path, "%s", fz_path("work.h5"));
    fz_write(path, base[which], base_len[which]);
    fz_h5_edit(path, &in, &names);
    long ids = fz_h5_open_ids();
    rt_ckpt c;
    rt_error err;
    if (rt_ckpt_read(path, with_optim, &c, &err) == 0) {
        // what the reader promises: every tensor has a valid shape and readable data
        rt_named_tensor *groups[] = {c.model, c.lora, c.adam_m, c.adam_v};
        int counts[] = {c.n_model, c.n_lora, c.n_optim, c.n_optim};
        float sum = 0;
        for (int g = 0; g < 4; g++)
            for (int i = 0; i < counts[g]; i++) {
                size_t n;
                if (!rt_dims_product(groups[g][i].shape, groups[g][i].ndim, &n)) abort();
                for (size_t j = 0; j < n; j++) sum += groups[g][i].data[j];
            }
        fz_sink ^= (uint8_t)(sum != sum);
        rt_config cfg;
        rt_ckpt_parse_config(path, c.config_yaml, &cfg, &err);
        rt_tokenizer *tok = NULL;
        if (rt_ckpt_tokenizer(&c, &tok, &err) == 0) {
            rt_tok_ids ids = {0};
            if (rt_tokenizer_encode(tok, "abab<|endoftext|>b", 18, 1, &ids, &err) == 0)
                for (size_t i = 0; i < ids.n; i++)
                    if (ids.ids[i] < 0 || ids.ids[i] >= rt_tokenizer_vocab_size(tok)) abort();
            rt_tok_ids_free(&ids);
            rt_tokenizer_free(tok);
        }
        rt_ckpt_free(&c);
    }
    rt_tokenizer *tok = NULL; // what `retort tokenize CKPT` reads: the /tokenizer group alone
    if (rt_tokenizer_load(path, &tok, &err) == 0) rt_tokenizer_free(tok);
    if (fz_h5_open_ids() != ids) {
        fprintf(stderr, "fuzz_checkpoint: rt_ckpt_read left HDF5 ids open\n");
        abort();
    }
    return 0;
}
