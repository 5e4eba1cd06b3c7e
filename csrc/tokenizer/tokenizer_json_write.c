// tokenizer.json from a loaded tokenizer (tokenizer_json_write.h): the model, then each step retort runs
// written as the HF step it implements, so HF tokenizers and retort run the same pipeline.
#include "tokenizer/tokenizer_json_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

typedef struct writer {
    const rt_tokenizer *t;
    rt_buf *b;
    rt_error *err;
    int bad; // a text that is not UTF-8 was met (err filled)
} writer;

// s[0 .. len) as a JSON string literal; text that is not UTF-8 has no JSON form.
static void str(writer *w, const char *s, size_t len, const char *what) {
    rt_buf_append(w->b, "\"", 1);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = rt_utf8_next(s + i, len - i, &cp);
        if (cp == RT_UTF8_INVALID && !w->bad) {
            w->bad = 1;
            rt_fail(w->err, "%s: %s is not UTF-8 (byte %zu), which tokenizer.json cannot hold",
                    rt_tokenizer_origin(w->t), what, i);
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            rt_buf_printf(w->b, "\\%c", c);
        else if (c < 0x20)
            rt_buf_printf(w->b, "\\u%04x", c);
        else
            rt_buf_append(w->b, s + i, n);
        i += n;
    }
    rt_buf_append(w->b, "\"", 1);
}

static void cstr(writer *w, const char *s) {
    str(w, s, strlen(s), "a step's text");
}

static void token(writer *w, int32_t id) {
    size_t len;
    const char *s = rt_tok_text(w->t, id, &len);
    char what[48];
    snprintf(what, sizeof what, "token %d", (int)id);
    str(w, s ? s : "", s ? len : 0, what);
}

static const char *tf(int v) {
    return v ? "true" : "false";
}

static const char *const prepend_names[3] = {"always", "first", "never"};

// ---- the steps

static void norm_step(writer *w, const void *step) {
    const rt_tok_norm *n = step;
    if (n->kind == RT_NORM_NFC) {
        rt_buf_printf(w->b, "{\"type\": \"NFC\"}");
    } else if (n->kind == RT_NORM_PREPEND) {
        rt_buf_printf(w->b, "{\"type\": \"Prepend\", \"prepend\": ");
        str(w, n->content, n->content_len, "Prepend's text");
        rt_buf_printf(w->b, "}");
    } else {
        rt_buf_printf(w->b, "{\"type\": \"Replace\", \"pattern\": {\"String\": ");
        str(w, n->pattern, n->pattern_len, "Replace's pattern");
        rt_buf_printf(w->b, "}, \"content\": ");
        str(w, n->content, n->content_len, "Replace's content");
        rt_buf_printf(w->b, "}");
    }
}

