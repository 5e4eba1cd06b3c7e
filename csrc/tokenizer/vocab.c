// The tables a tokenizer is built from: token texts, the text -> id and pair -> merge hashes, added tokens
// and the pipeline steps. Hashes are open-addressing with linear probing, sized to twice the entries, so a
// 128k-token vocabulary with 280k merges builds in milliseconds.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

char *rt_tok_strndup(const char *s, size_t len, rt_error *err) {
    size_t n;
    if (!rt_add_size(len, 1, &n)) return rt_fail(err, "string too long"), NULL;
    char *c = rt_malloc(n, "a tokenizer string", err);
    if (!c) return NULL;
    if (len) memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

rt_tokenizer *rt_tok_new(const char *origin, rt_error *err) {
    rt_tokenizer *t = rt_calloc(1, sizeof *t, "a tokenizer", err);
    if (!t) return NULL;
    t->bos = t->eos = t->pad = t->unk = -1;
    for (int b = 0; b < 256; b++) t->byte_token[b] = -1;
    snprintf(t->pre_name, sizeof t->pre_name, "default");
    t->origin = rt_tok_strndup(origin ? origin : "tokenizer", strlen(origin ? origin : "tokenizer"), err);
    if (!t->origin) {
        free(t);
        return NULL;
    }
    return t;
}

int rt_tok_alloc_ids(rt_tokenizer *t, int32_t n, rt_error *err) {
    if (n <= 0) return rt_fail(err, "%s: the vocabulary is empty", t->origin);
    t->n_vocab = n;
    t->tok_off = rt_malloc((size_t)n * sizeof *t->tok_off, "token offsets", err);
    t->tok_len = rt_calloc((size_t)n, sizeof *t->tok_len, "token lengths", err);
    t->tok_type = rt_malloc((size_t)n, "token types", err);
    t->flags = rt_calloc((size_t)n, 1, "token flags", err);
    if (!t->tok_off || !t->tok_len || !t->tok_type || !t->flags) return -1;
    for (int32_t i = 0; i < n; i++) t->tok_off[i] = SIZE_MAX;
    memset(t->tok_type, RT_TOKEN_UNUSED, (size_t)n);
    return 0;
}

static int set_text(rt_tokenizer *t, int32_t id, const char *s, size_t len, rt_error *err);

int rt_tok_set_token(rt_tokenizer *t, int32_t id, const char *s, size_t len, int type, int flags,
                     rt_error *err) {
    if (id < 0 || id >= t->n_vocab)
        return rt_fail(err, "%s: token id %d outside 0..%d", t->origin, id, t->n_vocab - 1);
    if (t->tok_off[id] != SIZE_MAX) return rt_fail(err, "%s: two tokens have id %d", t->origin, id);
    if (set_text(t, id, s, len, err)) return -1;
    t->tok_type[id] = (uint8_t)type;
    t->flags[id] = (uint8_t)flags;
    return 0;
}

// Appends s as the text of id.
static int set_text(rt_tokenizer *t, int32_t id, const char *s, size_t len, rt_error *err) {
    if (len > UINT32_MAX / 2) return rt_fail(err, "%s: token %d is too long", t->origin, id);
    size_t need;
    if (!rt_add_size(t->text_len, len + 1, &need)) return rt_fail(err, "%s: vocabulary too large", t->origin);
    if (need > t->text_cap) {
        size_t cap = t->text_cap ? t->text_cap : 4096;
        while (cap < need) {
            if (!rt_mul_size(cap, 2, &cap)) return rt_fail(err, "%s: vocabulary too large", t->origin);
        }
        char *p = realloc(t->text, cap);
        if (!p) return rt_fail(err, "%s: out of memory for the token texts", t->origin);
        t->text = p;
        t->text_cap = cap;
    }
    memcpy(t->text + t->text_len, s, len);
    t->text[t->text_len + len] = '\0';
    t->tok_off[id] = t->text_len;
    t->tok_len[id] = (uint32_t)len;
    t->text_len += len + 1;
    return 0;
}

const char *rt_tok_text(const rt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->tok_off[id] == SIZE_MAX) return NULL;
    if (len) *len = t->tok_len[id];
    return t->text + t->tok_off[id];
}

uint64_t rt_tok_hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 31;
    x *= 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

// Slots for n entries: a power of two at least 2n.
static int table_size(size_t n, size_t *out) {
    size_t s = 16;
    while (s < n * 2) {
        if (s > SIZE_MAX / 4) return -1;
        s *= 2;
    }
    *out = s;
    return 0;
}

int32_t rt_tok_lookup(const rt_tokenizer *t, const char *s, size_t len) {
    if (!t->vocab.slots) return -1;
    for (size_t i = rt_tok_hash_bytes(s, len) & t->vocab.mask;; i = (i + 1) & t->vocab.mask) {
        int32_t id = t->vocab.slots[i];
        if (id < 0) return -1;
        if (t->tok_len[id] == len && memcmp(t->text + t->tok_off[id], s, len) == 0) return id;
    }
}

