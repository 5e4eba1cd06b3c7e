// A model's tensors across one file or the shards of model.safetensors.index.json.
#define _POSIX_C_SOURCE 200809L // stat
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/files.h"
#include "base/json.h"
#include "import/safetensors.h"

static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const rt_st_tensor *const *)a)->name, (*(const rt_st_tensor *const *)b)->name);
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

// A shard must be a plain file name in the index's folder: no separators, no "." or "..", so an index can
// never make the reader open a file elsewhere.
static int plain_name(const char *s) {
    return s[0] && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/') && !strchr(s, '\\');
}

// Collects every tensor of every file, sorted by name, refusing a name held by two shards.
static int collect(rt_st_model *m, rt_error *err) {
    size_t n = 0;
    for (size_t i = 0; i < m->n_files; i++) n += m->files[i].n_tensors;
    m->tensors = rt_calloc(n + 1, sizeof *m->tensors, "safetensors model tensors", err);
    if (!m->tensors) return -1;
    for (size_t i = 0; i < m->n_files; i++)
        for (size_t j = 0; j < m->files[i].n_tensors; j++)
            m->tensors[m->n_tensors++] = &m->files[i].tensors[j];
    qsort(m->tensors, m->n_tensors, sizeof *m->tensors, cmp_tensor_ptr);
    for (size_t i = 1; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i - 1]->name, m->tensors[i]->name) == 0)
            return rt_fail(err, "tensor '%s' is in both %s and %s (expected one shard per tensor)",
                           m->tensors[i]->name, m->tensors[i - 1]->file->path, m->tensors[i]->file->path);
    return 0;
}

static int open_shards(const char *index, const char *dir, const rt_json *map, rt_st_model *m,
                       rt_error *err) {
    m->files = rt_calloc(map->n + 1, sizeof *m->files, "safetensors shards", err);
    if (!m->files) return -1;
    // the distinct shard names, opened once each in first-mention order
    for (size_t i = 0; i < map->n; i++) {
        const rt_json *v = &map->items[i];
        if (v->type != RT_JSON_STRING || strlen(v->str) != v->len)
            return rt_fail(err, "%s: weight_map['%s']: expected a shard file name", index, map->keys[i]);
        if (!plain_name(v->str))
            return rt_fail(err,
                           "%s: weight_map['%s'] names '%s': expected a file name inside the index's folder",
                           index, map->keys[i], v->str);
        for (size_t j = 0; j < i; j++)
            if (strcmp(map->keys[j], map->keys[i]) == 0)
                return rt_fail(err, "%s: weight_map lists tensor '%s' twice", index, map->keys[i]);
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = strcmp(map->items[j].str, v->str) == 0;
        if (seen) continue;
        size_t need = strlen(dir) + v->len + 2;
        char *path = rt_malloc(need, "shard path", err);
        if (!path) return -1;
        snprintf(path, need, "%s/%s", dir, v->str);
        int rc = rt_st_open(path, &m->files[m->n_files], err);
        free(path);
        if (rc) return rt_fail_wrap(err, "%s: shard '%s'", index, v->str);
        m->n_files++;
    }
    // every entry is in its shard (each shard's path is dir + "/" + its name), and every tensor of a shard is
    // an entry pointing at that shard
    for (size_t i = 0; i < map->n; i++) {
        const rt_st_file *shard = NULL;
        for (size_t j = 0; j < m->n_files && !shard; j++)
            if (strcmp(m->files[j].path + strlen(dir) + 1, map->items[i].str) == 0) shard = &m->files[j];
        if (!shard || !rt_st_find(shard, map->keys[i]))
            return rt_fail(err, "%s: weight_map puts tensor '%s' in '%s', but that shard does not hold it",
                           index, map->keys[i], map->items[i].str);
    }
    for (size_t j = 0; j < m->n_files; j++)
        for (size_t k = 0; k < m->files[j].n_tensors; k++) {
            const rt_st_tensor *t = &m->files[j].tensors[k];
            const rt_json *where = rt_json_get(map, t->name);
            if (!where || strcmp(m->files[j].path + strlen(dir) + 1, where->str) != 0)
                return rt_fail(err, "%s: shard %s holds tensor '%s' that the weight_map %s", index,
                               m->files[j].path, t->name, where ? "puts in another shard" : "does not list");
        }
    return 0;
}

static int open_index(const char *index, rt_st_model *m, rt_error *err) {
    char *text = NULL, msg[256];
    size_t len = 0;
    if (rt_read_file(index, &text, &len, err)) return -1;
    rt_json root;
    int rc = 0;
    if (rt_json_parse(text, len, &root, msg, sizeof msg) != 0) rc = rt_fail(err, "%s: %s", index, msg);
    free(text);
    if (rc) return rc;
    const rt_json *map = rt_json_get(&root, "weight_map");
    if (!map || map->type != RT_JSON_OBJECT)
        rc = rt_fail(err, "%s: expected an object with a \"weight_map\" object of tensor name -> shard file",
                     index);
    char *dir = rt_strdup(index);
    if (!dir) rc = rt_fail(err, "%s: out of memory", index);
    if (rc == 0) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            strcpy(dir, ".");
        rc = open_shards(index, dir, map, m, err);
    }
    free(dir);
    rt_json_free(&root);
    return rc;
}

int rt_st_model_open(const char *path, rt_st_model *m, rt_error *err) {
    memset(m, 0, sizeof *m);
    struct stat st;
    if (stat(path, &st) != 0) return rt_fail(err, "%s: no such file or folder", path);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        size_t need = strlen(path) + 64;
        char *p = rt_malloc(need, "model path", err);
        if (!p) return -1;
        snprintf(p, need, "%s/model.safetensors.index.json", path);
        if (stat(p, &st) == 0) {
            rc = open_index(p, m, err);
        } else {
            snprintf(p, need, "%s/model.safetensors", path);
            if (stat(p, &st) != 0) {
                free(p);
                return rt_fail(err,
                               "%s: neither model.safetensors.index.json nor model.safetensors in the folder",
                               path);
            }
            m->files = rt_calloc(1, sizeof *m->files, "safetensors file", err);
            rc = m->files ? rt_st_open(p, &m->files[0], err) : -1;
            if (rc == 0) m->n_files = 1;
        }
        free(p);
    } else if (ends_with(path, ".json")) {
        rc = open_index(path, m, err);
    } else {
        m->files = rt_calloc(1, sizeof *m->files, "safetensors file", err);
        rc = m->files ? rt_st_open(path, &m->files[0], err) : -1;
        if (rc == 0) m->n_files = 1;
    }
    if (rc == 0) rc = collect(m, err);
    if (rc) rt_st_model_close(m);
    return rc;
}

void rt_st_model_close(rt_st_model *m) {
    for (size_t i = 0; i < m->n_files; i++) rt_st_close(&m->files[i]);
    free(m->files);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

const rt_st_tensor *rt_st_model_find(const rt_st_model *m, const char *name) {
    if (m->n_tensors == 0) return NULL;
    rt_st_tensor key = {0};
    key.name = (char *)name;
    const rt_st_tensor *kp = &key;
    const rt_st_tensor **hit = bsearch(&kp, m->tensors, m->n_tensors, sizeof kp, cmp_tensor_ptr);
    return hit ? *hit : NULL;
}
