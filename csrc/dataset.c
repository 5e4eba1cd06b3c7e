// Token datasets in HDF5 (layout in dataset.h and docs/checkpoint.md).
#define _POSIX_C_SOURCE 200809L
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

static int write_contents(hid_t f, const char *path, const rt_dataset_spec *s, rt_error *err) {
    hsize_t nt = s->n_tokens, no = s->n_docs + 1, nd = s->n_docs;
    if (rt_h5_write(f, "tokens", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, &nt, s->tokens, path, err) ||
        rt_h5_write(f, "doc_offsets", H5T_NATIVE_INT64, H5T_STD_I64LE, 1, &no, s->doc_offsets, path, err))
        return -1;
    if (s->prompt_len && rt_h5_write(f, "prompt_len", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, &nd, s->prompt_len, path, err))
        return -1;
    if (rt_h5_attr_write_str(f, "format", RT_DATASET_FORMAT, err) ||
        rt_h5_attr_write_i64(f, "version", RT_DATASET_VERSION, err) ||
        rt_h5_attr_write_str(f, "tokenizer", "byte", err) ||
        rt_h5_attr_write_i64(f, "vocab_size", s->vocab_size, err) ||
        rt_h5_attr_write_i64(f, "n_docs", (int64_t)s->n_docs, err) ||
        rt_h5_attr_write_i64(f, "n_tokens", (int64_t)s->n_tokens, err) ||
        rt_h5_attr_write_str(f, "task", s->task ? s->task : "text", err) ||
        rt_h5_attr_write_str(f, "split", s->split ? s->split : "all", err) ||
        rt_h5_attr_write_i64(f, "seed", s->seed, err) ||
        rt_h5_attr_write_str(f, "source", s->source ? s->source : "", err))
        return rt_fail_wrap(err, "%s", path);
    return 0;
}

int rt_dataset_write(const char *path, const rt_dataset_spec *s, rt_error *err) {
    if (s->n_docs == 0 || s->doc_offsets[0] != 0 || (size_t)s->doc_offsets[s->n_docs] != s->n_tokens)
        return rt_fail(err, "%s: refusing to write a dataset whose offsets do not cover its tokens", path);
    rt_h5_quiet();
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return rt_fail(err, "%s: cannot create (is the directory there and writable?)", tmp);
    int rc = write_contents(f, path, s, err);
    if (H5Fclose(f) < 0 && rc == 0) rc = rt_fail(err, "%s: cannot finish writing", tmp);
    if (rc == 0) rc = rt_fsync_path(tmp, err);
    if (rc == 0 && rename(tmp, path) != 0) rc = rt_fail(err, "cannot rename %s to %s", tmp, path);
    if (rc == 0) rc = rt_fsync_parent_dir(path, err);
    if (rc) unlink(tmp);
    return rc;
}

static int read_1d(hid_t f, const char *name, hid_t type, size_t esize, void **out, size_t *n, const char *path,
                   rt_error *err) {
    int rank;
    hsize_t dims[4];
    if (rt_h5_read(f, name, type, esize, &rank, dims, out, n, path, err)) return -1;
    if (rank != 1) {
        free(*out);
        *out = NULL;
        return rt_fail(err, "%s: dataset %s has rank %d, expected 1", path, name, rank);
    }
    return 0;
}

static int validate(rt_dataset *ds, int max_vocab, rt_error *err) {
    const char *p = ds->path;
    if (ds->n_docs == 0) return rt_fail(err, "%s: the dataset holds no documents", p);
    if (ds->doc_offsets[0] != 0) return rt_fail(err, "%s: doc_offsets[0] is %lld, expected 0", p, (long long)ds->doc_offsets[0]);
    for (size_t d = 0; d < ds->n_docs; d++)
        if (ds->doc_offsets[d + 1] < ds->doc_offsets[d])
            return rt_fail(err, "%s: doc_offsets decrease at document %zu", p, d);
    if ((uint64_t)ds->doc_offsets[ds->n_docs] != (uint64_t)ds->n_tokens)
        return rt_fail(err, "%s: doc_offsets end at %lld but the file holds %zu tokens", p,
                       (long long)ds->doc_offsets[ds->n_docs], ds->n_tokens);
    if (ds->vocab_size < 1) return rt_fail(err, "%s: vocab_size attribute is %d", p, ds->vocab_size);
    for (size_t i = 0; i < ds->n_tokens; i++) {
        int32_t id = ds->tokens[i];
        if (id < 0 || id >= ds->vocab_size)
            return rt_fail(err, "%s: token %zu is %d, outside the dataset's vocabulary [0, %d)", p, i, id,
                           ds->vocab_size);
        if (max_vocab > 0 && id >= max_vocab)
            return rt_fail(err, "%s: token %zu is %d, but the model's vocab_size is %d (the dataset's is %d)", p, i,
                           id, max_vocab, ds->vocab_size);
    }
    if (ds->prompt_len)
        for (size_t d = 0; d < ds->n_docs; d++) {
            int64_t len = ds->doc_offsets[d + 1] - ds->doc_offsets[d];
            // BOS + prompt + at least EOS must fit in the document
            if (ds->prompt_len[d] < 0 || ds->prompt_len[d] + 2 > len)
                return rt_fail(err, "%s: prompt_len[%zu] = %d does not fit its document of %lld tokens", p, d,
                               ds->prompt_len[d], (long long)len);
        }
    return 0;
}

