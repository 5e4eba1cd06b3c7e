// The models: one pre-tokenized piece to ids. Both BPE algorithms keep the piece as a doubly linked list of
// symbols and a priority queue of the merges possible between neighbours; a merge joins two symbols and
// queues the two new neighbour pairs, and queue entries a merge made stale are skipped when they come up
// (llama.cpp's and HF tokenizers' approach). Nothing rescans the piece, so a piece of n characters costs
// O(n log n).
//
//   RT_ALGO_BPE_RANK   HF tokenizers' BPE (models/bpe/word.rs): symbols are the piece's characters looked up
//                      in the vocabulary (byte fallback to <0xXX>, else unk, fused when fuse_unk); the pair
//                      of lowest merge rank merges first, the leftmost among equal ranks. With ignore_merges
//                      a piece that is a token is that token.
//   RT_ALGO_SPM_SCORE  llama.cpp's SentencePiece tokenizer (llm_tokenizer_spm): the adjacent pair whose
//                      concatenation is a token with the highest score merges first, the leftmost among
//                      equal scores; what is left that is not a token becomes its bytes' <0xXX> tokens.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

int rt_tok_ids_push(rt_tok_ids *ids, int32_t id, rt_error *err) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *p = realloc(ids->ids, cap * sizeof *p);
        if (!p) return rt_fail(err, "out of memory for %zu token ids", cap);
        ids->ids = p;
        ids->cap = cap;
    }
    ids->ids[ids->n++] = id;
    return 0;
}

void rt_tok_ids_free(rt_tok_ids *ids) {
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

// One symbol of the piece: bytes [off, off + len) (len 0 once merged into its left neighbour).
typedef struct sym {
    int32_t id; // BPE_RANK: its token
    int32_t prev, next;
    size_t off, len;
} sym;

// A queued merge. BPE_RANK orders by (rank, pos) ascending, SPM_SCORE by score descending then pos.
typedef struct cand {
    int32_t rank, pos, merged;
    float score;
    size_t size; // SPM_SCORE: bytes of the merged text, to spot stale entries
} cand;

typedef struct heap {
    cand *items;
    size_t n, cap;
    int by_score;
} heap;

static int before(const heap *h, const cand *a, const cand *b) {
    if (h->by_score) {
        if (a->score != b->score) return a->score > b->score;
        return a->pos < b->pos;
    }
    if (a->rank != b->rank) return a->rank < b->rank;
    return a->pos < b->pos;
}

static int heap_push(heap *h, cand c, rt_error *err) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        cand *p = realloc(h->items, cap * sizeof *p);
        if (!p) return rt_fail(err, "out of memory for the merge queue");
        h->items = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->items[i] = c;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(h, &h->items[i], &h->items[up])) break;
        cand tmp = h->items[i];
        h->items[i] = h->items[up];
        h->items[up] = tmp;
        i = up;
    }
    return 0;
}

static cand heap_pop(heap *h) {
    cand top = h->items[0];
    h->items[0] = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && before(h, &h->items[l], &h->items[best])) best = l;
        if (r < h->n && before(h, &h->items[r], &h->items[best])) best = r;
        if (best == i) break;
        cand tmp = h->items[i];
        h->items[i] = h->items[best];
        h->items[best] = tmp;
        i = best;
    }
    return top;
}

typedef struct word {
    sym *s;
    size_t n, cap;
} word;

static int word_add(word *w, int32_t id, size_t off, size_t len, rt_error *err) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        sym *p = realloc(w->s, cap * sizeof *p);
        if (!p) return rt_fail(err, "out of memory for a word's symbols");
        w->s = p;
        w->cap = cap;
    }
    w->s[w->n] = (sym){id, (int32_t)w->n - 1, (int32_t)w->n + 1, off, len};
    w->n++;
    return 0;
}

static int queue_rank_pair(const rt_tokenizer *t, heap *h, const word *w, int32_t left, rt_error *err) {
    if (left < 0 || w->s[left].next < 0) return 0;
    const rt_tok_pair_slot *m = rt_tok_find_merge(t, w->s[left].id, w->s[w->s[left].next].id);
    if (!m) return 0;
    return heap_push(h, (cand){m->rank, left, m->merged, 0, 0}, err);
}

