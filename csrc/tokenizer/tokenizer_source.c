// Tokenizer sources (tokenizer_source.h): reading one from a path, and building the tokenizer it stands for.
#include "tokenizer/tokenizer_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "base/files.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer_internal.h"

#define ACCEPTED_SOURCES                                                                                     \
    "a tokenizer.json file, a Hugging Face model folder holding one, a GGUF file or a retort checkpoint"

void rt_tok_source_byte(rt_tok_source *s, int vocab_size) {
    memset(s, 0, sizeof *s);
    snprintf(s->type, sizeof s->type, "byte");
    s->vocab_size = vocab_size;
    s->bos_id = 256;
    s->eos_id = 257;
    s->pad_id = 258;
}

void rt_tok_source_free(rt_tok_source *s) {
    free(s->bytes);
    memset(s, 0, sizeof *s);
}

int rt_tok_source_copy(rt_tok_source *dst, const rt_tok_source *src, rt_error *err) {
    *dst = *src;
    dst->bytes = NULL;
    if (!src->bytes) return 0;
    dst->bytes = rt_malloc(src->len ? src->len : 1, "tokenizer source", err);
    if (!dst->bytes) return -1;
    memcpy(dst->bytes, src->bytes, src->len);
    return 0;
}

int rt_tok_same(const char *type_a, const char *hash_a, const char *type_b, const char *hash_b) {
    if (strcmp(type_a, type_b) != 0) return 0;
    return strcmp(type_a, "byte") == 0 || strcmp(hash_a, hash_b) == 0;
}

int rt_tok_source_same(const rt_tok_source *a, const rt_tok_source *b) {
    return rt_tok_same(a->type, a->hash, b->type, b->hash);
}

const char *rt_tok_describe(const char *type, const char *hash, char buf[64]) {
    if (strcmp(type, "byte") == 0 || !hash || !hash[0])
        snprintf(buf, 64, "%s", type);
    else
        snprintf(buf, 64, "%s (hash %s)", type, hash);
    return buf;
}

int rt_tok_source_check_vocab(const rt_tok_source *s, int model_vocab, const char *what, rt_error *err) {
    int need = strcmp(s->type, "byte") == 0 ? 259 : s->vocab_size;
    if (model_vocab < need)
        return rt_fail(err,
                       "model.vocab_size %d is smaller than the %d ids of %s's tokenizer (%s): every id "
                       "needs a row of the embedding; set model.vocab_size >= %d",
                       model_vocab, need, what, s->type, need);
    return 0;
}

// ---- building the tokenizer

static int set_specials(rt_tokenizer *t, const rt_tok_source *s, const char *origin, rt_error *err) {
    int32_t ids[3] = {s->bos_id, s->eos_id, s->pad_id};
    for (int k = 0; k < 3; k++)
        if (ids[k] < -1 || ids[k] >= t->n_vocab)
            return rt_fail(err, "%s: special id %d is outside the tokenizer's %d ids", origin, ids[k],
                           t->n_vocab);
    t->bos = ids[0];
    t->eos = ids[1];
    t->pad = ids[2];
    return 0;
}

