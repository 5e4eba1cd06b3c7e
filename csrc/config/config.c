// YAML configs checked against the schema (config_schema.c): parsing with file:line errors, key=value
// overrides, cross-key validation, the resolved config as YAML, and --help.
//
// The file is read with libyaml's event API rather than its document loader: a config is only two levels of
// mappings, so the first list, nested mapping or bad value can be refused as soon as it starts. The document
// loader first builds the whole tree, and libyaml's scanner is quadratic in flow nesting depth, so a 200 KB
// file of '[' took minutes; here parsing stops at the third level.
#define _POSIX_C_SOURCE 200809L
#include "config/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "model/lora.h"
#include "base/buf.h"
#include "base/files.h"

static const char *const sections[] = {"run",   "model",   "data",     "train", "checkpoint", "system",
                                       "synth", "distill", "finetune", "lora",  "qlora"};
#define N_SECTIONS   ((int)(sizeof sections / sizeof sections[0]))
#define SECTION_LIST "run, model, data, train, checkpoint, system, synth, distill, finetune, lora, qlora"
#define MAX_KEYS     256 // bound on the schema size, for the per-key "seen on line" table
#define MAX_ANCHORS  64

static const char *type_name(rt_cfg_type t) {
    switch (t) {
    case RT_CFG_INT:
        return "int";
    case RT_CFG_FLOAT:
        return "float";
    case RT_CFG_BOOL:
        return "bool";
    case RT_CFG_STRING:
        return "string";
    case RT_CFG_ENUM:
        return "enum";
    }
    return "?";
}

static int find_key(const char *path) {
    for (int i = 0; i < rt_config_schema_len; i++)
        if (strcmp(rt_config_schema[i].path, path) == 0) return i;
    return -1;
}

// Levenshtein distance; long strings are never near a key, so they are not compared.
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

// " (did you mean train.lr?)" for the closest known key within edit distance 2, else "". A key put in the
// wrong section ("model.lr") is also found by its last component.
static void suggest_key(char *out, size_t cap, const char *path) {
    int best = 3;
    const char *best_path = NULL;
    const char *dot = strrchr(path, '.');
    const char *leaf = dot ? dot + 1 : path;
    for (int i = 0; i < rt_config_schema_len; i++) {
        const char *p = rt_config_schema[i].path;
        int d = edit_distance(path, p);
        if (d < best) best = d, best_path = p;
    }
    if (!best_path) {
        for (int i = 0; i < rt_config_schema_len; i++) {
            const char *p = rt_config_schema[i].path;
            if (strcmp(strchr(p, '.') + 1, leaf) == 0) {
                best_path = p;
                break;
            }
        }
    }
    if (best_path)
        snprintf(out, cap, " (did you mean %s?)", best_path);
    else
        out[0] = '\0';
}

static void suggest_section(char *out, size_t cap, const char *name) {
    int best = 3;
    out[0] = '\0';
    for (int i = 0; i < N_SECTIONS; i++) {
        int d = edit_distance(name, sections[i]);
        if (d < best) {
            best = d;
            snprintf(out, cap, " (did you mean %s?)", sections[i]);
        }
    }
}

// Shortest %g form that reads back as the same double (3e-4, not 0.00029999999999999997); whole numbers
// stay whole (10000, not 1e+04).
static void fmt_double(char *out, size_t cap, double v) {
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static int out_of_range(const rt_cfg_key *k, const char *text, rt_error *err) {
    char lo[32], hi[32];
    fmt_double(lo, sizeof lo, k->min);
    fmt_double(hi, sizeof hi, k->max);
    return rt_fail(err, "%s: %.60s is out of range: must be in [%s, %s]", k->path, text, lo, hi);
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
    }
    return -1;
}

