#define _POSIX_C_SOURCE 200809L // mmap, O_CLOEXEC
#include "import/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "gguf/ggml_quants.h"

// Every dtype the format defines with whole-byte elements. Sub-byte ones (F4, F6_*) have no byte size per
// element and are refused as unknown.
static const struct {
    const char *name;
    int size;
} dtypes[] = {{"F64", 8},  {"F32", 4},     {"F16", 2},     {"BF16", 2},    {"I64", 8}, {"U64", 8},
              {"I32", 4},  {"U32", 4},     {"I16", 2},     {"U16", 2},     {"I8", 1},  {"U8", 1},
              {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"C64", 8}};

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. Returns the offset of the first bad
// byte, or len when all is well.
static size_t utf8_bad(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (n > len - i) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return i;
        i += n;
    }
    return len;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const rt_st_tensor *)a)->name, ((const rt_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const rt_st_tensor *x = *(const rt_st_tensor *const *)a, *y = *(const rt_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

// One tensor entry: {"dtype": "...", "shape": [...], "data_offsets": [begin, end]}. Other keys are ignored,
// as the safetensors package ignores them.
static int parse_tensor(const char *path, const char *name, const rt_json *v, size_t data_size,
                        rt_st_tensor *t, rt_error *err) {
    if (v->type != RT_JSON_OBJECT)
        return rt_fail(err, "%s: tensor '%s': expected an object with dtype, shape and data_offsets", path,
                       name);
    const rt_json *dt = rt_json_get(v, "dtype"), *sh = rt_json_get(v, "shape"),
                  *off = rt_json_get(v, "data_offsets");
    if (!dt || dt->type != RT_JSON_STRING)
        return rt_fail(err, "%s: tensor '%s': expected a string \"dtype\"", path, name);
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dt->str, dtypes[i].name) == 0) {
            snprintf(t->dtype, sizeof t->dtype, "%s", dtypes[i].name);
            t->dtype_size = dtypes[i].size;
        }
    if (t->dtype_size == 0)
        return rt_fail(
            err,
            "%s: tensor '%s': unknown dtype '%.32s' (expected F64, F32, F16, BF16, I64, U64, I32, U32, "
            "I16, U16, I8, U8, BOOL, F8_* or C64)",
            path, name, dt->str);
    if (!sh || sh->type != RT_JSON_ARRAY)
        return rt_fail(err, "%s: tensor '%s': expected \"shape\" as an array of sizes", path, name);
    if (sh->n > RT_ST_MAX_DIMS)
        return rt_fail(err, "%s: tensor '%s': %zu dimensions, at most %d supported", path, name, sh->n,
                       RT_ST_MAX_DIMS);
    t->ndim = (int)sh->n;
    t->count = 1;
    for (size_t d = 0; d < sh->n; d++) {
        uint64_t x;
        if (rt_json_u64(&sh->items[d], &x) != 0 || x > INT64_MAX)
            return rt_fail(err, "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, d);
        t->shape[d] = (int64_t)x;
        if (x > SIZE_MAX || !rt_mul_size(t->count, (size_t)x, &t->count))
            return rt_fail(err, "%s: tensor '%s': the element count of its shape overflows", path, name);
    }
    uint64_t b, e;
    if (!off || off->type != RT_JSON_ARRAY || off->n != 2 || rt_json_u64(&off->items[0], &b) != 0 ||
        rt_json_u64(&off->items[1], &e) != 0)
        return rt_fail(err,
                       "%s: tensor '%s': expected \"data_offsets\" as [begin, end] of non-negative integers",
                       path, name);
    if (b > e || e > data_size)
        return rt_fail(
            err,
            "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %zu bytes (expected "
            "begin <= end <= %zu)",
            path, name, (unsigned long long)b, (unsigned long long)e, data_size, data_size);
    t->begin = (size_t)b;
    t->nbytes = (size_t)(e - b);
    size_t want;
    if (!rt_mul_size(t->count, (size_t)t->dtype_size, &want) || want != t->nbytes)
        return rt_fail(
            err,
            "%s: tensor '%s': %zu bytes in data_offsets, but its shape and dtype %s need %zu elements "
            "x %d bytes",
            path, name, t->nbytes, t->dtype, t->count, t->dtype_size);
    return 0;
}

static int parse_metadata(const char *path, const rt_json *v, rt_st_file *f, rt_error *err) {
    if (v->type == RT_JSON_NULL) return 0;
    if (v->type != RT_JSON_OBJECT)
        return rt_fail(err, "%s: \"__metadata__\" must be an object of string values", path);
    f->meta_keys = rt_calloc(v->n + 1, sizeof(char *), "safetensors metadata", err);
    f->meta_values = rt_calloc(v->n + 1, sizeof(char *), "safetensors metadata", err);
    if (!f->meta_keys || !f->meta_values) return -1;
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i].type != RT_JSON_STRING)
            return rt_fail(err, "%s: \"__metadata__\" key '%s': expected a string value", path, v->keys[i]);
        f->meta_keys[i] = rt_strdup(v->keys[i]);
        f->meta_values[i] = rt_strdup(v->items[i].str);
        f->n_meta = i + 1;
        if (!f->meta_keys[i] || !f->meta_values[i])
            return rt_fail(err, "%s: out of memory for metadata", path);
    }
    return 0;
}

