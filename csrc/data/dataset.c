// Token datasets in HDF5 (layout in dataset.h and docs/checkpoint.md). The same checks run before a write
// and after a load, so retort never writes a dataset it would refuse to read.
#define _POSIX_C_SOURCE 200809L
#include "data/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/h5util.h"

#define MAX_VOCAB (1 << 24)

// What both the writer and the loader check, over borrowed arrays.
typedef struct ds_view {
    const int32_t *tokens; // [n_tokens]
    size_t n_tokens;
    const int64_t *offsets; // [n_docs + 1]
    size_t n_docs;
    const int32_t *prompt_len; // [n_docs] or NULL
    int vocab_size;
    const rt_dataset_topk *topk; // NULL or k == 0: none
    int teacher_vocab_size;
} ds_view;

#define MAX_TOPK 1024

static size_t answer_count(const int64_t *offsets, const int32_t *prompt_len, size_t n_docs) {
    size_t n = 0;
    for (size_t d = 0; prompt_len && d < n_docs; d++)
        n += (size_t)(offsets[d + 1] - offsets[d] - 1 - prompt_len[d]);
    return n;
}

// After validate's checks of offsets and prompt_len.
static int validate_topk(const ds_view *v, const char *p, rt_error *err) {
    const rt_dataset_topk *t = v->topk;
    if (!t || t->k == 0) return 0;
    if (!v->prompt_len)
        return rt_fail(err, "%s: /topk_ids needs /prompt_len (teacher distributions are per answer position)",
                       p);
    if (t->k < 1 || t->k > MAX_TOPK)
        return rt_fail(err, "%s: topk_k = %d is outside [1, %d]", p, t->k, MAX_TOPK);
    if (!(t->temperature > 0.0 && t->temperature <= 100.0))
        return rt_fail(err, "%s: topk_temperature = %g is outside (0, 100]", p, t->temperature);
    if (v->teacher_vocab_size < 1 || v->teacher_vocab_size > MAX_VOCAB)
        return rt_fail(err, "%s: teacher_vocab_size = %d is outside [1, %d]", p, v->teacher_vocab_size,
                       MAX_VOCAB);
    size_t want = answer_count(v->offsets, v->prompt_len, v->n_docs);
    if (t->n_rows != want)
        return rt_fail(err, "%s: /topk_ids has %zu rows, but the documents have %zu answer positions", p,
                       t->n_rows, want);
    size_t n = t->n_rows * (size_t)t->k; // n_rows and k were both read back with checked products
    for (size_t i = 0; i < n; i++) {
        if (t->ids[i] < 0 || t->ids[i] >= v->teacher_vocab_size)
            return rt_fail(err, "%s: topk_ids[%zu][%zu] = %d is outside the teacher's vocabulary [0, %d)", p,
                           i / (size_t)t->k, i % (size_t)t->k, t->ids[i], v->teacher_vocab_size);
        float lp = t->logprobs[i];
        if (!(lp <= 1e-3f && lp >= -1e30f)) // finite and <= 0, with room for rounding
            return rt_fail(err, "%s: topk_logprobs[%zu][%zu] = %g is not a log-probability (finite, <= 0)", p,
                           i / (size_t)t->k, i % (size_t)t->k, lp);
    }
    return 0;
}

