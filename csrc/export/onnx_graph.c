// ONNX graph building and writing (onnx_graph.h). Field numbers are onnx.in.proto's (docs/formats.md, ONNX).
#define _POSIX_C_SOURCE 200809L // fsync, lstat, getpid
#include "export/onnx_graph.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/ggml_quants.h"
#include "base/buf.h"

// ONNX's protobuf message limit, and the onnx project's external-data conventions
#define PB_MESSAGE_LIMIT   ((uint64_t)INT32_MAX)
#define EXTERNAL_ALIGN     4096
#define EXTERNAL_MIN_BYTES 1024 // smaller tensors stay inline, as onnx's own converter does

void rt_onnx_graph_init(rt_onnx_graph *g) {
    memset(g, 0, sizeof *g);
}

void rt_onnx_graph_free(rt_onnx_graph *g) {
    rt_buf_free(&g->nodes);
    rt_buf_free(&g->io);
    for (int i = 0; i < g->n_inits; i++) free(g->inits[i].owned);
    free(g->inits);
    for (int i = 0; i < g->n_names; i++) free(g->names[i]);
    free(g->names);
    memset(g, 0, sizeof *g);
}

static const char *own(rt_onnx_graph *g, char *s) {
    if (!s) {
        g->oom = 1;
        return NULL;
    }
    if (g->n_names == g->cap_names) {
        int cap = g->cap_names ? 2 * g->cap_names : 256;
        char **p = realloc(g->names, (size_t)cap * sizeof *p);
        if (!p) {
            free(s);
            g->oom = 1;
            return NULL;
        }
        g->names = p;
        g->cap_names = cap;
    }
    g->names[g->n_names++] = s;
    return s;
}

const char *rt_onnx_name(rt_onnx_graph *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        va_start(ap, fmt);
        vsnprintf(s, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return own(g, s);
}

static void attr_proto(rt_buf *a, const rt_onnx_attr *at) {
    rt_pb_string(a, 1, at->name);
    switch (at->type) {
    case RT_ONNX_ATTR_FLOAT:
        rt_pb_float(a, 2, at->f);
        break;
    case RT_ONNX_ATTR_INT:
        rt_pb_int(a, 3, at->i);
        break;
    case RT_ONNX_ATTR_STRING:
        rt_pb_string(a, 4, at->s);
        break;
    case RT_ONNX_ATTR_INTS:
        for (int k = 0; k < at->n_ints; k++) rt_pb_int(a, 8, at->ints[k]);
        break;
    }
    rt_pb_int(a, 20, at->type);
}

void rt_onnx_node(rt_onnx_graph *g, const char *op, const char *domain, const char *name,
                  const char *const *inputs, int n_in, const char *const *outputs, int n_out,
                  const rt_onnx_attr *attrs, int n_attrs) {
    rt_buf node = {0};
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i]) g->oom = 1; // a name that failed to allocate upstream
        rt_pb_string(&node, 1, inputs[i] ? inputs[i] : "");
    }
    for (int i = 0; i < n_out; i++) {
        if (!outputs[i]) g->oom = 1;
        rt_pb_string(&node, 2, outputs[i] ? outputs[i] : "");
    }
    rt_pb_string(&node, 3, name ? name : "");
    rt_pb_string(&node, 4, op);
    for (int i = 0; i < n_attrs; i++) {
        rt_buf a = {0};
        attr_proto(&a, &attrs[i]);
        rt_pb_message(&node, 5, &a);
        rt_buf_free(&a);
    }
    if (domain) rt_pb_string(&node, 7, domain);
    rt_pb_message(&g->nodes, 1, &node);
    if (node.oom || g->nodes.oom) g->oom = 1;
    rt_buf_free(&node);
    g->n_nodes++;
}

static void value_info(rt_onnx_graph *g, int field, const char *name, int dtype, const rt_onnx_dim *dims,
                       int ndim) {
    rt_buf shape = {0}, tensor = {0}, type = {0}, vi = {0};
    for (int i = 0; i < ndim; i++) {
        rt_buf dim = {0};
        if (dims[i].param)
            rt_pb_string(&dim, 2, dims[i].param);
        else
            rt_pb_int(&dim, 1, dims[i].value);
        rt_pb_message(&shape, 1, &dim);
        rt_buf_free(&dim);
    }
    rt_pb_int(&tensor, 1, dtype);
    rt_pb_message(&tensor, 2, &shape); // present even when empty: a scalar, not an unknown rank
    rt_pb_message(&type, 1, &tensor);
    rt_pb_string(&vi, 1, name);
    rt_pb_message(&vi, 2, &type);
    rt_pb_message(&g->io, field, &vi);
    if (vi.oom || g->io.oom) g->oom = 1;
    rt_buf_free(&shape);
    rt_buf_free(&tensor);
    rt_buf_free(&type);
    rt_buf_free(&vi);
}

