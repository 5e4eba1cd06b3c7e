#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int rt_fail(rt_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int rt_fail_wrap(rt_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[RT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[RT_ERROR_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return -1;
}

bool rt_dims_product(const int64_t *dims, int n, size_t *out) {
    size_t p = 1;
    for (int i = 0; i < n; i++) {
        if (dims[i] <= 0) return false;
        if ((uint64_t)dims[i] > SIZE_MAX) return false;
        if (!rt_mul_size(p, (size_t)dims[i], &p)) return false;
    }
    *out = p;
    return true;
}

// Room for need bytes in all; false (oom set) when it cannot be had.
static bool buf_reserve(rt_buf *b, size_t need) {
    if (need <= b->cap) return true;
    if (need > SIZE_MAX / 2) {
        b->oom = 1;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void rt_buf_append(rt_buf *b, const void *data, size_t len) {
    size_t need;
    if (b->oom || len == 0) return;
    if (!rt_add_size(b->len, len, &need)) {
        b->oom = 1;
        return;
    }
    if (!buf_reserve(b, need)) return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void rt_buf_printf(rt_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t need;
    if (n < 0 || !rt_add_size(b->len, (size_t)n + 1, &need)) {
        b->oom = 1;
        return;
    }
    if (!buf_reserve(b, need)) return;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rt_buf_free(rt_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void *rt_malloc(size_t bytes, const char *what, rt_error *err) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) rt_fail(err, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *rt_calloc(size_t count, size_t size, const char *what, rt_error *err) {
    size_t bytes;
    if (!rt_mul_size(count, size, &bytes)) {
        rt_fail(err, "size overflow allocating %zu x %zu bytes for %s", count, size, what);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) rt_fail(err, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *rt_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int rt_read_file(const char *path, char **out, size_t *len, rt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return rt_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                fclose(f);
                return rt_fail(err, "%s: file too large", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return rt_fail(err, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rt_fail(err, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}

int rt_fsync_path(const char *path, rt_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rt_fail(err, "%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return rt_fail(err, "%s: fsync failed: %s", path, strerror(e));
    return 0;
}

int rt_fsync_parent_dir(const char *path, rt_error *err) {
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) return rt_fail(err, "%s: path too long", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return rt_fail(err, "%s: cannot open directory for fsync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    // Some file systems refuse fsync on directories; that is not a data-loss condition we can fix.
    if (rc != 0 && e != EINVAL && e != EBADF) return rt_fail(err, "%s: fsync failed: %s", dir, strerror(e));
    return 0;
}

int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rt_fail(err, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return rt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    size_t put = fwrite(data, 1, len, f);
    int bad = put != len || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        unlink(tmp);
        return rt_fail(err, "%s: write failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return rt_fail(err, "%s: rename failed: %s", path, strerror(e));
    }
    return rt_fsync_parent_dir(path, err);
}

int rt_mkdir_p(const char *path, rt_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0) return 0;
    if (n >= sizeof buf) return rt_fail(err, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return rt_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return rt_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return rt_fail(err, "%s: not a directory", buf);
    return 0;
}

int rt_file_hash(const char *path, char out[17], rt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(err, "%s: cannot open to hash it: %s", path, strerror(errno));
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
    int bad = ferror(f);
    fclose(f);
    if (bad) return rt_fail(err, "%s: read error while hashing it", path);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}
