// YAML configs through libyaml's document API (it keeps each node's line), checked against the schema.
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static const char *const sections[] = {"run", "model", "data", "train", "checkpoint", "system"};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

static const char *type_name(rt_cfg_type t) {
    switch (t) {
    case RT_CFG_INT: return "int";
    case RT_CFG_FLOAT: return "float";
    case RT_CFG_BOOL: return "bool";
    case RT_CFG_STRING: return "string";
    default: return "enum";
    }
}

static const rt_cfg_key *find_key(const char *path) {
    for (int i = 0; i < rt_config_schema_len; i++)
        if (strcmp(rt_config_schema[i].path, path) == 0) return &rt_config_schema[i];
    return NULL;
}

// Levenshtein distance, capped: only short strings are compared.
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

// " (did you mean train.lr?)" for the closest known key within distance 2, else "".
static void suggest(char *out, size_t cap, const char *path) {
    int best = 3;
    const char *best_path = NULL;
    for (int i = 0; i < rt_config_schema_len; i++) {
        int d = edit_distance(path, rt_config_schema[i].path);
        if (d < best) {
            best = d;
            best_path = rt_config_schema[i].path;
        }
    }
    if (best_path) snprintf(out, cap, " (did you mean %s?)", best_path);
    else out[0] = '\0';
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

static void fmt_bound(char *out, size_t cap, double v) {
    if (v == floor(v) && fabs(v) < 1e15) snprintf(out, cap, "%.0f", v);
    else snprintf(out, cap, "%g", v);
}

static int out_of_range(const rt_cfg_key *k, const char *text, rt_error *err) {
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, k->min);
    fmt_bound(hi, sizeof hi, k->max);
    return rt_fail(err, "%s: %s is out of range: must be in [%s, %s]", k->path, text, lo, hi);
}

// Parse one value into its field. Messages start with the key.
static int set_value(rt_config *cfg, const rt_cfg_key *k, const char *text, rt_error *err) {
    char *field = (char *)cfg + k->offset;
    int empty = text[0] == '\0' || strcmp(text, "~") == 0 || strcmp(text, "null") == 0;
    switch (k->type) {
    case RT_CFG_INT: {
        if (empty) return rt_fail(err, "%s: expected an integer, got an empty value", k->path);
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (*end || errno == ERANGE || end == text || isspace((unsigned char)text[0]))
            return rt_fail(err, "%s: expected an integer, got '%.60s'", k->path, text);
        if ((double)v < k->min || (double)v > k->max) return out_of_range(k, text, err);
        if (k->size == sizeof(int)) *(int *)field = (int)v;
        else *(int64_t *)field = (int64_t)v;
        return 0;
    }
    case RT_CFG_FLOAT: {
        if (empty) return rt_fail(err, "%s: expected a number, got an empty value", k->path);
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (*end || end == text || !isfinite(v) || isspace((unsigned char)text[0]))
            return rt_fail(err, "%s: expected a number, got '%.60s'", k->path, text);
        if (v < k->min || v > k->max) return out_of_range(k, text, err);
        *(double *)field = v;
        return 0;
    }
    case RT_CFG_BOOL: {
        int b;
        if (parse_bool(text, &b)) return rt_fail(err, "%s: expected true or false, got '%.60s'", k->path, text);
        *(int *)field = b;
        return 0;
    }
    case RT_CFG_ENUM:
        if (!choice_ok(k->choices, text))
            return rt_fail(err, "%s: expected one of %s, got '%.60s'", k->path, k->choices, text);
        snprintf(field, k->size, "%s", text);
        return 0;
    case RT_CFG_STRING: {
        if (strcmp(text, "~") == 0 || strcmp(text, "null") == 0) text = "";
        size_t n = strlen(text);
        if (n >= k->size)
            return rt_fail(err, "%s: value is %zu characters long, the limit is %zu", k->path, n, k->size - 1);
        memcpy(field, text, n + 1);
        return 0;
    }
    }
    return rt_fail(err, "%s: unknown key type", k->path);
}

void rt_config_defaults(rt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    rt_error err;
    for (int i = 0; i < rt_config_schema_len; i++) {
        // The defaults are ours; tests/test_config.c checks that every one parses.
        set_value(cfg, &rt_config_schema[i], rt_config_schema[i].dflt, &err);
    }
}

// ---------------------------------------------------------------------------------------------------
// YAML documents

typedef struct seen_key {
    const rt_cfg_key *key;
    size_t line;
} seen_key;

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_SEQUENCE_NODE ? "a list" : n->type == YAML_MAPPING_NODE ? "a mapping" : "a scalar";
}

