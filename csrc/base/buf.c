// The growable byte buffer (buf.h).
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

// The shortest %e precision that reads back exactly, then fixed notation where Python's repr uses it.
void rt_buf_py_float(rt_buf *b, double x) {
    char s[48];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(s, sizeof s, "%.*e", prec - 1, x);
        if (strtod(s, NULL) == x) break;
    }
    snprintf(s, sizeof s, "%.*e", prec - 1, x);
    int exp = atoi(strchr(s, 'e') + 1);
    if (x != 0 && (exp < -4 || exp >= 16)) {
        rt_buf_printf(b, "%s", s);
        return;
    }
    int decimals = prec - 1 - exp;
    rt_buf_printf(b, "%.*f", decimals > 1 ? decimals : 1, x);
}

void rt_buf_json_string(rt_buf *b, const char *s) {
    rt_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            rt_buf_printf(b, "\\%c", *p);
        else if (*p < 0x20)
            rt_buf_printf(b, "\\u%04x", *p);
        else
            rt_buf_append(b, p, 1);
    }
    rt_buf_append(b, "\"", 1);
}
