// HDF5 checkpoints (layout in checkpoint.h and docs/checkpoint.md), written atomically and rotated.
#define _POSIX_C_SOURCE 200809L
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/h5util.h"
#include "base/files.h"

#ifndef RT_VERSION
#define RT_VERSION "dev"
#endif

#define MAX_VOCAB (1 << 24)

static int same_shape(const rt_named_tensor *a, const rt_named_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static void shape_str(const rt_named_tensor *t, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && d < 4 && n > 0 && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
}

// Moments belong to model tensors: every one must name a model tensor of the same shape, and adam_m and
// adam_v must hold the same names and shapes.
static int check_moments(const rt_ckpt *c, const char *path, rt_error *err) {
    for (int i = 0; i < c->n_optim; i++) {
        const rt_named_tensor *m = &c->adam_m[i];
        const rt_named_tensor *w = rt_named_tensor_find(c->model, c->n_model, m->name);
        if (!w) w = rt_named_tensor_find(c->lora, c->n_lora, m->name);
        const rt_named_tensor *v = rt_named_tensor_find(c->adam_v, c->n_optim, m->name);
        char a[96], b[96];
        if (!w)
            return rt_fail(err, "%s: optimizer moment %s has no tensor of that name in /model or /lora", path,
                           m->name);
        if (!v) return rt_fail(err, "%s: /optim/adam_m/%s has no twin in /optim/adam_v", path, m->name);
        if (!same_shape(m, w) || !same_shape(v, w)) {
            shape_str(w, a, sizeof a);
            shape_str(same_shape(m, w) ? v : m, b, sizeof b);
            return rt_fail(err, "%s: optimizer moment of %s has shape %s, the tensor %s", path, m->name, b,
                           a);
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// writing

static int check_tensors(const rt_named_tensor *ts, int n, const char *group, const char *path,
                         rt_error *err) {
    if (n > 0 && !ts) return rt_fail(err, "%s: /%s: %d tensors but no array", path, group, n);
    for (int i = 0; i < n; i++) {
        const rt_named_tensor *t = &ts[i];
        size_t count;
        if (!t->name[0] || memchr(t->name, '\0', RT_TENSOR_NAME_MAX) == NULL || strchr(t->name, '/') ||
            strcmp(t->name, ".") == 0)
            return rt_fail(err, "%s: /%s tensor %d has an empty or invalid name", path, group, i);
        if (t->ndim < 1 || t->ndim > 4 || !rt_dims_product(t->shape, t->ndim, &count) ||
            !rt_mul_size(count, sizeof(float), &count))
            return rt_fail(err, "%s: tensor /%s/%s has an invalid shape (ndim %d, every dim must be > 0)",
                           path, group, t->name, t->ndim);
        if (!t->data) return rt_fail(err, "%s: tensor /%s/%s has no data", path, group, t->name);
        for (int j = 0; j < i; j++)
            if (strcmp(ts[j].name, t->name) == 0)
                return rt_fail(err, "%s: /%s holds two tensors named %s", path, group, t->name);
    }
    return 0;
}

static int check_meta(const rt_ckpt *c, const char *path, rt_error *err) {
    const rt_train_state *s = &c->state;
    if (s->step < 0 || s->tokens_seen < 0 || s->data_epoch < 0 || s->data_index < 0 || s->world_size < 1)
        return rt_fail(
            err,
            "%s: impossible training state (step %lld, tokens_seen %lld, data %lld/%lld, world_size "
            "%lld)",
            path, (long long)s->step, (long long)s->tokens_seen, (long long)s->data_epoch,
            (long long)s->data_index, (long long)s->world_size);
    const rt_tokenizer_info *t = &c->tokenizer;
    int byte = !t->type[0] || strcmp(t->type, "byte") == 0, lo = byte ? 0 : -1;
    if (t->vocab_size < 1 || t->vocab_size > MAX_VOCAB || t->bos_id < lo || t->bos_id >= t->vocab_size ||
        t->eos_id < lo || t->eos_id >= t->vocab_size || t->pad_id < lo || t->pad_id >= t->vocab_size)
        return rt_fail(err, "%s: tokenizer vocab_size %d with bos %d, eos %d, pad %d is inconsistent", path,
                       t->vocab_size, t->bos_id, t->eos_id, t->pad_id);
    if (!byte && (!t->bytes || t->len == 0 || strlen(t->hash) != 16 || !t->format[0]))
        return rt_fail(err, "%s: a %s tokenizer needs its source bytes, format and hash", path, t->type);
    return 0;
}

static int write_group(hid_t f, const char *group, const rt_named_tensor *ts, int n, rt_error *err) {
    hid_t g = rt_h5_group_create(f, group, err); // "optim/adam_m" creates /optim too
    if (g < 0) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        hsize_t dims[4];
        for (int d = 0; d < ts[i].ndim; d++) dims[d] = (hsize_t)ts[i].shape[d]; // row-major, as in memory
        rc = rt_h5_write(g, ts[i].name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, ts[i].ndim, dims, ts[i].data, err);
    }
    H5Gclose(g);
    return rc;
}

// A group holding only attributes; set() fills them.
static int attr_group(hid_t f, const char *name, int (*set)(hid_t g, const rt_ckpt *c, rt_error *err),
                      const rt_ckpt *c, rt_error *err) {
    hid_t g = rt_h5_group_create(f, name, err);
    if (g < 0) return -1;
    int rc = set(g, c, err);
    H5Gclose(g);
    return rc;
}

static int set_state(hid_t g, const rt_ckpt *c, rt_error *err) {
    const rt_train_state *s = &c->state;
    return rt_h5_attr_write_i64(g, "step", s->step, err) ||
                   rt_h5_attr_write_i64(g, "tokens_seen", s->tokens_seen, err) ||
                   rt_h5_attr_write_u64s(g, "rng", s->rng, 4, err) ||
                   rt_h5_attr_write_i64(g, "data_epoch", s->data_epoch, err) ||
                   rt_h5_attr_write_i64(g, "data_index", s->data_index, err) ||
                   rt_h5_attr_write_i64(g, "world_size", s->world_size, err)
               ? -1
               : 0;
}

static int set_config(hid_t g, const rt_ckpt *c, rt_error *err) {
    return rt_h5_attr_write_str(g, "yaml", c->config_yaml ? c->config_yaml : "", err);
}

// The file's strings in the order strings_crc32 covers them (docs/checkpoint.md).
// Adapter checkpoints also cover /lora's base and base_hash, after the others.
// A real tokenizer's format and hash come last.
static uint32_t strings_crc(const char *architecture, const char *producer, const char *yaml,
                            const char *tok_type, const rt_ckpt *adapter) {
    uint32_t crc = rt_h5_crc32_str(0, RT_CKPT_FORMAT);
    crc = rt_h5_crc32_str(crc, architecture);
    crc = rt_h5_crc32_str(crc, producer);
    crc = rt_h5_crc32_str(crc, yaml);
    crc = rt_h5_crc32_str(crc, tok_type);
    if (adapter && adapter->n_lora > 0) {
        crc = rt_h5_crc32_str(crc, adapter->base);
        crc = rt_h5_crc32_str(crc, adapter->base_hash);
    }
    if (adapter && strcmp(tok_type, "byte") != 0) {
        crc = rt_h5_crc32_str(crc, adapter->tokenizer.format);
        crc = rt_h5_crc32_str(crc, adapter->tokenizer.hash);
    }
    return crc;
}

static int set_tokenizer(hid_t g, const rt_ckpt *c, rt_error *err) {
    return rt_tok_source_h5_write(g, &c->tokenizer, err);
}

static int fill(hid_t f, const char *path, void *user, rt_error *err) {
    const rt_ckpt *c = user;
    const char *arch = c->architecture[0] ? c->architecture : "llama", *producer = "retort " RT_VERSION;
    uint32_t crc = strings_crc(arch, producer, c->config_yaml ? c->config_yaml : "",
                               c->tokenizer.type[0] ? c->tokenizer.type : "byte", c);
    if (rt_h5_attr_write_str(f, "format", RT_CKPT_FORMAT, err) ||
        rt_h5_attr_write_i64(f, "version", RT_CKPT_VERSION, err) ||
        rt_h5_attr_write_str(f, "architecture", arch, err) ||
        rt_h5_attr_write_str(f, "producer", producer, err) ||
        rt_h5_attr_write_i64(f, "strings_crc32", crc, err))
        return -1;
    if (c->n_model > 0 && write_group(f, "model", c->model, c->n_model, err)) return -1;
    if (c->n_lora > 0) {
        if (write_group(f, "lora", c->lora, c->n_lora, err)) return -1;
        hid_t g = H5Gopen2(f, "lora", H5P_DEFAULT);
        if (g < 0) return rt_fail(err, "%s: cannot reopen /lora", path);
        int rc = rt_h5_attr_write_str(g, "base", c->base, err) ||
                 rt_h5_attr_write_str(g, "base_hash", c->base_hash, err);
        H5Gclose(g);
        if (rc) return -1;
    }
    if (c->n_optim > 0 && (write_group(f, "optim/adam_m", c->adam_m, c->n_optim, err) ||
                           write_group(f, "optim/adam_v", c->adam_v, c->n_optim, err)))
        return -1;
    return attr_group(f, "state", set_state, c, err) || attr_group(f, "config", set_config, c, err) ||
                   attr_group(f, "tokenizer", set_tokenizer, c, err)
               ? -1
               : 0;
}

int rt_ckpt_write(const char *path, const rt_ckpt *c, rt_error *err) {
    // Everything is checked before the temp file exists, so a bad call never leaves anything behind.
    if (c->n_model < 0 || c->n_lora < 0 || c->n_model + c->n_lora < 1)
        return rt_fail(err, "%s: refusing to write a checkpoint without model or adapter tensors", path);
    if (c->n_optim < 0) return rt_fail(err, "%s: n_optim is %d", path, c->n_optim);
    if (c->n_lora > 0 &&
        (!c->base[0] || memchr(c->base, '\0', sizeof c->base) == NULL || strlen(c->base_hash) != 16))
        return rt_fail(err, "%s: an adapter checkpoint needs its base's path and 16-digit hash", path);
    if (check_tensors(c->model, c->n_model, "model", path, err) ||
        check_tensors(c->lora, c->n_lora, "lora", path, err) ||
        check_tensors(c->adam_m, c->n_optim, "optim/adam_m", path, err) ||
        check_tensors(c->adam_v, c->n_optim, "optim/adam_v", path, err) || check_moments(c, path, err) ||
        check_meta(c, path, err))
        return -1;
    if (memchr(c->architecture, '\0', sizeof c->architecture) == NULL)
        return rt_fail(err, "%s: architecture name is not terminated", path);
    return rt_h5_write_atomic(path, fill, (void *)c, err);
}

// ---------------------------------------------------------------------------------------------------
// reading

typedef struct name_list {
    char (*names)[RT_TENSOR_NAME_MAX];
    int n, cap, too_long, oom;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *user) {
    name_list *l = user;
    if (strlen(name) >= RT_TENSOR_NAME_MAX) return l->too_long = 1, 1;
    if (l->n == l->cap) {
        if (l->cap > (1 << 20)) return l->oom = 1, 1;
        int cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->names, (size_t)cap * sizeof *l->names);
        if (!p) return l->oom = 1, 1;
        l->names = p;
        l->cap = cap;
    }
    snprintf(l->names[l->n++], RT_TENSOR_NAME_MAX, "%s", name);
    return 0;
}

static void free_tensors(rt_named_tensor *ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
}

// Every dataset of a group, in name order (deterministic; callers look tensors up by name anyway).
// On failure nothing is left allocated.
static int read_group(hid_t f, const char *group, rt_named_tensor **out, int *n_out, const char *path,
                      rt_error *err) {
    *out = NULL;
    *n_out = 0;
    htri_t ex = H5Lexists(f, group, H5P_DEFAULT);
    if (ex < 0) return rt_fail(err, "%s: cannot look up group /%s (damaged file?)", path, group);
    if (ex == 0) return rt_fail(err, "%s: group /%s is missing", path, group);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return rt_fail(err, "%s: cannot open group /%s (damaged file?)", path, group);
    name_list l = {0};
    hsize_t idx = 0;
    int rc = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &l) < 0)
        rc = rt_fail(err, "%s: cannot list /%s (damaged file?)", path, group);
    else if (l.too_long)
        rc = rt_fail(err, "%s: /%s holds a tensor name longer than %d bytes", path, group,
                     RT_TENSOR_NAME_MAX - 1);
    else if (l.oom)
        rc = rt_fail(err, "%s: out of memory listing /%s", path, group);
    rt_named_tensor *ts = NULL;
    if (rc == 0) ts = rt_calloc((size_t)(l.n ? l.n : 1), sizeof *ts, "tensor list", err);
    if (rc == 0 && !ts) rc = -1;
    int done = 0;
    for (; rc == 0 && done < l.n; done++) {
        rt_named_tensor *t = &ts[done];
        snprintf(t->name, sizeof t->name, "%s", l.names[done]);
        hsize_t dims[4];
        rc = rt_h5_read(g, t->name, H5T_NATIVE_FLOAT, 0, NULL, &t->ndim, dims, (void **)&t->data, NULL, path,
                        err);
        // every dim > 0, as the writer requires: an empty tensor is no weight of any model
        for (int d = 0; rc == 0 && d < t->ndim; d++) {
            if (dims[d] == 0 || dims[d] > (hsize_t)INT64_MAX)
                rc = rt_fail(err, "%s: /%s/%s has an impossible shape (dim %d is %llu)", path, group, t->name,
                             d, (unsigned long long)dims[d]);
            t->shape[d] = (int64_t)dims[d];
        }
    }
    free(l.names);
    H5Gclose(g);
    if (rc) {
        free_tensors(ts, done);
        return -1;
    }
    *out = ts;
    *n_out = l.n;
    return 0;
}

