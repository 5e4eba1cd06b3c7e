// A growable byte buffer for writers that build a file or a message in memory.
#ifndef RT_BUF_H
#define RT_BUF_H

#include "base/common.h"

// After an allocation fails, appends are dropped and oom stays set, so a builder appends freely and checks
// once, at the end.
typedef struct rt_buf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} rt_buf;
void rt_buf_append(rt_buf *b, const void *data, size_t len);
// Appends printf-formatted text and keeps a NUL after it (not counted in len), so data is a C string.
void rt_buf_printf(rt_buf *b, const char *fmt, ...) RT_PRINTF(2, 3);
void rt_buf_free(rt_buf *b);
// Appends a finite double as Python's json module writes a float (repr): the shortest digits that read back
// exactly, in fixed notation with at least one decimal when the exponent is in [-4, 16) (10000.0, 0.02),
// else as 1e-06. JSON files that Python programs wrote and compare look the same when retort writes them.
void rt_buf_py_float(rt_buf *b, double x);
// Appends s (UTF-8, NUL-terminated) as a JSON string literal: quotes, backslashes and control bytes escaped.
void rt_buf_json_string(rt_buf *b, const char *s);

#endif