static int choice_ok(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

// Decodes one UTF-8 code point at s into *cp; returns its length in bytes, 0 when the bytes are not valid
// UTF-8 (overlong forms, surrogates and values past U+10FFFF included).
static int utf8_decode(const unsigned char *s, uint32_t *cp) {
    int n = s[0] < 0x80             ? 1
            : (s[0] & 0xe0) == 0xc0 ? 2
            : (s[0] & 0xf0) == 0xe0 ? 3
            : (s[0] & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0) return 0;
    uint32_t c = n == 1 ? s[0] : (uint32_t)(s[0] & (0x7f >> n));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_for_len[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return n;
}

// Strings go back out through YAML (checkpoints, the printed config), which must be UTF-8.
static int valid_utf8(const unsigned char *s) {
    uint32_t cp;
    for (int n; *s; s += n)
        if ((n = utf8_decode(s, &cp)) == 0) return 0;
    return 1;
}

// Decimal integer: optional sign, digits, nothing else ("12abc", "1.5", "0x10", " 1" and "010" are refused:
// YAML 1.1 would read 010 as octal, so it is ambiguous).
static int parse_int(const char *s, long long *out, int *overflow) {
    const char *d = s + (*s == '-' || *s == '+');
    if (*d < '0' || *d > '9' || (d[0] == '0' && d[1] != '\0')) return -1;
    for (const char *p = d; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    errno = 0;
    *out = strtoll(s, NULL, 10);
    *overflow = errno == ERANGE;
    return 0;
}

// Plain decimal or exponent notation; no hex floats, inf or nan, no surrounding spaces.
static int parse_float(const char *s, double *out, int *overflow) {
    const unsigned char *p = (const unsigned char *)s;
    if (!*p) return -1;
    for (; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-'))
            return -1;
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (*end || end == s) return -1;
    *overflow = errno == ERANGE || !isfinite(*out);
    return 0;
}

// Parse one value into its field; is_null marks an empty or ~ plain YAML scalar. Messages start with the key.
static int set_value(rt_config *cfg, const rt_cfg_key *k, const char *text, int is_null, rt_error *err) {
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case RT_CFG_INT: {
        if (is_null) return rt_fail(err, "%s: expected an integer, got an empty value", k->path);
        long long v;
        int overflow;
        if (parse_int(text, &v, &overflow))
            return rt_fail(err, "%s: expected an integer, got '%.60s'", k->path, text);
        if (overflow || (double)v < k->min || (double)v > k->max) return out_of_range(k, text, err);
        if (k->size == sizeof(int)) {
            if (v < INT_MIN || v > INT_MAX) return out_of_range(k, text, err);
            *(int *)field = (int)v;
        } else {
            *(int64_t *)field = (int64_t)v;
        }
        return 0;
    }
    case RT_CFG_FLOAT: {
        if (is_null) return rt_fail(err, "%s: expected a number, got an empty value", k->path);
        double v;
        int overflow;
        if (parse_float(text, &v, &overflow))
            return rt_fail(err, "%s: expected a number, got '%.60s'", k->path, text);
        if (overflow || v < k->min || v > k->max) return out_of_range(k, text, err);
        *(double *)field = v;
        return 0;
    }
    case RT_CFG_BOOL: {
        int b;
        if (is_null) return rt_fail(err, "%s: expected true or false, got an empty value", k->path);
        if (parse_bool(text, &b))
            return rt_fail(err, "%s: expected true or false, got '%.60s'", k->path, text);
        *(int *)field = b;
        return 0;
    }
    case RT_CFG_ENUM:
        if (is_null) return rt_fail(err, "%s: expected one of %s, got an empty value", k->path, k->choices);
        if (!choice_ok(k->choices, text))
            return rt_fail(err, "%s: expected one of %s, got '%.60s'", k->path, k->choices, text);
        snprintf(field, k->size, "%s", text);
        return 0;
    case RT_CFG_STRING: {
        if (is_null) text = "";
        size_t n = strlen(text);
        if (n >= k->size)
            return rt_fail(err, "%s: value is %zu characters long, the limit is %zu", k->path, n,
                           k->size - 1);
        if (!valid_utf8((const unsigned char *)text))
            return rt_fail(err, "%s: value is not valid UTF-8", k->path);
        memcpy(field, text, n + 1);
        return 0;
    }
    }
    return rt_fail(err, "%s: unknown key type", k->path);
}

void rt_config_defaults(rt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < rt_config_schema_len; i++) {
        // The defaults are ours; tests/test_config.c checks that every one parses.
        rt_error err;
        set_value(cfg, &rt_config_schema[i], rt_config_schema[i].dflt, 0, &err);
    }
}

// ---------------------------------------------------------------------------------------------------
// YAML events

typedef struct anchor {
    char *name, *value;
    size_t len;
    int is_null;
} anchor;

typedef struct loader {
    yaml_parser_t parser;
    yaml_event_t ev; // the current event
    int have_ev;
    const unsigned char *text;
    size_t text_len;
    const char *name; // file name for messages
    rt_config *cfg;
    rt_error *err;
    size_t key_line[MAX_KEYS]; // line each key was set on, 0 = not yet
    size_t section_line[N_SECTIONS];
    anchor anchors[MAX_ANCHORS];
    int n_anchors;
} loader;

// A scalar value, from a scalar event or an alias of one.
typedef struct scalar {
    const char *text;
    size_t len;
    int is_null;
} scalar;

static size_t ev_line(const loader *L) {
    return L->ev.start_mark.line + 1;
}

// Next event into L->ev; a YAML syntax error becomes "file:line: YAML syntax error: ...".
static int next_event(loader *L) {
    if (L->have_ev) yaml_event_delete(&L->ev);
    L->have_ev = 0;
    if (yaml_parser_parse(&L->parser, &L->ev)) {
        L->have_ev = 1;
        return 0;
    }
    yaml_parser_t *p = &L->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return rt_fail(L->err, "%s: out of memory while parsing YAML", L->name);
    size_t line = p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) { // encoding errors carry a byte offset, not a mark
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < L->text_len; i++) line += L->text[i] == '\n';
    }
    char ctx[160] = "";
    if (p->context)
        snprintf(ctx, sizeof ctx, " (%s, line %zu)", p->context, (size_t)p->context_mark.line + 1);
    return rt_fail(L->err, "%s:%zu: YAML syntax error: %s%s", L->name, line,
                   p->problem ? p->problem : "unreadable input", ctx);
}