static int read_optim(hid_t f, const char *path, rt_ckpt *c, rt_error *err) {
    rt_named_tensor *m = NULL, *v = NULL;
    int nm = 0, nv = 0;
    if (read_group(f, "optim/adam_m", &m, &nm, path, err)) return -1;
    if (read_group(f, "optim/adam_v", &v, &nv, path, err)) {
        free_tensors(m, nm);
        return -1;
    }
    if (nm != nv) {
        free_tensors(m, nm);
        free_tensors(v, nv);
        return rt_fail(err, "%s: /optim/adam_m holds %d tensors, /optim/adam_v %d", path, nm, nv);
    }
    c->adam_m = m;
    c->adam_v = v;
    c->n_optim = nm; // from here rt_ckpt_free releases them
    return check_moments(c, path, err);
}

// Opens an attribute-only group, or fails naming it.
static hid_t open_group(hid_t f, const char *name, const char *path, rt_error *err) {
    htri_t ex = H5Lexists(f, name, H5P_DEFAULT);
    if (ex <= 0)
        return rt_fail(err, "%s: group /%s is %s", path, name,
                       ex < 0 ? "unreadable (damaged file?)" : "missing"),
               -1;
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0) rt_fail(err, "%s: cannot open group /%s (damaged file?)", path, name);
    return g;
}

