#include "base/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const char *s;
    size_t len, pos;
    char *msg;
    size_t cap;
    int depth;
    char *buf; // decoded string scratch
    size_t buf_len, buf_cap;
} jp;

static int fail(jp *p, const char *what) {
    snprintf(p->msg, p->cap, "invalid JSON at column %zu: %s", p->pos + 1, what);
    return -1;
}

static void skip_ws(jp *p) {
    while (p->pos < p->len &&
           (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\r' || p->s[p->pos] == '\n'))
        p->pos++;
}

static int put(jp *p, const char *bytes, size_t n) {
    if (p->buf_len + n + 1 > p->buf_cap) {
        size_t cap = (p->buf_len + n + 1) * 2;
        char *b = realloc(p->buf, cap);
        if (!b) return fail(p, "out of memory");
        p->buf = b;
        p->buf_cap = cap;
    }
    memcpy(p->buf + p->buf_len, bytes, n);
    p->buf_len += n;
    p->buf[p->buf_len] = '\0';
    return 0;
}

static int hex4(jp *p, unsigned *out) {
    if (p->pos + 4 > p->len) return fail(p, "\\u needs four hex digits");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(p, "\\u needs four hex digits");
    }
    *out = v;
    return 0;
}

static int put_utf8(jp *p, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (char)(0xc0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (char)(0xe0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (char)(0xf0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    return put(p, b, n);
}

// Decodes a string into p->buf (p->pos at the opening quote).
static int string(jp *p) {
    p->buf_len = 0;
    if (put(p, "", 0)) return -1;
    p->pos++;
    while (p->pos < p->len) {
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') return 0;
        if (c < 0x20) return fail(p, "control character inside a string (escape it)");
        if (c != '\\') {
            if (put(p, (const char *)&c, 1)) return -1;
            continue;
        }
        if (p->pos >= p->len) break;
        char e = p->s[p->pos++];
        const char *map = e ? strchr("\"\"\\\\//b\bf\fn\nr\rt\t", e) : NULL;
        if (e == 'u') {
            unsigned cp;
            if (hex4(p, &cp)) return -1;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (p->pos + 2 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
                    return fail(p, "high surrogate without its low surrogate");
                p->pos += 2;
                if (hex4(p, &lo)) return -1;
                if (lo < 0xdc00 || lo >= 0xe000) return fail(p, "invalid low surrogate");
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return fail(p, "lone low surrogate");
            }
            if (put_utf8(p, cp)) return -1;
        } else if (map && ((map - "\"\"\\\\//b\bf\fn\nr\rt\t") % 2 == 0)) {
            if (put(p, map + 1, 1)) return -1;
        } else {
            return fail(p, "unknown escape");
        }
    }
    return fail(p, "unterminated string");
}

static int node(jp *p, struct rt_json *out);

static int literal(jp *p, const char *word) {
    size_t n = strlen(word);
    if (p->pos + n > p->len || strncmp(p->s + p->pos, word, n) != 0) return fail(p, "expected a value");
    p->pos += n;
    return 0;
}

static int number(jp *p) {
    size_t start = p->pos;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len) return fail(p, "bad number");
    if (p->s[p->pos] == '0')
        p->pos++;
    else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9')
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    else
        return fail(p, "bad number");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        size_t d = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == d) return fail(p, "bad number");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        size_t d = p->pos;
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
        if (p->pos == d) return fail(p, "bad number");
    }
    return p->pos > start ? 0 : fail(p, "bad number");
}

int rt_json_object(const char *text, size_t len, rt_json_string_field on_string,
                   int (*non_string)(const char *key, void *user), void *user, char *msg, size_t cap) {
    jp p = {text, len, 0, msg, cap, 0, NULL, 0, 0};
    int rc = 0;
    skip_ws(&p);
    if (p.pos >= len || text[p.pos] != '{') {
        free(p.buf);
        return fail(&p, "expected an object '{...}'");
    }
    p.pos++;
    skip_ws(&p);
    int first = 1;
    while (rc == 0) {
        skip_ws(&p);
        if (first && p.pos < len && text[p.pos] == '}') {
            p.pos++;
            break;
        }
        first = 0;
        if (p.pos >= len || text[p.pos] != '"') {
            rc = fail(&p, "expected a string key");
            break;
        }
        if ((rc = string(&p))) break;
        // keys are C strings to the callbacks: "text\u0000x" would read as "text"
        if (memchr(p.buf, 0, p.buf_len)) {
            rc = fail(&p, "a key holds a NUL character");
            break;
        }
        char *key = malloc(p.buf_len + 1);
        if (!key) {
            rc = fail(&p, "out of memory");
            break;
        }
        memcpy(key, p.buf, p.buf_len + 1);
        skip_ws(&p);
        if (p.pos >= len || text[p.pos] != ':')
            rc = fail(&p, "expected ':'");
        else
            p.pos++;
        skip_ws(&p);
        if (rc == 0) {
            int is_string = p.pos < len && text[p.pos] == '"';
            rc = node(&p, NULL);
            if (rc == 0 && is_string)
                rc = on_string(key, p.buf, p.buf_len, user);
            else if (rc == 0 && non_string)
                rc = non_string(key, user);
        }
        free(key);
        if (rc) break;
        skip_ws(&p);
        if (p.pos < len && text[p.pos] == ',') {
            p.pos++;
            continue;
        }
        if (p.pos < len && text[p.pos] == '}') {
            p.pos++;
            break;
        }
        rc = fail(&p, "expected ',' or '}'");
    }
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != len) rc = fail(&p, "unexpected text after the object");
    }
    free(p.buf);
    return rc;
}

