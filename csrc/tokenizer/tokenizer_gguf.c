// A tokenizer from a GGUF file's tokenizer.ggml.* keys (what llama.cpp's convert_hf_to_gguf.py writes):
//   model "gpt2"   byte-level BPE: tokens (GPT-2 alphabet), token_type, merges ("a b"), pre naming the
//                  pre-tokenizer (gpt-2, llama-bpe, qwen2, smollm; "default" only without merges, which is
//                  how retort exports its byte tokenizer)
//   model "llama"  SentencePiece: tokens, scores, token_type (<0xXX> BYTE tokens), add_space_prefix
// plus bos/eos/unknown/padding_token_id and add_bos_token/add_eos_token. Tokens of type CONTROL, UNKNOWN and
// USER_DEFINED are added tokens, matched in the raw text as HF tokenizers matches them (llama.cpp matches
// CONTROL ones only when asked to parse special tokens; docs/tokenizers.md says why retort follows HF).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct gguf_src {
    const rt_gguf_file *f;
    const char *origin;
    rt_error *err;
} gguf_src;

// An array key of the element type wanted and n elements (n_expect 0: any n >= 1). NULL when absent;
// a wrong type or length is an error (*bad set).
static const rt_gguf_kv *array_key(gguf_src *g, const char *key, int elem_type, uint64_t n_expect, int *bad) {
    const rt_gguf_kv *kv = rt_gguf_find_kv(g->f, key);
    if (!kv) return NULL;
    if (kv->type != RT_GGUF_ARRAY || kv->elem_type != elem_type || !kv->array) {
        *bad = 1;
        rt_fail(g->err, "%s: %s must be an array of %s", g->origin, key, rt_gguf_value_type_name(elem_type));
        return NULL;
    }
    if (n_expect && kv->n != n_expect) {
        *bad = 1;
        rt_fail(g->err, "%s: %s has %llu elements, tokenizer.ggml.tokens %llu", g->origin, key,
                (unsigned long long)kv->n, (unsigned long long)n_expect);
        return NULL;
    }
    return kv;
}

// An optional token id key: -1 when absent (or the "none" value 0xFFFFFFFF), else it must name a token.
static int id_key(gguf_src *g, const char *key, int32_t n_vocab, int32_t *out) {
    *out = -1;
    const rt_gguf_kv *kv = rt_gguf_find_kv(g->f, key);
    if (!kv) return 0;
    int is_int = kv->type == RT_GGUF_UINT8 || kv->type == RT_GGUF_UINT16 || kv->type == RT_GGUF_UINT32 ||
                 kv->type == RT_GGUF_UINT64 || kv->type == RT_GGUF_INT8 || kv->type == RT_GGUF_INT16 ||
                 kv->type == RT_GGUF_INT32 || kv->type == RT_GGUF_INT64;
    if (!is_int) return rt_fail(g->err, "%s: %s must be an integer", g->origin, key);
    if (kv->u == UINT32_MAX || kv->u == UINT64_MAX) return 0;
    if (kv->u >= (uint64_t)n_vocab)
        return rt_fail(g->err, "%s: %s is %llu, outside the %d tokens", g->origin, key,
                       (unsigned long long)kv->u, n_vocab);
    *out = (int32_t)kv->u;
    return 0;
}

// An optional bool key: dflt when absent.
static int bool_key(gguf_src *g, const char *key, int dflt, int *out) {
    const rt_gguf_kv *kv = rt_gguf_find_kv(g->f, key);
    *out = dflt;
    if (!kv) return 0;
    if (kv->type != RT_GGUF_BOOL) return rt_fail(g->err, "%s: %s must be a bool", g->origin, key);
    *out = kv->u != 0;
    return 0;
}

static int32_t read_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

// The pre-tokenizer a tokenizer.ggml.pre name stands for (llama.cpp's llama-vocab.cpp), as the steps HF's
// tokenizer.json of that model has.
static int set_bpe_pre(rt_tokenizer *t, gguf_src *g, const char *pre, rt_error *err) {
    rt_tok_pre split = {.kind = RT_PRE_SPLIT};
    rt_tok_pre byte_level = {.kind = RT_PRE_BYTE_LEVEL};
    const char *canon = NULL;
    if (!strcmp(pre, "gpt-2") || !strcmp(pre, "phi-2")) {
        byte_level.use_regex = 1;
        canon = "gpt-2";
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        split.split = RT_PRETOK_LLAMA3;
        if (rt_tok_push_pre(t, split, err)) return -1;
        t->ignore_merges = 1;
        canon = "llama-bpe";
    } else if (!strcmp(pre, "qwen2")) {
        // HF's Qwen2 tokenizer.json normalizes to NFC; llama.cpp does not (docs/tokenizers.md)
        if (rt_tok_push_norm(t, (rt_tok_norm){.kind = RT_NORM_NFC}, err)) return -1;
        split.split = RT_PRETOK_QWEN2;
        if (rt_tok_push_pre(t, split, err)) return -1;
        canon = "qwen2";
    } else if (!strcmp(pre, "smollm")) {
        split.split = RT_PRETOK_DIGITS;
        if (rt_tok_push_pre(t, split, err)) return -1;
        byte_level.use_regex = 1;
        canon = "smollm";
    } else if (!strcmp(pre, "default") && t->n_merges == 0) {
        canon = "default"; // no merges: every byte is its own token however the text is split
    } else {
        return rt_fail(
            err,
            "%s: tokenizer.ggml.pre '%s' is not supported (retort reads gpt-2, llama-bpe, qwen2 and "
            "smollm byte-level vocabularies)",
            g->origin, pre);
    }
    snprintf(t->pre_name, sizeof t->pre_name, "%s", canon);
    return rt_tok_push_pre(t, byte_level, err) ||
           rt_tok_push_dec(t, (rt_tok_dec){.kind = RT_DEC_BYTE_LEVEL}, err);
}