static int read_state(hid_t f, const char *path, rt_train_state *st, rt_error *err) {
    hid_t g = open_group(f, "state", path, err);
    if (g < 0) return -1;
    int rc = rt_h5_attr_read_i64(g, "step", &st->step, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "tokens_seen", &st->tokens_seen, path, "/state", err) ||
             rt_h5_attr_read_u64s(g, "rng", st->rng, 4, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "data_epoch", &st->data_epoch, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "data_index", &st->data_index, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "world_size", &st->world_size, path, "/state", err);
    H5Gclose(g);
    if (rc) return -1;
    if (st->step < 0 || st->tokens_seen < 0 || st->data_epoch < 0 || st->data_index < 0 || st->world_size < 1)
        return rt_fail(err,
                       "%s: /state holds impossible values (step %lld, tokens_seen %lld, data %lld/%lld, "
                       "world_size %lld)",
                       path, (long long)st->step, (long long)st->tokens_seen, (long long)st->data_epoch,
                       (long long)st->data_index, (long long)st->world_size);
    return 0;
}

static int read_tokenizer(hid_t f, const char *path, rt_tokenizer_info *t, rt_error *err) {
    hid_t g = open_group(f, "tokenizer", path, err);
    if (g < 0) return -1;
    int rc = rt_tok_source_h5_read(g, path, t, err);
    H5Gclose(g);
    return rc;
}

