// Shared basics: error reporting, checked size arithmetic, small utilities.
//
// Convention: every fallible function returns int, 0 on success and -1 on failure, and fills an
// rt_error with a message that names the file / key / tensor and says what was expected. Only the CLI
// decides to exit.
#ifndef RT_COMMON_H
#define RT_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_ERROR_MAX 1024

typedef struct rt_error {
    char msg[RT_ERROR_MAX];
} rt_error;

#if defined(__GNUC__)
#define RT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RT_PRINTF(f, a)
#endif

// Sets err->msg (when err is not NULL) and returns -1, so callers can write `return rt_fail(err, ...)`.
int rt_fail(rt_error *err, const char *fmt, ...) RT_PRINTF(2, 3);

// Prepends context to an existing message: "context: old message".
int rt_fail_wrap(rt_error *err, const char *fmt, ...) RT_PRINTF(2, 3);

// Overflow-safe size arithmetic: return false when the result does not fit.
static inline bool rt_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool rt_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}
// Product of n dims, each required to be > 0; false on overflow or a non-positive dim.
bool rt_dims_product(const int64_t *dims, int n, size_t *out);

// A growable byte buffer. After an allocation fails, appends are dropped and oom stays set, so a
// builder appends freely and checks once, at the end.
typedef struct rt_buf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} rt_buf;
void rt_buf_append(rt_buf *b, const void *data, size_t len);
// Appends printf-formatted text and keeps a NUL after it (not counted in len), so data is a C string.
void rt_buf_printf(rt_buf *b, const char *fmt, ...) RT_PRINTF(2, 3);
void rt_buf_free(rt_buf *b);

// malloc/calloc that fill err on failure (name says what was being allocated).
void *rt_malloc(size_t bytes, const char *what, rt_error *err);
void *rt_calloc(size_t count, size_t size, const char *what, rt_error *err);

// Monotonic wall clock in seconds.
double rt_now(void);

// Duplicate a string (NULL on allocation failure).
char *rt_strdup(const char *s);

// Read a whole file into a NUL-terminated buffer. *len excludes the terminator.
int rt_read_file(const char *path, char **out, size_t *len, rt_error *err);

// Write a whole file atomically: temp file in the same directory, fsync, rename, fsync directory.
int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_error *err);

// fsync a file by path, and the directory that holds a path.
int rt_fsync_path(const char *path, rt_error *err);
int rt_fsync_parent_dir(const char *path, rt_error *err);

// mkdir -p.
int rt_mkdir_p(const char *path, rt_error *err);

// Content hash of a file: 64-bit FNV-1a over its bytes, as 16 hex digits in out (identity, not security:
// it tells which teacher or base checkpoint a file came from).
int rt_file_hash(const char *path, char out[17], rt_error *err);

#endif