void rt_onnx_input(rt_onnx_graph *g, const char *name, int dtype, const rt_onnx_dim *dims, int ndim) {
    value_info(g, 11, name, dtype, dims, ndim);
}

void rt_onnx_output(rt_onnx_graph *g, const char *name, int dtype, const rt_onnx_dim *dims, int ndim) {
    value_info(g, 12, name, dtype, dims, ndim);
}

static rt_onnx_init *new_init(rt_onnx_graph *g, const char *name, int dtype, int ndim) {
    if (g->n_inits == g->cap_inits) {
        int cap = g->cap_inits ? 2 * g->cap_inits : 64;
        rt_onnx_init *p = realloc(g->inits, (size_t)cap * sizeof *p);
        if (!p) {
            g->oom = 1;
            return NULL;
        }
        g->inits = p;
        g->cap_inits = cap;
    }
    const char *owned_name = rt_onnx_name(g, "%s", name);
    if (!owned_name) return NULL;
    rt_onnx_init *t = &g->inits[g->n_inits++];
    memset(t, 0, sizeof *t);
    t->name = (char *)owned_name;
    t->dtype = dtype;
    t->ndim = ndim;
    return t;
}

void rt_onnx_init_bytes(rt_onnx_graph *g, const char *name, int dtype, const int64_t *dims, int ndim,
                        void *data, size_t nbytes) {
    rt_onnx_init *t = data ? new_init(g, name, dtype, ndim) : NULL;
    if (!t) {
        free(data);
        g->oom = 1;
        return;
    }
    for (int i = 0; i < ndim && i < 3; i++) t->dims[i] = dims[i];
    t->owned = data;
    t->nbytes = nbytes;
}

void rt_onnx_init_matrix(rt_onnx_graph *g, const char *name, int dtype, const float *src, int64_t rows,
                         int64_t cols, int transpose) {
    rt_onnx_init *t = new_init(g, name, dtype, 2);
    if (!t) return;
    t->src = src;
    t->transpose = transpose;
    t->dims[0] = transpose ? cols : rows;
    t->dims[1] = transpose ? rows : cols;
    t->nbytes = (size_t)rows * (size_t)cols * (dtype == RT_ONNX_FLOAT16 ? 2 : 4);
}

static void const_copy(rt_onnx_graph *g, const char *name, int dtype, const void *v, int n, size_t elem,
                       int scalar) {
    void *copy = malloc((size_t)n * elem);
    if (copy) memcpy(copy, v, (size_t)n * elem);
    int64_t dims[1] = {n};
    rt_onnx_init_bytes(g, name, dtype, dims, scalar ? 0 : 1, copy, (size_t)n * elem);
}

void rt_onnx_const_i64(rt_onnx_graph *g, const char *name, const int64_t *v, int n, int scalar) {
    const_copy(g, name, RT_ONNX_INT64, v, n, sizeof(int64_t), scalar);
}

void rt_onnx_const_f32(rt_onnx_graph *g, const char *name, const float *v, int n, int scalar) {
    const_copy(g, name, RT_ONNX_FLOAT, v, n, sizeof(float), scalar);
}

// ---------------------------------------------------------------------------------------------------
// writing

// TensorProto without its data: dims, type, name, and where the data is.
static void tensor_header(rt_buf *h, const rt_onnx_init *t, const char *data_name) {
    for (int i = 0; i < t->ndim; i++) rt_pb_int(h, 1, t->dims[i]);
    rt_pb_int(h, 2, t->dtype);
    rt_pb_string(h, 8, t->name);
    if (t->external) {
        char num[32];
        const char *keys[3] = {"location", "offset", "length"};
        for (int k = 0; k < 3; k++) {
            rt_buf e = {0};
            rt_pb_string(&e, 1, keys[k]);
            if (k == 0) {
                rt_pb_string(&e, 2, data_name);
            } else {
                snprintf(num, sizeof num, "%llu",
                         (unsigned long long)(k == 1 ? t->offset : (uint64_t)t->nbytes));
                rt_pb_string(&e, 2, num);
            }
            rt_pb_message(h, 13, &e);
            rt_buf_free(&e);
        }
        rt_pb_int(h, 14, 1); // data_location EXTERNAL
    }
}