// strings_crc32 (absent in files of other writers: nothing to check) against the strings just read.
static int check_strings(hid_t f, const char *path, const rt_ckpt *c, rt_error *err) {
    int has = rt_h5_attr_exists(f, "strings_crc32");
    if (has < 0) return rt_fail(err, "%s: cannot read the root attributes (damaged file?)", path);
    if (has == 0) return 0;
    int64_t want;
    char *producer = NULL;
    if (rt_h5_attr_read_i64(f, "strings_crc32", &want, path, "the file", err) ||
        rt_h5_attr_read_str(f, "producer", &producer, path, "the file", err))
        return -1;
    uint32_t got = strings_crc(c->architecture, producer, c->config_yaml, c->tokenizer.type, c);
    free(producer);
    if (want != (int64_t)got)
        return rt_fail(err,
                       "%s: the string attributes (architecture, producer, /config yaml, /tokenizer type, "
                       "format and hash) do not match strings_crc32: the file is damaged",
                       path);
    return 0;
}

// /lora of an adapter checkpoint: the adapters and the base they belong to.
static int read_adapters(hid_t f, const char *path, rt_ckpt *c, rt_error *err) {
    if (read_group(f, "lora", &c->lora, &c->n_lora, path, err)) return -1;
    if (c->n_lora == 0) return rt_fail(err, "%s: /lora holds no adapters", path);
    hid_t g = H5Gopen2(f, "lora", H5P_DEFAULT);
    if (g < 0) return rt_fail(err, "%s: cannot open group /lora (damaged file?)", path);
    char *base = NULL, *hash = NULL;
    int rc = rt_h5_attr_read_str(g, "base", &base, path, "/lora", err) ||
             rt_h5_attr_read_str(g, "base_hash", &hash, path, "/lora", err);
    H5Gclose(g);
    if (rc == 0 && (!base[0] || strlen(base) >= sizeof c->base || strlen(hash) != 16))
        rc = rt_fail(
            err, "%s: /lora names its base as '%.60s' (hash '%.20s'): expected a path and a 16-digit hash",
            path, base, hash);
    if (rc == 0) {
        snprintf(c->base, sizeof c->base, "%s", base);
        snprintf(c->base_hash, sizeof c->base_hash, "%s", hash);
    }
    free(base);
    free(hash);
    return rc ? -1 : 0;
}

