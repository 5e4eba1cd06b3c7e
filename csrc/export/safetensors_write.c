// The safetensors writer (safetensors_write.h). The header is built whole in memory (names and shapes only);
// the tensor bytes are converted and written in chunks, so the file never exists twice in memory.
#define _POSIX_C_SOURCE 200809L // fsync, fileno, getpid
#include "export/safetensors_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/files.h"
#include "gguf/ggml_quants.h"

#define CHUNK 16384 // elements converted per write

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const rt_st_out *const *)a)->name, (*(const rt_st_out *const *)b)->name);
}

// Elements of a tensor (0 when a dim is 0), or -1 for a bad shape or an overflow.
static int count_of(const rt_st_out *t, size_t *out) {
    if (t->ndim < 0 || t->ndim > 8) return -1;
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 0 || (uint64_t)t->shape[d] > SIZE_MAX || !rt_mul_size(n, (size_t)t->shape[d], &n))
            return -1;
    *out = n;
    return 0;
}

// The header: metadata, then each tensor (sorted) with its byte range, padded with spaces to 8.
static int build_header(const char *path, const rt_st_out *const *sorted, size_t n, int bf16, rt_buf *h,
                        size_t *data_bytes, rt_error *err) {
    size_t esize = bf16 ? 2 : 4, offset = 0;
    rt_buf_printf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        const rt_st_out *t = sorted[i];
        size_t count, nbytes, end;
        if (i > 0 && strcmp(sorted[i - 1]->name, t->name) == 0)
            return rt_fail(err, "%s: tensor name %s given twice", path, t->name);
        if (count_of(t, &count) || !rt_mul_size(count, esize, &nbytes) || !rt_add_size(offset, nbytes, &end))
            return rt_fail(err, "%s: tensor %s: bad shape or a size that overflows", path, t->name);
        rt_buf_append(h, ",", 1);
        rt_buf_json_string(h, t->name);
        rt_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", bf16 ? "BF16" : "F32");
        for (int d = 0; d < t->ndim; d++) rt_buf_printf(h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        rt_buf_printf(h, "],\"data_offsets\":[%zu,%zu]}", offset, end);
        offset = end;
    }
    rt_buf_append(h, "}", 1);
    while (!h->oom && h->len % 8 != 0) rt_buf_append(h, " ", 1);
    if (h->oom) return rt_fail(err, "%s: out of memory building the header", path);
    *data_bytes = offset;
    return 0;
}

static int write_all(FILE *f, const void *p, size_t n) {
    return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1;
}

static int write_body(FILE *f, const rt_buf *h, const rt_st_out *const *sorted, size_t n, int bf16) {
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h->len >> (8 * i));
    if (write_all(f, len, 8) || write_all(f, h->data, h->len)) return -1;
    int type = bf16 ? RT_GGML_BF16 : RT_GGML_F32, rc = 0;
    uint8_t *buf = malloc(CHUNK * 4);
    if (!buf) return -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t count = 0;
        count_of(sorted[i], &count);
        for (size_t at = 0; rc == 0 && at < count; at += CHUNK) {
            size_t k = count - at < CHUNK ? count - at : CHUNK;
            rt_ggml_quantize(type, sorted[i]->data + at, k, buf);
            rc = write_all(f, buf, k * (bf16 ? 2 : 4));
        }
    }
    free(buf);
    return rc;
}

int rt_st_write(const char *path, const rt_st_out *ts, size_t n, int bf16, size_t *bytes, rt_error *err) {
    const rt_st_out **sorted = rt_calloc(n + 1, sizeof *sorted, "the tensor order", err);
    if (!sorted) return -1;
    for (size_t i = 0; i < n; i++) sorted[i] = &ts[i];
    qsort(sorted, n, sizeof *sorted, cmp_name);
    rt_buf h = {0};
    char tmp[4096];
    size_t data_bytes = 0;
    int rc = build_header(path, sorted, n, bf16, &h, &data_bytes, err);
    if (rc == 0 && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        rc = rt_fail(err, "%s: path too long", path);
    FILE *f = rc == 0 ? fopen(tmp, "wb") : NULL;
    if (rc == 0 && !f) rc = rt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    if (f) {
        int failed = write_body(f, &h, sorted, n, bf16) || fflush(f) != 0 || fsync(fileno(f)) != 0;
        int saved = errno;
        if (fclose(f) != 0 && !failed) failed = 1, saved = errno;
        if (failed)
            rc = rt_fail(err, "%s: write failed: %s", path,
                         saved == ENOSPC ? "the disk is full" : strerror(saved));
        if (rc == 0 && rename(tmp, path) != 0)
            rc = rt_fail(err, "%s: rename failed: %s", path, strerror(errno));
        if (rc != 0) unlink(tmp);
    }
    if (rc == 0) rc = rt_fsync_parent_dir(path, err);
    if (rc == 0 && bytes) *bytes = 8 + h.len + data_bytes;
    rt_buf_free(&h);
    free(sorted);
    return rc;
}