static const char *event_kind(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "a single value";
    }
}

static int is_null_scalar(const yaml_event_t *ev) {
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0; // "" and '~' are strings
    const char *s = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

// Remembers a scalar's anchor so a later alias can reuse its value.
static int remember_anchor(loader *L) {
    const char *name = (const char *)L->ev.data.scalar.anchor;
    if (!name) return 0;
    if (L->n_anchors == MAX_ANCHORS)
        return rt_fail(L->err, "%s:%zu: more than %d anchors", L->name, ev_line(L), MAX_ANCHORS);
    anchor *a = &L->anchors[L->n_anchors];
    a->name = rt_strdup(name);
    a->value = malloc(L->ev.data.scalar.length + 1);
    if (!a->name || !a->value) {
        free(a->name), free(a->value);
        return rt_fail(L->err, "%s: out of memory while parsing YAML", L->name);
    }
    memcpy(a->value, L->ev.data.scalar.value, L->ev.data.scalar.length + 1);
    a->len = L->ev.data.scalar.length;
    a->is_null = is_null_scalar(&L->ev);
    L->n_anchors++;
    return 0;
}

// The current event as a single value for key `path`: a scalar or an alias of an earlier scalar.
static int value_scalar(loader *L, const char *path, scalar *out) {
    if (L->ev.type == YAML_SCALAR_EVENT) {
        if (remember_anchor(L)) return -1;
        *out =
            (scalar){(const char *)L->ev.data.scalar.value, L->ev.data.scalar.length, is_null_scalar(&L->ev)};
        return 0;
    }
    if (L->ev.type == YAML_ALIAS_EVENT) {
        const char *name = (const char *)L->ev.data.alias.anchor;
        for (int i = L->n_anchors - 1; i >= 0; i--) {
            if (strcmp(L->anchors[i].name, name) == 0) {
                *out = (scalar){L->anchors[i].value, L->anchors[i].len, L->anchors[i].is_null};
                return 0;
            }
        }
        return rt_fail(L->err, "%s:%zu: %s: alias *%.60s does not name an earlier single value", L->name,
                       ev_line(L), path, name);
    }
    return rt_fail(L->err, "%s:%zu: %s: expected a single value, got %s", L->name, ev_line(L), path,
                   event_kind(&L->ev));
}

// Keys of one section, up to its MAPPING-END. The current event is the section's MAPPING-START.
static int load_section(loader *L, int s) {
    for (;;) {
        if (next_event(L)) return -1;
        if (L->ev.type == YAML_MAPPING_END_EVENT) return 0;
        size_t line = ev_line(L);
        if (L->ev.type != YAML_SCALAR_EVENT)
            return rt_fail(L->err, "%s:%zu: %s: keys must be plain names, got %s", L->name, line, sections[s],
                           event_kind(&L->ev));
        char path[160];
        snprintf(path, sizeof path, "%s.%.100s", sections[s], (const char *)L->ev.data.scalar.value);
        int ki = find_key(path);
        if (ki < 0) {
            char hint[160];
            suggest_key(hint, sizeof hint, path);
            return rt_fail(L->err, "%s:%zu: %s: unknown key%s", L->name, line, path, hint);
        }
        if (L->key_line[ki])
            return rt_fail(L->err,
                           "%s:%zu: %s: duplicate key (first set on line %zu); each key may appear once",
                           L->name, line, path, L->key_line[ki]);
        L->key_line[ki] = line;

        if (next_event(L)) return -1;
        scalar v = {"", 0, 1};
        if (value_scalar(L, path, &v)) return -1;
        size_t vline = v.is_null ? line : ev_line(L); // an empty value has no line of its own
        if (strlen(v.text) != v.len)
            return rt_fail(L->err, "%s:%zu: %s: value contains a NUL byte", L->name, vline, path);
        rt_error e;
        if (set_value(L->cfg, &rt_config_schema[ki], v.text, v.is_null, &e))
            return rt_fail(L->err, "%s:%zu: %s", L->name, vline, e.msg);
    }
}

// The sections of the root mapping. The current event is the root's MAPPING-START.
static int load_sections(loader *L) {
    for (;;) {
        if (next_event(L)) return -1;
        if (L->ev.type == YAML_MAPPING_END_EVENT) return 0;
        size_t line = ev_line(L);
        if (L->ev.type != YAML_SCALAR_EVENT)
            return rt_fail(L->err, "%s:%zu: expected a section name (" SECTION_LIST "), got %s", L->name,
                           line, event_kind(&L->ev));
        const char *sname = (const char *)L->ev.data.scalar.value;
        int s = 0;
        while (s < N_SECTIONS && strcmp(sections[s], sname) != 0) s++;
        if (s == N_SECTIONS) {
            char hint[64];
            suggest_section(hint, sizeof hint, sname);
            return rt_fail(L->err, "%s:%zu: %.60s: unknown section%s; sections are " SECTION_LIST, L->name,
                           line, sname, hint);
        }
        if (L->section_line[s])
            return rt_fail(L->err,
                           "%s:%zu: %s: duplicate section (first on line %zu); each section may appear once",
                           L->name, line, sections[s], L->section_line[s]);
        L->section_line[s] = line;

        if (next_event(L)) return -1;
        if (L->ev.type == YAML_SCALAR_EVENT && is_null_scalar(&L->ev)) continue; // "train:" with no keys
        if (L->ev.type != YAML_MAPPING_START_EVENT)
            return rt_fail(L->err, "%s:%zu: %s: expected a mapping of keys, got %s", L->name, ev_line(L),
                           sections[s], event_kind(&L->ev));
        if (load_section(L, s)) return -1;
    }
}

static int load_stream(loader *L) {
    if (next_event(L)) return -1; // STREAM-START
    if (next_event(L)) return -1;
    if (L->ev.type == YAML_STREAM_END_EVENT) return 0; // empty file: all defaults
    if (next_event(L)) return -1;                      // after DOCUMENT-START: the root
    if (L->ev.type == YAML_MAPPING_START_EVENT) {
        if (load_sections(L)) return -1;
    } else if (!(L->ev.type == YAML_SCALAR_EVENT && is_null_scalar(&L->ev))) { // only comments / "---"
        return rt_fail(L->err, "%s:%zu: expected a mapping of sections (" SECTION_LIST "), got %s", L->name,
                       ev_line(L), event_kind(&L->ev));
    }
    if (next_event(L)) return -1; // DOCUMENT-END
    if (next_event(L)) return -1;
    if (L->ev.type != YAML_STREAM_END_EVENT) // a second document would otherwise be ignored
        return rt_fail(L->err, "%s:%zu: found a second YAML document; a config holds one", L->name,
                       ev_line(L));
    return 0;
}

int rt_config_load_string(rt_config *cfg, const char *yaml, size_t len, const char *name, rt_error *err) {
    if (!name) name = "<config>";
    if (!yaml && len) return rt_fail(err, "%s: no text", name);
    loader *L = calloc(1, sizeof *L);
    if (!L) return rt_fail(err, "%s: out of memory", name);
    if (rt_config_schema_len > MAX_KEYS) {
        free(L);
        return rt_fail(err, "%s: the schema has %d keys, more than the loader's %d", name,
                       rt_config_schema_len, MAX_KEYS);
    }
    if (!yaml_parser_initialize(&L->parser)) {
        free(L);
        return rt_fail(err, "%s: cannot initialise the YAML parser", name);
    }
    L->text = (const unsigned char *)(yaml ? yaml : "");
    L->text_len = len;
    L->name = name;
    L->cfg = cfg;
    L->err = err;
    yaml_parser_set_input_string(&L->parser, L->text, len);
    int rc = load_stream(L);
    if (L->have_ev) yaml_event_delete(&L->ev);
    yaml_parser_delete(&L->parser);
    for (int i = 0; i < L->n_anchors; i++) free(L->anchors[i].name), free(L->anchors[i].value);
    free(L);
    return rc;
}

int rt_config_load_file(rt_config *cfg, const char *path, rt_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (rt_read_file(path, &text, &len, err)) return -1;
    int rc = rt_config_load_string(cfg, text, len, path, err);
    free(text);
    return rc;
}

int rt_config_apply_override(rt_config *cfg, const char *assignment, rt_error *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return rt_fail(err, "override '%.100s': expected section.key=value, e.g. train.lr=1e-3", assignment);
    char path[160];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof path) return rt_fail(err, "override '%.100s...': key too long", assignment);
    memcpy(path, assignment, n);
    path[n] = '\0';
    int ki = find_key(path);
    if (ki < 0) {
        char hint[160];
        suggest_key(hint, sizeof hint, path);
        return rt_fail(err, "override %.200s: %s: unknown key%s", assignment, path, hint);
    }
    // the value reads like a plain YAML scalar: empty or ~ is null
    const char *v = eq + 1;
    int is_null = v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0;
    rt_error e;
    if (set_value(cfg, &rt_config_schema[ki], v, is_null, &e))
        return rt_fail(err, "override %.200s: %s", assignment, e.msg);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// validation

// Each field against its schema row again: a config built in code, or a struct from elsewhere, gets the
// same checks as a parsed one (and the cross-key checks below never divide by zero).
static int check_field(const rt_config *cfg, const rt_cfg_key *k, rt_error *err) {
    const char *field = (const char *)cfg + k->offset;
    char text[64];
    switch (k->type) {
    case RT_CFG_INT: {
        long long v = k->size == sizeof(int) ? *(const int *)field : (long long)*(const int64_t *)field;
        snprintf(text, sizeof text, "%lld", v);
        if ((double)v < k->min || (double)v > k->max) return out_of_range(k, text, err);
        return 0;
    }
    case RT_CFG_FLOAT: {
        double v = *(const double *)field;
        fmt_double(text, sizeof text, v);
        if (!isfinite(v) || v < k->min || v > k->max) return out_of_range(k, text, err);
        return 0;
    }
    case RT_CFG_BOOL:
        if (*(const int *)field != 0 && *(const int *)field != 1)
            return rt_fail(err, "%s: expected true or false, got %d", k->path, *(const int *)field);
        return 0;
    case RT_CFG_ENUM:
    case RT_CFG_STRING:
        if (!memchr(field, '\0', k->size)) return rt_fail(err, "%s: value is not terminated", k->path);
        if (k->type == RT_CFG_ENUM && !choice_ok(k->choices, field))
            return rt_fail(err, "%s: expected one of %s, got '%.60s'", k->path, k->choices, field);
        return 0;
    }
    return rt_fail(err, "%s: unknown key type", k->path);
}

int rt_config_head_dim(const rt_config *c) {
    return c->model.head_dim > 0 ? c->model.head_dim : c->model.dim / c->model.n_heads;
}

int rt_config_validate(const rt_config *c, rt_error *err) {
    for (int i = 0; i < rt_config_schema_len; i++)
        if (check_field(c, &rt_config_schema[i], err)) return -1;
    const int H = c->model.n_heads, KVH = c->model.n_kv_heads, C = c->model.dim;
    if (c->model.vocab_size < 259)
        return rt_fail(err,
                       "model.vocab_size %d is below 259, the byte tokenizer's 256 bytes + BOS, EOS, PAD",
                       c->model.vocab_size);
    if (H % KVH != 0)
        return rt_fail(err, "model.n_kv_heads %d must divide model.n_heads %d (grouped-query attention)", KVH,
                       H);
    if (c->model.head_dim == 0 && (C % H != 0 || (C / H) % 2 != 0))
        return rt_fail(
            err,
            "model.dim %d / model.n_heads %d must be a whole, even head dim (RoPE rotates pairs); or set "
            "model.head_dim",
            C, H);
    if (c->model.head_dim % 2 != 0)
        return rt_fail(err, "model.head_dim %d must be even (RoPE rotates pairs)", c->model.head_dim);
    if (!(c->model.rope_high_freq_factor > c->model.rope_low_freq_factor))
        return rt_fail(
            err,
            "model.rope_high_freq_factor %g must exceed model.rope_low_freq_factor %g (llama3 RoPE "
            "scaling ramps between them)",
            c->model.rope_high_freq_factor, c->model.rope_low_freq_factor);
    if (c->data.seq_len > c->model.max_seq_len)
        return rt_fail(err,
                       "data.seq_len %d exceeds model.max_seq_len %d; raise max_seq_len or shorten seq_len",
                       c->data.seq_len, c->model.max_seq_len);
    if (c->train.min_lr > c->train.lr)
        return rt_fail(err, "train.min_lr %g exceeds train.lr %g", c->train.min_lr, c->train.lr);
    if (c->train.warmup_steps > c->train.steps)
        return rt_fail(err, "train.warmup_steps %lld exceeds train.steps %lld",
                       (long long)c->train.warmup_steps, (long long)c->train.steps);
    if (!c->data.train[0]) return rt_fail(err, "data.train is empty: name a training dataset (HDF5)");
    if (!c->run.out_dir[0]) return rt_fail(err, "run.out_dir is empty: name a run directory");
    unsigned lora_targets;
    if (rt_lora_parse_targets(c->lora.targets, &lora_targets, err)) return -1;
    size_t tokens;
    if (!rt_mul_size((size_t)c->train.batch_size, (size_t)c->data.seq_len, &tokens) ||
        tokens > (size_t)INT32_MAX)
        return rt_fail(err,
                       "train.batch_size x data.seq_len = %d x %d is too many tokens for one micro-batch",
                       c->train.batch_size, c->data.seq_len);
    return 0;
}

// A short run made by overriding train.steps alone (tiny.yaml train.steps=20) would otherwise fail on the
// file's warm-up; the warm-up is clamped instead and the caller says so, whether or not both were set.
int rt_config_fit_warmup(rt_config *c, char *note, size_t cap) {
    if (c->train.warmup_steps <= c->train.steps || c->train.steps < 1) return 0;
    snprintf(note, cap, "train.warmup_steps %lld exceeds train.steps %lld: warming up over all %lld steps",
             (long long)c->train.warmup_steps, (long long)c->train.steps, (long long)c->train.steps);
    c->train.warmup_steps = c->train.steps;
    return 1;
}

// ---------------------------------------------------------------------------------------------------
// output

// A YAML double-quoted scalar that reads back byte for byte whatever the string holds (':', '#', quotes, line
// breaks). Code points YAML may not hold raw, or would fold as line breaks (U+0085, U+2028, U+2029), are
// escaped; strings are valid UTF-8 (set_value checks), anything else is written as U+FFFD.
static void sb_quoted(rt_buf *b, const char *s) {
    rt_buf_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        uint32_t c;
        int n = utf8_decode(p, &c);
        if (n == 0)
            rt_buf_printf(b, "\\ufffd"), n = 1;
        else if (c == '"' || c == '\\')
            rt_buf_printf(b, "\\%c", (char)c);
        else if (c == '\n')
            rt_buf_printf(b, "\\n");
        else if (c == '\t')
            rt_buf_printf(b, "\\t");
        else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
            rt_buf_printf(b, "\\x%02x", (unsigned)c);
        else if (c == 0x2028 || c == 0x2029 || c == 0xfeff || c == 0xfffe || c == 0xffff)
            rt_buf_printf(b, "\\u%04x", (unsigned)c);
        else
            rt_buf_printf(b, "%.*s", n, (const char *)p);
        p += n;
    }
    rt_buf_printf(b, "\"");
}