static int load_contents(rt_dataset *ds, hid_t f, int max_vocab, rt_error *err) {
    const char *p = ds->path;
    char *s = NULL;
    if (rt_h5_attr_read_str(f, "format", &s, p, "the file", err))
        return rt_fail_wrap(err, "not a retort dataset");
    int ok = strcmp(s, RT_DATASET_FORMAT) == 0;
    free(s);
    if (!ok) return rt_fail(err, "%s: format attribute is not '%s': not a retort dataset", p, RT_DATASET_FORMAT);
    int64_t version, vocab, n_docs_attr, n_tokens_attr;
    if (rt_h5_attr_read_i64(f, "version", &version, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "vocab_size", &vocab, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "n_docs", &n_docs_attr, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "n_tokens", &n_tokens_attr, p, "the file", err) ||
        rt_h5_attr_read_i64(f, "seed", &ds->seed, p, "the file", err))
        return -1;
    if (version < 1 || version > RT_DATASET_VERSION)
        return rt_fail(err, "%s: dataset version %lld; this retort reads version %d", p, (long long)version,
                       RT_DATASET_VERSION);
    if (vocab < 1 || vocab > (1 << 24)) return rt_fail(err, "%s: vocab_size attribute %lld is invalid", p, (long long)vocab);
    ds->vocab_size = (int)vocab;
    const char *names[3] = {"task", "split", "source"};
    char *dst[3] = {ds->task, ds->split, ds->source};
    size_t caps[3] = {sizeof ds->task, sizeof ds->split, sizeof ds->source};
    for (int i = 0; i < 3; i++) {
        if (rt_h5_attr_read_str(f, names[i], &s, p, "the file", err)) return -1;
        snprintf(dst[i], caps[i], "%s", s);
        free(s);
    }
    size_t n_off;
    if (read_1d(f, "tokens", H5T_NATIVE_INT32, sizeof(int32_t), (void **)&ds->tokens, &ds->n_tokens, p, err) ||
        read_1d(f, "doc_offsets", H5T_NATIVE_INT64, sizeof(int64_t), (void **)&ds->doc_offsets, &n_off, p, err))
        return -1;
    if (n_off < 2) return rt_fail(err, "%s: doc_offsets has %zu entries, expected n_docs + 1 >= 2", p, n_off);
    ds->n_docs = n_off - 1;
    if ((uint64_t)n_docs_attr != ds->n_docs || (uint64_t)n_tokens_attr != ds->n_tokens)
        return rt_fail(err, "%s: attributes say %lld documents and %lld tokens, the datasets hold %zu and %zu", p,
                       (long long)n_docs_attr, (long long)n_tokens_attr, ds->n_docs, ds->n_tokens);
    if (H5Lexists(f, "prompt_len", H5P_DEFAULT) > 0) {
        size_t n_pl;
        if (read_1d(f, "prompt_len", H5T_NATIVE_INT32, sizeof(int32_t), (void **)&ds->prompt_len, &n_pl, p, err))
            return -1;
        if (n_pl != ds->n_docs)
            return rt_fail(err, "%s: prompt_len has %zu entries for %zu documents", p, n_pl, ds->n_docs);
    }
    return validate(ds, max_vocab, err);
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
    ds->tokens = NULL;
    ds->doc_offsets = NULL;
    ds->prompt_len = NULL;
}
