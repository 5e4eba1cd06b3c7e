// Error reporting, checked size arithmetic, allocation and the clock (common.h).
#define _POSIX_C_SOURCE 200809L
#include "base/common.h"

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
