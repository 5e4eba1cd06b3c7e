// A tokenizer as GGUF tokenizer.ggml.* keys for llama.cpp (tokenizer_gguf_write.h, docs/export.md):
//   bytes  retort's byte vocabulary as a gpt2 tokenizer without merges (what GGUF exports always wrote)
//   bpe    gpt2: tokens in GPT-2's byte alphabet, token types, merges in rank order, tokenizer.ggml.pre
//   spm    llama: tokens with "▁", token types (<0xXX> BYTE), scores; add_space_prefix from the normalizer
//          or Metaspace. llama.cpp's SentencePiece merges the adjacent pair whose merged piece scores
//          highest (the leftmost on ties), HF's BPE the pair of lowest merge rank: with every piece scored
//          minus the rank of the merge that makes it, both merge in the same order. Scores read from a
//          GGUF are kept as they were.
// The token list is as long as the model's vocabulary (llama.cpp sizes the embedding by it): ids the
// tokenizer does not have are "[PAD<id>]" of type UNUSED, as llama.cpp's converter writes them.
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer_gguf_write.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

// The byte tokenizer, as retort's GGUF exports have always written it.
static int add_bytes(rt_gguf_writer *w, int V, rt_error *err) {
    char(*text)[24] = calloc((size_t)V, sizeof *text);
    const char **tokens = calloc((size_t)V, sizeof *tokens);
    int32_t *types = calloc((size_t)V, sizeof *types);
    int rc = 0;
    if (!text || !tokens || !types) rc = rt_fail(err, "out of memory for the vocabulary");
    for (int i = 0; rc == 0 && i < V; i++) {
        if (i < 256) {
            rt_tok_byte_char(i, text[i]);
            types[i] = RT_TOKEN_NORMAL; // token id == byte value
        } else if (i < 259) {
            snprintf(text[i], sizeof text[i], "%s", i == 256 ? "<s>" : i == 257 ? "</s>" : "<pad>");
            types[i] = RT_TOKEN_CONTROL;
        } else {
            snprintf(text[i], sizeof text[i], "<unused_%d>", i);
            types[i] = RT_TOKEN_UNUSED;
        }
        tokens[i] = text[i];
    }
    if (rc == 0) {
        rt_gguf_add_string(w, "tokenizer.ggml.model", "gpt2");
        rt_gguf_add_string(w, "tokenizer.ggml.pre", "default");
        rt_gguf_add_string_array(w, "tokenizer.ggml.tokens", tokens, (size_t)V);
        rt_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, (size_t)V);
        rt_gguf_add_string_array(w, "tokenizer.ggml.merges", NULL, 0); // required for gpt2, may be empty
        rt_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", 256);
        rt_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", 257);
        rt_gguf_add_u32(w, "tokenizer.ggml.padding_token_id", 258);
        rt_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", 1); // retort starts every sequence with BOS
        rt_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", 0);
    }
    free(text);
    free(tokens);
    free(types);
    return rc;
}

// Whether SentencePiece's "▁" goes before the text: a Prepend normalizer (Llama 2's legacy form) or a
// Metaspace that prepends.
static int adds_space_prefix(const rt_tokenizer *t) {
    for (int i = 0; i < t->n_norm; i++)
        if (t->norm[i].kind == RT_NORM_PREPEND) return 1;
    for (int i = 0; i < t->n_pre; i++)
        if (t->pre[i].kind == RT_PRE_METASPACE && t->pre[i].prepend_scheme != RT_PREPEND_NEVER) return 1;
    return 0;
}

// Scores for a tokenizer.json SentencePiece model: minus the rank of the merge that makes each piece;
// pieces no merge makes (characters, bytes, added tokens) get 0, or -FLT_MAX when longer than one
// character, so llama.cpp makes them last, if ever.
static float *derived_scores(const rt_tokenizer *t, rt_error *err) {
    float *s = rt_malloc((size_t)t->n_vocab * sizeof(float) + 1, "token scores", err);
    if (!s) return NULL;
    for (int32_t id = 0; id < t->n_vocab; id++) s[id] = 1.0f; // not yet seen
    for (size_t r = 0; r < t->n_merges; r++) {
        const rt_tok_pair_slot *m = rt_tok_find_merge(t, t->merges[2 * r], t->merges[2 * r + 1]);
        if (m && m->merged >= 0 && m->merged < t->n_vocab && s[m->merged] > 0.0f) s[m->merged] = -(float)r;
    }
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (s[id] <= 0.0f) continue;
        size_t len = 0;
        const char *text = rt_tok_text(t, id, &len);
        uint32_t cp;
        int one_char = text && len > 0 && rt_utf8_next(text, len, &cp) == len;
        s[id] = one_char || t->tok_type[id] != RT_TOKEN_NORMAL ? 0.0f : -FLT_MAX;
    }
    return s;
}