// HF's BPE::merge_word then Word::merge_all.
static int encode_rank(const rt_tokenizer *t, const char *p, size_t len, word *w, heap *h, rt_tok_ids *out,
                       rt_error *err) {
    if (t->ignore_merges) {
        int32_t id = rt_tok_lookup(t, p, len);
        if (id >= 0) return rt_tok_ids_push(out, id, err);
    }
    int32_t unk_pending = 0; // bytes of a pending unk symbol (fused while fuse_unk)
    size_t unk_off = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = rt_utf8_next(p + i, len - i, &cp);
        int32_t id = rt_tok_lookup(t, p + i, n);
        if (id >= 0) {
            if (unk_pending && word_add(w, t->unk, unk_off, (size_t)unk_pending, err)) return -1;
            unk_pending = 0;
            if (word_add(w, id, i, n, err)) return -1;
        } else {
            int all_bytes = t->byte_fallback;
            for (size_t k = 0; all_bytes && k < n; k++)
                all_bytes = t->byte_token[(unsigned char)p[i + k]] >= 0;
            if (all_bytes) {
                // HF adds the byte tokens without flushing a pending unk first
                for (size_t k = 0; k < n; k++)
                    if (word_add(w, t->byte_token[(unsigned char)p[i + k]], i + k, 1, err)) return -1;
            } else if (t->unk >= 0) {
                if (unk_pending && !t->fuse_unk) {
                    if (word_add(w, t->unk, unk_off, (size_t)unk_pending, err)) return -1;
                    unk_pending = 0;
                }
                if (!unk_pending) unk_off = i;
                unk_pending += (int32_t)n;
            } // no unk token: HF drops the character
        }
        i += n;
    }
    if (unk_pending && word_add(w, t->unk, unk_off, (size_t)unk_pending, err)) return -1;
    if (w->n) w->s[w->n - 1].next = -1;

    for (int32_t i = 0; i + 1 < (int32_t)w->n; i++)
        if (queue_rank_pair(t, h, w, i, err)) return -1;
    while (h->n) {
        cand top = heap_pop(h);
        sym *left = &w->s[top.pos];
        if (left->len == 0 || left->next < 0) continue;
        sym *right = &w->s[left->next];
        const rt_tok_pair_slot *m = rt_tok_find_merge(t, left->id, right->id);
        if (!m || m->merged != top.merged) continue; // stale: a neighbour changed since it was queued
        left->id = top.merged;
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) w->s[right->next].prev = top.pos;
        if (queue_rank_pair(t, h, w, left->prev, err) || queue_rank_pair(t, h, w, top.pos, err)) return -1;
    }
    for (size_t i = 0; i < w->n; i++)
        if (w->s[i].len && rt_tok_ids_push(out, w->s[i].id, err)) return -1;
    return 0;
}

// A token a SentencePiece merge may produce: the ordinary pieces (HF's merges only ever build those).
static int32_t spm_piece(const rt_tokenizer *t, const char *s, size_t len) {
    int32_t id = rt_tok_lookup(t, s, len);
    if (id < 0) return -1;
    int type = t->tok_type[id];
    return type == RT_TOKEN_NORMAL || type == RT_TOKEN_USER_DEFINED ? id : -1;
}

static int queue_score_pair(const rt_tokenizer *t, heap *h, const word *w, const char *p, int32_t left,
                            rt_error *err) {
    if (left < 0 || w->s[left].next < 0) return 0;
    const sym *a = &w->s[left], *b = &w->s[a->next];
    size_t size = a->len + b->len;
    int32_t id = spm_piece(t, p + a->off, size);
    if (id < 0) return 0;
    float score = t->scores ? t->scores[id] : 0.0f;
    return heap_push(h, (cand){0, left, id, score, size}, err);
}

// llama.cpp's llm_tokenizer_spm::tokenize and resegment.
static int encode_score(const rt_tokenizer *t, const char *p, size_t len, word *w, heap *h, rt_tok_ids *out,
                        rt_error *err) {
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = rt_utf8_next(p + i, len - i, &cp);
        if (word_add(w, -1, i, n, err)) return -1;
        i += n;
    }
    if (w->n) w->s[w->n - 1].next = -1;
    for (int32_t i = 0; i + 1 < (int32_t)w->n; i++)
        if (queue_score_pair(t, h, w, p, i, err)) return -1;
    while (h->n) {
        cand top = heap_pop(h);
        sym *left = &w->s[top.pos];
        if (left->len == 0 || left->next < 0) continue;
        sym *right = &w->s[left->next];
        if (right->len == 0 || left->len + right->len != top.size) continue; // stale
        left->len += right->len;
        right->len = 0;
        left->next = right->next;
        if (right->next >= 0) w->s[right->next].prev = top.pos;
        if (queue_score_pair(t, h, w, p, left->prev, err) || queue_score_pair(t, h, w, p, top.pos, err))
            return -1;
    }
    for (size_t i = 0; i < w->n; i++) {
        const sym *s = &w->s[i];
        if (!s->len) continue;
        int32_t id = rt_tok_lookup(t, p + s->off, s->len);
        if (id >= 0) {
            if (rt_tok_ids_push(out, id, err)) return -1;
            continue;
        }
        for (size_t k = 0; k < s->len; k++) { // not a piece: its bytes, or unk where a byte has no token
            int32_t b = t->byte_token[(unsigned char)p[s->off + k]];
            if (b < 0) b = t->unk;
            if (b >= 0 && rt_tok_ids_push(out, b, err)) return -1;
        }
    }
    return 0;
}

int rt_tok_model_encode(const rt_tokenizer *t, const char *piece, size_t len, rt_tok_ids *out,
                        rt_error *err) {
    if (len == 0) return 0;
    if (t->algo == RT_ALGO_BYTES) {
        for (size_t i = 0; i < len; i++)
            if (rt_tok_ids_push(out, (unsigned char)piece[i], err)) return -1;
        return 0;
    }
    // symbols are indexed by int32 (prev, next, queue positions) and a piece has at most one per byte;
    // under a tokenizer with no pre-tokenizer (Llama 2's) a whole text between added tokens is one piece
    if (len > (size_t)INT32_MAX - 1)
        return rt_fail(
            err, "%s: a piece of %zu bytes after pre-tokenization; the model encodes at most 2 GiB at once",
            t->origin, len);
    word w = {0};
    heap h = {0};
    h.by_score = t->algo == RT_ALGO_SPM_SCORE;
    int rc = h.by_score ? encode_score(t, piece, len, &w, &h, out, err)
                        : encode_rank(t, piece, len, &w, &h, out, err);
    free(w.s);
    free(h.items);
    return rc;
}
