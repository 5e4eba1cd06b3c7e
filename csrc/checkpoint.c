// HDF5 checkpoints (layout in checkpoint.h and docs/checkpoint.md), written atomically and rotated.
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"

#ifndef RT_VERSION
#define RT_VERSION "dev"
#endif

// ---------------------------------------------------------------------------------------------------
// writing

static int check_tensors(const rt_named_tensor *ts, int n, const char *what, rt_error *err) {
    for (int i = 0; i < n; i++) {
        const rt_named_tensor *t = &ts[i];
        size_t count;
        if (!t->data || t->ndim < 1 || t->ndim > 4 || !rt_dims_product(t->shape, t->ndim, &count) ||
            !t->name[0] || strchr(t->name, '/'))
            return rt_fail(err, "%s tensor %d (%s) has no data, an invalid shape or an invalid name", what, i, t->name);
    }
    return 0;
}

static int write_group(hid_t f, const char *group, const rt_named_tensor *ts, int n, const char *path,
                       rt_error *err) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(f, group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0) return rt_fail(err, "%s: cannot create group %s", path, group);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        hsize_t dims[4];
        for (int d = 0; d < ts[i].ndim; d++) dims[d] = (hsize_t)ts[i].shape[d];
        rc = rt_h5_write(g, ts[i].name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, ts[i].ndim, dims, ts[i].data, path, err);
    }
    H5Gclose(g);
    return rc;
}

static int write_meta(hid_t f, const rt_ckpt *c, const char *path, rt_error *err) {
    int rc = rt_h5_attr_write_str(f, "format", RT_CKPT_FORMAT, err) ||
             rt_h5_attr_write_i64(f, "version", RT_CKPT_VERSION, err) ||
             rt_h5_attr_write_str(f, "architecture", c->architecture[0] ? c->architecture : "llama", err) ||
             rt_h5_attr_write_str(f, "producer", "retort " RT_VERSION, err);
    hid_t g = rc ? -1 : H5Gcreate2(f, "state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return rt_fail_wrap(err, "%s: writing attributes", path);
    const rt_train_state *s = &c->state;
    rc = rt_h5_attr_write_i64(g, "step", s->step, err) || rt_h5_attr_write_i64(g, "tokens_seen", s->tokens_seen, err) ||
         rt_h5_attr_write_u64s(g, "rng", s->rng, 4, err) || rt_h5_attr_write_i64(g, "data_epoch", s->data_epoch, err) ||
         rt_h5_attr_write_i64(g, "data_index", s->data_index, err) ||
         rt_h5_attr_write_i64(g, "world_size", s->world_size, err);
    H5Gclose(g);
    if (rc) return rt_fail_wrap(err, "%s: /state", path);
    g = H5Gcreate2(f, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc = g < 0 || rt_h5_attr_write_str(g, "yaml", c->config_yaml ? c->config_yaml : "", err);
    if (g >= 0) H5Gclose(g);
    if (rc) return rt_fail_wrap(err, "%s: /config", path);
    g = H5Gcreate2(f, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const rt_tokenizer_info *t = &c->tokenizer;
    rc = g < 0 || rt_h5_attr_write_str(g, "type", t->type[0] ? t->type : "byte", err) ||
         rt_h5_attr_write_i64(g, "vocab_size", t->vocab_size, err) || rt_h5_attr_write_i64(g, "bos_id", t->bos_id, err) ||
         rt_h5_attr_write_i64(g, "eos_id", t->eos_id, err) || rt_h5_attr_write_i64(g, "pad_id", t->pad_id, err);
    if (g >= 0) H5Gclose(g);
    if (rc) return rt_fail_wrap(err, "%s: /tokenizer", path);
    return 0;
}

int rt_ckpt_write(const char *path, const rt_ckpt *c, rt_error *err) {
    if (check_tensors(c->model, c->n_model, "model", err)) return rt_fail_wrap(err, "%s", path);
    if (c->n_optim && (check_tensors(c->adam_m, c->n_optim, "adam_m", err) ||
                       check_tensors(c->adam_v, c->n_optim, "adam_v", err)))
        return rt_fail_wrap(err, "%s", path);
    rt_h5_quiet();
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return rt_fail(err, "%s: cannot create (is the directory there and writable?)", tmp);
    int rc = write_group(f, "model", c->model, c->n_model, path, err);
    if (rc == 0 && c->n_optim) rc = write_group(f, "optim/adam_m", c->adam_m, c->n_optim, path, err);
    if (rc == 0 && c->n_optim) rc = write_group(f, "optim/adam_v", c->adam_v, c->n_optim, path, err);
    if (rc == 0) rc = write_meta(f, c, path, err);
    if (H5Fclose(f) < 0 && rc == 0) rc = rt_fail(err, "%s: cannot finish writing (disk full?)", tmp);
    if (rc == 0) rc = rt_fsync_path(tmp, err);
    if (rc == 0 && rename(tmp, path) != 0) rc = rt_fail(err, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc == 0) rc = rt_fsync_parent_dir(path, err);
    if (rc) unlink(tmp);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// reading

typedef struct name_list {
    char (*names)[RT_TENSOR_NAME_MAX];
    int n, cap, too_long;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *user) {
    name_list *l = user;
    if (strlen(name) >= RT_TENSOR_NAME_MAX) {
        l->too_long = 1;
        return 1;
    }
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->names, (size_t)cap * sizeof *l->names);
        if (!p) return -1;
        l->names = p;
        l->cap = cap;
    }
    snprintf(l->names[l->n++], RT_TENSOR_NAME_MAX, "%s", name);
    return 0;
}

static int read_group(hid_t f, const char *group, rt_named_tensor **out, int *n_out, const char *path,
                      rt_error *err) {
    *out = NULL;
    *n_out = 0;
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0) return rt_fail(err, "%s: group /%s is missing", path, group);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return rt_fail(err, "%s: cannot open group /%s (damaged file?)", path, group);
    name_list l = {0};
    hsize_t idx = 0;
    herr_t it = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &l);
    int rc = 0;
    if (it < 0) rc = rt_fail(err, "%s: cannot list /%s (damaged file?)", path, group);
    else if (l.too_long) rc = rt_fail(err, "%s: /%s holds a tensor name longer than %d", path, group, RT_TENSOR_NAME_MAX - 1);
    rt_named_tensor *ts = rc == 0 ? calloc((size_t)(l.n ? l.n : 1), sizeof *ts) : NULL;
    if (rc == 0 && !ts) rc = rt_fail(err, "out of memory");
    for (int i = 0; i < l.n && rc == 0; i++) {
        rt_named_tensor *t = &ts[i];
        snprintf(t->name, sizeof t->name, "%s", l.names[i]);
        hsize_t dims[4];
        size_t count;
        char what[RT_TENSOR_NAME_MAX + 64];
        snprintf(what, sizeof what, "%s/%s", group, t->name);
        rc = rt_h5_read(g, t->name, H5T_NATIVE_FLOAT, sizeof(float), &t->ndim, dims, (void **)&t->data, &count, path, err);
        if (rc) rt_fail_wrap(err, "tensor /%s", what);
        for (int d = 0; rc == 0 && d < t->ndim; d++) t->shape[d] = (int64_t)dims[d];
        *n_out = i + 1;
    }
    free(l.names);
    H5Gclose(g);
    *out = ts;
    return rc;
}