static int load_section(rt_config *cfg, yaml_document_t *doc, const char *section, yaml_node_t *map,
                        const char *name, seen_key *seen, int *n_seen, rt_error *err) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        size_t line = kn->start_mark.line + 1;
        if (kn->type != YAML_SCALAR_NODE)
            return rt_fail(err, "%s:%zu: %s: keys must be plain names, not %s", name, line, section, node_kind(kn));
        char path[160];
        snprintf(path, sizeof path, "%s.%.100s", section, (const char *)kn->data.scalar.value);
        const rt_cfg_key *k = find_key(path);
        if (!k) {
            char hint[128];
            suggest(hint, sizeof hint, path);
            return rt_fail(err, "%s:%zu: %s: unknown key%s", name, line, path, hint);
        }
        for (int i = 0; i < *n_seen; i++)
            if (seen[i].key == k)
                return rt_fail(err, "%s:%zu: %s: duplicate key (first set on line %zu)", name, line, path,
                               seen[i].line);
        seen[(*n_seen)++] = (seen_key){k, line};
        if (vn->type != YAML_SCALAR_NODE)
            return rt_fail(err, "%s:%zu: %s: expected a single value, got %s", name, vn->start_mark.line + 1,
                           path, node_kind(vn));
        if (strlen((const char *)vn->data.scalar.value) != vn->data.scalar.length)
            return rt_fail(err, "%s:%zu: %s: value contains a NUL byte", name, line, path);
        rt_error e;
        if (set_value(cfg, k, (const char *)vn->data.scalar.value, &e))
            return rt_fail(err, "%s:%zu: %s", name, vn->start_mark.line + 1, e.msg);
    }
    return 0;
}

static int load_document(rt_config *cfg, yaml_document_t *doc, const char *name, rt_error *err) {
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) return 0;  // empty file: all defaults
    if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) return 0;
    if (root->type != YAML_MAPPING_NODE)
        return rt_fail(err, "%s:%zu: expected a mapping of sections (run, model, data, train, checkpoint, system), "
                            "got %s", name, root->start_mark.line + 1, node_kind(root));
    seen_key seen[128];
    int n_seen = 0;
    size_t section_line[N_SECTIONS] = {0};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
        size_t line = kn->start_mark.line + 1;
        const char *sname = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        int s = 0;
        while (s < N_SECTIONS && strcmp(sections[s], sname) != 0) s++;
        if (s == N_SECTIONS) {
            char hint[128] = "";
            int best = 3;
            for (int i = 0; i < N_SECTIONS; i++) {
                int d = edit_distance(sname, sections[i]);
                if (d < best) {
                    best = d;
                    snprintf(hint, sizeof hint, " (did you mean %s?)", sections[i]);
                }
            }
            return rt_fail(err, "%s:%zu: unknown section '%.60s'%s; sections are run, model, data, train, "
                                "checkpoint, system", name, line, sname, hint);
        }
        if (section_line[s])
            return rt_fail(err, "%s:%zu: %s: duplicate section (first on line %zu)", name, line, sections[s],
                           section_line[s]);
        section_line[s] = line;
        if (vn->type == YAML_SCALAR_NODE && vn->data.scalar.length == 0) continue;  // "train:" with no keys
        if (vn->type != YAML_MAPPING_NODE)
            return rt_fail(err, "%s:%zu: %s: expected a mapping of keys, got %s", name, vn->start_mark.line + 1,
                           sections[s], node_kind(vn));
        if (n_seen + (int)(vn->data.mapping.pairs.top - vn->data.mapping.pairs.start) > 128)
            return rt_fail(err, "%s:%zu: %s: too many keys", name, line, sections[s]);
        if (load_section(cfg, doc, sections[s], vn, name, seen, &n_seen, err)) return -1;
    }
    return 0;
}

int rt_config_load_string(rt_config *cfg, const char *yaml, size_t len, const char *name, rt_error *err) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return rt_fail(err, "%s: cannot initialise the YAML parser", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = rt_fail(err, "%s:%zu: YAML syntax error: %s%s%s", name, parser.problem_mark.line + 1,
                     parser.problem ? parser.problem : "unreadable input", parser.context ? " " : "",
                     parser.context ? parser.context : "");
    } else {
        rc = load_document(cfg, &doc, name, err);
        yaml_document_delete(&doc);
        if (rc == 0) {
            // a second document would be silently ignored: refuse it
            if (!yaml_parser_load(&parser, &doc)) {
                rc = rt_fail(err, "%s:%zu: YAML syntax error: %s", name, parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "unreadable input");
            } else {
                if (yaml_document_get_root_node(&doc))
                    rc = rt_fail(err, "%s:%zu: a config holds one YAML document; found a second", name,
                                 yaml_document_get_root_node(&doc)->start_mark.line + 1);
                yaml_document_delete(&doc);
            }
        }
    }
    yaml_parser_delete(&parser);
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
    if (!eq) return rt_fail(err, "override '%.100s': expected section.key=value", assignment);
    char path[160];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof path) return rt_fail(err, "override '%.100s': key too long", assignment);
    memcpy(path, assignment, n);
    path[n] = '\0';
    const rt_cfg_key *k = find_key(path);
    if (!k) {
        char hint[128];
        suggest(hint, sizeof hint, path);
        return rt_fail(err, "override %.200s: %s: unknown key%s", assignment, path, hint);
    }
    rt_error e;
    if (set_value(cfg, k, eq + 1, &e)) return rt_fail(err, "override %.200s: %s", assignment, e.msg);
    return 0;
}