// Size of the whole TensorProto (the GraphProto.initializer field body).
static uint64_t tensor_size(const rt_onnx_init *t, const char *data_name, int *oom) {
    rt_buf h = {0};
    tensor_header(&h, t, data_name);
    uint64_t n = h.len;
    if (h.oom) *oom = 1;
    rt_buf_free(&h);
    if (!t->external) n += rt_pb_len_field_size(9, t->nbytes);
    return n;
}

// The initializer's bytes as written: owned bytes, or the fp32 source converted (the caller frees *tmp).
static const void *tensor_bytes(const rt_onnx_init *t, void **tmp, rt_error *err) {
    *tmp = NULL;
    if (t->owned) return t->owned;
    void *buf = rt_malloc(t->nbytes, t->name, err);
    if (!buf) return NULL;
    int64_t R = t->transpose ? t->dims[1] : t->dims[0], Cn = t->transpose ? t->dims[0] : t->dims[1];
    float *f32 = buf;
    uint16_t *f16 = buf;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < Cn; c++) {
            float v = t->src[r * Cn + c];
            size_t at = t->transpose ? (size_t)(c * R + r) : (size_t)(r * Cn + c);
            if (t->dtype == RT_ONNX_FLOAT16)
                f16[at] = rt_fp32_to_fp16(v);
            else
                f32[at] = v;
        }
    *tmp = buf;
    return buf;
}

// The message of a failed write: a full disk (or quota) named as such.
static int write_failed(const char *path, int e, rt_error *err) {
    int full = e == ENOSPC
#ifdef EDQUOT
               || e == EDQUOT
#endif
        ;
    return rt_fail(err, "%s: write failed: %s%s", path, strerror(e ? e : EIO), full ? " (disk full)" : "");
}

static int put(FILE *f, const void *p, size_t n, const char *path, rt_error *err) {
    if (n && fwrite(p, 1, n, f) != n) return write_failed(path, errno, err);
    return 0;
}

static int close_synced(FILE *f, const char *path, int rc, rt_error *err) {
    if (!f) return rc;
    int e = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) e = errno; // buffered bytes meet a full disk here
    if (fclose(f) != 0 && e == 0) e = errno;
    if (rc == 0 && e) rc = write_failed(path, e, err);
    return rc;
}

static int join(char *out, size_t cap, const char *dir, const char *name, rt_error *err) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return rt_fail(err, "%s/%s: path too long", dir, name);
    return 0;
}

// Places the large tensors in the external file (when external) and returns the GraphProto's size.
static uint64_t layout(rt_onnx_graph *g, const char *graph_name, const char *data_name, int external,
                       uint64_t *data_bytes, int *n_external, int *oom) {
    uint64_t size = g->nodes.len + g->io.len + rt_pb_len_field_size(2, strlen(graph_name)), off = 0;
    *n_external = 0;
    for (int i = 0; i < g->n_inits; i++) {
        rt_onnx_init *t = &g->inits[i];
        t->external = external && t->nbytes >= EXTERNAL_MIN_BYTES;
        if (t->external) {
            off = (off + EXTERNAL_ALIGN - 1) / EXTERNAL_ALIGN * EXTERNAL_ALIGN;
            t->offset = off;
            off += t->nbytes;
            (*n_external)++;
        }
        size += rt_pb_len_field_size(5, tensor_size(t, data_name, oom));
    }
    *data_bytes = off;
    return size;
}

static int write_external(const rt_onnx_graph *g, const char *path, rt_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return rt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    static const uint8_t zeros[EXTERNAL_ALIGN];
    uint64_t at = 0;
    int rc = 0;
    for (int i = 0; rc == 0 && i < g->n_inits; i++) {
        const rt_onnx_init *t = &g->inits[i];
        if (!t->external) continue;
        rc = put(f, zeros, (size_t)(t->offset - at), path, err);
        void *tmp = NULL;
        const void *bytes = rc == 0 ? tensor_bytes(t, &tmp, err) : NULL;
        if (rc == 0 && !bytes) rc = -1;
        if (rc == 0) rc = put(f, bytes, t->nbytes, path, err);
        free(tmp);
        at = t->offset + t->nbytes;
    }
    return close_synced(f, path, rc, err);
}