int rt_tok_index_vocab(rt_tokenizer *t, int dup_policy, rt_error *err) {
    size_t size;
    if (table_size((size_t)t->n_vocab, &size)) return rt_fail(err, "%s: vocabulary too large", t->origin);
    free(t->vocab.slots);
    t->vocab.slots = rt_malloc(size * sizeof *t->vocab.slots, "the vocabulary hash", err);
    if (!t->vocab.slots) return -1;
    t->vocab.mask = size - 1;
    memset(t->vocab.slots, 0xff, size * sizeof *t->vocab.slots);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->flags[id] & RT_TOKF_MODEL)) continue;
        const char *s = t->text + t->tok_off[id];
        size_t len = t->tok_len[id];
        size_t i = rt_tok_hash_bytes(s, len) & t->vocab.mask;
        for (;; i = (i + 1) & t->vocab.mask) {
            int32_t other = t->vocab.slots[i];
            if (other < 0) break;
            if (t->tok_len[other] == len && memcmp(t->text + t->tok_off[other], s, len) == 0) break;
        }
        if (t->vocab.slots[i] >= 0 && dup_policy == 0)
            return rt_fail(err, "%s: tokens %d and %d have the same text '%.60s'", t->origin,
                           t->vocab.slots[i], id, s);
        t->vocab.slots[i] = id;
    }
    return 0;
}

int rt_tok_add_merge(rt_tokenizer *t, const char *left, size_t left_len, const char *right, size_t right_len,
                     rt_error *err) {
    size_t rank = t->n_merges;
    int32_t a = rt_tok_lookup(t, left, left_len), b = rt_tok_lookup(t, right, right_len);
    if (a < 0 || b < 0)
        return rt_fail(err, "%s: merge %zu ('%.*s' '%.*s'): '%.*s' is not in the vocabulary", t->origin, rank,
                       (int)(left_len > 60 ? 60 : left_len), left, (int)(right_len > 60 ? 60 : right_len),
                       right,
                       a < 0 ? (int)(left_len > 60 ? 60 : left_len) : (int)(right_len > 60 ? 60 : right_len),
                       a < 0 ? left : right);
    if (rank >= INT32_MAX) return rt_fail(err, "%s: too many merges", t->origin);
    if (t->n_merges == t->cap_merges) {
        size_t cap = t->cap_merges ? t->cap_merges * 2 : 1024;
        int32_t *m = realloc(t->merges, cap * 2 * sizeof *m);
        if (!m) return rt_fail(err, "%s: out of memory for the merges", t->origin);
        t->merges = m;
        t->cap_merges = cap;
    }
    t->merges[2 * rank] = a;
    t->merges[2 * rank + 1] = b;
    t->n_merges++;
    return 0;
}

const rt_tok_pair_slot *rt_tok_find_merge(const rt_tokenizer *t, int32_t left, int32_t right) {
    if (!t->merge_map.slots) return NULL;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (size_t i = hash_u64(key) & t->merge_map.mask;; i = (i + 1) & t->merge_map.mask) {
        const rt_tok_pair_slot *s = &t->merge_map.slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

int rt_tok_index_merges(rt_tokenizer *t, rt_error *err) {
    size_t size;
    if (table_size(t->n_merges, &size)) return rt_fail(err, "%s: too many merges", t->origin);
    t->merge_map.slots = rt_malloc(size * sizeof *t->merge_map.slots, "the merge hash", err);
    if (!t->merge_map.slots) return -1;
    t->merge_map.mask = size - 1;
    memset(t->merge_map.slots, 0xff, size * sizeof *t->merge_map.slots);
    char *buf = NULL;
    size_t buf_cap = 0;
    for (size_t r = 0; r < t->n_merges; r++) {
        int32_t a = t->merges[2 * r], b = t->merges[2 * r + 1];
        size_t la = t->tok_len[a], lb = t->tok_len[b];
        if (la + lb > buf_cap) {
            buf_cap = (la + lb) * 2;
            char *p = realloc(buf, buf_cap);
            if (!p) {
                free(buf);
                return rt_fail(err, "%s: out of memory", t->origin);
            }
            buf = p;
        }
        memcpy(buf, t->text + t->tok_off[a], la);
        memcpy(buf + la, t->text + t->tok_off[b], lb);
        int32_t merged = rt_tok_lookup(t, buf, la + lb);
        if (merged < 0) {
            rt_fail(err, "%s: merge %zu ('%.60s' '%.60s'): the merged token '%.*s' is not in the vocabulary",
                    t->origin, r, t->text + t->tok_off[a], t->text + t->tok_off[b],
                    (int)(la + lb > 120 ? 120 : la + lb), buf);
            free(buf);
            return -1;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
        size_t i = hash_u64(key) & t->merge_map.mask;
        while (t->merge_map.slots[i].key != UINT64_MAX && t->merge_map.slots[i].key != key)
            i = (i + 1) & t->merge_map.mask;
        t->merge_map.slots[i] = (rt_tok_pair_slot){key, (int32_t)r, merged};
    }
    free(buf);
    return 0;
}

void rt_tok_find_byte_tokens(rt_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', '\0'};
        t->byte_token[b] = rt_tok_lookup(t, name, 6);
    }
}

int rt_tok_add_added(rt_tokenizer *t, int32_t id, const char *content, size_t len, int special, int lstrip,
                     int rstrip, int single_word, int normalized, rt_error *err) {
    if (t->n_added == t->cap_added) { // doubling: growing by one copies the list each time
        size_t cap = t->cap_added ? 2 * t->cap_added : 64;
        rt_tok_added *a = realloc(t->added, cap * sizeof *a);
        if (!a) return rt_fail(err, "%s: out of memory for the added tokens", t->origin);
        t->added = a;
        t->cap_added = cap;
    }
    rt_tok_added *x = &t->added[t->n_added];
    memset(x, 0, sizeof *x);
    x->match = rt_tok_strndup(content, len, err);
    if (!x->match) return -1;
    x->match_len = len;
    x->id = id;
    x->special = (uint8_t)(special != 0);
    x->lstrip = (uint8_t)(lstrip != 0);
    x->rstrip = (uint8_t)(rstrip != 0);
    x->single_word = (uint8_t)(single_word != 0);
    x->normalized = (uint8_t)(normalized != 0);
    t->n_added++;
    return 0;
}

static int by_first_byte_longest(const void *pa, const void *pb) {
    const rt_tok_added *a = *(rt_tok_added *const *)pa, *b = *(rt_tok_added *const *)pb;
    unsigned ca = (unsigned char)a->match[0], cb = (unsigned char)b->match[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int build_matcher(rt_tokenizer *t, rt_tok_matcher *m, int normalized, rt_error *err) {
    m->items = rt_malloc((t->n_added ? t->n_added : 1) * sizeof *m->items, "the added-token index", err);
    if (!m->items) return -1;
    m->n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].match_len > 0)
            m->items[m->n++] = &t->added[i];
    qsort(m->items, m->n, sizeof *m->items, by_first_byte_longest);
    size_t k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < m->n && (unsigned char)m->items[k]->match[0] < c) k++;
        m->first[c] = (uint32_t)k;
    }
    return 0;
}