static void value_text(const rt_config *cfg, const rt_cfg_key *k, rt_buf *b) {
    const char *field = (const char *)cfg + k->offset;
    char num[64];
    switch (k->type) {
    case RT_CFG_INT:
        rt_buf_printf(b, "%lld",
                      k->size == sizeof(int) ? (long long)*(const int *)field
                                             : (long long)*(const int64_t *)field);
        break;
    case RT_CFG_FLOAT:
        fmt_double(num, sizeof num, *(const double *)field);
        rt_buf_printf(b, "%s", num);
        break;
    case RT_CFG_BOOL:
        rt_buf_printf(b, "%s", *(const int *)field ? "true" : "false");
        break;
    case RT_CFG_ENUM:
        rt_buf_printf(b, "%.*s", (int)strnlen(field, k->size), field);
        break;
    case RT_CFG_STRING:
        sb_quoted(b, field);
        break;
    }
}

static int in_section(const char *path, const char *section) {
    size_t n = strlen(section);
    return strncmp(path, section, n) == 0 && path[n] == '.';
}

char *rt_config_to_yaml(const rt_config *cfg) {
    rt_buf b = {0};
    for (int s = 0; s < N_SECTIONS; s++) {
        rt_buf_printf(&b, "%s:\n", sections[s]);
        for (int i = 0; i < rt_config_schema_len; i++) {
            const rt_cfg_key *k = &rt_config_schema[i];
            if (!in_section(k->path, sections[s])) continue;
            rt_buf_printf(&b, "  %s: ", strchr(k->path, '.') + 1);
            value_text(cfg, k, &b);
            rt_buf_printf(&b, "\n");
        }
    }
    if (b.oom) {
        rt_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

// section_filter: NULL for every key, a section ("train") or one key ("train.lr").
void rt_config_print_help(FILE *out, const char *section_filter) {
    const char *f = section_filter && *section_filter ? section_filter : NULL;
    fprintf(out, "  %-24s %-6s %-15s %-26s %s\n", "key", "type", "default", "range", "meaning");
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        if (f && strcmp(k->path, f) != 0 && !in_section(k->path, f)) continue;
        char range[80] = "", dflt[64];
        if (k->type == RT_CFG_INT || k->type == RT_CFG_FLOAT) {
            char lo[32], hi[32];
            fmt_double(lo, sizeof lo, k->min);
            fmt_double(hi, sizeof hi, k->max);
            snprintf(range, sizeof range, "[%s, %s]", lo, hi);
        } else if (k->type == RT_CFG_ENUM) {
            snprintf(range, sizeof range, "%s", k->choices);
        } else if (k->type == RT_CFG_BOOL) {
            snprintf(range, sizeof range, "true|false");
        }
        snprintf(dflt, sizeof dflt, k->type == RT_CFG_STRING ? "\"%s\"" : "%s", k->dflt);
        fprintf(out, "  %-24s %-6s %-15s %-26s %s\n", k->path, type_name(k->type), dflt, range, k->help);
    }
}