// llama.cpp's SentencePiece set-up, written as the steps of Llama 2's legacy tokenizer.json: "▁" before the
// text, spaces as "▁"; decoding undoes both.
static int set_spm_pipeline(rt_tokenizer *t, int add_space_prefix, rt_error *err) {
    static const char meta[] = "\xE2\x96\x81"; // ▁
    rt_tok_norm prepend = {.kind = RT_NORM_PREPEND};
    rt_tok_norm replace = {.kind = RT_NORM_REPLACE};
    rt_tok_dec unreplace = {.kind = RT_DEC_REPLACE};
    rt_tok_dec strip = {.kind = RT_DEC_STRIP, .start = 1, .stop = 0};
    if (!(prepend.content = rt_tok_strndup(meta, 3, err))) return -1;
    prepend.content_len = 3;
    if (add_space_prefix && rt_tok_push_norm(t, prepend, err)) {
        free(prepend.content);
        return -1;
    }
    if (!add_space_prefix) free(prepend.content);
    if (!(replace.pattern = rt_tok_strndup(" ", 1, err)) ||
        !(replace.content = rt_tok_strndup(meta, 3, err)) ||
        (replace.pattern_len = 1, replace.content_len = 3, rt_tok_push_norm(t, replace, err))) {
        free(replace.pattern);
        free(replace.content);
        return -1;
    }
    if (!(unreplace.pattern = rt_tok_strndup(meta, 3, err)) ||
        !(unreplace.content = rt_tok_strndup(" ", 1, err)) ||
        (unreplace.pattern_len = 3, unreplace.content_len = 1, rt_tok_push_dec(t, unreplace, err))) {
        free(unreplace.pattern);
        free(unreplace.content);
        return -1;
    }
    if (rt_tok_push_dec(t, (rt_tok_dec){.kind = RT_DEC_BYTE_FALLBACK}, err) ||
        rt_tok_push_dec(t, (rt_tok_dec){.kind = RT_DEC_FUSE}, err))
        return -1;
    if (!add_space_prefix) return 0;
    if (!(strip.content = rt_tok_strndup(" ", 1, err))) return -1;
    strip.content_len = 1;
    if (rt_tok_push_dec(t, strip, err)) {
        free(strip.content);
        return -1;
    }
    return 0;
}