static void pre_step(writer *w, const void *step) {
    const rt_tok_pre *p = step;
    if (p->kind == RT_PRE_BYTE_LEVEL) {
        rt_buf_printf(w->b,
                      "{\"type\": \"ByteLevel\", \"add_prefix_space\": %s, \"trim_offsets\": true, "
                      "\"use_regex\": %s}",
                      tf(p->add_prefix_space), tf(p->use_regex));
    } else if (p->kind == RT_PRE_SPLIT && p->split == RT_PRETOK_DIGITS) {
        rt_buf_printf(w->b, "{\"type\": \"Digits\", \"individual_digits\": true}");
    } else if (p->kind == RT_PRE_SPLIT) {
        rt_buf_printf(w->b, "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
        cstr(w, rt_pretok_regex(p->split));
        rt_buf_printf(w->b, "}, \"behavior\": \"Isolated\", \"invert\": false}");
    } else {
        rt_buf_printf(w->b, "{\"type\": \"Metaspace\", \"replacement\": ");
        str(w, p->replacement, p->replacement_len, "Metaspace's replacement");
        rt_buf_printf(w->b, ", \"prepend_scheme\": \"%s\", \"split\": %s}", prepend_names[p->prepend_scheme],
                      tf(p->split_on_replacement));
    }
}

static void dec_step(writer *w, const void *step) {
    const rt_tok_dec *d = step;
    switch (d->kind) {
    case RT_DEC_BYTE_LEVEL:
        rt_buf_printf(w->b, "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
                            "\"use_regex\": true}");
        break;
    case RT_DEC_REPLACE:
        rt_buf_printf(w->b, "{\"type\": \"Replace\", \"pattern\": {\"String\": ");
        str(w, d->pattern, d->pattern_len, "Replace's pattern");
        rt_buf_printf(w->b, "}, \"content\": ");
        str(w, d->content, d->content_len, "Replace's content");
        rt_buf_printf(w->b, "}");
        break;
    case RT_DEC_BYTE_FALLBACK:
        rt_buf_printf(w->b, "{\"type\": \"ByteFallback\"}");
        break;
    case RT_DEC_FUSE:
        rt_buf_printf(w->b, "{\"type\": \"Fuse\"}");
        break;
    case RT_DEC_STRIP:
        rt_buf_printf(w->b, "{\"type\": \"Strip\", \"content\": ");
        str(w, d->content, d->content_len, "Strip's content");
        rt_buf_printf(w->b, ", \"start\": %d, \"stop\": %d}", d->start, d->stop);
        break;
    case RT_DEC_METASPACE:
        rt_buf_printf(w->b, "{\"type\": \"Metaspace\", \"replacement\": ");
        str(w, d->replacement, d->replacement_len, "Metaspace's replacement");
        rt_buf_printf(w->b, ", \"prepend_scheme\": \"%s\", \"split\": true}",
                      prepend_names[d->prepend_scheme]);
        break;
    }
}

// "key": null, one step, or a Sequence whose steps are under seq_list.
static void steps(writer *w, const char *key, const void *list, int n, size_t size,
                  void (*fn)(writer *, const void *), const char *seq_list) {
    rt_buf_printf(w->b, "  \"%s\": ", key);
    if (n == 0) rt_buf_printf(w->b, "null");
    if (n > 1) rt_buf_printf(w->b, "{\"type\": \"Sequence\", \"%s\": [", seq_list);
    for (int i = 0; i < n; i++) {
        if (i) rt_buf_printf(w->b, ", ");
        fn(w, (const char *)list + (size_t)i * size);
    }
    rt_buf_printf(w->b, "%s,\n", n > 1 ? "]}" : "");
}

// TemplateProcessing: the prefix ids, the sequence, the suffix ids (a pair repeats them around B).
static void template_part(writer *w, const rt_tokenizer *t, const char *seq, int type_id, int *first) {
    for (int i = 0; i < t->n_prefix + 1 + t->n_suffix; i++) {
        rt_buf_printf(w->b, "%s", *first ? "" : ", ");
        *first = 0;
        if (i == t->n_prefix) {
            rt_buf_printf(w->b, "{\"Sequence\": {\"id\": \"%s\", \"type_id\": %d}}", seq, type_id);
            continue;
        }
        int32_t id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix - 1];
        rt_buf_printf(w->b, "{\"SpecialToken\": {\"id\": ");
        token(w, id);
        rt_buf_printf(w->b, ", \"type_id\": %d}}", type_id);
    }
}

static void post_processor(writer *w) {
    const rt_tokenizer *t = w->t;
    rt_buf_printf(w->b, "  \"post_processor\": ");
    if (t->n_prefix + t->n_suffix == 0) {
        rt_buf_printf(w->b, "null,\n");
        return;
    }
    int first = 1;
    rt_buf_printf(w->b, "{\"type\": \"TemplateProcessing\", \"single\": [");
    template_part(w, t, "A", 0, &first);
    rt_buf_printf(w->b, "], \"pair\": [");
    first = 1;
    template_part(w, t, "A", 0, &first);
    template_part(w, t, "B", 1, &first);
    rt_buf_printf(w->b, "], \"special_tokens\": {");
    first = 1;
    for (int i = 0; i < t->n_prefix + t->n_suffix; i++) {
        int32_t id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix];
        int seen = 0;
        for (int k = 0; k < i && !seen; k++)
            seen = (k < t->n_prefix ? t->prefix[k] : t->suffix[k - t->n_prefix]) == id;
        if (seen) continue;
        rt_buf_printf(w->b, "%s", first ? "" : ", ");
        first = 0;
        token(w, id);
        rt_buf_printf(w->b, ": {\"id\": ");
        token(w, id);
        rt_buf_printf(w->b, ", \"ids\": [%d], \"tokens\": [", (int)id);
        token(w, id);
        rt_buf_printf(w->b, "]}");
    }
    rt_buf_printf(w->b, "}},\n");
}

static void added_tokens(writer *w) {
    const rt_tokenizer *t = w->t;
    rt_buf_printf(w->b, "  \"added_tokens\": [");
    for (size_t i = 0; i < t->n_added; i++) {
        const rt_tok_added *a = &t->added[i];
        rt_buf_printf(w->b, "%s\n    {\"id\": %d, \"content\": ", i ? "," : "", (int)a->id);
        token(w, a->id);
        rt_buf_printf(w->b,
                      ", \"single_word\": %s, \"lstrip\": %s, \"rstrip\": %s, \"normalized\": %s, "
                      "\"special\": %s}",
                      tf(a->single_word), tf(a->lstrip), tf(a->rstrip), tf(a->normalized), tf(a->special));
    }
    rt_buf_printf(w->b, "\n  ],\n");
}

// ---- merges

// A merge of SentencePiece's pieces: left + right make piece, ranked by the piece's score.
typedef struct spm_merge {
    float score;
    int32_t piece, left, right;
} spm_merge;