static int read_contents(hid_t f, const char *path, int with_optim, rt_ckpt *c, rt_error *err) {
    char *s = NULL;
    if (rt_h5_attr_exists(f, "format") == 0)
        return rt_fail(err, "%s: the file has no 'format' attribute: not a retort checkpoint", path);
    if (rt_h5_attr_read_str(f, "format", &s, path, "the file", err)) return -1;
    int ok = strcmp(s, RT_CKPT_FORMAT) == 0;
    if (!ok)
        rt_fail(err, "%s: format attribute is '%.64s', expected '%s': not a retort checkpoint", path, s,
                RT_CKPT_FORMAT);
    free(s);
    if (!ok) return -1;
    int64_t version;
    if (rt_h5_attr_read_i64(f, "version", &version, path, "the file", err)) return -1;
    if (version < 1 || version > RT_CKPT_VERSION)
        return rt_fail(err, "%s: checkpoint version %lld; this retort reads version %d", path,
                       (long long)version, RT_CKPT_VERSION);
    if (rt_h5_attr_read_str(f, "architecture", &s, path, "the file", err)) return -1;
    ok = s[0] && strlen(s) < sizeof c->architecture;
    if (ok)
        snprintf(c->architecture, sizeof c->architecture, "%s", s);
    else
        rt_fail(err, "%s: architecture attribute '%.40s' is empty or too long", path, s);
    free(s);
    if (!ok) return -1;
    htri_t has_lora = H5Lexists(f, "lora", H5P_DEFAULT);
    if (has_lora < 0) return rt_fail(err, "%s: cannot look up group /lora (damaged file?)", path);
    if ((!has_lora || H5Lexists(f, "model", H5P_DEFAULT) != 0) &&
        read_group(f, "model", &c->model, &c->n_model, path, err))
        return -1;
    if (has_lora && read_adapters(f, path, c, err)) return -1;
    if (c->n_model == 0 && c->n_lora == 0) return rt_fail(err, "%s: /model holds no tensors", path);
    if (with_optim) {
        htri_t has = H5Lexists(f, "optim", H5P_DEFAULT);
        if (has < 0) return rt_fail(err, "%s: cannot look up group /optim (damaged file?)", path);
        if (has && read_optim(f, path, c, err)) return -1;
    }
    if (read_state(f, path, &c->state, err)) return -1;
    hid_t g = open_group(f, "config", path, err);
    if (g < 0) return -1;
    int rc = rt_h5_attr_read_str(g, "yaml", &c->config_yaml, path, "/config", err);
    H5Gclose(g);
    if (rc || read_tokenizer(f, path, &c->tokenizer, err)) return -1;
    return check_strings(f, path, c, err);
}

