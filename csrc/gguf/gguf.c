// GGUF v3 writer and hardened reader (gguf.h; layout in docs/formats.md, GGUF).
#include "gguf/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/ggml_quants.h"
#include "base/buf.h"
#include "base/files.h"

// ---------------------------------------------------------------------------------------------------
// writing

void rt_gguf_writer_init(rt_gguf_writer *w) {
    memset(w, 0, sizeof *w);
}

void rt_gguf_writer_free(rt_gguf_writer *w) {
    rt_buf_free(&w->kv);
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].data);
    free(w->tensors);
    memset(w, 0, sizeof *w);
}

// every integer is written little-endian byte by byte, so the file is the same on any host
static void put_u32(rt_buf *b, uint32_t v) {
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    rt_buf_append(b, le, 4);
}
static void put_u64(rt_buf *b, uint64_t v) {
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}
static void put_str(rt_buf *b, const char *s) {
    size_t n = strlen(s);
    put_u64(b, n);
    rt_buf_append(b, s, n);
}
static void put_f32(rt_buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void key(rt_gguf_writer *w, const char *k, int type) {
    put_str(&w->kv, k);
    put_u32(&w->kv, (uint32_t)type);
    w->n_kv++;
}

void rt_gguf_add_string(rt_gguf_writer *w, const char *k, const char *value) {
    key(w, k, RT_GGUF_STRING);
    put_str(&w->kv, value);
}
void rt_gguf_add_u32(rt_gguf_writer *w, const char *k, uint32_t value) {
    key(w, k, RT_GGUF_UINT32);
    put_u32(&w->kv, value);
}
void rt_gguf_add_f32(rt_gguf_writer *w, const char *k, float value) {
    key(w, k, RT_GGUF_FLOAT32);
    put_f32(&w->kv, value);
}
void rt_gguf_add_bool(rt_gguf_writer *w, const char *k, int value) {
    key(w, k, RT_GGUF_BOOL);
    uint8_t b = value ? 1 : 0;
    rt_buf_append(&w->kv, &b, 1);
}
void rt_gguf_add_string_array(rt_gguf_writer *w, const char *k, const char *const *values, size_t n) {
    key(w, k, RT_GGUF_ARRAY);
    put_u32(&w->kv, RT_GGUF_STRING);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_str(&w->kv, values[i]);
}
void rt_gguf_add_i32_array(rt_gguf_writer *w, const char *k, const int32_t *values, size_t n) {
    key(w, k, RT_GGUF_ARRAY);
    put_u32(&w->kv, RT_GGUF_INT32);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_u32(&w->kv, (uint32_t)values[i]);
}

void rt_gguf_add_f32_array(rt_gguf_writer *w, const char *k, const float *values, size_t n) {
    key(w, k, RT_GGUF_ARRAY);
    put_u32(&w->kv, RT_GGUF_FLOAT32);
    put_u64(&w->kv, n);
    for (size_t i = 0; i < n; i++) put_f32(&w->kv, values[i]);
}

int rt_gguf_add_tensor(rt_gguf_writer *w, const char *name, int type, const float *data, int64_t rows,
                       int64_t cols, rt_error *err) {
    if (strlen(name) >= RT_GGUF_NAME_MAX)
        return rt_fail(err, "tensor name %s is longer than GGUF's %d bytes", name, RT_GGUF_NAME_MAX - 1);
    int64_t inner = cols > 0 ? cols : rows, outer = cols > 0 ? rows : 1;
    int block = rt_ggml_block_size(type);
    if (!rt_ggml_can_encode(type))
        return rt_fail(err, "%s: retort cannot write tensor type %d (%s)", name, type,
                       rt_ggml_type_name(type));
    if (inner % block != 0)
        return rt_fail(err, "%s: rows of %lld values do not split into %s blocks of %d", name,
                       (long long)inner, rt_ggml_type_name(type), block);
    size_t n;
    if (!rt_mul_size((size_t)inner, (size_t)outer, &n)) return rt_fail(err, "%s: size overflow", name);
    size_t nbytes = rt_ggml_nbytes(type, n);
    if (nbytes == 0) return rt_fail(err, "%s: size overflow", name);
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        rt_gguf_tensor_out *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return rt_fail(err, "out of memory adding %s", name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    rt_gguf_tensor_out *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = cols > 0 ? 2 : 1;
    t->ne[0] = inner;
    t->ne[1] = outer;
    t->ne[2] = t->ne[3] = 1;
    t->nbytes = nbytes;
    t->data = rt_malloc(nbytes, name, err);
    if (!t->data) return -1;
    rt_ggml_quantize(type, data, n, t->data);
    w->n_tensors++;
    return 0;
}

static size_t align_up(size_t x, size_t a) {
    return x + (a - x % a) % a;
}

// The whole file image: header, metadata, tensor infos, then the aligned tensor data.
static int build_image(rt_gguf_writer *w, const char *what, uint8_t **out, size_t *out_len, rt_error *err) {
    if (w->kv.oom) return rt_fail(err, "%s: out of memory building the GGUF metadata", what);
    rt_buf head = {0};
    rt_buf_append(&head, "GGUF", 4);
    put_u32(&head, 3);
    put_u64(&head, (uint64_t)w->n_tensors);
    put_u64(&head, (uint64_t)w->n_kv);
    rt_buf_append(&head, w->kv.data, w->kv.len);
    uint64_t offset = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const rt_gguf_tensor_out *t = &w->tensors[i];
        put_str(&head, t->name);
        put_u32(&head, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&head, (uint64_t)t->ne[d]);
        put_u32(&head, (uint32_t)t->type);
        put_u64(&head, offset);
        offset += align_up(t->nbytes, RT_GGUF_ALIGNMENT);
    }
    if (head.oom) {
        rt_buf_free(&head);
        return rt_fail(err, "%s: out of memory", what);
    }
    size_t data_start = align_up(head.len, RT_GGUF_ALIGNMENT), total;
    if (!rt_add_size(data_start, (size_t)offset, &total)) {
        rt_buf_free(&head);
        return rt_fail(err, "%s: file size overflow", what);
    }
    uint8_t *file = calloc(total ? total : 1, 1);
    if (!file) {
        rt_buf_free(&head);
        return rt_fail(err, "%s: out of memory for %zu bytes", what, total);
    }
    memcpy(file, head.data, head.len);
    size_t at = data_start;
    for (int i = 0; i < w->n_tensors; i++) { // every tensor padded, the last one too (docs/formats.md, GGUF)
        memcpy(file + at, w->tensors[i].data, w->tensors[i].nbytes);
        at += align_up(w->tensors[i].nbytes, RT_GGUF_ALIGNMENT);
    }
    rt_buf_free(&head);
    *out = file;
    *out_len = total;
    return 0;
}

int rt_gguf_write(rt_gguf_writer *w, const char *path, rt_error *err) {
    uint8_t *file;
    size_t total;
    if (build_image(w, path, &file, &total, err)) return -1;
    int rc = rt_write_file_atomic(path, file, total, err);
    free(file);
    return rc;
}

int rt_gguf_write_mem(rt_gguf_writer *w, uint8_t **out, size_t *len, rt_error *err) {
    return build_image(w, "GGUF in memory", out, len, err);
}

void rt_gguf_add_kv_copy(rt_gguf_writer *w, const rt_gguf_kv *kv) {
    key(w, kv->key, kv->type);
    if (kv->type == RT_GGUF_STRING) {
        put_str(&w->kv, kv->str ? kv->str : "");
        return;
    }
    if (kv->type != RT_GGUF_ARRAY) { // scalars: their little-endian bytes (floats keep their bits)
        int size = rt_gguf_scalar_size(kv->type);
        uint64_t raw = kv->u;
        if (kv->type == RT_GGUF_FLOAT32) {
            float f = (float)kv->f;
            uint32_t u;
            memcpy(&u, &f, 4);
            raw = u;
        } else if (kv->type == RT_GGUF_FLOAT64) {
            memcpy(&raw, &kv->f, 8);
        }
        for (int i = 0; i < size; i++) {
            uint8_t b = (uint8_t)(raw >> (8 * i));
            rt_buf_append(&w->kv, &b, 1);
        }
        return;
    }
    put_u32(&w->kv, (uint32_t)kv->elem_type);
    put_u64(&w->kv, kv->n);
    if (kv->elem_type != RT_GGUF_STRING) { // the elements as they lie in the source image
        rt_buf_append(&w->kv, kv->array, (size_t)kv->n * (size_t)rt_gguf_scalar_size(kv->elem_type));
        return;
    }
    const uint8_t *at = kv->array;
    for (uint64_t i = 0; i < kv->n; i++) {
        const char *s;
        size_t len;
        at = rt_gguf_next_string(at, &s, &len);
        put_u64(&w->kv, len);
        rt_buf_append(&w->kv, s, len);
    }
}

// ---------------------------------------------------------------------------------------------------
// reading: a cursor over the file image that never reads past its end

typedef struct cursor {
    const uint8_t *p;
    size_t size, at;
    const char *path;
    rt_error *err;
    int failed;
} cursor;

static int need(cursor *c, size_t n, const char *what) {
    if (c->failed) return -1;
    if (n > c->size - c->at) {
        c->failed = 1;
        return rt_fail(c->err, "%s: truncated at byte %zu reading %s (file is %zu bytes)", c->path, c->at,
                       what, c->size);
    }
    return 0;
}
static uint64_t get_n(cursor *c, int bytes, const char *what) {
    if (need(c, (size_t)bytes, what)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)c->p[c->at + (size_t)i] << (8 * i);
    c->at += (size_t)bytes;
    return v;
}
static char *get_str(cursor *c, const char *what) {
    uint64_t n = get_n(c, 8, what);
    if (c->failed) return NULL;
    if (n > (1u << 30)) {
        c->failed = 1;
        rt_fail(c->err, "%s: %s at byte %zu claims %llu bytes (limit 1 GiB)", c->path, what, c->at - 8,
                (unsigned long long)n);
        return NULL;
    }
    if (need(c, (size_t)n, what)) return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s) {
        c->failed = 1;
        rt_fail(c->err, "%s: out of memory", c->path);
        return NULL;
    }
    memcpy(s, c->p + c->at, (size_t)n);
    s[n] = '\0';
    c->at += (size_t)n;
    return s;
}

