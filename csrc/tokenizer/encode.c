// Encoding, in HF tokenizers' order (tokenizer/added_vocabulary.rs extract_and_normalize, then
// pre_tokenize, then the model, then the post-processor):
//   1. added tokens with normalized=false are split out of the raw text (special or not), leftmost-longest,
//      with their single_word, lstrip and rstrip rules;
//   2. each piece left is normalized, then added tokens with normalized=true are split out of it;
//   3. the pre-tokenizer steps split and rewrite each piece (ByteLevel maps bytes to GPT-2's alphabet,
//      Metaspace turns spaces into "▁");
//   4. the model encodes each final piece (bpe.c);
//   5. with add_special, the post-processor's template adds its tokens (BOS) around the ids.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

// ---- normalizer

static int replace_all(const char *in, size_t len, const char *pat, size_t pat_len, const char *rep,
                       size_t rep_len, rt_buf *out) {
    for (size_t i = 0; i < len;) {
        if (pat_len && i + pat_len <= len && memcmp(in + i, pat, pat_len) == 0) {
            rt_buf_append(out, rep, rep_len);
            i += pat_len;
        } else {
            rt_buf_append(out, in + i, 1);
            i++;
        }
    }
    return out->oom ? -1 : 0;
}

int rt_tok_normalize(const rt_tokenizer *t, const char *in, size_t len, char **out, size_t *out_len,
                     rt_error *err) {
    char *cur = rt_tok_strndup(in, len, err);
    if (!cur) return -1;
    size_t cur_len = len;
    for (int s = 0; s < t->n_norm; s++) {
        const rt_tok_norm *n = &t->norm[s];
        char *next = NULL;
        size_t next_len = 0;
        if (n->kind == RT_NORM_NFC) {
            if (rt_unicode_nfc(cur, cur_len, &next, &next_len, err)) {
                free(cur);
                return -1;
            }
        } else {
            if (n->kind == RT_NORM_PREPEND && cur_len == 0) continue; // HF prepends to non-empty text only
            rt_buf b = {0};
            if (n->kind == RT_NORM_PREPEND) {
                rt_buf_append(&b, n->content, n->content_len);
                rt_buf_append(&b, cur, cur_len);
            } else {
                replace_all(cur, cur_len, n->pattern, n->pattern_len, n->content, n->content_len, &b);
            }
            rt_buf_append(&b, "", 1); // the NUL, not counted
            if (b.oom) {
                rt_buf_free(&b);
                free(cur);
                return rt_fail(err, "out of memory normalizing %zu bytes", len);
            }
            next = (char *)b.data;
            next_len = b.len - 1;
        }
        free(cur);
        cur = next;
        cur_len = next_len;
    }
    *out = cur;
    *out_len = cur_len;
    return 0;
}

// ---- added tokens

// Pieces of a text: an added token's id, or text (id -1) at bytes [off, off + len).
typedef struct seg {
    int32_t id;
    size_t off, len;
} seg;
typedef struct segs {
    seg *s;
    size_t n, cap;
} segs;

static int seg_push(segs *v, int32_t id, size_t off, size_t len, rt_error *err) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        seg *p = realloc(v->s, cap * sizeof *p);
        if (!p) return rt_fail(err, "out of memory splitting out added tokens");
        v->s = p;
        v->cap = cap;
    }
    v->s[v->n++] = (seg){id, off, len};
    return 0;
}

// The code point that ends s[0 .. end) (end > 0).
static uint32_t last_cp(const char *s, size_t end) {
    size_t start = end - 1;
    while (start > 0 && end - start < 4 && ((unsigned char)s[start] & 0xC0) == 0x80) start--;
    uint32_t cp;
    size_t n = rt_utf8_next(s + start, end - start, &cp);
    return start + n == end ? cp : RT_UTF8_INVALID;
}

// Rust regex's \w: letters, marks, numbers and the connector punctuation '_'.
static int is_word_cp(uint32_t cp) {
    return cp == '_' || (rt_unicode_flags(cp) & (RT_UC_LETTER | RT_UC_MARK | RT_UC_NUMBER)) != 0;
}
static int is_space_cp(uint32_t cp) {
    return (rt_unicode_flags(cp) & RT_UC_WHITESPACE) != 0;
}

