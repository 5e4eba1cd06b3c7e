// Decoding, as HF tokenizers' decoders do it: the ids' texts (added tokens' content, model tokens' stored
// text) form a list that each decoder step maps to a new list, and the result is the list joined. A
// tokenizer without a decoder joins the texts with spaces (HF's default). Where HF turns bytes that are not
// valid UTF-8 into U+FFFD (ByteLevel, ByteFallback), retort keeps the bytes: a caller streaming token by
// token needs them, and on valid text the result is the same.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

// A list of strings, each bytes [off, off + len) of buf.
typedef struct slist {
    rt_buf buf;
    size_t *off, *len;
    size_t n, cap;
} slist;

// String i (never a null pointer, even while buf holds nothing).
static const char *slist_at(const slist *l, size_t i) {
    return l->buf.data ? (const char *)l->buf.data + l->off[i] : "";
}

static int slist_begin(slist *l) { // starts a new, empty string at the end of buf
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (!o) return -1;
        l->off = o;
        size_t *n = realloc(l->len, cap * sizeof *n);
        if (!n) return -1;
        l->len = n;
        l->cap = cap;
    }
    l->off[l->n] = l->buf.len;
    l->len[l->n] = 0;
    l->n++;
    return 0;
}
static void slist_add(slist *l, const void *s, size_t n) { // appends to the last string
    rt_buf_append(&l->buf, s, n);
    l->len[l->n - 1] += n;
}
static void slist_clear(slist *l) {
    l->n = 0;
    l->buf.len = 0;
}
static void slist_free(slist *l) {
    rt_buf_free(&l->buf);
    free(l->off);
    free(l->len);
}

// ByteLevel: a token whose characters are all in GPT-2's alphabet becomes their bytes, any other token is
// kept as it is; everything is joined into one string.
static int dec_byte_level(const slist *in, slist *out) {
    if (slist_begin(out)) return -1;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = slist_at(in, i);
        size_t len = in->len[i], start = out->buf.len, k = 0;
        while (k < len) {
            uint32_t cp;
            k += rt_utf8_next(s + k, len - k, &cp);
            int b = rt_tok_char_byte(cp);
            if (b < 0) break;
            unsigned char c = (unsigned char)b;
            slist_add(out, &c, 1);
        }
        if (k < len) { // a character outside the alphabet: the token as it is
            out->len[out->n - 1] -= out->buf.len - start;
            out->buf.len = start;
            slist_add(out, s, len);
        }
    }
    return 0;
}

// ByteFallback: runs of <0xXX> tokens become the bytes they stand for.
static int parse_byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int dec_byte_fallback(const slist *in, slist *out) {
    int in_run = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = slist_at(in, i);
        int b = parse_byte_token(s, in->len[i]);
        if (b >= 0) {
            if (!in_run && slist_begin(out)) return -1;
            unsigned char c = (unsigned char)b;
            slist_add(out, &c, 1);
            in_run = 1;
        } else {
            if (slist_begin(out)) return -1;
            slist_add(out, s, in->len[i]);
            in_run = 0;
        }
    }
    return 0;
}

// Replace (literal pattern) and Metaspace (the replacement character becomes a space; in the first token
// it is dropped unless prepend_scheme is never).
static int dec_replace(const rt_tok_dec *d, const slist *in, slist *out, int piece_mode) {
    const char *pat = d->kind == RT_DEC_REPLACE ? d->pattern : d->replacement;
    size_t pat_len = d->kind == RT_DEC_REPLACE ? d->pattern_len : d->replacement_len;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = slist_at(in, i);
        size_t len = in->len[i];
        const char *rep = d->kind == RT_DEC_REPLACE ? d->content : " ";
        size_t rep_len = d->kind == RT_DEC_REPLACE ? d->content_len : 1;
        if (d->kind == RT_DEC_METASPACE && i == 0 && !piece_mode && d->prepend_scheme != RT_PREPEND_NEVER)
            rep_len = 0;
        if (slist_begin(out)) return -1;
        for (size_t k = 0; k < len;) {
            if (pat_len && k + pat_len <= len && memcmp(s + k, pat, pat_len) == 0) {
                slist_add(out, rep, rep_len);
                k += pat_len;
            } else {
                slist_add(out, s + k, 1);
                k++;
            }
        }
    }
    return 0;
}

static int dec_fuse(const slist *in, slist *out) {
    if (slist_begin(out)) return -1;
    for (size_t i = 0; i < in->n; i++) slist_add(out, slist_at(in, i), in->len[i]);
    return 0;
}

