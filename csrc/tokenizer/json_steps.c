// tokenizer.json's pipeline steps (normalizer, pre_tokenizer, post_processor, decoder) as HF tokenizers
// serializes them. A step retort does not implement is refused with its JSON path and type named, never
// approximated: an unknown step would silently change the ids.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "tokenizer/tokenizer_internal.h"

typedef struct jctx {
    rt_tokenizer *t;
    const char *origin;
    rt_error *err;
} jctx;

static const char *type_name(rt_json_type type) {
    static const char *const names[] = {"null", "a bool", "a number", "a string", "an array", "an object"};
    return names[type];
}

// A member that must be of one type when present (NULL when absent or null).
static int member(jctx *c, const rt_json *obj, const char *path, const char *key, rt_json_type type,
                  const rt_json **out) {
    const rt_json *v = rt_json_get(obj, key);
    *out = NULL;
    if (!v || v->type == RT_JSON_NULL) return 0;
    if (v->type != type)
        return rt_fail(c->err, "%s: %s.%s must be %s, not %s", c->origin, path, key, type_name(type),
                       type_name(v->type));
    *out = v;
    return 0;
}

static int get_bool(jctx *c, const rt_json *obj, const char *path, const char *key, int dflt, int *out) {
    const rt_json *v;
    if (member(c, obj, path, key, RT_JSON_BOOL, &v)) return -1;
    *out = v ? v->boolean : dflt;
    return 0;
}

static int get_count(jctx *c, const rt_json *obj, const char *path, const char *key, int dflt, int *out) {
    const rt_json *v;
    uint64_t u;
    if (member(c, obj, path, key, RT_JSON_NUMBER, &v)) return -1;
    if (!v) return *out = dflt, 0;
    if (rt_json_u64(v, &u) || u > 1000000)
        return rt_fail(c->err, "%s: %s.%s must be a small non-negative integer", c->origin, path, key);
    *out = (int)u;
    return 0;
}

// A required string member, copied.
static int get_string(jctx *c, const rt_json *obj, const char *path, const char *key, char **out,
                      size_t *len) {
    const rt_json *v;
    if (member(c, obj, path, key, RT_JSON_STRING, &v)) return -1;
    if (!v) return rt_fail(c->err, "%s: %s needs a string %s", c->origin, path, key);
    if (!(*out = rt_tok_strndup(v->str, v->len, c->err))) return -1;
    *len = v->len;
    return 0;
}

// The "type" of a step object.
static int step_type(jctx *c, const rt_json *v, const char *path, const char **type) {
    if (v->type != RT_JSON_OBJECT)
        return rt_fail(c->err, "%s: %s must be an object, not %s", c->origin, path, type_name(v->type));
    const rt_json *ty;
    if (member(c, v, path, "type", RT_JSON_STRING, &ty)) return -1;
    if (!ty) return rt_fail(c->err, "%s: %s has no type", c->origin, path);
    *type = ty->str;
    return 0;
}

// A Replace step's pattern: {"String": s}; {"Regex": r} is refused.
static int literal_pattern(jctx *c, const rt_json *v, const char *path, char **out, size_t *len) {
    const rt_json *p;
    if (member(c, v, path, "pattern", RT_JSON_OBJECT, &p)) return -1;
    const rt_json *s = p ? rt_json_get(p, "String") : NULL;
    if (!s || s->type != RT_JSON_STRING || s->len == 0) {
        const rt_json *r = p ? rt_json_get(p, "Regex") : NULL;
        if (r && r->type == RT_JSON_STRING)
            return rt_fail(
                c->err, "%s: %s has the regex pattern '%.80s': retort reads literal (String) patterns only",
                c->origin, path, r->str);
        return rt_fail(c->err, "%s: %s.pattern must be {\"String\": non-empty text}", c->origin, path);
    }
    if (!(*out = rt_tok_strndup(s->str, s->len, c->err))) return -1;
    *len = s->len;
    return 0;
}

// One character (a Metaspace replacement, a Strip content) as UTF-8.
static int one_char(jctx *c, const rt_json *v, const char *path, const char *key, const char *dflt,
                    char out[5], size_t *len) {
    const rt_json *s;
    if (member(c, v, path, key, RT_JSON_STRING, &s)) return -1;
    const char *text = s ? s->str : dflt;
    size_t n = s ? s->len : strlen(dflt);
    if (n == 0 || n > 4) return rt_fail(c->err, "%s: %s.%s must be one character", c->origin, path, key);
    memcpy(out, text, n);
    out[n] = '\0';
    *len = n;
    return 0;
}

