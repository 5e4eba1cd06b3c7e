// A checkpoint's /tokenizer group (tokenizer_source.h; layout in docs/checkpoint.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/files.h"
#include "tokenizer/tokenizer_source.h"

#define MAX_VOCAB (1 << 24)

int rt_tok_source_h5_write(hid_t g, const rt_tok_source *s, rt_error *err) {
    const char *type = s->type[0] ? s->type : "byte";
    if (rt_h5_attr_write_str(g, "type", type, err) ||
        rt_h5_attr_write_i64(g, "vocab_size", s->vocab_size, err) ||
        rt_h5_attr_write_i64(g, "bos_id", s->bos_id, err) ||
        rt_h5_attr_write_i64(g, "eos_id", s->eos_id, err) ||
        rt_h5_attr_write_i64(g, "pad_id", s->pad_id, err))
        return -1;
    if (strcmp(type, "byte") == 0) return 0;
    hsize_t n = s->len;
    return rt_h5_write(g, "source", H5T_NATIVE_UINT8, H5T_STD_U8LE, 1, &n, s->bytes, err) ||
                   rt_h5_attr_write_str(g, "format", s->format, err) ||
                   rt_h5_attr_write_str(g, "hash", s->hash, err)
               ? -1
               : 0;
}

// A string attribute into a fixed field, refusing one that does not fit.
static int read_str(hid_t g, const char *name, char *dst, size_t cap, const char *path, rt_error *err) {
    char *v = NULL;
    if (rt_h5_attr_read_str(g, name, &v, path, "/tokenizer", err)) return -1;
    int fits = strlen(v) < cap;
    if (fits)
        snprintf(dst, cap, "%s", v);
    else
        rt_fail(err, "%s: /tokenizer %s '%.32s...' is too long", path, name, v);
    free(v);
    return fits ? 0 : -1;
}

static int read_source(hid_t g, const char *path, rt_tok_source *t, rt_error *err) {
    if (read_str(g, "format", t->format, sizeof t->format, path, err) ||
        read_str(g, "hash", t->hash, sizeof t->hash, path, err))
        return -1;
    if (strcmp(t->format, "tokenizer.json") != 0 && strcmp(t->format, "gguf") != 0)
        return rt_fail(err, "%s: /tokenizer format is '%s' (expected tokenizer.json or gguf)", path,
                       t->format);
    size_t n = 0;
    void *data = NULL;
    if (rt_h5_read(g, "source", H5T_NATIVE_UINT8, 1, NULL, NULL, NULL, &data, &n, path, err)) return -1;
    t->bytes = data;
    t->len = n;
    if (n == 0 || n > RT_TOK_SOURCE_MAX)
        return rt_fail(err, "%s: /tokenizer/source holds %zu bytes (1 to %zu expected)", path, n,
                       RT_TOK_SOURCE_MAX);
    char hash[17];
    rt_bytes_hash(t->bytes, n, hash);
    if (strcmp(hash, t->hash) != 0)
        return rt_fail(
            err, "%s: /tokenizer/source hashes to %s, but its hash attribute says %s: the file is damaged",
            path, hash, t->hash);
    return 0;
}

int rt_tok_source_h5_read(hid_t g, const char *path, rt_tok_source *t, rt_error *err) {
    memset(t, 0, sizeof *t);
    int64_t v[4] = {0};
    int rc = read_str(g, "type", t->type, sizeof t->type, path, err);
    if (rc == 0)
        rc = rt_h5_attr_read_i64(g, "vocab_size", &v[0], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "bos_id", &v[1], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "eos_id", &v[2], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "pad_id", &v[3], path, "/tokenizer", err);
    if (rc) return -1;
    int byte = strcmp(t->type, "byte") == 0;
    if (!byte && strcmp(t->type, "bpe") != 0 && strcmp(t->type, "spm") != 0)
        return rt_fail(err, "%s: /tokenizer type is '%s' (expected byte, bpe or spm)", path, t->type);
    if (v[0] < 1 || v[0] > MAX_VOCAB)
        return rt_fail(err, "%s: /tokenizer vocab_size %lld is impossible", path, (long long)v[0]);
    // the byte tokenizer has all three; a real one may lack any (-1)
    for (int i = 1; i < 4; i++)
        if (v[i] < (byte ? 0 : -1) || v[i] >= v[0])
            return rt_fail(err, "%s: /tokenizer control id %lld is outside its vocabulary of %lld", path,
                           (long long)v[i], (long long)v[0]);
    t->vocab_size = (int)v[0];
    t->bos_id = (int)v[1];
    t->eos_id = (int)v[2];
    t->pad_id = (int)v[3];
    if (!byte && read_source(g, path, t, err)) {
        rt_tok_source_free(t);
        return -1;
    }
    return 0;
}

int rt_tok_source_from_checkpoint(const char *path, rt_tok_source *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    hid_t f = rt_h5_open_read(path, err);
    if (f < 0) return -1;
    char *format = NULL;
    int rc = 0;
    if (rt_h5_attr_exists(f, "format") != 1)
        rc = rt_fail(err, "%s: an HDF5 file that is not a retort checkpoint (no format attribute)", path);
    else if (rt_h5_attr_read_str(f, "format", &format, path, "the file", err))
        rc = -1;
    else if (strcmp(format, "retort-checkpoint") != 0)
        rc = rt_fail(err, "%s: a '%.40s' file, not a retort checkpoint: only checkpoints hold a tokenizer",
                     path, format);
    free(format);
    if (rc == 0) {
        htri_t has = H5Lexists(f, "tokenizer", H5P_DEFAULT);
        hid_t g = has > 0 ? H5Gopen2(f, "tokenizer", H5P_DEFAULT) : -1;
        if (g < 0)
            rc = rt_fail(err, "%s: group /tokenizer is missing or damaged", path);
        else {
            rc = rt_tok_source_h5_read(g, path, out, err);
            H5Gclose(g);
        }
    }
    H5Fclose(f);
    return rc;
}