// Strip: up to start leading and stop trailing characters equal to content, from every string.
static int dec_strip(const rt_tok_dec *d, const slist *in, slist *out) {
    const char *c = d->content;
    size_t cl = d->content_len;
    for (size_t i = 0; i < in->n; i++) {
        const char *s = slist_at(in, i);
        size_t a = 0, b = in->len[i];
        for (int k = 0; k < d->start && cl && b - a >= cl && memcmp(s + a, c, cl) == 0; k++) a += cl;
        for (int k = 0; k < d->stop && cl && b - a >= cl && memcmp(s + b - cl, c, cl) == 0; k++) b -= cl;
        if (slist_begin(out)) return -1;
        slist_add(out, s + a, b - a);
    }
    return 0;
}

// Decodes ids; piece_mode decodes one token as it reads on its own (no Strip, no first-token rule).
static int decode_ids(const rt_tokenizer *t, const int32_t *ids, size_t n, int skip_special, int piece_mode,
                      rt_buf *out, rt_error *err) {
    slist a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = rt_tok_text(t, ids[i], &len);
        if (!s) {
            if (ids[i] >= 0 && ids[i] < t->n_vocab) continue; // an id no token holds decodes to nothing
            rc = rt_fail(err, "%s: token id %d is outside the vocabulary (0..%d)", t->origin, ids[i],
                         t->n_vocab - 1);
            break;
        }
        if (skip_special && (t->flags[ids[i]] & RT_TOKF_SPECIAL)) continue;
        if (slist_begin(&a)) {
            rc = rt_fail(err, "out of memory decoding");
            break;
        }
        if (t->algo == RT_ALGO_BYTES && ids[i] < 256) {
            unsigned char c = (unsigned char)ids[i];
            slist_add(&a, &c, 1);
        } else if (t->algo != RT_ALGO_BYTES) {
            slist_add(&a, s, len);
        }
    }
    // a failed append leaves len[] counting bytes buf does not hold: stop before anything reads them
    if (rc == 0 && a.buf.oom) rc = rt_fail(err, "out of memory decoding");
    if (rc == 0 && t->n_dec == 0 && t->algo != RT_ALGO_BYTES && !piece_mode) { // HF: joined with spaces
        slist_clear(&b);
        int failed = slist_begin(&b);
        for (size_t i = 0; !failed && i < a.n; i++) {
            if (i) slist_add(&b, " ", 1);
            slist_add(&b, slist_at(&a, i), a.len[i]);
        }
        if (failed || b.buf.oom) rc = rt_fail(err, "out of memory decoding");
        slist tmp = a;
        a = b;
        b = tmp;
    }
    for (int s = 0; rc == 0 && s < t->n_dec; s++) {
        const rt_tok_dec *d = &t->dec[s];
        if (d->kind == RT_DEC_STRIP && piece_mode) continue;
        slist_clear(&b);
        int r = 0;
        switch (d->kind) {
        case RT_DEC_BYTE_LEVEL:
            r = dec_byte_level(&a, &b);
            break;
        case RT_DEC_BYTE_FALLBACK:
            r = dec_byte_fallback(&a, &b);
            break;
        case RT_DEC_REPLACE:
        case RT_DEC_METASPACE:
            r = dec_replace(d, &a, &b, piece_mode);
            break;
        case RT_DEC_FUSE:
            r = dec_fuse(&a, &b);
            break;
        case RT_DEC_STRIP:
            r = dec_strip(d, &a, &b);
            break;
        }
        if (r || a.buf.oom || b.buf.oom) rc = rt_fail(err, "out of memory decoding");
        slist tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t i = 0; rc == 0 && i < a.n; i++) rt_buf_append(out, slist_at(&a, i), a.len[i]);
    if (rc == 0 && (out->oom || a.buf.oom)) rc = rt_fail(err, "out of memory decoding");
    slist_free(&a);
    slist_free(&b);
    return rc;
}

int rt_tokenizer_decode(const rt_tokenizer *t, const int32_t *ids, size_t n, int skip_special, rt_buf *out,
                        rt_error *err) {
    return decode_ids(t, ids, n, skip_special, 0, out, err);
}

int rt_tokenizer_piece(const rt_tokenizer *t, int32_t id, rt_buf *out, rt_error *err) {
    return decode_ids(t, &id, 1, 0, 1, out, err);
}