// HF's AddedVocabulary::find_matches: the text split into added tokens and the text between them.
static int find_added(const rt_tok_matcher *m, const char *s, size_t len, segs *out, rt_error *err) {
    size_t start_offset = 0, pos = 0;
    while (m->n && pos < len) {
        const rt_tok_added *hit = NULL;
        size_t at = pos;
        for (; at < len && !hit; at++) {
            unsigned c = (unsigned char)s[at];
            for (uint32_t k = m->first[c]; k < m->first[c + 1]; k++) { // longest first
                const rt_tok_added *a = m->items[k];
                if (a->match_len <= len - at && memcmp(s + at, a->match, a->match_len) == 0) {
                    hit = a;
                    break;
                }
            }
        }
        if (!hit) break;
        size_t start = at - 1, stop = start + hit->match_len;
        pos = stop; // the matcher goes on after the match, whatever the rules below decide
        if (hit->single_word) {
            int start_space = start == 0 || !is_word_cp(last_cp(s, start));
            uint32_t next_cp = RT_UTF8_INVALID;
            if (stop < len) rt_utf8_next(s + stop, len - stop, &next_cp);
            int stop_space = stop == len || !is_word_cp(next_cp);
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t newstart = start;
            while (newstart > 0) {
                uint32_t cp = last_cp(s, newstart);
                if (!is_space_cp(cp)) break;
                char tmp[4];
                newstart -= (size_t)rt_utf8_encode(cp, tmp);
            }
            start = newstart > start_offset ? newstart : start_offset;
        }
        if (hit->rstrip) {
            while (stop < len) {
                uint32_t cp;
                size_t n = rt_utf8_next(s + stop, len - stop, &cp);
                if (!is_space_cp(cp)) break;
                stop += n;
            }
        }
        if (start_offset < start && seg_push(out, -1, start_offset, start - start_offset, err)) return -1;
        if (seg_push(out, hit->id, start, stop > start ? stop - start : 0, err)) return -1;
        start_offset = stop;
    }
    if (start_offset < len && seg_push(out, -1, start_offset, len - start_offset, err)) return -1;
    return 0;
}

// ---- pre-tokenizer

// A list of pieces, each with its own bytes in buf; first marks a piece that starts the original text
// (Metaspace's prepend_scheme "first").
typedef struct piece {
    size_t off, len;
    int first;
} piece;
typedef struct plist {
    rt_buf buf;
    piece *p;
    size_t n, cap;
} plist;

static int plist_push(plist *l, const char *s, size_t len, int first, rt_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        piece *p = realloc(l->p, cap * sizeof *p);
        if (!p) return rt_fail(err, "out of memory pre-tokenizing");
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (piece){l->buf.len, len, first};
    rt_buf_append(&l->buf, s, len);
    return l->buf.oom ? rt_fail(err, "out of memory pre-tokenizing") : 0;
}

// Piece i's bytes (never a null pointer, even while buf holds nothing).
static const char *plist_at(const plist *l, size_t i) {
    return l->buf.data ? (const char *)l->buf.data + l->p[i].off : "";
}

static void plist_clear(plist *l) {
    l->n = 0;
    l->buf.len = 0;
}

// ByteLevel: optional prefix space, optional GPT-2 split, then every byte as its GPT-2 alphabet character.
static int pre_byte_level(const rt_tok_pre *st, const char *s, size_t len, int first, plist *out,
                          rt_spans *sp, rt_buf *tmp, rt_error *err) {
    tmp->len = 0;
    if (st->add_prefix_space && (len == 0 || s[0] != ' ')) rt_buf_append(tmp, " ", 1);
    rt_buf_append(tmp, s, len);
    if (tmp->oom) return rt_fail(err, "out of memory pre-tokenizing");
    const char *text = (const char *)tmp->data;
    size_t n = tmp->len;
    sp->count = 0;
    if (st->use_regex) {
        if (rt_pretok_split(RT_PRETOK_GPT2, text, n, sp, err)) return -1;
    } else if (n && rt_spans_push(sp, 0, n, err)) {
        return -1;
    }
    for (size_t k = 0; k < sp->count; k++) {
        char mapped[2 * 64];
        size_t off = sp->items[k].offset, left = sp->items[k].length, m = 0;
        size_t start = out->buf.len;
        if (plist_push(out, "", 0, first && k == 0, err)) return -1;
        for (size_t i = 0; i < left; i++) {
            m += (size_t)rt_tok_byte_char((unsigned char)text[off + i], mapped + m);
            if (m + 2 > sizeof mapped || i + 1 == left) {
                rt_buf_append(&out->buf, mapped, m);
                m = 0;
            }
        }
        if (out->buf.oom) return rt_fail(err, "out of memory pre-tokenizing");
        out->p[out->n - 1].len = out->buf.len - start;
    }
    return 0;
}

