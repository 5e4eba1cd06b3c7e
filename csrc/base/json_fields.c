// Typed JSON members with messages naming file and key (json_fields.h).
#include "base/json_fields.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// A member that is present and not null.
const rt_json *rt_jf_get(const rt_json *obj, const char *key) {
    const rt_json *v = rt_json_get(obj, key);
    return v && v->type != RT_JSON_NULL ? v : NULL;
}

static const char *type_name(const rt_json *v) {
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    return names[v->type];
}

// "got 12.5", "got \"gelu\"" or "got an array", for messages.
static void got_str(const rt_json *v, char *out, size_t cap) {
    if (v->type == RT_JSON_NUMBER)
        snprintf(out, cap, "got %.40s", v->str);
    else if (v->type == RT_JSON_STRING)
        snprintf(out, cap, "got \"%.40s\"", v->str);
    else if (v->type == RT_JSON_BOOL)
        snprintf(out, cap, "got %s", v->boolean ? "true" : "false");
    else
        snprintf(out, cap, "got %s", type_name(v));
}

int rt_jf_bad(rt_json_reader *r, const char *what, const char *key, const rt_json *v, const char *expected) {
    char got[64] = "it is missing";
    if (v) got_str(v, got, sizeof got);
    return rt_fail(r->err, "%s: %s%s: expected %s (%s)", r->path, what, key, expected, got);
}

// v as an integer in [lo, hi]. A whole number written as a float (64.0) is accepted too.
int rt_jf_int_value(rt_json_reader *r, const rt_json *v, const char *what, const char *key, int lo, int hi,
                    int *out) {
    uint64_t x;
    char *end = NULL;
    double d = v->type == RT_JSON_NUMBER ? strtod(v->str, &end) : NAN;
    if (v->type == RT_JSON_NUMBER && rt_json_u64(v, &x) == 0 && x >= (uint64_t)lo && x <= (uint64_t)hi) {
        *out = (int)x;
        return 0;
    }
    if (v->type == RT_JSON_NUMBER && end && *end == '\0' && d == floor(d) && d >= lo && d <= hi) {
        *out = (int)d;
        return 0;
    }
    char expected[64];
    snprintf(expected, sizeof expected, "an integer from %d to %d", lo, hi);
    return rt_jf_bad(r, what, key, v, expected);
}

// An integer member in [lo, hi]; dflt < lo makes the key required. what prefixes the key ("rope_scaling.").
int rt_jf_int(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, int dflt, int lo,
              int hi, int *out) {
    const rt_json *v = rt_jf_get(obj, key);
    if (!v) {
        if (dflt < lo) return rt_jf_bad(r, what, key, NULL, "an integer");
        *out = dflt;
        return 0;
    }
    return rt_jf_int_value(r, v, what, key, lo, hi, out);
}

// A finite number greater than lo (or equal when inclusive); NAN as dflt makes the key required.
int rt_jf_num(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, double dflt,
              double lo, int inclusive, double *out) {
    const rt_json *v = rt_jf_get(obj, key);
    if (!v && !isnan(dflt)) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    double d = v && v->type == RT_JSON_NUMBER ? strtod(v->str, &end) : NAN;
    if (v && end && *end == '\0' && isfinite(d) && (inclusive ? d >= lo : d > lo)) {
        *out = d;
        return 0;
    }
    char expected[64];
    snprintf(expected, sizeof expected, "a number %s %g", inclusive ? ">=" : ">", lo);
    return rt_jf_bad(r, what, key, v, expected);
}

int rt_jf_bool(rt_json_reader *r, const rt_json *obj, const char *key, int dflt, int *out) {
    const rt_json *v = rt_jf_get(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (v->type != RT_JSON_BOOL) return rt_jf_bad(r, "", key, v, "true or false");
    *out = v->boolean;
    return 0;
}

// A string member, or NULL when absent or null; -1 when present with another type.
int rt_jf_str(rt_json_reader *r, const rt_json *obj, const char *what, const char *key, const char **out) {
    const rt_json *v = rt_jf_get(obj, key);
    *out = NULL;
    if (!v) return 0;
    if (v->type != RT_JSON_STRING || strlen(v->str) != v->len) return rt_jf_bad(r, what, key, v, "a string");
    *out = v->str;
    return 0;
}
