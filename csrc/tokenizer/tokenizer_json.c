// A tokenizer from Hugging Face's tokenizer.json: the BPE model (byte-level, or SentencePiece-style with
// byte fallback), its added tokens, then the pipeline steps (json_steps.c). Added tokens get the ids HF
// tokenizers would give them (a token of the model's vocabulary keeps its id, a new one takes the next free
// id after the vocabulary); a file whose ids disagree is refused rather than tokenized differently from HF.
// truncation and padding are ignored: retort's callers decide lengths themselves.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "base/json.h"
#include "tokenizer/tokenizer_internal.h"

static int bool_member(const rt_json *obj, const char *key, int *out, const char *origin, rt_error *err) {
    const rt_json *v = rt_json_get(obj, key);
    if (!v || v->type == RT_JSON_NULL) return 0;
    if (v->type != RT_JSON_BOOL) return rt_fail(err, "%s: model.%s must be a bool", origin, key);
    *out = v->boolean;
    return 0;
}

// The model's vocabulary: {"text": id}. Ids may leave gaps (those ids hold no token) but not go far past
// the number of entries, which bounds what is allocated by the size of the input.
static int read_vocab(rt_tokenizer *t, const rt_json *vocab, const rt_json *added, rt_error *err) {
    uint64_t max_id = 0;
    for (size_t i = 0; i < vocab->n; i++) {
        uint64_t id;
        if (rt_json_u64(&vocab->items[i], &id) || id > INT32_MAX - 1)
            return rt_fail(err, "%s: model.vocab['%.60s'] must be a token id (a non-negative integer)",
                           t->origin, vocab->keys[i]);
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; added && i < added->n; i++) {
        const rt_json *id = rt_json_get(&added->items[i], "id");
        uint64_t v;
        if (!id || rt_json_u64(id, &v) || v > INT32_MAX - 1)
            return rt_fail(err, "%s: added_tokens[%zu] needs an integer id", t->origin, i);
        if (v > max_id) max_id = v;
    }
    uint64_t entries = vocab->n + (added ? added->n : 0);
    if (max_id >= 2 * entries + 1024)
        return rt_fail(err, "%s: token id %llu is far beyond the %llu tokens listed", t->origin,
                       (unsigned long long)max_id, (unsigned long long)entries);
    if (rt_tok_alloc_ids(t, (int32_t)max_id + 1, err)) return -1;
    for (size_t i = 0; i < vocab->n; i++) {
        uint64_t id;
        rt_json_u64(&vocab->items[i], &id);
        if (rt_tok_set_token(t, (int32_t)id, vocab->keys[i], strlen(vocab->keys[i]), RT_TOKEN_NORMAL,
                             RT_TOKF_MODEL, err))
            return rt_fail_wrap(err, "model.vocab['%.60s']", vocab->keys[i]);
    }
    return rt_tok_index_vocab(t, 0, err);
}

static int read_merges(rt_tokenizer *t, const rt_json *merges, rt_error *err) {
    for (size_t i = 0; i < merges->n; i++) {
        const rt_json *m = &merges->items[i];
        if (m->type == RT_JSON_STRING) { // "a b", the form before tokenizers 0.20
            if (m->len >= 8 && memcmp(m->str, "#version", 8) == 0) continue;
            const char *space = memchr(m->str, ' ', m->len);
            if (!space || memchr(space + 1, ' ', m->len - (size_t)(space - m->str) - 1))
                return rt_fail(err, "%s: model.merges[%zu] '%.60s' is not two tokens separated by one space",
                               t->origin, i, m->str);
            size_t left = (size_t)(space - m->str);
            if (rt_tok_add_merge(t, m->str, left, space + 1, m->len - left - 1, err)) return -1;
        } else if (m->type == RT_JSON_ARRAY && m->n == 2 && m->items[0].type == RT_JSON_STRING &&
                   m->items[1].type == RT_JSON_STRING) { // ["a", "b"]
            if (rt_tok_add_merge(t, m->items[0].str, m->items[0].len, m->items[1].str, m->items[1].len, err))
                return -1;
        } else {
            return rt_fail(err, "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", t->origin, i);
        }
    }
    return rt_tok_index_merges(t, err);
}

