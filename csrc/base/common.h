// Shared basics: error reporting, checked size arithmetic, allocation, the clock. Byte buffers are in
// buf.h, file helpers in files.h.
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

// malloc/calloc that fill err on failure (name says what was being allocated).
void *rt_malloc(size_t bytes, const char *what, rt_error *err);
void *rt_calloc(size_t count, size_t size, const char *what, rt_error *err);

// Monotonic wall clock in seconds.
double rt_now(void);

// Duplicate a string (NULL on allocation failure).
char *rt_strdup(const char *s);

#endif