static int validate(const ds_view *v, int max_vocab, const char *p, rt_error *err) {
    if (v->n_docs == 0) return rt_fail(err, "%s: the dataset holds no documents", p);
    if (v->vocab_size < 1 || v->vocab_size > MAX_VOCAB)
        return rt_fail(err, "%s: vocab_size %d is outside [1, %d]", p, v->vocab_size, MAX_VOCAB);
    if (v->offsets[0] != 0)
        return rt_fail(err, "%s: doc_offsets[0] is %lld, expected 0", p, (long long)v->offsets[0]);
    for (size_t d = 0; d < v->n_docs; d++)
        if (v->offsets[d + 1] < v->offsets[d])
            return rt_fail(err,
                           "%s: doc_offsets decrease at document %zu (%lld then %lld): they must be "
                           "non-decreasing",
                           p, d, (long long)v->offsets[d], (long long)v->offsets[d + 1]);
    if (v->offsets[v->n_docs] < 0 || (uint64_t)v->offsets[v->n_docs] != (uint64_t)v->n_tokens)
        return rt_fail(err,
                       "%s: doc_offsets end at %lld but there are %zu tokens (the last offset must equal "
                       "n_tokens)",
                       p, (long long)v->offsets[v->n_docs], v->n_tokens);
    // offsets are now monotonic within [0, n_tokens]: walk documents so errors can say where a token is
    for (size_t d = 0; d < v->n_docs; d++)
        for (int64_t i = v->offsets[d]; i < v->offsets[d + 1]; i++) {
            int32_t id = v->tokens[i];
            if (id < 0 || id >= v->vocab_size)
                return rt_fail(
                    err, "%s: token %lld (document %zu) is %d, outside the dataset's vocabulary [0, %d)", p,
                    (long long)i, d, id, v->vocab_size);
            if (max_vocab > 0 && id >= max_vocab)
                return rt_fail(err,
                               "%s: token %lld (document %zu) is %d, but the model's vocab_size is %d (the "
                               "dataset's vocab_size is %d)",
                               p, (long long)i, d, id, max_vocab, v->vocab_size);
        }
    for (size_t d = 0; v->prompt_len && d < v->n_docs; d++) {
        int64_t len = v->offsets[d + 1] - v->offsets[d];
        // BOS + prompt + the answer (possibly empty) + EOS must fit in the document
        if (v->prompt_len[d] < 0)
            return rt_fail(err, "%s: prompt_len[%zu] = %d is negative", p, d, v->prompt_len[d]);
        if ((int64_t)v->prompt_len[d] + 2 > len)
            return rt_fail(err,
                           "%s: prompt_len[%zu] = %d does not fit its document of %lld tokens (BOS, the "
                           "prompt and EOS need %lld)",
                           p, d, v->prompt_len[d], (long long)len, (long long)v->prompt_len[d] + 2);
    }
    return validate_topk(v, p, err);
}

// ---------------------------------------------------------------------------------------------------
// writing

// The file's strings in the order strings_crc32 covers them (docs/checkpoint.md).
// A real tokenizer's hash comes last.
static uint32_t strings_crc(const char *tokenizer, const char *task, const char *split, const char *source,
                            const char *teacher, const char *teacher_hash, const char *tokenizer_hash) {
    uint32_t crc = rt_h5_crc32_str(0, RT_DATASET_FORMAT);
    crc = rt_h5_crc32_str(crc, tokenizer);
    crc = rt_h5_crc32_str(crc, task);
    crc = rt_h5_crc32_str(crc, split);
    crc = rt_h5_crc32_str(crc, source);
    if (teacher) crc = rt_h5_crc32_str(rt_h5_crc32_str(crc, teacher), teacher_hash ? teacher_hash : "");
    if (strcmp(tokenizer, "byte") != 0) crc = rt_h5_crc32_str(crc, tokenizer_hash);
    return crc;
}