static int add_real(rt_gguf_writer *w, const rt_tokenizer *t, int V, rt_error *err) {
    int spm = strcmp(t->kind, "spm") == 0;
    char(*pad)[24] = calloc((size_t)V, sizeof *pad);
    const char **tokens = calloc((size_t)V, sizeof *tokens);
    int32_t *types = calloc((size_t)V, sizeof *types);
    float *scores = calloc((size_t)V, sizeof *scores);
    int rc = pad && tokens && types && scores ? 0 : rt_fail(err, "out of memory for the vocabulary");
    float *src_scores = NULL;
    if (rc == 0 && spm) {
        src_scores = t->scores ? t->scores : derived_scores(t, err);
        if (!src_scores) rc = -1;
    }
    for (int i = 0; rc == 0 && i < V; i++) {
        size_t len = 0;
        const char *text = i < t->n_vocab ? rt_tok_text(t, i, &len) : NULL;
        if (text && strlen(text) != len)
            rc = rt_fail(err, "%s: token %d holds a NUL byte, which GGUF's token strings cannot", t->origin,
                         i);
        if (text) {
            tokens[i] = text;
            types[i] = t->tok_type[i] >= RT_TOKEN_NORMAL ? t->tok_type[i] : RT_TOKEN_NORMAL;
            scores[i] = spm ? src_scores[i] : 0.0f;
        } else {
            snprintf(pad[i], sizeof pad[i], "[PAD%d]", i);
            tokens[i] = pad[i];
            types[i] = RT_TOKEN_UNUSED;
            scores[i] = spm ? -FLT_MAX : 0.0f;
        }
    }
    char **merges = NULL;
    size_t n_merges = spm ? 0 : t->n_merges;
    if (rc == 0 && n_merges) {
        merges = calloc(n_merges, sizeof *merges);
        if (!merges) rc = rt_fail(err, "out of memory for the merges");
    }
    for (size_t r = 0; rc == 0 && r < n_merges; r++) {
        size_t la, lb;
        const char *a = rt_tok_text(t, t->merges[2 * r], &la), *b = rt_tok_text(t, t->merges[2 * r + 1], &lb);
        merges[r] = malloc(la + lb + 2);
        if (!merges[r]) {
            rc = rt_fail(err, "out of memory for the merges");
            break;
        }
        memcpy(merges[r], a, la);
        merges[r][la] = ' ';
        memcpy(merges[r] + la + 1, b, lb);
        merges[r][la + lb + 1] = '\0';
    }
    if (rc == 0) {
        rt_gguf_add_string(w, "tokenizer.ggml.model", t->ggml_model);
        rt_gguf_add_string(w, "tokenizer.ggml.pre", t->pre_name[0] ? t->pre_name : "default");
        rt_gguf_add_string_array(w, "tokenizer.ggml.tokens", tokens, (size_t)V);
        if (spm) rt_gguf_add_f32_array(w, "tokenizer.ggml.scores", scores, (size_t)V);
        rt_gguf_add_i32_array(w, "tokenizer.ggml.token_type", types, (size_t)V);
        if (!spm) rt_gguf_add_string_array(w, "tokenizer.ggml.merges", (const char *const *)merges, n_merges);
        const char *keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                               "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
        int32_t ids[4] = {t->bos, t->eos, t->unk, t->pad};
        for (int k = 0; k < 4; k++)
            if (ids[k] >= 0) rt_gguf_add_u32(w, keys[k], (uint32_t)ids[k]);
        rt_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", rt_tokenizer_adds_bos(t));
        rt_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", rt_tokenizer_adds_eos(t));
        if (spm) rt_gguf_add_bool(w, "tokenizer.ggml.add_space_prefix", adds_space_prefix(t));
    }
    for (size_t r = 0; merges && r < n_merges; r++) free(merges[r]);
    free(merges);
    if (src_scores != t->scores) free(src_scores);
    free(pad);
    free(tokens);
    free(types);
    free(scores);
    return rc;
}

int rt_tokenizer_to_gguf(const rt_tokenizer *t, int model_vocab, rt_gguf_writer *w, rt_error *err) {
    if (t->algo == RT_ALGO_BYTES) return add_bytes(w, model_vocab, err);
    if (model_vocab < t->n_vocab)
        return rt_fail(err, "the model's vocabulary (%d) is smaller than its tokenizer's (%d ids)",
                       model_vocab, t->n_vocab);
    return add_real(w, t, model_vocab, err);
}