static void free_tensors(rt_named_tensor *ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
}

void rt_ckpt_free(rt_ckpt *c) {
    free_tensors(c->model, c->n_model);
    free_tensors(c->adam_m, c->n_optim);
    free_tensors(c->adam_v, c->n_optim);
    free(c->config_yaml);
    memset(c, 0, sizeof *c);
}

static int same_layout(const rt_named_tensor *a, int na, const rt_named_tensor *b, int nb) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++) {
        if (strcmp(a[i].name, b[i].name) != 0 || a[i].ndim != b[i].ndim) return 0;
        for (int d = 0; d < a[i].ndim; d++)
            if (a[i].shape[d] != b[i].shape[d]) return 0;
    }
    return 1;
}

static int read_contents(hid_t f, const char *path, int with_optim, rt_ckpt *c, rt_error *err) {
    char *s = NULL;
    if (rt_h5_attr_read_str(f, "format", &s, path, "the file", err)) return rt_fail_wrap(err, "not a retort checkpoint");
    int ok = strcmp(s, RT_CKPT_FORMAT) == 0;
    free(s);
    if (!ok) return rt_fail(err, "%s: format attribute is not '%s': not a retort checkpoint", path, RT_CKPT_FORMAT);
    int64_t version;
    if (rt_h5_attr_read_i64(f, "version", &version, path, "the file", err)) return -1;
    if (version < 1 || version > RT_CKPT_VERSION)
        return rt_fail(err, "%s: checkpoint version %lld; this retort reads version %d", path, (long long)version,
                       RT_CKPT_VERSION);
    if (rt_h5_attr_read_str(f, "architecture", &s, path, "the file", err)) return -1;
    snprintf(c->architecture, sizeof c->architecture, "%s", s);
    free(s);
    if (read_group(f, "model", &c->model, &c->n_model, path, err)) return -1;
    if (c->n_model == 0) return rt_fail(err, "%s: /model holds no tensors", path);
    if (with_optim && H5Lexists(f, "optim", H5P_DEFAULT) > 0) {
        int nm = 0, nv = 0;
        int rc = read_group(f, "optim/adam_m", &c->adam_m, &nm, path, err);
        if (rc == 0) rc = read_group(f, "optim/adam_v", &c->adam_v, &nv, path, err);
        c->n_optim = nm > nv ? nm : nv;  // so rt_ckpt_free releases everything read
        if (rc) return -1;
        if (!same_layout(c->adam_m, nm, c->adam_v, nv))
            return rt_fail(err, "%s: /optim/adam_m and /optim/adam_v hold different tensors", path);
    }
    if (H5Lexists(f, "state", H5P_DEFAULT) <= 0) return rt_fail(err, "%s: group /state is missing", path);
    hid_t g = H5Gopen2(f, "state", H5P_DEFAULT);
    if (g < 0) return rt_fail(err, "%s: cannot open /state", path);
    rt_train_state *st = &c->state;
    int rc = rt_h5_attr_read_i64(g, "step", &st->step, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "tokens_seen", &st->tokens_seen, path, "/state", err) ||
             rt_h5_attr_read_u64s(g, "rng", st->rng, 4, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "data_epoch", &st->data_epoch, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "data_index", &st->data_index, path, "/state", err) ||
             rt_h5_attr_read_i64(g, "world_size", &st->world_size, path, "/state", err);
    H5Gclose(g);
    if (rc) return -1;
    if (st->step < 0 || st->tokens_seen < 0 || st->world_size < 1)
        return rt_fail(err, "%s: /state holds impossible values (step %lld, world_size %lld)", path,
                       (long long)st->step, (long long)st->world_size);
    if (H5Lexists(f, "config", H5P_DEFAULT) <= 0) return rt_fail(err, "%s: group /config is missing", path);
    g = H5Gopen2(f, "config", H5P_DEFAULT);
    rc = g < 0 || rt_h5_attr_read_str(g, "yaml", &c->config_yaml, path, "/config", err);
    if (g >= 0) H5Gclose(g);
    if (rc) return -1;
    if (H5Lexists(f, "tokenizer", H5P_DEFAULT) <= 0) return rt_fail(err, "%s: group /tokenizer is missing", path);
    g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
    int64_t v[4] = {0};
    rc = g < 0 || rt_h5_attr_read_str(g, "type", &s, path, "/tokenizer", err);
    if (rc == 0) {
        snprintf(c->tokenizer.type, sizeof c->tokenizer.type, "%s", s);
        free(s);
        rc = rt_h5_attr_read_i64(g, "vocab_size", &v[0], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "bos_id", &v[1], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "eos_id", &v[2], path, "/tokenizer", err) ||
             rt_h5_attr_read_i64(g, "pad_id", &v[3], path, "/tokenizer", err);
    }
    if (g >= 0) H5Gclose(g);
    if (rc) return -1;
    for (int i = 0; i < 4; i++)
        if (v[i] < 0 || v[i] > (1 << 24)) return rt_fail(err, "%s: /tokenizer holds an impossible id or size", path);
    c->tokenizer.vocab_size = (int)v[0];
    c->tokenizer.bos_id = (int)v[1];
    c->tokenizer.eos_id = (int)v[2];
    c->tokenizer.pad_id = (int)v[3];
    return 0;
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

const rt_named_tensor *rt_ckpt_find(const rt_named_tensor *ts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    return NULL;
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
                return rt_fail(err, "out of memory");
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

int rt_ckpt_save_rotating(const char *dir, const rt_ckpt *c, int keep, char *written_path, size_t cap,
                          rt_error *err) {
    char path[1200], link_tmp[1200], link_path[1200], target[64];
    rt_ckpt_step_path(path, sizeof path, dir, c->state.step);
    if (rt_ckpt_write(path, c, err)) return -1;
    snprintf(written_path, cap, "%s", path);
    // point ckpt-latest.h5 at it: a relative symlink, swapped in by rename so readers never see it missing
    snprintf(target, sizeof target, "ckpt-%08lld.h5", (long long)c->state.step);
    snprintf(link_tmp, sizeof link_tmp, "%s/.ckpt-latest.tmp-%ld", dir, (long)getpid());
    snprintf(link_path, sizeof link_path, "%s/ckpt-latest.h5", dir);
    unlink(link_tmp);
    if (symlink(target, link_tmp) != 0 || rename(link_tmp, link_path) != 0) {
        unlink(link_tmp);
        return rt_fail(err, "cannot point %s at %s: %s", link_path, target, strerror(errno));
    }
    if (rt_fsync_parent_dir(link_path, err)) return -1;
    int64_t *steps = NULL;
    int n = list_steps(dir, &steps, err);
    if (n < 0) return -1;
    // Checkpoints past this step belong to a timeline this run abandoned (it resumed from an older one,
    // because those were damaged): they go, so they can never be taken for the newest.
    int kept = 0;
    for (int i = 0; i < n; i++) {
        char old[1200];
        rt_ckpt_step_path(old, sizeof old, dir, steps[i]);
        if (steps[i] > c->state.step || (steps[i] < c->state.step && kept >= keep)) unlink(old);
        else kept++;
    }
    free(steps);
    return 0;
}

int rt_ckpt_load_latest(const char *dir, int with_optim, rt_ckpt *out, char *path, size_t cap, rt_error *err) {
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