static int by_score(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->piece != b->piece) return a->piece < b->piece ? -1 : 1;
    if (a->left != b->left) return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

static int normal(const rt_tokenizer *t, int32_t id) {
    return id >= 0 && t->tok_type[id] == RT_TOKEN_NORMAL;
}

// Every normal piece split (at a character boundary) into two normal pieces, by the piece's score, highest
// first; ties in id order. This is the BPE that HF tokenizers runs for a SentencePiece BPE model.
static int spm_merges(const rt_tokenizer *t, spm_merge **out, size_t *n_out, rt_error *err) {
    size_t n = 0, cap = 0;
    spm_merge *m = NULL;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *s = rt_tok_text(t, id, &len);
        if (!s || !normal(t, id) || !(t->flags[id] & RT_TOKF_MODEL)) continue;
        for (size_t k = 0; k < len;) {
            uint32_t cp;
            k += rt_utf8_next(s + k, len - k, &cp);
            if (k >= len) break;
            int32_t a = rt_tok_lookup(t, s, k), b = rt_tok_lookup(t, s + k, len - k);
            if (!normal(t, a) || !normal(t, b)) continue;
            if (n == cap) {
                size_t grown = cap ? 2 * cap : 4096;
                spm_merge *bigger = realloc(m, grown * sizeof *m);
                if (!bigger) {
                    free(m);
                    return rt_fail(err, "out of memory deriving merges from the pieces' scores");
                }
                m = bigger, cap = grown;
            }
            m[n++] = (spm_merge){t->scores ? t->scores[id] : 0.0f, id, a, b};
        }
    }
    if (n) qsort(m, n, sizeof *m, by_score);
    *out = m;
    *n_out = n;
    return 0;
}

static void merge_pair(writer *w, size_t i, int32_t left, int32_t right) {
    rt_buf_printf(w->b, "%s\n      [", i ? "," : "");
    token(w, left);
    rt_buf_printf(w->b, ", ");
    token(w, right);
    rt_buf_printf(w->b, "]");
}

static int model(writer *w) {
    const rt_tokenizer *t = w->t;
    int spm = t->algo == RT_ALGO_SPM_SCORE;
    rt_buf_printf(w->b, "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": ");
    if (t->unk >= 0)
        token(w, t->unk);
    else
        rt_buf_printf(w->b, "null");
    rt_buf_printf(w->b,
                  ", \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": %s, "
                  "\"byte_fallback\": %s, \"ignore_merges\": %s,\n    \"vocab\": {",
                  tf(spm || t->fuse_unk), tf(t->byte_fallback), tf(t->ignore_merges));
    int first = 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *s = rt_tok_text(t, id, &len);
        // a text held by two ids is the later one's (the loaders keep that one too); UNUSED ids (a GGUF's
        // "[PAD<id>]" rows past the tokenizer) hold no token, as in the tokenizer the GGUF was made from
        if (!s || !(t->flags[id] & RT_TOKF_MODEL) || t->tok_type[id] == RT_TOKEN_UNUSED ||
            rt_tok_lookup(t, s, len) != id)
            continue;
        rt_buf_printf(w->b, "%s\n      ", first ? "" : ",");
        first = 0;
        token(w, id);
        rt_buf_printf(w->b, ": %d", (int)id);
    }
    rt_buf_printf(w->b, "\n    },\n    \"merges\": [");
    if (spm) {
        spm_merge *m = NULL;
        size_t n = 0;
        if (spm_merges(t, &m, &n, w->err)) return -1;
        for (size_t i = 0; i < n; i++) merge_pair(w, i, m[i].left, m[i].right);
        free(m);
    } else {
        for (size_t r = 0; r < t->n_merges; r++) merge_pair(w, r, t->merges[2 * r], t->merges[2 * r + 1]);
    }
    rt_buf_printf(w->b, "\n    ]\n  }\n}\n");
    return 0;
}

int rt_tokenizer_to_json(const rt_tokenizer *t, rt_buf *out, rt_error *err) {
    if (t->algo == RT_ALGO_BYTES)
        return rt_fail(err, "%s: the byte tokenizer has no tokenizer.json of its own", t->origin);
    writer w = {t, out, err, 0};
    rt_buf_printf(out, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n");
    added_tokens(&w);
    steps(&w, "normalizer", t->norm, t->n_norm, sizeof *t->norm, norm_step, "normalizers");
    steps(&w, "pre_tokenizer", t->pre, t->n_pre, sizeof *t->pre, pre_step, "pretokenizers");
    post_processor(&w);
    steps(&w, "decoder", t->dec, t->n_dec, sizeof *t->dec, dec_step, "decoders");
    if (model(&w) || w.bad) return -1;
    if (out->oom) return rt_fail(err, "out of memory writing the tokenizer.json of %s", t->origin);
    return 0;
}