int rt_config_validate(const rt_config *c, rt_error *err) {
    if (c->model.n_heads % c->model.n_kv_heads != 0)
        return rt_fail(err, "model.n_kv_heads %d must divide model.n_heads %d", c->model.n_kv_heads, c->model.n_heads);
    if (c->model.dim % c->model.n_heads != 0 || (c->model.dim / c->model.n_heads) % 2 != 0)
        return rt_fail(err, "model.dim %d / model.n_heads %d must be an even whole head dim", c->model.dim, c->model.n_heads);
    if (c->data.seq_len > c->model.max_seq_len)
        return rt_fail(err, "data.seq_len %d exceeds model.max_seq_len %d", c->data.seq_len, c->model.max_seq_len);
    if (c->train.min_lr > c->train.lr)
        return rt_fail(err, "train.min_lr %g exceeds train.lr %g", c->train.min_lr, c->train.lr);
    if (c->train.warmup_steps > c->train.steps)
        return rt_fail(err, "train.warmup_steps %lld exceeds train.steps %lld", (long long)c->train.warmup_steps,
                       (long long)c->train.steps);
    if (!c->data.train[0]) return rt_fail(err, "data.train is empty: name a training dataset");
    if (!c->run.out_dir[0]) return rt_fail(err, "run.out_dir is empty: name a run directory");
    if (strcmp(c->system.precision, "bf16") == 0 && strcmp(c->system.device, "cpu") == 0)
        return rt_fail(err, "system.precision bf16 needs system.device cuda or auto; the CPU trains in fp32");
    size_t tokens;
    if (!rt_mul_size((size_t)c->train.batch_size, (size_t)c->data.seq_len, &tokens) || tokens > (size_t)INT32_MAX)
        return rt_fail(err, "train.batch_size x data.seq_len = %d x %d is too large for one batch",
                       c->train.batch_size, c->data.seq_len);
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// output

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) RT_PRINTF(2, 3);
static void sb_printf(strbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

// Shortest %g form that reads back as the same double.
static void fmt_double(char *out, size_t cap, double v) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void sb_quoted(strbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') sb_printf(b, "\\%c", *p);
        else if (*p == '\n') sb_printf(b, "\\n");
        else if (*p == '\t') sb_printf(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) sb_printf(b, "\\x%02x", *p);
        else sb_printf(b, "%c", *p);
    }
    sb_printf(b, "\"");
}

static void value_text(const rt_config *cfg, const rt_cfg_key *k, strbuf *b) {
    const char *field = (const char *)cfg + k->offset;
    char num[64];
    switch (k->type) {
    case RT_CFG_INT:
        sb_printf(b, "%lld", k->size == sizeof(int) ? (long long)*(const int *)field : (long long)*(const int64_t *)field);
        break;
    case RT_CFG_FLOAT:
        fmt_double(num, sizeof num, *(const double *)field);
        sb_printf(b, "%s", num);
        break;
    case RT_CFG_BOOL: sb_printf(b, "%s", *(const int *)field ? "true" : "false"); break;
    case RT_CFG_ENUM: sb_printf(b, "%s", field); break;
    case RT_CFG_STRING: sb_quoted(b, field); break;
    }
}

char *rt_config_to_yaml(const rt_config *cfg) {
    strbuf b = {0};
    for (int s = 0; s < N_SECTIONS; s++) {
        sb_printf(&b, "%s:\n", sections[s]);
        size_t sl = strlen(sections[s]);
        for (int i = 0; i < rt_config_schema_len; i++) {
            const rt_cfg_key *k = &rt_config_schema[i];
            if (strncmp(k->path, sections[s], sl) != 0 || k->path[sl] != '.') continue;
            sb_printf(&b, "  %s: ", k->path + sl + 1);
            value_text(cfg, k, &b);
            sb_printf(&b, "\n");
        }
    }
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

void rt_config_print_help(FILE *out, const char *section_filter) {
    fprintf(out, "  %-24s %-7s %-15s %-22s %s\n", "key", "type", "default", "range", "meaning");
    for (int i = 0; i < rt_config_schema_len; i++) {
        const rt_cfg_key *k = &rt_config_schema[i];
        if (section_filter && strncmp(k->path, section_filter, strlen(section_filter)) != 0) continue;
        char range[64] = "";
        if (k->type == RT_CFG_INT || k->type == RT_CFG_FLOAT) {
            char lo[32], hi[32];
            fmt_bound(lo, sizeof lo, k->min);
            fmt_bound(hi, sizeof hi, k->max);
            snprintf(range, sizeof range, "[%s, %s]", lo, hi);
        } else if (k->type == RT_CFG_ENUM) {
            snprintf(range, sizeof range, "%s", k->choices);
        }
        fprintf(out, "  %-24s %-7s %-15s %-22s %s\n", k->path, type_name(k->type), k->dflt, range, k->help);
    }
}
