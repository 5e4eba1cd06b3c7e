// Typed members of the JSON files that come with imported models and adapters (config.json,
// adapter_config.json): each getter checks the member's type and range and, when it does not fit, fails with
// a message naming the file, the key and what was expected ("config.json: rope_scaling.factor: expected a
// number >= 1 (got "x")"). A member that is null counts as absent, as transformers and PEFT treat it.
#ifndef RT_JSON_FIELDS_H
#define RT_JSON_FIELDS_H

#include "base/common.h"
#include "base/json.h"

typedef struct rt_json_reader {
    const char *path; // the file, for messages
    rt_error *err;
} rt_json_reader;

// A member that is present and not null, or NULL.
const rt_json *rt_jf_get(const rt_json *obj, const char *key);

// Fails naming path, what (a prefix such as "rope_scaling.", or ""), key, the expectation and what v is
// ("it is missing" when v is NULL).
int rt_jf_bad(rt_json_reader *r, const char *what, const char *key, const rt_json *v, const char *expected);

// v as an integer in [lo, hi]. A whole number written as a float (64.0) is accepted too.
int rt_jf_int_value(rt_json_reader *r, const rt_json *v, const char *what, const char *key, int lo, int hi,
                    int *out);

// An integer member in [lo, hi]; dflt < lo makes the key required.
int rt_jf_int(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, int dflt, int lo,
              int hi, int *out);

// A finite number greater than lo (or equal when inclusive); NAN as dflt makes the key required.
int rt_jf_num(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, double dflt,
              double lo, int inclusive, double *out);

int rt_jf_bool(rt_json_reader *r, const rt_json *obj, const char *key, int dflt, int *out);

// A string member (no NUL inside), or NULL when absent or null; -1 when present with another type.
int rt_jf_str(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, const char **out);

#endif