int rt_tok_index_added(rt_tokenizer *t, rt_error *err) {
    // a normalized token is matched by its normalized text, in normalized text (HF's refresh_added_tokens)
    for (size_t i = 0; i < t->n_added; i++) {
        rt_tok_added *a = &t->added[i];
        if (!a->normalized || t->n_norm == 0) continue;
        char *n;
        size_t n_len;
        if (rt_tok_normalize(t, a->match, a->match_len, &n, &n_len, err)) return -1;
        free(a->match);
        a->match = n;
        a->match_len = n_len;
        // HF decodes such a token as its normalized text (so the decoder can undo the normalizer); a token
        // of the model's vocabulary keeps the model's text
        if (!(t->flags[a->id] & RT_TOKF_MODEL) && set_text(t, a->id, n, n_len, err)) return -1;
    }
    return build_matcher(t, &t->match_raw, 0, err) || build_matcher(t, &t->match_normalized, 1, err) ? -1 : 0;
}

#define PUSH_STEP(arr, n, step, what)                                                                        \
    do {                                                                                                     \
        void *p_ = realloc(t->arr, (size_t)(t->n + 1) * sizeof *t->arr);                                     \
        if (!p_) return rt_fail(err, "%s: out of memory for the %s", t->origin, what);                       \
        t->arr = p_;                                                                                         \
        t->arr[t->n++] = step;                                                                               \
        return 0;                                                                                            \
    } while (0)

int rt_tok_push_norm(rt_tokenizer *t, rt_tok_norm step, rt_error *err) {
    PUSH_STEP(norm, n_norm, step, "normalizer");
}
int rt_tok_push_pre(rt_tokenizer *t, rt_tok_pre step, rt_error *err) {
    PUSH_STEP(pre, n_pre, step, "pre-tokenizer");
}
int rt_tok_push_dec(rt_tokenizer *t, rt_tok_dec step, rt_error *err) {
    PUSH_STEP(dec, n_dec, step, "decoder");
}

// GPT-2's bytes_to_unicode: the printable bytes stand for themselves, the other 68 for U+0100 + n in order
// (n counts them: 0x00..0x20 are 0..32, 0x7F..0xA0 are 33..66, 0xAD is 67).
static uint32_t byte_cp(int b) {
    if (b <= 0x20) return 256u + (uint32_t)b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (uint32_t)(b - 0x7F);
    if (b == 0xAD) return 256u + 67u;
    return (uint32_t)b;
}

int rt_tok_byte_char(int b, char out[4]) {
    uint32_t cp = byte_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int rt_tok_char_byte(uint32_t cp) {
    if (cp < 256) return byte_cp((int)cp) == cp ? (int)cp : -1;
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    return cp == 256 + 67 ? 0xAD : -1;
}
