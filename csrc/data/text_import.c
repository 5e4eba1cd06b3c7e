// Plain text and JSONL files to token datasets.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset.h"
#include "base/json.h"
#include "data/text_import.h"
#include "base/files.h"

typedef struct doc_builder {
    int32_t *tokens;
    size_t n, cap;
    int64_t *offsets;
    int32_t *prompt_len;
    size_t n_docs, docs_cap;
    int with_prompts; // -1 unknown, 0 text documents, 1 prompt/completion documents
    const rt_tokenizer *tok;
    int32_t start, end; // the ids a document starts and ends with (rt_dataset_doc_ids)
    rt_tok_ids ids;     // scratch
} doc_builder;

static int reserve(doc_builder *b, size_t more, rt_error *err) {
    size_t need;
    if (!rt_add_size(b->n, more, &need)) return rt_fail(err, "input too large");
    if (need > b->cap) {
        size_t cap = need * 2, bytes;
        if (!rt_mul_size(cap, sizeof(int32_t), &bytes)) return rt_fail(err, "input too large");
        int32_t *t = realloc(b->tokens, bytes);
        if (!t) return rt_fail(err, "out of memory reading the input");
        b->tokens = t;
        b->cap = cap;
    }
    if (b->n_docs + 2 > b->docs_cap) {
        size_t cap = (b->n_docs + 2) * 2;
        int64_t *o = realloc(b->offsets, cap * sizeof(int64_t));
        if (o) b->offsets = o;
        int32_t *p = realloc(b->prompt_len, cap * sizeof(int32_t));
        if (p) b->prompt_len = p;
        if (!o || !p) return rt_fail(err, "out of memory reading the input");
        b->docs_cap = cap;
    }
    return 0;
}

// Appends the ids of text (no special tokens added: the document's own start and end are).
static int encode(doc_builder *b, const char *text, size_t len, size_t *n_ids, rt_error *err) {
    b->ids.n = 0;
    if (rt_tokenizer_encode(b->tok, text, len, 0, &b->ids, err) || reserve(b, b->ids.n + 1, err)) return -1;
    if (b->ids.n) memcpy(b->tokens + b->n, b->ids.ids, b->ids.n * sizeof(int32_t));
    b->n += b->ids.n;
    *n_ids = b->ids.n;
    return 0;
}

// Adds start + prompt + body + EOS; prompt_len counts the prompt's ids.
static int add_doc(doc_builder *b, const char *prompt, size_t plen, const char *body, size_t blen,
                   rt_error *err) {
    size_t n_prompt, n_body;
    if (reserve(b, 2, err)) return -1;
    if (b->n_docs == 0) b->offsets[0] = 0;
    b->tokens[b->n++] = b->start;
    if (encode(b, prompt, plen, &n_prompt, err) || encode(b, body, blen, &n_body, err)) return -1;
    if (n_prompt > INT32_MAX) return rt_fail(err, "prompt too long");
    b->tokens[b->n++] = b->end;
    b->prompt_len[b->n_docs] = (int32_t)n_prompt;
    b->offsets[++b->n_docs] = (int64_t)b->n;
    return 0;
}

typedef struct jsonl_doc {
    char *text, *prompt, *completion;
    size_t text_len, prompt_len, completion_len;
    const char *bad_key;
} jsonl_doc;

static int on_field(const char *key, const char *value, size_t len, void *user) {
    jsonl_doc *d = user;
    char **slot = strcmp(key, "text") == 0         ? &d->text
                  : strcmp(key, "prompt") == 0     ? &d->prompt
                  : strcmp(key, "completion") == 0 ? &d->completion
                                                   : NULL;
    size_t *slot_len = slot == &d->text     ? &d->text_len
                       : slot == &d->prompt ? &d->prompt_len
                                            : &d->completion_len;
    if (!slot) return 0; // other keys (ids, metadata) are allowed and ignored
    free(*slot);
    *slot = malloc(len + 1);
    if (!*slot) return -1;
    memcpy(*slot, value, len + 1);
    *slot_len = len;
    return 0;
}

static int on_non_string(const char *key, void *user) {
    jsonl_doc *d = user;
    if (strcmp(key, "text") == 0)
        d->bad_key = "text";
    else if (strcmp(key, "prompt") == 0)
        d->bad_key = "prompt";
    else if (strcmp(key, "completion") == 0)
        d->bad_key = "completion";
    return 0;
}