int rt_ckpt_read(const char *path, int with_optim, rt_ckpt *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    hid_t f = rt_h5_open_read(path, err);
    if (f < 0) return -1;
    int rc = read_contents(f, path, with_optim, out, err);
    H5Fclose(f);
    if (rc) rt_ckpt_free(out);
    return rc;
}

void rt_ckpt_free(rt_ckpt *c) {
    free_tensors(c->model, c->n_model);
    free_tensors(c->lora, c->n_lora);
    free_tensors(c->adam_m, c->n_optim);
    free_tensors(c->adam_v, c->n_optim);
    free(c->config_yaml);
    rt_tok_source_free(&c->tokenizer);
    memset(c, 0, sizeof *c);
}

int rt_ckpt_tokenizer(const rt_ckpt *c, rt_tokenizer **out, rt_error *err) {
    return rt_tok_source_open(&c->tokenizer, "the checkpoint's /tokenizer", out, err);
}

// ---------------------------------------------------------------------------------------------------
// run directories

void rt_ckpt_step_path(char *out, size_t cap, const char *dir, int64_t step) {
    snprintf(out, cap, "%s/ckpt-%08lld.h5", dir, (long long)step);
}

// ckpt-<digits>.h5 -> step; -1 for any other name (temp files, the latest link)
static int64_t step_of(const char *name) {
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t step = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 18) step = step * 10 + (*p++ - '0'), digits++;
    return digits > 0 && strcmp(p, ".h5") == 0 ? step : -1;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

// Steps of the checkpoints in dir, newest first. Returns the count or -1.
static int list_steps(const char *dir, int64_t **steps, rt_error *err) {
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) return rt_fail(err, "cannot list %s: %s", dir, strerror(errno));
    int n = 0, cap = 0;
    int64_t *s = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t st = step_of(e->d_name);
        if (st < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *p = realloc(s, (size_t)cap * sizeof *s);
            if (!p) {
                free(s);
                closedir(d);
                return rt_fail(err, "out of memory listing %s", dir);
            }
            s = p;
        }
        s[n++] = st;
    }
    closedir(d);
    if (n) qsort(s, (size_t)n, sizeof *s, cmp_desc);
    *steps = s;
    return n;
}