int rt_onnx_write(rt_onnx_graph *g, const rt_onnx_model_info *info, const char *dir, const char *model_name,
                  const char *data_name, int data_mode, rt_onnx_write_report *rep, rt_error *err) {
    memset(rep, 0, sizeof *rep);
    if (g->oom) return rt_fail(err, "out of memory while building the ONNX graph");
    const char *graph_name = "retort";
    int oom = 0, n_ext = 0, external = data_mode == RT_ONNX_DATA_EXTERNAL;
    uint64_t data_bytes = 0;
    uint64_t graph_size = layout(g, graph_name, data_name, external, &data_bytes, &n_ext, &oom);
    uint64_t limit =
        info->inline_limit ? info->inline_limit : PB_MESSAGE_LIMIT - 4096; // other fields: < 4 KiB
    if (!external && graph_size >= limit) {
        external = 1;
        graph_size = layout(g, graph_name, data_name, external, &data_bytes, &n_ext, &oom);
    }
    if (graph_size + 4096 >= PB_MESSAGE_LIMIT)
        return rt_fail(err,
                       "the ONNX graph is %llu bytes even with its weights outside: over protobuf's 2 GiB",
                       (unsigned long long)graph_size);

    rt_buf head = {0}, tail = {0};
    rt_pb_int(&head, 1, info->ir_version);
    rt_pb_string(&head, 2, "retort");
    rt_pb_string(&head, 3, info->producer_version);
    if (info->doc) rt_pb_string(&head, 6, info->doc);
    rt_pb_len_header(&head, 7, graph_size);
    rt_pb_string(&head, 2, graph_name); // GraphProto.name, the graph's first field
    for (int k = 0; k < 2; k++) {
        if (k == 1 && info->ms_opset == 0) continue;
        rt_buf op = {0};
        rt_pb_string(&op, 1, k == 0 ? "" : "com.microsoft");
        rt_pb_int(&op, 2, k == 0 ? info->opset : info->ms_opset);
        rt_pb_message(&tail, 8, &op);
        rt_buf_free(&op);
    }
    for (int i = 0; i + 1 < 2 * info->n_meta; i += 2) {
        rt_buf kv = {0};
        rt_pb_string(&kv, 1, info->meta[i]);
        rt_pb_string(&kv, 2, info->meta[i + 1]);
        rt_pb_message(&tail, 14, &kv);
        rt_buf_free(&kv);
    }
    char path[4096], data_path[4096];
    int rc = join(path, sizeof path, dir, model_name, err);
    if (rc == 0 && external) rc = join(data_path, sizeof data_path, dir, data_name, err);
    if (rc == 0 && (oom || head.oom || tail.oom))
        rc = rt_fail(err, "out of memory while writing the ONNX model");
    FILE *f = NULL;
    if (rc == 0 && !(f = fopen(path, "wb")))
        rc = rt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    if (rc == 0) rc = put(f, head.data, head.len, path, err);
    if (rc == 0) rc = put(f, g->nodes.data, g->nodes.len, path, err);
    for (int i = 0; rc == 0 && i < g->n_inits; i++) {
        const rt_onnx_init *t = &g->inits[i];
        rt_buf h = {0};
        int unused = 0;
        rt_pb_len_header(&h, 5, tensor_size(t, data_name, &unused));
        tensor_header(&h, t, data_name);
        if (!t->external) rt_pb_len_header(&h, 9, t->nbytes);
        if (h.oom) rc = rt_fail(err, "out of memory while writing the ONNX model");
        if (rc == 0) rc = put(f, h.data, h.len, path, err);
        rt_buf_free(&h);
        if (rc == 0 && !t->external) {
            void *tmp = NULL;
            const void *bytes = tensor_bytes(t, &tmp, err);
            rc = bytes ? put(f, bytes, t->nbytes, path, err) : -1;
            free(tmp);
        }
    }
    if (rc == 0) rc = put(f, g->io.data, g->io.len, path, err);
    if (rc == 0) rc = put(f, tail.data, tail.len, path, err);
    long size = f && rc == 0 ? ftell(f) : 0;
    rc = close_synced(f, path, rc, err);
    if (rc == 0 && external) rc = write_external(g, data_path, err);
    if (rc == 0) {
        rep->model_bytes = (uint64_t)size;
        rep->data_bytes = external ? data_bytes : 0;
        rep->n_external = external ? n_ext : 0;
    }
    rt_buf_free(&head);
    rt_buf_free(&tail);
    return rc;
}
