// A small strict JSON reader for JSONL datasets: one object per line, string values decoded to UTF-8 bytes
// (all escapes, \uXXXX with surrogate pairs), other values validated and skipped.
#ifndef RT_JSON_H
#define RT_JSON_H

#include <stddef.h>

// Called for each top-level key of the object whose value is a string (value/len are the decoded bytes).
// Return 0 to go on, -1 to stop with the error already in msg.
typedef int (*rt_json_string_field)(const char *key, const char *value, size_t len, void *user);

// Parse one JSON object from text[0 .. len). On failure returns -1 and writes a message to msg (cap bytes)
// that says what was expected and at which column. Keys whose values are not strings are reported
// through non_string (may be NULL) so the caller can reject them.
int rt_json_object(const char *text, size_t len, rt_json_string_field on_string,
                   int (*non_string)(const char *key, void *user), void *user, char *msg, size_t cap);

#endif