static int pre_metaspace(const rt_tok_pre *st, const char *s, size_t len, int first, plist *out, rt_buf *tmp,
                         rt_error *err) {
    tmp->len = 0;
    int starts_with_rep = len >= st->replacement_len && memcmp(s, st->replacement, st->replacement_len) == 0;
    // a leading space becomes the replacement too, so "starts with" is judged after replacing
    if (len && s[0] == ' ') starts_with_rep = 1;
    int prepend = !starts_with_rep && (st->prepend_scheme == RT_PREPEND_ALWAYS ||
                                       (st->prepend_scheme == RT_PREPEND_FIRST && first));
    if (prepend) rt_buf_append(tmp, st->replacement, st->replacement_len);
    replace_all(s, len, " ", 1, st->replacement, st->replacement_len, tmp);
    if (tmp->oom) return rt_fail(err, "out of memory pre-tokenizing");
    const char *text = (const char *)tmp->data;
    size_t n = tmp->len, piece_start = 0;
    if (st->split_on_replacement) { // MergedWithNext: a new piece starts at every replacement character
        for (size_t i = 1; i + st->replacement_len <= n; i++) {
            if (memcmp(text + i, st->replacement, st->replacement_len) != 0) continue;
            if (plist_push(out, text + piece_start, i - piece_start, first && piece_start == 0, err))
                return -1;
            piece_start = i;
            i += st->replacement_len - 1;
        }
    }
    if (n > piece_start &&
        plist_push(out, text + piece_start, n - piece_start, first && piece_start == 0, err))
        return -1;
    return 0;
}

// Runs the pre-tokenizer on text and the model on every piece it gives.
static int pretokenize_and_encode(const rt_tokenizer *t, const char *text, size_t len, int first,
                                  rt_tok_ids *out, rt_error *err) {
    if (len == 0) return 0;
    if (t->n_pre == 0) return rt_tok_model_encode(t, text, len, out, err);
    plist a = {0}, b = {0};
    rt_spans sp = {0};
    rt_buf tmp = {0};
    int rc = plist_push(&a, text, len, first, err);
    for (int s = 0; rc == 0 && s < t->n_pre; s++) {
        const rt_tok_pre *st = &t->pre[s];
        plist_clear(&b);
        for (size_t i = 0; rc == 0 && i < a.n; i++) {
            const char *p = plist_at(&a, i);
            size_t n = a.p[i].len;
            if (st->kind == RT_PRE_BYTE_LEVEL) {
                rc = pre_byte_level(st, p, n, a.p[i].first, &b, &sp, &tmp, err);
            } else if (st->kind == RT_PRE_METASPACE) {
                rc = pre_metaspace(st, p, n, a.p[i].first, &b, &tmp, err);
            } else {
                sp.count = 0;
                rc = rt_pretok_split(st->split, p, n, &sp, err);
                // the pieces point into a's buffer, which b's pushes do not move
                for (size_t k = 0; rc == 0 && k < sp.count; k++)
                    rc = plist_push(&b, p + sp.items[k].offset, sp.items[k].length,
                                    a.p[i].first && sp.items[k].offset == 0, err);
            }
        }
        plist tmp_list = a;
        a = b;
        b = tmp_list;
    }
    for (size_t i = 0; rc == 0 && i < a.n; i++)
        rc = rt_tok_model_encode(t, plist_at(&a, i), a.p[i].len, out, err);
    rt_buf_free(&a.buf);
    rt_buf_free(&b.buf);
    free(a.p);
    free(b.p);
    rt_spans_free(&sp);
    rt_buf_free(&tmp);
    return rc;
}

// One piece of raw text between added tokens: normalize, split out normalized added tokens, encode.
static int encode_text(const rt_tokenizer *t, const char *text, size_t len, int first, rt_tok_ids *out,
                       rt_error *err) {
    if (len == 0) return 0;
    char *norm;
    size_t norm_len;
    if (t->n_norm == 0 && t->match_normalized.n == 0)
        return pretokenize_and_encode(t, text, len, first, out, err);
    if (rt_tok_normalize(t, text, len, &norm, &norm_len, err)) return -1;
    segs v = {0};
    int rc = find_added(&t->match_normalized, norm, norm_len, &v, err);
    for (size_t i = 0; rc == 0 && i < v.n; i++) {
        if (v.s[i].id >= 0)
            rc = rt_tok_ids_push(out, v.s[i].id, err);
        else
            rc = pretokenize_and_encode(t, norm + v.s[i].off, v.s[i].len, first && v.s[i].off == 0, out, err);
    }
    free(v.s);
    free(norm);
    return rc;
}

int rt_tokenizer_encode(const rt_tokenizer *t, const char *text, size_t len, int add_special, rt_tok_ids *out,
                        rt_error *err) {
    for (int i = 0; add_special && i < t->n_prefix; i++)
        if (rt_tok_ids_push(out, t->prefix[i], err)) return -1;
    int rc = 0;
    if (t->algo == RT_ALGO_BYTES) {
        rc = rt_tok_model_encode(t, text, len, out, err);
    } else {
        segs v = {0};
        rc = find_added(&t->match_raw, text, len, &v, err);
        for (size_t i = 0; rc == 0 && i < v.n; i++) {
            if (v.s[i].id >= 0)
                rc = rt_tok_ids_push(out, v.s[i].id, err);
            else
                rc = encode_text(t, text + v.s[i].off, v.s[i].len, v.s[i].off == 0, out, err);
        }
        free(v.s);
    }
    for (int i = 0; rc == 0 && add_special && i < t->n_suffix; i++)
        rc = rt_tok_ids_push(out, t->suffix[i], err);
    return rc;
}