// The added tokens read so far by text: an open-addressing table of indices into t->added (SIZE_MAX when
// empty), so that a file with many added tokens is read in linear time, not by rescanning the list.
typedef struct added_index {
    size_t *slots;
    size_t mask;
} added_index;

// The slot of an earlier added token with this text, or the empty slot where it would go.
static size_t added_slot(const rt_tokenizer *t, const added_index *ix, const char *s, size_t len) {
    size_t i = rt_tok_hash_bytes(s, len) & ix->mask;
    for (; ix->slots[i] != SIZE_MAX; i = (i + 1) & ix->mask) {
        const rt_tok_added *a = &t->added[ix->slots[i]];
        if (a->match_len == len && memcmp(a->match, s, len) == 0) break;
    }
    return i;
}

// The ids HF tokenizers gives added tokens: the model's id for the text, an earlier added token's id for the
// same text, else the next new id.
static int read_added(rt_tokenizer *t, const rt_json *added, int32_t model_size, rt_error *err) {
    int32_t next_id = model_size;
    size_t n = added ? added->n : 0, size = 16; // n is bounded by the parsed file, so size cannot overflow
    while (size < 2 * n) size *= 2;
    added_index ix = {rt_malloc(size * sizeof *ix.slots, "the added-token index", err), size - 1};
    if (!ix.slots) return -1;
    memset(ix.slots, 0xff, size * sizeof *ix.slots);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const rt_json *a = &added->items[i], *content = rt_json_get(a, "content");
        if (a->type != RT_JSON_OBJECT || !content || content->type != RT_JSON_STRING) {
            rc = rt_fail(err, "%s: added_tokens[%zu] must be an object with a string content", t->origin, i);
            break;
        }
        if (content->len == 0) continue; // HF ignores empty added tokens
        uint64_t file_id;
        rt_json_u64(rt_json_get(a, "id"), &file_id); // checked by read_vocab
        int flag[5] = {0, 0, 0, 0, 0};
        static const char *const keys[5] = {"special", "lstrip", "rstrip", "single_word", "normalized"};
        for (int k = 0; rc == 0 && k < 5; k++) {
            const rt_json *v = rt_json_get(a, keys[k]);
            if (v && v->type != RT_JSON_BOOL && v->type != RT_JSON_NULL)
                rc = rt_fail(err, "%s: added_tokens[%zu].%s must be a bool", t->origin, i, keys[k]);
            flag[k] = v && v->type == RT_JSON_BOOL && v->boolean;
        }
        if (rc) break;
        size_t slot = added_slot(t, &ix, content->str, content->len);
        int32_t id = rt_tok_lookup(t, content->str, content->len);
        if (id < 0) id = ix.slots[slot] != SIZE_MAX ? t->added[ix.slots[slot]].id : next_id++;
        if ((uint64_t)id != file_id) {
            rc = rt_fail(err,
                         "%s: added_tokens[%zu] '%.60s' has id %llu, but HF tokenizers gives it id %d (a new "
                         "added token takes the next id after the vocabulary)",
                         t->origin, i, content->str, (unsigned long long)file_id, id);
            break;
        }
        int type = flag[0] ? RT_TOKEN_CONTROL : RT_TOKEN_USER_DEFINED;
        int flags = flag[0] ? RT_TOKF_SPECIAL : 0;
        if (rt_tok_text(t, id, NULL)) { // a model token too: it keeps its text, gains the type
            t->tok_type[id] = (uint8_t)type;
            t->flags[id] |= (uint8_t)flags;
        } else if (rt_tok_set_token(t, id, content->str, content->len, type, flags, err)) {
            rc = -1;
            break;
        }
        rc = rt_tok_add_added(t, id, content->str, content->len, flag[0], flag[1], flag[2], flag[3], flag[4],
                              err);
        if (rc == 0 && ix.slots[slot] == SIZE_MAX) ix.slots[slot] = t->n_added - 1;
    }
    free(ix.slots);
    return rc;
}