int rt_tok_source_open(const rt_tok_source *s, const char *origin, rt_tokenizer **out, rt_error *err) {
    *out = NULL;
    if (strcmp(s->type, "byte") == 0) return rt_tokenizer_bytes(out, err);
    rt_tokenizer *t = NULL;
    int rc;
    if (!s->bytes) return rt_fail(err, "%s: a %s tokenizer without its source bytes", origin, s->type);
    if (strcmp(s->format, RT_TOK_FORMAT_JSON) == 0) {
        rc = rt_tokenizer_from_json((const char *)s->bytes, s->len, origin, &t, err);
    } else if (strcmp(s->format, RT_TOK_FORMAT_GGUF) == 0) {
        rt_gguf_file f;
        rc = rt_gguf_read_mem(s->bytes, s->len, origin, &f, err);
        if (rc == 0) {
            rc = rt_tokenizer_from_gguf(&f, origin, &t, err);
            rt_gguf_free(&f);
        }
    } else {
        return rt_fail(err, "%s: tokenizer format '%.40s' (expected %s or %s)", origin, s->format,
                       RT_TOK_FORMAT_JSON, RT_TOK_FORMAT_GGUF);
    }
    if (rc) return -1;
    if (strcmp(t->kind, s->type) != 0 || t->n_vocab != s->vocab_size)
        rc = rt_fail(err, "%s: the source is a %s tokenizer of %d ids, but it is recorded as %s of %d",
                     origin, t->kind, t->n_vocab, s->type, s->vocab_size);
    if (rc == 0) rc = set_specials(t, s, origin, err);
    if (rc) {
        rt_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

// ---- reading a source

// Takes the bytes (owned) as the record's source and builds the tokenizer from them; the record's type,
// size and special ids come from the tokenizer, then a folder's tokenizer_config.json (config may be NULL).
static int adopt(rt_tok_source *s, const char *format, uint8_t *bytes, size_t len, const char *origin,
                 const char *config, rt_tokenizer **tok, rt_error *err) {
    memset(s, 0, sizeof *s);
    s->bytes = bytes;
    s->len = len;
    snprintf(s->format, sizeof s->format, "%s", format);
    rt_bytes_hash(bytes, len, s->hash);
    rt_tokenizer *t = NULL;
    int rc;
    if (len > RT_TOK_SOURCE_MAX) {
        rc = rt_fail(err, "%s: %zu bytes, more than a tokenizer source may have", origin, len);
    } else if (strcmp(format, RT_TOK_FORMAT_JSON) == 0) {
        rc = rt_tokenizer_from_json((const char *)bytes, len, origin, &t, err);
    } else {
        rt_gguf_file f;
        rc = rt_gguf_read_mem(bytes, len, origin, &f, err);
        if (rc == 0) {
            rc = rt_tokenizer_from_gguf(&f, origin, &t, err);
            rt_gguf_free(&f);
        }
    }
    if (rc == 0 && config) rc = rt_tok_apply_config_file(t, config, err);
    if (rc == 0) {
        snprintf(s->type, sizeof s->type, "%s", t->kind);
        s->vocab_size = t->n_vocab;
        s->bos_id = t->bos;
        s->eos_id = t->eos;
        s->pad_id = t->pad;
    }
    if (rc == 0 && tok)
        *tok = t;
    else
        rt_tokenizer_free(t);
    if (rc) rt_tok_source_free(s);
    return rc;
}

// A vocab-only GGUF of the file's tokenizer.* keys, copied as they are.
static int gguf_source(const char *path, rt_tok_source *out, rt_tokenizer **tok, rt_error *err) {
    rt_gguf_file f;
    if (rt_gguf_read(path, &f, err)) return -1;
    rt_gguf_writer w;
    rt_gguf_writer_init(&w);
    int keys = 0;
    for (int64_t i = 0; i < f.n_kv; i++)
        if (strncmp(f.kv[i].key, "tokenizer.", 10) == 0) {
            rt_gguf_add_kv_copy(&w, &f.kv[i]);
            keys++;
        }
    rt_gguf_free(&f);
    uint8_t *image = NULL;
    size_t len = 0;
    int rc = keys ? rt_gguf_write_mem(&w, &image, &len, err)
                  : rt_fail(err, "%s: a GGUF file without tokenizer.* keys: it holds no tokenizer", path);
    rt_gguf_writer_free(&w);
    if (rc) return -1;
    return adopt(out, RT_TOK_FORMAT_GGUF, image, len, path, NULL, tok, err);
}

static int json_source(const char *path, const char *config, rt_tok_source *out, rt_tokenizer **tok,
                       rt_error *err) {
    char *text;
    size_t len;
    if (rt_read_file(path, &text, &len, err)) return -1;
    return adopt(out, RT_TOK_FORMAT_JSON, (uint8_t *)text, len, path, config, tok, err);
}

int rt_tok_source_load(const char *source, rt_tok_source *out, rt_tokenizer **tok, rt_error *err) {
    memset(out, 0, sizeof *out);
    if (tok) *tok = NULL;
    if (!source[0]) {
        rt_tok_source_byte(out, 0);
        return tok ? rt_tokenizer_bytes(tok, err) : 0;
    }
    struct stat st;
    if (stat(source, &st) != 0)
        return rt_fail(err, "%s: %s (a tokenizer source is %s)", source, strerror(errno), ACCEPTED_SOURCES);
    if (S_ISDIR(st.st_mode)) {
        char path[4096], config[4096];
        if (snprintf(path, sizeof path, "%s/tokenizer.json", source) >= (int)sizeof path ||
            snprintf(config, sizeof config, "%s/tokenizer_config.json", source) >= (int)sizeof config)
            return rt_fail(err, "%s: path too long", source);
        if (stat(path, &st) != 0)
            return rt_fail(err, "%s: a folder without tokenizer.json (a tokenizer source is %s)", source,
                           ACCEPTED_SOURCES);
        return json_source(path, stat(config, &st) == 0 ? config : NULL, out, tok, err);
    }
    unsigned char head[64];
    size_t n = 0;
    FILE *f = fopen(source, "rb");
    if (!f) return rt_fail(err, "%s: cannot open: %s", source, strerror(errno));
    n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n >= 4 && memcmp(head, "GGUF", 4) == 0) return gguf_source(source, out, tok, err);
    if (n >= 8 && memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) {
        if (rt_tok_source_from_checkpoint(source, out, err)) return -1;
        char origin[4200];
        snprintf(origin, sizeof origin, "%s:/tokenizer", source);
        if (tok && rt_tok_source_open(out, origin, tok, err)) {
            rt_tok_source_free(out);
            return -1;
        }
        return 0;
    }
    size_t i = 0;
    if (n >= 3 && memcmp(head, "\xEF\xBB\xBF", 3) == 0) i = 3; // a UTF-8 byte order mark
    while (i < n && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n')) i++;
    if (i < n && head[i] == '{') return json_source(source, NULL, out, tok, err);
    return rt_fail(err, "%s: neither JSON nor GGUF nor HDF5 nor a folder (a tokenizer source is %s)", source,
                   ACCEPTED_SOURCES);
}
