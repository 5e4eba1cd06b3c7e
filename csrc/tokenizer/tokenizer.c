// The tokenizer object: loading by source kind, retort's byte tokenizer, the accessors, freeing.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/files.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokenizer_source.h"

int rt_tokenizer_bytes(rt_tokenizer **out, rt_error *err) {
    rt_tokenizer *t = rt_tok_new("the byte tokenizer", err);
    if (!t) return -1;
    t->algo = RT_ALGO_BYTES;
    t->kind = "bytes";
    t->ggml_model = "gpt2";
    int rc = rt_tok_alloc_ids(t, 259, err);
    // texts as the GGUF export writes them: bytes in GPT-2's alphabet, then the control tokens
    for (int b = 0; rc == 0 && b < 256; b++) {
        char c[4];
        int n = rt_tok_byte_char(b, c);
        rc = rt_tok_set_token(t, b, c, (size_t)n, RT_TOKEN_NORMAL, RT_TOKF_MODEL, err);
    }
    static const char *const control[3] = {"<s>", "</s>", "<pad>"};
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = rt_tok_set_token(t, 256 + i, control[i], strlen(control[i]), RT_TOKEN_CONTROL,
                              RT_TOKF_MODEL | RT_TOKF_SPECIAL, err);
    if (rc == 0) rc = rt_tok_index_vocab(t, 0, err);
    if (rc) {
        rt_tokenizer_free(t);
        return -1;
    }
    t->bos = 256;
    t->eos = 257;
    t->pad = 258;
    t->prefix[t->n_prefix++] = t->bos;
    *out = t;
    return 0;
}

void rt_tokenizer_free(rt_tokenizer *t) {
    if (!t) return;
    free(t->origin);
    free(t->text);
    free(t->tok_off);
    free(t->tok_len);
    free(t->tok_type);
    free(t->flags);
    free(t->scores);
    free(t->vocab.slots);
    free(t->merges);
    free(t->merge_map.slots);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].match);
    free(t->added);
    free(t->match_raw.items);
    free(t->match_normalized.items);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].pattern);
        free(t->norm[i].content);
    }
    free(t->norm);
    free(t->pre);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].pattern);
        free(t->dec[i].content);
    }
    free(t->dec);
    free(t);
}

// ---- loading by source (tokenizer_source.c tells the kinds apart and keeps the bytes)

int rt_tokenizer_load(const char *source, rt_tokenizer **out, rt_error *err) {
    if (!source[0]) return rt_fail(err, "an empty tokenizer source (give a file, a folder or a checkpoint)");
    rt_tok_source s;
    if (rt_tok_source_load(source, &s, out, err)) return -1;
    rt_tok_source_free(&s);
    return 0;
}

// ---- accessors

const char *rt_tokenizer_kind(const rt_tokenizer *t) {
    return t->kind;
}
const char *rt_tokenizer_origin(const rt_tokenizer *t) {
    return t->origin;
}
int32_t rt_tokenizer_vocab_size(const rt_tokenizer *t) {
    return t->n_vocab;
}
int32_t rt_tokenizer_bos(const rt_tokenizer *t) {
    return t->bos;
}
int32_t rt_tokenizer_eos(const rt_tokenizer *t) {
    return t->eos;
}
int32_t rt_tokenizer_pad(const rt_tokenizer *t) {
    return t->pad;
}
int32_t rt_tokenizer_unk(const rt_tokenizer *t) {
    return t->unk;
}
int rt_tokenizer_adds_bos(const rt_tokenizer *t) {
    return t->n_prefix > 0 && t->prefix[0] == t->bos && t->bos >= 0;
}
int rt_tokenizer_adds_eos(const rt_tokenizer *t) {
    return t->n_suffix > 0 && t->suffix[t->n_suffix - 1] == t->eos && t->eos >= 0;
}
const char *rt_tokenizer_token(const rt_tokenizer *t, int32_t id, size_t *len) {
    return rt_tok_text(t, id, len);
}
int rt_tokenizer_token_type(const rt_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab ? t->tok_type[id] : RT_TOKEN_UNDEFINED;
}
float rt_tokenizer_score(const rt_tokenizer *t, int32_t id) {
    return t->scores && id >= 0 && id < t->n_vocab ? t->scores[id] : 0.0f;
}
int rt_tokenizer_has_scores(const rt_tokenizer *t) {
    return t->scores != NULL;
}
size_t rt_tokenizer_n_merges(const rt_tokenizer *t) {
    return t->n_merges;
}
void rt_tokenizer_merge(const rt_tokenizer *t, size_t rank, int32_t *left, int32_t *right) {
    *left = rank < t->n_merges ? t->merges[2 * rank] : -1;
    *right = rank < t->n_merges ? t->merges[2 * rank + 1] : -1;
}
const char *rt_tokenizer_ggml_model(const rt_tokenizer *t) {
    return t->ggml_model;
}
const char *rt_tokenizer_pre(const rt_tokenizer *t) {
    return t->pre_name;
}
