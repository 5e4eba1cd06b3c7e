// A small strict JSON reader for JSONL datasets: one object per line, string values decoded to UTF-8 bytes
// (all escapes, \uXXXX with surrogate pairs), other values validated and skipped.
#ifndef RT_JSON_H
#define RT_JSON_H

#include <stddef.h>
#include <stdint.h>

// Called for each top-level key of the object whose value is a string (value/len are the decoded bytes).
// Return 0 to go on, -1 to stop with the error already in msg.
typedef int (*rt_json_string_field)(const char *key, const char *value, size_t len, void *user);

// Parse one JSON object from text[0 .. len). On failure returns -1 and writes a message to msg (cap bytes)
// that says what was expected and at which column. Keys whose values are not strings are reported
// through non_string (may be NULL) so the caller can reject them.
int rt_json_object(const char *text, size_t len, rt_json_string_field on_string,
                   int (*non_string)(const char *key, void *user), void *user, char *msg, size_t cap);

// A whole JSON document as a tree, for nested formats (safetensors headers, index files). Strings are
// decoded UTF-8 (NUL-terminated; len counts the bytes, so embedded NULs stay visible). A number keeps its
// source text, so integers beyond 2^53 (byte offsets) are read exactly by rt_json_u64. Object members keep
// their order and duplicates; callers that need unique keys check for them.
typedef enum {
    RT_JSON_NULL,
    RT_JSON_BOOL,
    RT_JSON_NUMBER,
    RT_JSON_STRING,
    RT_JSON_ARRAY,
    RT_JSON_OBJECT
} rt_json_type;

typedef struct rt_json {
    rt_json_type type;
    int boolean;
    char *str; // string bytes, or a number's text
    size_t len;
    size_t n;              // array items / object members
    struct rt_json *items; // n values
    char **keys;           // n keys (objects only)
    size_t column;         // 1-based offset of the value in the text, for messages
} rt_json;

// Parse text[0 .. len) as one JSON value (nesting up to 64 deep). On failure returns -1 with a message in
// msg that says what was expected and at which column; *out is then empty (nothing to free).
int rt_json_parse(const char *text, size_t len, rt_json *out, char *msg, size_t cap);
void rt_json_free(rt_json *v);
// The first member named key of an object, or NULL (also NULL when obj is not an object).
const rt_json *rt_json_get(const rt_json *obj, const char *key);
// A number written as a plain non-negative integer (no sign, fraction or exponent) that fits in 64 bits.
int rt_json_u64(const rt_json *v, uint64_t *out);

#endif