// Temp files ("ckpt-*.h5.tmp-<pid>", ".ckpt-latest.tmp-<pid>") left by a writer that died. Only those of
// processes no longer running on this machine go, so a concurrent writer's file is never pulled away.
static void remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp-");
        if (!t || (strncmp(e->d_name, "ckpt-", 5) != 0 && strncmp(e->d_name, ".ckpt-latest", 12) != 0))
            continue;
        char *end;
        long pid = strtol(t + 5, &end, 10);
        if (*end || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

int rt_ckpt_save_rotating(const char *dir, const rt_ckpt *c, int keep, char *written_path, size_t cap,
                          rt_error *err) {
    char path[4200], link_tmp[4200], link_path[4200], target[64];
    if (strlen(dir) > 4000) return rt_fail(err, "%s: run directory path too long", dir);
    rt_ckpt_step_path(path, sizeof path, dir, c->state.step);
    if (rt_ckpt_write(path, c, err)) return -1;
    if (written_path && cap) snprintf(written_path, cap, "%s", path);
    // point ckpt-latest.h5 at it: a relative symlink, swapped in by rename so readers never see it missing
    snprintf(target, sizeof target, "ckpt-%08lld.h5", (long long)c->state.step);
    snprintf(link_tmp, sizeof link_tmp, "%s/.ckpt-latest.tmp-%ld", dir, (long)getpid());
    snprintf(link_path, sizeof link_path, "%s/ckpt-latest.h5", dir);
    unlink(link_tmp);
    if (symlink(target, link_tmp) != 0 || rename(link_tmp, link_path) != 0) {
        int e = errno;
        unlink(link_tmp);
        return rt_fail(err, "cannot point %s at %s: %s", link_path, target, strerror(e));
    }
    if (rt_fsync_parent_dir(link_path, err)) return -1;
    remove_stale_temps(dir);
    int64_t *steps = NULL;
    int n = list_steps(dir, &steps, err);
    if (n < 0) return -1;
    // Checkpoints past this step belong to a timeline this run abandoned (it resumed from an older one,
    // because those were damaged): they go, so they can never be taken for the newest. keep < 1 acts as 1:
    // the checkpoint just written always stays.
    int kept = 0;
    for (int i = 0; i < n; i++) {
        char old[4200];
        rt_ckpt_step_path(old, sizeof old, dir, steps[i]);
        if (steps[i] > c->state.step || (steps[i] < c->state.step && kept >= keep))
            unlink(old);
        else
            kept++;
    }
    free(steps);
    return 0;
}

int rt_ckpt_load_latest(const char *dir, int with_optim, rt_ckpt *out, char *path, size_t cap,
                        rt_error *err) {
    memset(out, 0, sizeof *out);
    int64_t *steps = NULL;
    int n = list_steps(dir, &steps, err);
    if (n < 0) return -1;
    if (n == 0) {
        free(steps);
        return rt_fail(err, "no checkpoint in %s", dir);
    }
    rt_error first = {{0}};
    for (int i = 0; i < n; i++) {
        rt_ckpt_step_path(path, cap, dir, steps[i]);
        rt_error e;
        if (rt_ckpt_read(path, with_optim, out, &e) == 0) {
            free(steps);
            return 0;
        }
        fprintf(stderr, "warning: skipping damaged checkpoint %s: %s\n", path, e.msg);
        if (i == 0) first = e;
    }
    free(steps);
    return rt_fail(err, "every checkpoint in %s is damaged (newest: %s)", dir, first.msg);
}

int rt_ckpt_parse_config(const char *ckpt_path, const char *yaml, rt_config *cfg, rt_error *err) {
    rt_config_defaults(cfg);
    if (!yaml) return rt_fail(err, "%s: checkpoint has no stored config", ckpt_path);
    char name[1100];
    snprintf(name, sizeof name, "%s:/config", ckpt_path);
    if (rt_config_load_string(cfg, yaml, strlen(yaml), name, err)) return -1;
    if (rt_config_validate(cfg, err)) return rt_fail_wrap(err, "%s: stored config", ckpt_path);
    return 0;
}