static int build(rt_tokenizer *t, gguf_src *g) {
    rt_error *err = g->err;
    const rt_gguf_kv *model = rt_gguf_find_kv(g->f, "tokenizer.ggml.model");
    if (!model)
        return rt_fail(err, "%s: no tokenizer.ggml.model key: the file holds no tokenizer", g->origin);
    if (model->type != RT_GGUF_STRING)
        return rt_fail(err, "%s: tokenizer.ggml.model must be a string", g->origin);
    int is_bpe = !strcmp(model->str, "gpt2"), is_spm = !strcmp(model->str, "llama");
    if (!is_bpe && !is_spm)
        return rt_fail(err, "%s: tokenizer.ggml.model '%s' is not supported (retort reads gpt2 and llama)",
                       g->origin, model->str);
    int bad = 0;
    const rt_gguf_kv *tokens = array_key(g, "tokenizer.ggml.tokens", RT_GGUF_STRING, 0, &bad);
    if (bad) return -1;
    if (!tokens || tokens->n == 0)
        return rt_fail(err, "%s: tokenizer.ggml.tokens is missing or empty", g->origin);
    if (tokens->n > INT32_MAX)
        return rt_fail(err, "%s: tokenizer.ggml.tokens has too many tokens", g->origin);
    int32_t n = (int32_t)tokens->n;
    const rt_gguf_kv *types = array_key(g, "tokenizer.ggml.token_type", RT_GGUF_INT32, tokens->n, &bad);
    if (bad) return -1;
    const rt_gguf_kv *scores = array_key(g, "tokenizer.ggml.scores", RT_GGUF_FLOAT32, tokens->n, &bad);
    if (bad) return -1;
    const rt_gguf_kv *merges = array_key(g, "tokenizer.ggml.merges", RT_GGUF_STRING, 0, &bad);
    if (bad) return -1;
    if (is_spm && !scores)
        return rt_fail(err, "%s: a llama (SentencePiece) tokenizer needs tokenizer.ggml.scores", g->origin);

    t->algo = is_bpe ? RT_ALGO_BPE_RANK : RT_ALGO_SPM_SCORE;
    t->kind = is_bpe ? "bpe" : "spm";
    t->ggml_model = is_bpe ? "gpt2" : "llama";
    if (rt_tok_alloc_ids(t, n, err)) return -1;
    if (scores) {
        t->scores = rt_malloc((size_t)n * sizeof *t->scores, "token scores", err);
        if (!t->scores) return -1;
        for (int32_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)read_i32(scores->array + 4 * (size_t)i);
            memcpy(&t->scores[i], &u, 4);
        }
    }
    const uint8_t *at = tokens->array;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        at = rt_gguf_next_string(at, &s, &len);
        int type = types ? read_i32(types->array + 4 * (size_t)i) : RT_TOKEN_NORMAL;
        if (type < RT_TOKEN_NORMAL || type > RT_TOKEN_BYTE)
            return rt_fail(err, "%s: token %d has type %d (1..6 expected)", g->origin, i, type);
        int flags = RT_TOKF_MODEL;
        if (type == RT_TOKEN_CONTROL || type == RT_TOKEN_UNKNOWN) flags |= RT_TOKF_SPECIAL;
        if (rt_tok_set_token(t, i, s, len, type, flags, err)) return -1;
        int added = type == RT_TOKEN_CONTROL || type == RT_TOKEN_UNKNOWN || type == RT_TOKEN_USER_DEFINED;
        if (added && len && rt_tok_add_added(t, i, s, len, flags & RT_TOKF_SPECIAL, 0, 0, 0, 0, err))
            return -1;
    }
    if (rt_tok_index_vocab(t, 1, err)) return -1; // llama.cpp: the later of two equal texts wins
    if (merges) {
        at = merges->array;
        for (uint64_t r = 0; r < merges->n; r++) {
            const char *s;
            size_t len;
            at = rt_gguf_next_string(at, &s, &len);
            const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL; // as llama.cpp: from byte 1
            if (!space)
                return rt_fail(
                    err, "%s: tokenizer.ggml.merges[%llu] '%.*s' is not two tokens separated by a space",
                    g->origin, (unsigned long long)r, (int)(len > 60 ? 60 : len), s);
            size_t left = (size_t)(space - s);
            if (rt_tok_add_merge(t, s, left, space + 1, len - left - 1, err)) return -1;
        }
        if (rt_tok_index_merges(t, err)) return -1;
    }
    if (id_key(g, "tokenizer.ggml.bos_token_id", n, &t->bos) ||
        id_key(g, "tokenizer.ggml.eos_token_id", n, &t->eos) ||
        id_key(g, "tokenizer.ggml.unknown_token_id", n, &t->unk) ||
        id_key(g, "tokenizer.ggml.padding_token_id", n, &t->pad))
        return -1;
    const rt_gguf_kv *pre = rt_gguf_find_kv(g->f, "tokenizer.ggml.pre");
    if (pre && pre->type != RT_GGUF_STRING)
        return rt_fail(err, "%s: tokenizer.ggml.pre must be a string", g->origin);
    const char *pre_name = pre ? pre->str : "default";
    // llama.cpp's defaults when add_bos_token is absent: SentencePiece and Llama 3 add BOS, other BPE not
    int add_bos, add_eos, add_space_prefix;
    int llama3 =
        !strcmp(pre_name, "llama-bpe") || !strcmp(pre_name, "llama3") || !strcmp(pre_name, "llama-v3");
    if (bool_key(g, "tokenizer.ggml.add_bos_token", is_spm || llama3, &add_bos) ||
        bool_key(g, "tokenizer.ggml.add_eos_token", 0, &add_eos) ||
        bool_key(g, "tokenizer.ggml.add_space_prefix", 1, &add_space_prefix))
        return -1;
    if (add_bos && t->bos < 0)
        return rt_fail(err, "%s: add_bos_token is set but there is no bos_token_id", g->origin);
    if (add_eos && t->eos < 0)
        return rt_fail(err, "%s: add_eos_token is set but there is no eos_token_id", g->origin);
    if (add_bos) t->prefix[t->n_prefix++] = t->bos;
    if (add_eos) t->suffix[t->n_suffix++] = t->eos;

    if (is_bpe) {
        if (set_bpe_pre(t, g, pre_name, err)) return -1;
    } else {
        snprintf(t->pre_name, sizeof t->pre_name, "default");
        rt_tok_find_byte_tokens(t);
        t->byte_fallback = 1;
        if (t->unk < 0)
            for (int32_t i = 0; i < n && t->unk < 0; i++)
                if (t->tok_type[i] == RT_TOKEN_UNKNOWN) t->unk = i;
        if (set_spm_pipeline(t, add_space_prefix, err)) return -1;
    }
    return rt_tok_index_added(t, err);
}

int rt_tokenizer_from_gguf(const rt_gguf_file *f, const char *origin, rt_tokenizer **out, rt_error *err) {
    rt_tokenizer *t = rt_tok_new(origin, err);
    if (!t) return -1;
    gguf_src g = {f, t->origin, err};
    if (build(t, &g)) {
        rt_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