static int read_model(rt_tokenizer *t, const rt_json *model, const rt_json *added, rt_error *err) {
    if (!model || model->type != RT_JSON_OBJECT)
        return rt_fail(err, "%s: no model object: not a tokenizer.json", t->origin);
    const rt_json *type = rt_json_get(model, "type");
    if (type && (type->type != RT_JSON_STRING || strcmp(type->str, "BPE") != 0))
        return rt_fail(err, "%s: model.type is %s: retort reads BPE models only", t->origin,
                       type->type == RT_JSON_STRING ? type->str : "not a string");
    const rt_json *vocab = rt_json_get(model, "vocab"), *merges = rt_json_get(model, "merges");
    if (!vocab || vocab->type != RT_JSON_OBJECT || !merges || merges->type != RT_JSON_ARRAY)
        return rt_fail(err, "%s: model needs a vocab object and a merges array (a BPE model)", t->origin);
    if (added && added->type != RT_JSON_ARRAY)
        return rt_fail(err, "%s: added_tokens must be an array", t->origin);
    if (read_vocab(t, vocab, added, err) || read_merges(t, merges, err)) return -1;
    if (bool_member(model, "byte_fallback", &t->byte_fallback, t->origin, err) ||
        bool_member(model, "fuse_unk", &t->fuse_unk, t->origin, err) ||
        bool_member(model, "ignore_merges", &t->ignore_merges, t->origin, err))
        return -1;
    const rt_json *dropout = rt_json_get(model, "dropout");
    if (dropout && dropout->type != RT_JSON_NULL &&
        !(dropout->type == RT_JSON_NUMBER && strspn(dropout->str, "0.") == dropout->len))
        return rt_fail(err, "%s: model.dropout is set: BPE dropout makes encoding random, retort refuses it",
                       t->origin);
    static const char *const affixes[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const rt_json *v = rt_json_get(model, affixes[k]);
        if (v && v->type != RT_JSON_NULL && !(v->type == RT_JSON_STRING && v->len == 0))
            return rt_fail(err, "%s: model.%s is set: retort reads BPE models without one", t->origin,
                           affixes[k]);
    }
    const rt_json *unk = rt_json_get(model, "unk_token");
    if (unk && unk->type != RT_JSON_NULL) {
        if (unk->type != RT_JSON_STRING)
            return rt_fail(err, "%s: model.unk_token must be a string", t->origin);
        t->unk = rt_tok_lookup(t, unk->str, unk->len);
        if (t->unk < 0)
            return rt_fail(err, "%s: model.unk_token '%.60s' is not in the vocabulary", t->origin, unk->str);
    }
    int32_t model_size = (int32_t)vocab->n;
    if (read_added(t, added, model_size, err)) return -1;
    if (t->unk >= 0) t->tok_type[t->unk] = RT_TOKEN_UNKNOWN;
    if (t->byte_fallback) {
        rt_tok_find_byte_tokens(t);
        for (int b = 0; b < 256; b++)
            if (t->byte_token[b] >= 0) t->tok_type[t->byte_token[b]] = RT_TOKEN_BYTE;
    }
    return 0;
}

// GGUF's name of the pre-tokenizer, from the steps (what a GGUF export writes as tokenizer.ggml.pre).
static const char *pre_name(const rt_tokenizer *t) {
    if (t->byte_fallback) return "default";
    const rt_tok_pre *p = t->pre;
    if (t->n_pre == 1 && p[0].kind == RT_PRE_BYTE_LEVEL && p[0].use_regex) return "gpt-2";
    if (t->n_pre == 2 && p[1].kind == RT_PRE_BYTE_LEVEL && !p[1].use_regex && p[0].kind == RT_PRE_SPLIT) {
        if (p[0].split == RT_PRETOK_LLAMA3) return "llama-bpe";
        if (p[0].split == RT_PRETOK_QWEN2) return "qwen2";
    }
    if (t->n_pre == 2 && p[0].kind == RT_PRE_SPLIT && p[0].split == RT_PRETOK_DIGITS &&
        p[1].kind == RT_PRE_BYTE_LEVEL && p[1].use_regex)
        return "smollm";
    return "default";
}