// ---- values and containers: only validated when the output is NULL (rt_json_object skips the values it
// does not report), else built into a tree (rt_json_parse)

// Appends an empty slot to a container (keys too for objects) and returns it.
static rt_json *tree_push(jp *p, rt_json *c, size_t *cap) {
    if (c->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        rt_json *items = realloc(c->items, nc * sizeof *items);
        if (!items) return fail(p, "out of memory"), NULL;
        c->items = items;
        if (c->type == RT_JSON_OBJECT) {
            char **keys = realloc(c->keys, nc * sizeof *keys);
            if (!keys) return fail(p, "out of memory"), NULL;
            c->keys = keys;
        }
        *cap = nc;
    }
    rt_json *v = &c->items[c->n];
    memset(v, 0, sizeof *v);
    if (c->type == RT_JSON_OBJECT) c->keys[c->n] = NULL;
    c->n++;
    return v;
}

// Copies text into a fresh NUL-terminated string of out.
static int tree_text(jp *p, rt_json *out, const char *text, size_t n) {
    out->str = malloc(n + 1);
    if (!out->str) return fail(p, "out of memory");
    memcpy(out->str, text, n);
    out->str[n] = '\0';
    out->len = n;
    return 0;
}

// An array or object (p->pos at its opening bracket), skipped when out is NULL, else built into out.
static int container(jp *p, rt_json *out, char close) {
    if (++p->depth > 64) return fail(p, "nested too deeply");
    p->pos++;
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        char *key = NULL;
        if (close == '}') {
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected a string key");
            if (string(p)) return -1;
            if (out) {
                // keys are C strings to the callers, so one holding NUL could not be told from its prefix
                if (memchr(p->buf, 0, p->buf_len)) return fail(p, "a key holds a NUL character");
                if (!(key = malloc(p->buf_len + 1))) return fail(p, "out of memory");
                memcpy(key, p->buf, p->buf_len + 1);
            }
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return fail(p, "expected ':'");
            }
            p->pos++;
        }
        rt_json *v = NULL;
        if (out && !(v = tree_push(p, out, &cap))) {
            free(key);
            return -1;
        }
        if (key) out->keys[out->n - 1] = key;
        if (node(p, v)) return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            p->depth--;
            return 0;
        }
        return fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

// One value, skipped (only validated) when out is NULL, else built into out.
static int node(jp *p, rt_json *out) {
    skip_ws(p);
    if (out) out->column = p->pos + 1;
    if (p->pos >= p->len) return fail(p, "expected a value");
    char c = p->s[p->pos];
    if (c == '"') {
        if (string(p)) return -1;
        if (!out) return 0;
        out->type = RT_JSON_STRING;
        return tree_text(p, out, p->buf, p->buf_len);
    }
    if (c == '{' || c == '[') {
        if (out) out->type = c == '{' ? RT_JSON_OBJECT : RT_JSON_ARRAY;
        return container(p, out, c == '{' ? '}' : ']');
    }
    if (c == 't' || c == 'f') {
        if (out) out->type = RT_JSON_BOOL, out->boolean = c == 't';
        return literal(p, c == 't' ? "true" : "false");
    }
    if (c == 'n') return literal(p, "null");
    size_t start = p->pos;
    if (number(p)) return -1;
    if (!out) return 0;
    out->type = RT_JSON_NUMBER;
    return tree_text(p, out, p->s + start, p->pos - start);
}

int rt_json_parse(const char *text, size_t len, rt_json *out, char *msg, size_t cap) {
    jp p = {text, len, 0, msg, cap, 0, NULL, 0, 0};
    memset(out, 0, sizeof *out);
    int rc = node(&p, out);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != len) rc = fail(&p, "unexpected text after the value");
    }
    free(p.buf);
    if (rc) rt_json_free(out);
    return rc;
}

void rt_json_free(rt_json *v) {
    if (!v) return;
    for (size_t i = 0; i < v->n; i++) {
        rt_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const rt_json *rt_json_get(const rt_json *obj, const char *key) {
    if (!obj || obj->type != RT_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

int rt_json_u64(const rt_json *v, uint64_t *out) {
    if (!v || v->type != RT_JSON_NUMBER || v->len == 0 || v->len > 20) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->str[i];
        if (c < '0' || c > '9') return -1;
        unsigned d = (unsigned)(c - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}