// The tensors sorted by begin must tile the data section: each starts where the previous ended, the first at
// 0 and the last ending at its end. The format requires it, and it rules out overlapping tensors (two views
// of the same bytes) and unaccounted bytes.
static int check_layout(rt_st_file *f, size_t data_size, rt_error *err) {
    const rt_st_tensor **order = rt_calloc(f->n_tensors + 1, sizeof *order, "safetensors layout", err);
    if (!order) return -1;
    for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, cmp_begin);
    size_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const rt_st_tensor *t = order[i];
        if (t->begin != at)
            rc = rt_fail(err,
                         "%s: tensor '%s' begins at byte %zu of the data section, but the previous tensor "
                         "ends at %zu: "
                         "safetensors requires the tensors to be contiguous, without %s",
                         f->path, t->name, t->begin, at, t->begin < at ? "overlaps" : "gaps");
        at = t->begin + t->nbytes;
    }
    if (rc == 0 && at != data_size)
        rc = rt_fail(err,
                     "%s: the tensors end at byte %zu of the data section, but it holds %zu bytes: "
                     "safetensors requires "
                     "the tensors to cover it exactly",
                     f->path, at, data_size);
    free(order);
    return rc;
}

static int parse_header(rt_st_file *f, const char *text, size_t len, rt_error *err) {
    const char *path = f->path;
    size_t data_size = f->size - f->data_start;
    size_t bad = utf8_bad((const uint8_t *)text, len);
    if (bad != len)
        return rt_fail(err, "%s: the header is not valid UTF-8 (byte %zu of the header)", path, bad);
    rt_json root;
    char msg[256];
    if (rt_json_parse(text, len, &root, msg, sizeof msg) != 0)
        return rt_fail(err, "%s: header: %s", path, msg);
    int rc = 0;
    if (root.type != RT_JSON_OBJECT)
        rc = rt_fail(err, "%s: the header must be a JSON object of tensors", path);
    if (rc == 0) {
        f->tensors = rt_calloc(root.n + 1, sizeof *f->tensors, "safetensors tensors", err);
        if (!f->tensors) rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < root.n; i++) {
        const char *key = root.keys[i];
        if (strcmp(key, "__metadata__") == 0) {
            if (f->meta_keys)
                rc = rt_fail(err, "%s: \"__metadata__\" appears twice", path);
            else
                rc = parse_metadata(path, &root.items[i], f, err);
            continue;
        }
        rt_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = rt_strdup(key);
        t->file = f;
        if (!t->name) rc = rt_fail(err, "%s: out of memory", path);
        f->n_tensors++;
        if (rc == 0) rc = parse_tensor(path, key, &root.items[i], data_size, t, err);
        if (rc == 0) t->data = f->map + f->data_start + t->begin;
    }
    rt_json_free(&root);
    if (rc) return rc;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name);
    for (size_t i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i - 1].name, f->tensors[i].name) == 0)
            return rt_fail(err, "%s: tensor '%s' appears twice in the header (names must be unique)", path,
                           f->tensors[i].name);
    return check_layout(f, data_size, err);
}

int rt_st_open(const char *path, rt_st_file *f, rt_error *err) {
    memset(f, 0, sizeof *f);
    f->path = rt_strdup(path);
    if (!f->path) return rt_fail(err, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
        rt_st_close(f);
        return -1;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = rt_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = rt_fail(err, "%s: not a regular file", path);
    else if (st.st_size < 8)
        rc = rt_fail(err,
                     "%s: %lld bytes, shorter than the 8-byte header length that starts a safetensors file",
                     path, (long long)st.st_size);
    if (rc == 0) {
        f->size = (size_t)st.st_size;
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            rc = rt_fail(err, "%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
        else
            f->map = m;
    }
    close(fd);
    uint64_t n = 0;
    for (int i = 7; rc == 0 && i >= 0; i--) n = n << 8 | f->map[i];
    if (rc == 0 && n > RT_ST_MAX_HEADER)
        rc = rt_fail(err,
                     "%s: header length %llu bytes exceeds the limit of %u bytes (not a safetensors file?)",
                     path, (unsigned long long)n, RT_ST_MAX_HEADER);
    if (rc == 0 && n > f->size - 8)
        rc = rt_fail(
            err, "%s: header length %llu bytes runs past the end of the file (%zu bytes after the length)",
            path, (unsigned long long)n, f->size - 8);
    if (rc == 0) {
        f->data_start = 8 + (size_t)n;
        rc = parse_header(f, (const char *)f->map + 8, (size_t)n, err);
    }
    if (rc) rt_st_close(f);
    return rc;
}

void rt_st_close(rt_st_file *f) {
    if (f->map) munmap(f->map, f->size);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name) {
    rt_st_tensor key = {0};
    key.name = (char *)name;
    return f->n_tensors ? bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_name) : NULL;
}

const char *rt_st_metadata(const rt_st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

int rt_st_readable(const rt_st_tensor *t) {
    return strcmp(t->dtype, "F32") == 0 || strcmp(t->dtype, "F16") == 0 || strcmp(t->dtype, "BF16") == 0;
}

int rt_st_read_f32(const rt_st_tensor *t, float *out, size_t count, rt_error *err) {
    if (!rt_st_readable(t))
        return rt_fail(err, "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 can be read as floats",
                       t->file->path, t->name, t->dtype);
    if (count != t->count)
        return rt_fail(err, "%s: tensor '%s' holds %zu elements, the caller expected %zu", t->file->path,
                       t->name, t->count, count);
    // little-endian bytes, read by memcpy: the data need not be aligned
    const uint8_t *p = t->data;
    if (t->dtype_size == 4) {
        if (t->nbytes) memcpy(out, p, t->nbytes); // out may be NULL for an empty tensor
        return 0;
    }
    int bf16 = t->dtype[0] == 'B';
    for (size_t i = 0; i < count; i++) {
        uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
        if (bf16) {
            uint32_t u = (uint32_t)h << 16;
            memcpy(&out[i], &u, 4);
        } else {
            out[i] = rt_fp16_to_fp32(h);
        }
    }
    return 0;
}