static int jsonl_line(doc_builder *b, const char *path, size_t line_no, const char *line, size_t len,
                      rt_error *err) {
    jsonl_doc d = {0};
    char msg[256];
    int rc = 0;
    if (rt_json_object(line, len, on_field, on_non_string, &d, msg, sizeof msg)) {
        rc = rt_fail(err, "%s:%zu: %s", path, line_no, msg);
    } else if (d.bad_key) {
        rc = rt_fail(err, "%s:%zu: \"%s\" must be a string", path, line_no, d.bad_key);
    } else if (d.text && (d.prompt || d.completion)) {
        rc = rt_fail(err, "%s:%zu: give either \"text\" or \"prompt\" and \"completion\", not both", path,
                     line_no);
    } else if (d.text) {
        if (b->with_prompts == 1)
            rc = rt_fail(err, "%s:%zu: a \"text\" line in a file of prompt/completion lines", path, line_no);
        b->with_prompts = 0;
        if (rc == 0) rc = add_doc(b, "", 0, d.text, d.text_len, err);
    } else if (d.prompt && d.completion) {
        if (b->with_prompts == 0)
            rc = rt_fail(err, "%s:%zu: a prompt/completion line in a file of \"text\" lines", path, line_no);
        b->with_prompts = 1;
        if (rc == 0) rc = add_doc(b, d.prompt, d.prompt_len, d.completion, d.completion_len, err);
    } else {
        rc = rt_fail(err, "%s:%zu: expected a \"text\" key, or \"prompt\" and \"completion\"", path, line_no);
    }
    free(d.text);
    free(d.prompt);
    free(d.completion);
    return rc;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

static int split_docs(doc_builder *b, const char *path, const char *fmt, const char *text, size_t len,
                      rt_error *err) {
    if (strcmp(fmt, "whole") == 0) return len ? add_doc(b, "", 0, text, len, err) : 0;
    int lines = strcmp(fmt, "lines") == 0, jsonl = strcmp(fmt, "jsonl") == 0;
    size_t start = 0, line_no = 0, para = 0;
    int in_para = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n') continue;
        line_no++;
        const char *line = text + start;
        size_t n = i - start;
        if (n && line[n - 1] == '\r') n--; // CRLF files
        int blank = is_blank(line, n);
        if (jsonl && !blank) {
            if (jsonl_line(b, path, line_no, line, n, err)) return -1;
        } else if (lines && !blank) {
            if (add_doc(b, "", 0, line, n, err)) return -1;
        } else if (!jsonl && !lines) { // blank-line separated paragraphs
            if (blank && in_para) {
                size_t end = start > para ? start - 1 : para;
                while (end > para && (text[end - 1] == '\r' || text[end - 1] == '\n')) end--;
                if (add_doc(b, "", 0, text + para, end - para, err)) return -1;
                in_para = 0;
            } else if (!blank && !in_para) {
                para = start;
                in_para = 1;
            }
        }
        start = i + 1;
    }
    if (in_para) {
        size_t end = len;
        while (end > para && (text[end - 1] == '\n' || text[end - 1] == '\r')) end--;
        if (add_doc(b, "", 0, text + para, end - para, err)) return -1;
    }
    return 0;
}

int rt_data_text_write(const char *in_path, const char *format, const char *out_path, int vocab_size,
                       const rt_tokenizer *tok, const rt_tok_source *src, rt_error *err) {
    if (strcmp(format, "lines") && strcmp(format, "blank") && strcmp(format, "whole") &&
        strcmp(format, "jsonl"))
        return rt_fail(err, "unknown format '%s' (expected lines, blank, whole or jsonl)", format);
    int need = strcmp(src->type, "byte") == 0 ? 259 : rt_tokenizer_vocab_size(tok);
    if (vocab_size < need)
        return rt_fail(err, "vocab size %d is smaller than the tokenizer's %d ids", vocab_size, need);
    doc_builder b = {0};
    b.with_prompts = -1;
    b.tok = tok;
    if (rt_dataset_doc_ids(tok, &b.start, &b.end, err)) return -1;
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(in_path, &text, &len, err)) return -1;
    int rc = split_docs(&b, in_path, format, text, len, err);
    if (rc == 0 && b.n_docs == 0) rc = rt_fail(err, "%s: no documents (format %s)", in_path, format);
    if (rc == 0) {
        char source[1400];
        snprintf(source, sizeof source, "retort data text --in %s --format %s", in_path, format);
        rt_dataset_spec spec = {.tokens = b.tokens,
                                .n_tokens = b.n,
                                .doc_offsets = b.offsets,
                                .n_docs = b.n_docs,
                                .prompt_len = b.with_prompts == 1 ? b.prompt_len : NULL,
                                .vocab_size = vocab_size,
                                .tokenizer = src->type,
                                .tokenizer_hash = src->hash,
                                .task = "text",
                                .split = "all",
                                .source = source};
        rc = rt_dataset_write(out_path, &spec, err);
    }
    free(text);
    free(b.tokens);
    free(b.offsets);
    free(b.prompt_len);
    rt_tok_ids_free(&b.ids);
    return rc;
}