// The first special token whose text is one of names, or -1.
static int32_t special_named(const rt_tokenizer *t, const char *const *names) {
    for (; *names; names++)
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].special && strcmp(t->added[i].match, *names) == 0) return t->added[i].id;
    return -1;
}

static int build(rt_tokenizer *t, const rt_json *root, rt_error *err) {
    if (root->type != RT_JSON_OBJECT)
        return rt_fail(err, "%s: the top level must be an object: not a tokenizer.json", t->origin);
    if (read_model(t, rt_json_get(root, "model"), rt_json_get(root, "added_tokens"), err)) return -1;
    if (rt_tok_json_steps(t, root, err)) return -1;
    t->algo = RT_ALGO_BPE_RANK;
    t->kind = t->byte_fallback ? "spm" : "bpe";
    t->ggml_model = t->byte_fallback ? "llama" : "gpt2";
    snprintf(t->pre_name, sizeof t->pre_name, "%s", pre_name(t));
    // BOS/EOS: what the post-processor adds, else the conventional names (a folder's tokenizer_config.json
    // overrides both)
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", NULL};
    t->bos = t->n_prefix ? t->prefix[0] : special_named(t, bos_names);
    t->eos = t->n_suffix ? t->suffix[t->n_suffix - 1] : special_named(t, eos_names);
    return rt_tok_index_added(t, err);
}

int rt_tokenizer_from_json(const char *json, size_t len, const char *origin, rt_tokenizer **out,
                           rt_error *err) {
    rt_tokenizer *t = rt_tok_new(origin, err);
    if (!t) return -1;
    rt_json root;
    char msg[256];
    if (rt_json_parse(json, len, &root, msg, sizeof msg)) {
        rt_fail(err, "%s: %s", t->origin, msg);
        rt_tokenizer_free(t);
        return -1;
    }
    int rc = build(t, &root, err);
    rt_json_free(&root);
    if (rc) {
        rt_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

// ---- tokenizer_config.json

// The id of a token named by text: a model token or an added one.
static int32_t id_of_text(const rt_tokenizer *t, const char *s, size_t len) {
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t n;
        const char *text = rt_tok_text(t, id, &n);
        if (text && n == len && memcmp(text, s, len) == 0) return id;
    }
    return -1;
}

int rt_tok_apply_config_file(rt_tokenizer *t, const char *path, rt_error *err) {
    char *text, msg[256];
    size_t len;
    if (rt_read_file(path, &text, &len, err)) return -1;
    rt_json root;
    int rc = rt_json_parse(text, len, &root, msg, sizeof msg);
    free(text);
    if (rc) return rt_fail(err, "%s: %s", path, msg);
    static const char *const keys[3] = {"bos_token", "eos_token", "pad_token"};
    int32_t *slots[3] = {&t->bos, &t->eos, &t->pad};
    for (int k = 0; rc == 0 && k < 3; k++) {
        const rt_json *v = rt_json_get(&root, keys[k]);
        if (v && v->type == RT_JSON_OBJECT) v = rt_json_get(v, "content"); // {"content": "<s>", ...}
        if (!v || v->type == RT_JSON_NULL) continue;
        if (v->type != RT_JSON_STRING) {
            rc = rt_fail(err, "%s: %s must be a string or an object with a content", path, keys[k]);
            break;
        }
        int32_t id = id_of_text(t, v->str, v->len);
        if (id < 0)
            rc = rt_fail(err, "%s: %s '%.60s' is not a token of %s", path, keys[k], v->str, t->origin);
        else
            *slots[k] = id;
    }
    rt_json_free(&root);
    return rc;
}