int rt_gguf_scalar_size(int type) {
    switch (type) {
    case RT_GGUF_UINT8:
    case RT_GGUF_INT8:
    case RT_GGUF_BOOL:
        return 1;
    case RT_GGUF_UINT16:
    case RT_GGUF_INT16:
        return 2;
    case RT_GGUF_UINT32:
    case RT_GGUF_INT32:
    case RT_GGUF_FLOAT32:
        return 4;
    case RT_GGUF_UINT64:
    case RT_GGUF_INT64:
    case RT_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *rt_gguf_value_type_name(int type) {
    static const char *const names[] = {"uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
                                        "bool",  "string", "array",  "uint64", "int64",  "float64"};
    return type >= 0 && type <= 12 ? names[type] : "unknown";
}

static void read_scalar(cursor *c, rt_gguf_kv *kv, int type) {
    int size = rt_gguf_scalar_size(type);
    uint64_t raw = get_n(c, size, kv->key);
    if (type == RT_GGUF_FLOAT32) {
        uint32_t u = (uint32_t)raw;
        float f;
        memcpy(&f, &u, 4);
        kv->f = f;
    } else if (type == RT_GGUF_FLOAT64) {
        memcpy(&kv->f, &raw, 8);
    } else if (type == RT_GGUF_INT8 || type == RT_GGUF_INT16 || type == RT_GGUF_INT32) {
        int shift = 64 - 8 * size;
        kv->u = (uint64_t)((int64_t)(raw << shift) >> shift);
    } else {
        kv->u = raw;
    }
}

static int read_kv(cursor *c, rt_gguf_kv *kv) {
    kv->key = get_str(c, "a key");
    kv->type = (int)(int32_t)get_n(c, 4, "a value type");
    if (c->failed) return -1;
    if (kv->type == RT_GGUF_STRING) {
        kv->str = get_str(c, kv->key);
    } else if (kv->type == RT_GGUF_ARRAY) {
        kv->elem_type = (int)(int32_t)get_n(c, 4, kv->key);
        kv->n = get_n(c, 8, kv->key);
        if (c->failed) return -1;
        if (kv->n > (1u << 30))
            return c->failed = 1, rt_fail(c->err, "%s: array %s claims %llu elements (limit 2^30)", c->path,
                                          kv->key, (unsigned long long)kv->n);
        if (kv->elem_type == RT_GGUF_STRING) {
            kv->array = c->p + c->at;
            for (uint64_t i = 0; i < kv->n && !c->failed; i++) {
                char *s = get_str(c, kv->key);
                if (i == 0)
                    kv->str = s;
                else
                    free(s);
            }
        } else if (rt_gguf_scalar_size(kv->elem_type) > 0) {
            size_t bytes = (size_t)kv->n * (size_t)rt_gguf_scalar_size(kv->elem_type); // n <= 2^30, size <= 8
            if (need(c, bytes, kv->key)) return -1;
            kv->array = c->p + c->at;
            c->at += bytes;
        } else {
            return c->failed = 1,
                   rt_fail(c->err,
                           "%s: array %s has element type %d (%s): expected a number or "
                           "a string (nested arrays are not allowed)",
                           c->path, kv->key, kv->elem_type, rt_gguf_value_type_name(kv->elem_type));
        }
    } else if (rt_gguf_scalar_size(kv->type) > 0) {
        read_scalar(c, kv, kv->type);
    } else {
        return c->failed = 1,
               rt_fail(c->err, "%s: key %s has unknown value type %d", c->path, kv->key, kv->type);
    }
    return c->failed ? -1 : 0;
}

static int read_tensor_info(cursor *c, rt_gguf_tensor *t) {
    char *name = get_str(c, "a tensor name");
    if (!name) return -1;
    if (strlen(name) >= RT_GGUF_NAME_MAX || strlen(name) == 0) {
        rt_fail(c->err, "%s: tensor name '%.80s' is empty or longer than %d bytes", c->path, name,
                RT_GGUF_NAME_MAX - 1);
        free(name);
        return c->failed = 1, -1;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    free(name);
    t->n_dims = (int)get_n(c, 4, t->name);
    if (!c->failed && (t->n_dims < 1 || t->n_dims > 4))
        return c->failed = 1,
               rt_fail(c->err, "%s: tensor %s has %d dims (1 to 4)", c->path, t->name, t->n_dims);
    size_t n = 1;
    for (int d = 0; d < 4; d++) {
        t->ne[d] = d < t->n_dims ? (int64_t)get_n(c, 8, t->name) : 1;
        if (c->failed) return -1;
        if (t->ne[d] < 1 || !rt_mul_size(n, (size_t)t->ne[d], &n))
            return c->failed = 1, rt_fail(c->err, "%s: tensor %s has an impossible shape (dim %d is %lld)",
                                          c->path, t->name, d, (long long)t->ne[d]);
    }
    t->type = (int)(int32_t)get_n(c, 4, t->name);
    t->offset = get_n(c, 8, t->name);
    if (c->failed) return -1;
    int block = rt_ggml_block_size(t->type);
    if (block == 0)
        return c->failed = 1,
               rt_fail(c->err, "%s: tensor %s has type %d, which is not a ggml type retort knows", c->path,
                       t->name, t->type);
    if (t->ne[0] % block != 0)
        return c->failed = 1, rt_fail(c->err, "%s: tensor %s: rows of %lld are not whole %s blocks", c->path,
                                      t->name, (long long)t->ne[0], rt_ggml_type_name(t->type));
    t->nbytes = rt_ggml_nbytes(t->type, n);
    if (t->nbytes == 0)
        return c->failed = 1, rt_fail(c->err, "%s: tensor %s: size overflow", c->path, t->name);
    return 0;
}

void rt_gguf_free(rt_gguf_file *f) {
    for (int64_t i = 0; f->kv && i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].str);
    }
    free(f->kv);
    free(f->tensors);
    free(f->image);
    memset(f, 0, sizeof *f);
}

const uint8_t *rt_gguf_next_string(const uint8_t *at, const char **s, size_t *len) {
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)at[i] << (8 * i);
    *s = (const char *)at + 8;
    *len = (size_t)n; // the reader bounded it by the file size
    return at + 8 + n;
}