static int fill(hid_t f, const char *path, void *user, rt_error *err) {
    const rt_dataset_spec *s = user;
    const char *task = s->task ? s->task : "text", *split = s->split ? s->split : "all";
    const char *source = s->source ? s->source : "";
    const char *tok = s->tokenizer ? s->tokenizer : "byte",
               *tok_hash = s->tokenizer_hash ? s->tokenizer_hash : "";
    if (strcmp(tok, "byte") != 0 && rt_h5_attr_write_str(f, "tokenizer_hash", tok_hash, err)) return -1;
    hsize_t nt = s->n_tokens, no = s->n_docs + 1, nd = s->n_docs;
    if (rt_h5_write(f, "tokens", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, &nt, s->tokens, err) ||
        rt_h5_write(f, "doc_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE, 1, &no, s->doc_offsets, err) ||
        (s->prompt_len &&
         rt_h5_write(f, "prompt_len", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, &nd, s->prompt_len, err)))
        return -1;
    if (s->teacher && (rt_h5_attr_write_str(f, "teacher", s->teacher, err) ||
                       rt_h5_attr_write_str(f, "teacher_hash", s->teacher_hash ? s->teacher_hash : "", err) ||
                       rt_h5_attr_write_i64(f, "teacher_vocab_size", s->teacher_vocab_size, err)))
        return -1;
    if (s->topk && s->topk->k > 0) {
        hsize_t dims[2] = {s->topk->n_rows, (hsize_t)s->topk->k};
        if (rt_h5_write(f, "topk_ids", H5T_NATIVE_INT32, H5T_STD_I32LE, 2, dims, s->topk->ids, err) ||
            rt_h5_write(f, "topk_logprobs", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 2, dims, s->topk->logprobs,
                        err) ||
            rt_h5_attr_write_i64(f, "topk_k", s->topk->k, err) ||
            rt_h5_attr_write_f64(f, "topk_temperature", s->topk->temperature, err))
            return -1;
    }
    return rt_h5_attr_write_str(f, "format", RT_DATASET_FORMAT, err) ||
                   rt_h5_attr_write_i64(f, "version", RT_DATASET_VERSION, err) ||
                   rt_h5_attr_write_str(f, "tokenizer", tok, err) ||
                   rt_h5_attr_write_i64(f, "vocab_size", s->vocab_size, err) ||
                   rt_h5_attr_write_i64(f, "n_docs", (int64_t)s->n_docs, err) ||
                   rt_h5_attr_write_i64(f, "n_tokens", (int64_t)s->n_tokens, err) ||
                   rt_h5_attr_write_str(f, "task", task, err) ||
                   rt_h5_attr_write_str(f, "split", split, err) ||
                   rt_h5_attr_write_i64(f, "seed", s->seed, err) ||
                   rt_h5_attr_write_str(f, "source", source, err) ||
                   rt_h5_attr_write_i64(
                       f, "strings_crc32",
                       strings_crc(tok, task, split, source, s->teacher, s->teacher_hash, tok_hash), err)
               ? -1
               : 0;
}

int rt_dataset_write(const char *path, const rt_dataset_spec *s, rt_error *err) {
    if ((s->n_tokens && !s->tokens) || !s->doc_offsets)
        return rt_fail(err, "%s: refusing to write a dataset without its token or offset arrays", path);
    if (s->n_tokens > (size_t)INT64_MAX || s->n_docs > (size_t)INT64_MAX - 1)
        return rt_fail(err, "%s: too many tokens or documents", path);
    rt_dataset ds; // only for its field sizes: what the loader can hold back
    if ((s->task && strlen(s->task) >= sizeof ds.task) || (s->split && strlen(s->split) >= sizeof ds.split))
        return rt_fail(err, "%s: task or split name too long (at most %zu and %zu bytes)", path,
                       sizeof ds.task - 1, sizeof ds.split - 1);
    const char *tok = s->tokenizer ? s->tokenizer : "byte";
    if (strcmp(tok, "byte") != 0 && strcmp(tok, "bpe") != 0 && strcmp(tok, "spm") != 0)
        return rt_fail(err, "%s: tokenizer '%s' (byte, bpe or spm expected)", path, tok);
    if (strcmp(tok, "byte") != 0 && (!s->tokenizer_hash || strlen(s->tokenizer_hash) != 16))
        return rt_fail(err, "%s: a %s dataset needs its tokenizer's 16-digit hash", path, tok);
    if (s->topk && s->topk->k > 0 && !s->teacher)
        return rt_fail(err, "%s: teacher distributions without the teacher's name", path);
    ds_view v = {s->tokens,     s->n_tokens,   s->doc_offsets, s->n_docs,
                 s->prompt_len, s->vocab_size, s->topk,        s->teacher_vocab_size};
    if (validate(&v, 0, path, err)) return rt_fail_wrap(err, "refusing to write an invalid dataset");
    return rt_h5_write_atomic(path, fill, (void *)s, err);
}

// ---------------------------------------------------------------------------------------------------
// loading

// An optional string attribute: absent keeps dst's default; present must be a string. *crc continues over
// the whole stored value (dst may hold only its start).
static int opt_str(hid_t f, const char *name, char *dst, size_t cap, uint32_t *crc, const char *p,
                   rt_error *err) {
    int e = rt_h5_attr_exists(f, name);
    if (e < 0) return rt_fail(err, "%s: cannot read the attributes of the file (damaged file?)", p);
    if (e == 0) {
        *crc = rt_h5_crc32_str(*crc, dst);
        return 0;
    }
    char *s = NULL;
    if (rt_h5_attr_read_str(f, name, &s, p, "the file", err)) return -1;
    snprintf(dst, cap, "%s", s);
    *crc = rt_h5_crc32_str(*crc, s);
    free(s);
    return 0;
}

static int load_attrs(rt_dataset *ds, hid_t f, int64_t *n_docs, int64_t *n_tokens, rt_error *err) {
    const char *p = ds->path;
    char *s = NULL;
    if (rt_h5_attr_exists(f, "format") == 0)
        return rt_fail(err, "%s: the file has no 'format' attribute: not a retort dataset", p);
    if (rt_h5_attr_read_str(f, "format", &s, p, "the file", err)) return -1;
    int ok = strcmp(s, RT_DATASET_FORMAT) == 0;
    if (!ok)
        rt_fail(err, "%s: format attribute is '%.64s', expected '%s': not a retort dataset", p, s,
                RT_DATASET_FORMAT);
    free(s);
    if (!ok) return -1;
    int64_t version, vocab;
    if (rt_h5_attr_read_i64(f, "version", &version, p, "the file", err)) return -1;
    if (version < 1 || version > RT_DATASET_VERSION)
        return rt_fail(err, "%s: dataset version %lld; this retort reads version %d", p, (long long)version,
                       RT_DATASET_VERSION);
    if (rt_h5_attr_read_str(f, "tokenizer", &s, p, "the file", err)) return -1;
    ok = strcmp(s, "byte") == 0 || strcmp(s, "bpe") == 0 || strcmp(s, "spm") == 0;
    if (ok)
        snprintf(ds->tokenizer, sizeof ds->tokenizer, "%s", s);
    else
        rt_fail(err, "%s: tokenizer attribute is '%.64s' (byte, bpe or spm expected)", p, s);
    free(s);
    if (!ok) return -1;
    if (strcmp(ds->tokenizer, "byte") != 0) {
        if (rt_h5_attr_read_str(f, "tokenizer_hash", &s, p, "the file", err)) return -1;
        ok = strlen(s) == 16;
        if (ok)
            snprintf(ds->tokenizer_hash, sizeof ds->tokenizer_hash, "%s", s);
        else
            rt_fail(err, "%s: tokenizer_hash '%.40s' is not 16 hex digits", p, s);
        free(s);
        if (!ok) return -1;
    }
    if (rt_h5_attr_read_i64(f, "vocab_size", &vocab, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "n_docs", n_docs, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "n_tokens", n_tokens, p, "the file", err))
        return -1;
    if (vocab < 1 || vocab > MAX_VOCAB)
        return rt_fail(err, "%s: vocab_size attribute %lld is outside [1, %d]", p, (long long)vocab,
                       MAX_VOCAB);
    ds->vocab_size = (int)vocab;
    if (*n_docs < 1 || *n_tokens < 0)
        return rt_fail(err, "%s: attributes say %lld documents and %lld tokens", p, (long long)*n_docs,
                       (long long)*n_tokens);
    snprintf(ds->task, sizeof ds->task, "text");
    snprintf(ds->split, sizeof ds->split, "all");
    uint32_t crc = rt_h5_crc32_str(rt_h5_crc32_str(0, RT_DATASET_FORMAT), ds->tokenizer);
    if (opt_str(f, "task", ds->task, sizeof ds->task, &crc, p, err) ||
        opt_str(f, "split", ds->split, sizeof ds->split, &crc, p, err) ||
        opt_str(f, "source", ds->source, sizeof ds->source, &crc, p, err))
        return -1;
    int has_teacher = rt_h5_attr_exists(f, "teacher");
    if (has_teacher < 0) return rt_fail(err, "%s: cannot read the attributes of the file (damaged file?)", p);
    if (has_teacher) {
        int64_t tv;
        if (opt_str(f, "teacher", ds->teacher, sizeof ds->teacher, &crc, p, err) ||
            opt_str(f, "teacher_hash", ds->teacher_hash, sizeof ds->teacher_hash, &crc, p, err) ||
            rt_h5_attr_read_i64(f, "teacher_vocab_size", &tv, p, "the file", err))
            return -1;
        if (tv < 1 || tv > MAX_VOCAB)
            return rt_fail(err, "%s: teacher_vocab_size attribute %lld is outside [1, %d]", p, (long long)tv,
                           MAX_VOCAB);
        ds->teacher_vocab_size = (int)tv;
    }
    int e = rt_h5_attr_exists(f, "seed");
    if (e < 0) return rt_fail(err, "%s: cannot read the attributes of the file (damaged file?)", p);
    if (e && rt_h5_attr_read_i64(f, "seed", &ds->seed, p, "the file", err)) return -1;
    if (strcmp(ds->tokenizer, "byte") != 0) crc = rt_h5_crc32_str(crc, ds->tokenizer_hash);
    // strings_crc32: absent in files of other writers (nothing to check)
    int64_t want;
    e = rt_h5_attr_exists(f, "strings_crc32");
    if (e < 0) return rt_fail(err, "%s: cannot read the attributes of the file (damaged file?)", p);
    if (e && rt_h5_attr_read_i64(f, "strings_crc32", &want, p, "the file", err)) return -1;
    if (e && want != (int64_t)crc)
        return rt_fail(err,
                       "%s: the string attributes (tokenizer, task, split, source, teacher) do not match "
                       "strings_crc32: the file "
                       "is damaged, or was edited without updating strings_crc32",
                       p);
    return 0;
}

static int load_contents(rt_dataset *ds, hid_t f, int max_vocab, rt_error *err) {
    const char *p = ds->path;
    int64_t n_docs, n_tokens;
    if (load_attrs(ds, f, &n_docs, &n_tokens, err)) return -1;
    size_t n_off;
    if (rt_h5_read(f, "tokens", H5T_NATIVE_INT32, 1, NULL, NULL, NULL, (void **)&ds->tokens, &ds->n_tokens, p,
                   err) ||
        rt_h5_read(f, "doc_offsets", H5T_NATIVE_INT64, 1, NULL, NULL, NULL, (void **)&ds->doc_offsets, &n_off,
                   p, err))
        return -1;
    if (n_off < 2) return rt_fail(err, "%s: doc_offsets has %zu entries, expected n_docs + 1 >= 2", p, n_off);
    ds->n_docs = n_off - 1;
    if ((uint64_t)n_docs != ds->n_docs || (uint64_t)n_tokens != ds->n_tokens)
        return rt_fail(
            err,
            "%s: attributes n_docs = %lld and n_tokens = %lld, but the datasets hold %zu documents "
            "(doc_offsets has n_docs + 1 entries) and %zu tokens",
            p, (long long)n_docs, (long long)n_tokens, ds->n_docs, ds->n_tokens);
    htri_t has_pl = H5Lexists(f, "prompt_len", H5P_DEFAULT);
    if (has_pl < 0) return rt_fail(err, "%s: cannot look up dataset /prompt_len (damaged file?)", p);
    if (has_pl) {
        int64_t want = (int64_t)ds->n_docs;
        size_t n_pl;
        if (rt_h5_read(f, "prompt_len", H5T_NATIVE_INT32, 1, &want, NULL, NULL, (void **)&ds->prompt_len,
                       &n_pl, p, err))
            return -1;
    }
    htri_t has_topk = H5Lexists(f, "topk_ids", H5P_DEFAULT);
    if (has_topk < 0) return rt_fail(err, "%s: cannot look up dataset /topk_ids (damaged file?)", p);
    if (has_topk) {
        rt_dataset_topk *t = &ds->topk;
        int64_t k;
        if (!ds->teacher_vocab_size)
            return rt_fail(err, "%s: /topk_ids without the teacher attributes (teacher, teacher_vocab_size)",
                           p);
        if (rt_h5_attr_read_i64(f, "topk_k", &k, p, "the file", err) ||
            rt_h5_attr_read_f64(f, "topk_temperature", &t->temperature, p, "the file", err))
            return -1;
        if (k < 1 || k > MAX_TOPK)
            return rt_fail(err, "%s: topk_k attribute %lld is outside [1, %d]", p, (long long)k, MAX_TOPK);
        int64_t want[2] = {-1, k};
        hsize_t dims[4];
        size_t n_ids, n_lp;
        if (rt_h5_read(f, "topk_ids", H5T_NATIVE_INT32, 2, want, NULL, dims, (void **)&t->ids, &n_ids, p,
                       err))
            return -1;
        want[0] = (int64_t)dims[0];
        if (rt_h5_read(f, "topk_logprobs", H5T_NATIVE_FLOAT, 2, want, NULL, NULL, (void **)&t->logprobs,
                       &n_lp, p, err))
            return -1;
        t->k = (int)k;
        t->n_rows = (size_t)dims[0];
    }
    ds_view v = {ds->tokens,     ds->n_tokens,   ds->doc_offsets, ds->n_docs,
                 ds->prompt_len, ds->vocab_size, &ds->topk,       ds->teacher_vocab_size};
    return validate(&v, max_vocab, p, err);
}

int rt_dataset_load(rt_dataset *ds, const char *path, int max_vocab, rt_error *err) {
    memset(ds, 0, sizeof *ds);
    snprintf(ds->path, sizeof ds->path, "%s", path);
    hid_t f = rt_h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = load_contents(ds, f, max_vocab, err);
    H5Fclose(f);
    if (rc) rt_dataset_free(ds);
    return rc;
}

void rt_dataset_free(rt_dataset *ds) {
    free(ds->tokens);
    free(ds->doc_offsets);
    free(ds->prompt_len);
    free(ds->topk.ids);
    free(ds->topk.logprobs);
    ds->tokens = NULL;
    ds->doc_offsets = NULL;
    ds->prompt_len = NULL;
    memset(&ds->topk, 0, sizeof ds->topk);
}

size_t rt_dataset_answer_count(const rt_dataset *ds) {
    return answer_count(ds->doc_offsets, ds->prompt_len, ds->n_docs);
}

int rt_dataset_answer_rows(const rt_dataset *ds, int64_t **rows, rt_error *err) {
    *rows = NULL;
    if (!ds->prompt_len) return rt_fail(err, "%s has no /prompt_len: no answer positions", ds->path);
    int64_t *r = rt_malloc((ds->n_tokens ? ds->n_tokens : 1) * sizeof(int64_t), "answer rows", err);
    if (!r) return -1;
    int64_t next = 0;
    for (size_t d = 0; d < ds->n_docs; d++) {
        int64_t start = ds->doc_offsets[d] + 1 + ds->prompt_len[d];
        for (int64_t i = ds->doc_offsets[d]; i < ds->doc_offsets[d + 1]; i++) r[i] = i >= start ? next++ : -1;
    }
    *rows = r;
    return 0;
}

int rt_dataset_answer_mask(const rt_dataset *ds, uint8_t **mask, rt_error *err) {
    *mask = NULL;
    if (!ds->prompt_len)
        return rt_fail(err,
                       "%s has no /prompt_len (not a prompt/answer dataset), so there is no answer to train "
                       "on: use data.loss_on=all, or make it with `retort data synth` or `retort data text "
                       "--format jsonl` with prompt/completion fields",
                       ds->path);
    uint8_t *m = rt_malloc(ds->n_tokens ? ds->n_tokens : 1, "answer mask", err);
    if (!m) return -1;
    memset(m, 0, ds->n_tokens);
    // offsets and prompt_len were validated at load: BOS + prompt + EOS fit in every document
    for (size_t d = 0; d < ds->n_docs; d++)
        for (int64_t i = ds->doc_offsets[d] + 1 + ds->prompt_len[d]; i < ds->doc_offsets[d + 1]; i++)
            m[i] = 1;
    *mask = m;
    return 0;
}

int rt_dataset_doc_ids(const rt_tokenizer *tok, int32_t *start, int32_t *end, rt_error *err) {
    int32_t bos = rt_tokenizer_bos(tok), eos = rt_tokenizer_eos(tok);
    if (eos < 0)
        return rt_fail(
            err,
            "%s has no EOS token: retort's documents end with one (a tokenizer_config.json next to "
            "tokenizer.json may name it as eos_token)",
            rt_tokenizer_origin(tok));
    *start = bos >= 0 ? bos : eos;
    *end = eos;
    return 0;
}

int rt_dataset_check_tokenizer(const rt_dataset *ds, const char *type, const char *hash, const char *what,
                               rt_error *err) {
    int same = strcmp(ds->tokenizer, type) == 0 &&
               (strcmp(type, "byte") == 0 || strcmp(ds->tokenizer_hash, hash) == 0);
    if (same) return 0;
    if (strcmp(ds->tokenizer, "byte") == 0)
        return rt_fail(
            err,
            "%s %s holds byte-tokenizer ids (synthetic tasks and datasets made without --tokenizer "
            "are bytes), but the model's tokenizer is %s (hash %s): make the data with `retort data "
            "text --tokenizer` and the model's tokenizer",
            what, ds->path, type, hash);
    if (strcmp(type, "byte") == 0)
        return rt_fail(
            err,
            "%s %s was tokenized with a %s tokenizer (hash %s), but the model uses the byte tokenizer: "
            "set model.tokenizer to that tokenizer (a file, folder or checkpoint) or remake the data",
            what, ds->path, ds->tokenizer, ds->tokenizer_hash);
    return rt_fail(
        err,
        "%s %s was tokenized with a %s tokenizer of hash %s, but the model's tokenizer is %s of hash "
        "%s: ids mean different text; remake the data with the model's tokenizer",
        what, ds->path, ds->tokenizer, ds->tokenizer_hash, type, hash);
}