static int prepend_scheme(jctx *c, const rt_json *v, const char *path, int *out) {
    const rt_json *s;
    int add_prefix_space;
    if (member(c, v, path, "prepend_scheme", RT_JSON_STRING, &s) ||
        get_bool(c, v, path, "add_prefix_space", 1, &add_prefix_space))
        return -1;
    const char *name = s ? s->str : "always";
    if (!strcmp(name, "always"))
        *out = RT_PREPEND_ALWAYS;
    else if (!strcmp(name, "first"))
        *out = RT_PREPEND_FIRST;
    else if (!strcmp(name, "never"))
        *out = RT_PREPEND_NEVER;
    else
        return rt_fail(c->err, "%s: %s.prepend_scheme '%s' (always, first or never expected)", c->origin,
                       path, name);
    if (!add_prefix_space) { // the older spelling; HF insists the two agree
        if (*out != RT_PREPEND_NEVER)
            return rt_fail(c->err, "%s: %s: add_prefix_space false contradicts prepend_scheme %s", c->origin,
                           path, name);
    }
    return 0;
}

// ---- the pipeline steps

static int parse_normalizer(jctx *c, const rt_json *v, const char *path, int depth) {
    const char *type;
    if (depth > 8) return rt_fail(c->err, "%s: %s: Sequences nested too deeply", c->origin, path);
    if (step_type(c, v, path, &type)) return -1;
    rt_tok_norm step = {0};
    if (!strcmp(type, "Sequence")) {
        const rt_json *list;
        if (member(c, v, path, "normalizers", RT_JSON_ARRAY, &list)) return -1;
        for (size_t i = 0; list && i < list->n; i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", path, i);
            if (parse_normalizer(c, &list->items[i], sub, depth + 1)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "NFC")) {
        step.kind = RT_NORM_NFC;
    } else if (!strcmp(type, "Prepend")) {
        step.kind = RT_NORM_PREPEND;
        if (get_string(c, v, path, "prepend", &step.content, &step.content_len)) return -1;
    } else if (!strcmp(type, "Replace")) {
        step.kind = RT_NORM_REPLACE;
        if (literal_pattern(c, v, path, &step.pattern, &step.pattern_len) ||
            get_string(c, v, path, "content", &step.content, &step.content_len)) {
            free(step.pattern);
            return -1;
        }
    } else {
        return rt_fail(c->err, "%s: %s is a %s normalizer: retort reads NFC, Prepend, Replace and Sequence",
                       c->origin, path, type);
    }
    if (rt_tok_push_norm(c->t, step, c->err)) {
        free(step.pattern);
        free(step.content);
        return -1;
    }
    return 0;
}

static int parse_pre(jctx *c, const rt_json *v, const char *path, int depth) {
    const char *type;
    if (depth > 8) return rt_fail(c->err, "%s: %s: Sequences nested too deeply", c->origin, path);
    if (step_type(c, v, path, &type)) return -1;
    rt_tok_pre step = {0};
    if (!strcmp(type, "Sequence")) {
        const rt_json *list;
        if (member(c, v, path, "pretokenizers", RT_JSON_ARRAY, &list)) return -1;
        for (size_t i = 0; list && i < list->n; i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", path, i);
            if (parse_pre(c, &list->items[i], sub, depth + 1)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        step.kind = RT_PRE_BYTE_LEVEL;
        if (get_bool(c, v, path, "add_prefix_space", 1, &step.add_prefix_space) ||
            get_bool(c, v, path, "use_regex", 1, &step.use_regex))
            return -1;
    } else if (!strcmp(type, "Split")) {
        const rt_json *pattern, *behavior, *regex = NULL;
        int invert;
        if (member(c, v, path, "pattern", RT_JSON_OBJECT, &pattern) ||
            member(c, v, path, "behavior", RT_JSON_STRING, &behavior) ||
            get_bool(c, v, path, "invert", 0, &invert))
            return -1;
        if (pattern) regex = rt_json_get(pattern, "Regex");
        if (!regex || regex->type != RT_JSON_STRING)
            return rt_fail(c->err, "%s: %s: retort reads Split with a Regex pattern only", c->origin, path);
        int kind = rt_pretok_kind_from_regex(regex->str);
        if (kind < 0)
            return rt_fail(
                c->err,
                "%s: %s: the Split pattern '%.200s' is not one retort has a splitter for (the GPT-2, "
                "Llama 3 and Qwen2 patterns)",
                c->origin, path, regex->str);
        if (!behavior || strcmp(behavior->str, "Isolated") != 0 || invert)
            return rt_fail(c->err, "%s: %s: retort reads Split with behavior Isolated and invert false",
                           c->origin, path);
        step.kind = RT_PRE_SPLIT;
        step.split = (rt_pretok_kind)kind;
    } else if (!strcmp(type, "Digits")) {
        int individual;
        if (get_bool(c, v, path, "individual_digits", 0, &individual)) return -1;
        if (!individual)
            return rt_fail(c->err, "%s: %s: retort reads Digits with individual_digits true only", c->origin,
                           path);
        step.kind = RT_PRE_SPLIT;
        step.split = RT_PRETOK_DIGITS;
    } else if (!strcmp(type, "Metaspace")) {
        step.kind = RT_PRE_METASPACE;
        if (one_char(c, v, path, "replacement", "\xE2\x96\x81", step.replacement, &step.replacement_len) ||
            prepend_scheme(c, v, path, &step.prepend_scheme) ||
            get_bool(c, v, path, "split", 1, &step.split_on_replacement))
            return -1;
    } else {
        return rt_fail(c->err,
                       "%s: %s is a %s pre-tokenizer: retort reads ByteLevel, Split (GPT-2, Llama 3, Qwen2 "
                       "patterns), Digits, Metaspace and Sequence",
                       c->origin, path, type);
    }
    return rt_tok_push_pre(c->t, step, c->err);
}

static int parse_decoder(jctx *c, const rt_json *v, const char *path, int depth) {
    const char *type;
    if (depth > 8) return rt_fail(c->err, "%s: %s: Sequences nested too deeply", c->origin, path);
    if (step_type(c, v, path, &type)) return -1;
    rt_tok_dec step = {0};
    if (!strcmp(type, "Sequence")) {
        const rt_json *list;
        if (member(c, v, path, "decoders", RT_JSON_ARRAY, &list)) return -1;
        for (size_t i = 0; list && i < list->n; i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.decoders[%zu]", path, i);
            if (parse_decoder(c, &list->items[i], sub, depth + 1)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        step.kind = RT_DEC_BYTE_LEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        step.kind = RT_DEC_BYTE_FALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        step.kind = RT_DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        step.kind = RT_DEC_REPLACE;
        if (literal_pattern(c, v, path, &step.pattern, &step.pattern_len) ||
            get_string(c, v, path, "content", &step.content, &step.content_len)) {
            free(step.pattern);
            return -1;
        }
    } else if (!strcmp(type, "Strip")) {
        step.kind = RT_DEC_STRIP;
        char ch[5];
        size_t n;
        if (one_char(c, v, path, "content", " ", ch, &n) || get_count(c, v, path, "start", 0, &step.start) ||
            get_count(c, v, path, "stop", 0, &step.stop) || !(step.content = rt_tok_strndup(ch, n, c->err)))
            return -1;
        step.content_len = n;
    } else if (!strcmp(type, "Metaspace")) {
        step.kind = RT_DEC_METASPACE;
        if (one_char(c, v, path, "replacement", "\xE2\x96\x81", step.replacement, &step.replacement_len) ||
            prepend_scheme(c, v, path, &step.prepend_scheme))
            return -1;
    } else {
        return rt_fail(c->err,
                       "%s: %s is a %s decoder: retort reads ByteLevel, Replace, ByteFallback, Fuse, Strip, "
                       "Metaspace and Sequence",
                       c->origin, path, type);
    }
    if (rt_tok_push_dec(c->t, step, c->err)) {
        free(step.pattern);
        free(step.content);
        return -1;
    }
    return 0;
}

// TemplateProcessing's single template: the special tokens before $A become the prefix, those after it
// the suffix.
static int parse_template(jctx *c, const rt_json *v, const char *path) {
    const rt_json *single, *specials;
    if (member(c, v, path, "single", RT_JSON_ARRAY, &single) ||
        member(c, v, path, "special_tokens", RT_JSON_OBJECT, &specials))
        return -1;
    rt_tokenizer *t = c->t;
    int seen_a = 0;
    for (size_t i = 0; single && i < single->n; i++) {
        const rt_json *item = &single->items[i], *x;
        if (item->type != RT_JSON_OBJECT)
            return rt_fail(c->err, "%s: %s.single[%zu] must be an object", c->origin, path, i);
        if ((x = rt_json_get(item, "Sequence")) != NULL) {
            const rt_json *id = x->type == RT_JSON_OBJECT ? rt_json_get(x, "id") : NULL;
            if (!id || id->type != RT_JSON_STRING || strcmp(id->str, "A") != 0 || seen_a)
                return rt_fail(c->err, "%s: %s.single must hold the sequence $A exactly once", c->origin,
                               path);
            seen_a = 1;
            continue;
        }
        x = rt_json_get(item, "SpecialToken");
        const rt_json *name = x && x->type == RT_JSON_OBJECT ? rt_json_get(x, "id") : NULL;
        if (!name || name->type != RT_JSON_STRING)
            return rt_fail(c->err, "%s: %s.single[%zu] is neither a Sequence nor a SpecialToken", c->origin,
                           path, i);
        const rt_json *sp = specials ? rt_json_get(specials, name->str) : NULL, *ids;
        if (!sp || sp->type != RT_JSON_OBJECT)
            return rt_fail(c->err, "%s: %s: special token '%.60s' is not in special_tokens", c->origin, path,
                           name->str);
        if (member(c, sp, path, "ids", RT_JSON_ARRAY, &ids)) return -1;
        for (size_t k = 0; ids && k < ids->n; k++) {
            uint64_t id;
            if (rt_json_u64(&ids->items[k], &id) || id >= (uint64_t)t->n_vocab)
                return rt_fail(c->err, "%s: %s: special token '%.60s' has an id outside the vocabulary",
                               c->origin, path, name->str);
            int32_t *list = seen_a ? t->suffix : t->prefix;
            int *n = seen_a ? &t->n_suffix : &t->n_prefix;
            if (*n >= 8) return rt_fail(c->err, "%s: %s adds more than 8 tokens", c->origin, path);
            list[(*n)++] = (int32_t)id;
        }
    }
    if (!seen_a) return rt_fail(c->err, "%s: %s.single has no $A", c->origin, path);
    return 0;
}

static int parse_post(jctx *c, const rt_json *v, const char *path, int depth) {
    const char *type;
    if (depth > 8) return rt_fail(c->err, "%s: %s: Sequences nested too deeply", c->origin, path);
    if (step_type(c, v, path, &type)) return -1;
    if (!strcmp(type, "Sequence")) {
        const rt_json *list;
        if (member(c, v, path, "processors", RT_JSON_ARRAY, &list)) return -1;
        for (size_t i = 0; list && i < list->n; i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.processors[%zu]", path, i);
            if (parse_post(c, &list->items[i], sub, depth + 1)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0; // it only trims offsets
    if (!strcmp(type, "TemplateProcessing")) {
        if (c->t->n_prefix || c->t->n_suffix)
            return rt_fail(c->err, "%s: %s: a second TemplateProcessing", c->origin, path);
        return parse_template(c, v, path);
    }
    return rt_fail(c->err,
                   "%s: %s is a %s post-processor: retort reads TemplateProcessing, ByteLevel and Sequence",
                   c->origin, path, type);
}

int rt_tok_json_steps(rt_tokenizer *t, const rt_json *root, rt_error *err) {
    jctx c = {t, t->origin, err};
    const rt_json *v;
    if ((v = rt_json_get(root, "normalizer")) && v->type != RT_JSON_NULL &&
        parse_normalizer(&c, v, "normalizer", 0))
        return -1;
    if ((v = rt_json_get(root, "pre_tokenizer")) && v->type != RT_JSON_NULL &&
        parse_pre(&c, v, "pre_tokenizer", 0))
        return -1;
    if ((v = rt_json_get(root, "post_processor")) && v->type != RT_JSON_NULL &&
        parse_post(&c, v, "post_processor", 0))
        return -1;
    if ((v = rt_json_get(root, "decoder")) && v->type != RT_JSON_NULL && parse_decoder(&c, v, "decoder", 0))
        return -1;
    return 0;
}