const rt_gguf_kv *rt_gguf_find_kv(const rt_gguf_file *f, const char *k) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key && strcmp(f->kv[i].key, k) == 0) return &f->kv[i];
    return NULL;
}

static int load_image(const char *path, rt_gguf_file *f, rt_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = 0;
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) rc = rt_fail(err, "%s: cannot find the file's size", path);
    if (rc == 0) {
        f->size = (size_t)size;
        f->image = malloc(f->size ? f->size : 1);
        if (!f->image) rc = rt_fail(err, "%s: out of memory for %zu bytes", path, f->size);
    }
    if (rc == 0 && fread(f->image, 1, f->size, fp) != f->size) rc = rt_fail(err, "%s: read failed", path);
    fclose(fp);
    return rc;
}

static int parse(const char *path, rt_gguf_file *f, rt_error *err) {
    cursor c = {f->image, f->size, 0, path, err, 0};
    if (need(&c, 4, "the magic")) return -1;
    if (memcmp(f->image, "GGUF", 4) != 0) return rt_fail(err, "%s: no GGUF magic: not a GGUF file", path);
    c.at = 4;
    f->version = (uint32_t)get_n(&c, 4, "the version");
    int64_t n_tensors = (int64_t)get_n(&c, 8, "the tensor count"),
            n_kv = (int64_t)get_n(&c, 8, "the key count");
    if (c.failed) return -1;
    if (f->version < 2 || f->version > 3)
        return rt_fail(err, "%s: GGUF version %u (2 or 3 expected)", path, f->version);
    // every key takes at least 12 bytes and every tensor info 24, which bounds the counts by the file size
    if (n_kv < 0 || n_tensors < 0 || (uint64_t)n_kv > f->size / 12 || (uint64_t)n_tensors > f->size / 24)
        return rt_fail(err, "%s: %lld keys and %lld tensors cannot fit in %zu bytes", path, (long long)n_kv,
                       (long long)n_tensors, f->size);
    f->kv = calloc((size_t)(n_kv ? n_kv : 1), sizeof *f->kv);
    f->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *f->tensors);
    if (!f->kv || !f->tensors) return rt_fail(err, "%s: out of memory", path);
    f->alignment = RT_GGUF_ALIGNMENT;
    for (int64_t i = 0; i < n_kv; i++) {
        f->n_kv = i + 1;
        if (read_kv(&c, &f->kv[i])) return -1;
        for (int64_t j = 0; j < i; j++)
            if (strcmp(f->kv[j].key, f->kv[i].key) == 0)
                return rt_fail(err, "%s: key %s appears twice", path, f->kv[i].key);
        if (strcmp(f->kv[i].key, "general.alignment") == 0) {
            uint64_t a = f->kv[i].u;
            if (f->kv[i].type != RT_GGUF_UINT32 || a == 0 || (a & (a - 1)) != 0)
                return rt_fail(err, "%s: general.alignment must be a uint32 power of two", path);
            f->alignment = (size_t)a;
        }
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        f->n_tensors = i + 1;
        if (read_tensor_info(&c, &f->tensors[i])) return -1;
        for (int64_t j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, f->tensors[i].name) == 0)
                return rt_fail(err, "%s: tensor %s appears twice", path, f->tensors[i].name);
    }
    size_t data_start = align_up(c.at, f->alignment);
    uint64_t expect = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        rt_gguf_tensor *t = &f->tensors[i];
        if (t->offset != expect)
            return rt_fail(err, "%s: tensor %s has offset %llu, expected %llu (offsets must be contiguous)",
                           path, t->name, (unsigned long long)t->offset, (unsigned long long)expect);
        size_t end;
        if (!rt_add_size(data_start, (size_t)t->offset, &end) || !rt_add_size(end, t->nbytes, &end) ||
            end > f->size)
            return rt_fail(err, "%s: tensor %s (%zu bytes at offset %llu) is not within the file (%zu bytes)",
                           path, t->name, t->nbytes, (unsigned long long)t->offset, f->size);
        t->data = f->image + data_start + t->offset;
        expect += align_up(t->nbytes, f->alignment);
    }
    return 0;
}

int rt_gguf_read_mem(const void *data, size_t size, const char *name, rt_gguf_file *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    out->image = malloc(size ? size : 1);
    if (!out->image) return rt_fail(err, "%s: out of memory for %zu bytes", name, size);
    if (size) memcpy(out->image, data, size);
    out->size = size;
    int rc = parse(name, out, err);
    if (rc) rt_gguf_free(out);
    return rc;
}

int rt_gguf_read(const char *path, rt_gguf_file *out, rt_error *err) {
    memset(out, 0, sizeof *out);
    int rc = load_image(path, out, err);
    if (rc == 0) rc = parse(path, out, err);
    if (rc) rt_gguf_free(out);
    return rc;
}
