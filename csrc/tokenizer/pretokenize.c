// Hand-written pre-tokenizer splitters (see pretokenize.h). Each match_* function is the regex of its kind
// applied at one position, as a backtracking engine with leftmost-first alternation would: it returns the
// end of the match. Every alternation here matches at least one character at any position, so the pieces
// are exactly the matches, back to back.
#include "tokenizer/pretokenize.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode.h"

// The character classes the regexes use. OTHER is [^\s\p{L}\p{N}], which also holds invalid bytes.
typedef enum { CLASS_LETTER, CLASS_NUMBER, CLASS_SPACE, CLASS_OTHER } char_class;

typedef struct {
    uint32_t cp;    // RT_UTF8_INVALID for a byte that is not well-formed UTF-8
    size_t len;     // bytes
    char_class cls; // its class
} uchar;

static uchar char_at(const char *t, size_t n, size_t pos) {
    uchar c;
    c.len = rt_utf8_next(t + pos, n - pos, &c.cp);
    uint32_t f = rt_unicode_flags(c.cp);
    if (f & RT_UC_LETTER)
        c.cls = CLASS_LETTER;
    else if (f & RT_UC_NUMBER)
        c.cls = CLASS_NUMBER;
    else if (f & RT_UC_WHITESPACE)
        c.cls = CLASS_SPACE;
    else
        c.cls = CLASS_OTHER;
    return c;
}

// End of the run of class cls that starts at pos (pos itself is of that class), at most max characters.
static size_t run_end(const char *t, size_t n, size_t pos, char_class cls, size_t max) {
    for (size_t count = 0; pos < n && count < max; count++) {
        uchar c = char_at(t, n, pos);
        if (c.cls != cls) break;
        pos += c.len;
    }
    return pos;
}

static bool is_cr_lf(uint32_t cp) {
    return cp == '\r' || cp == '\n';
}

// Length of the contraction 's|'t|'re|'ve|'m|'ll|'d at pos, 0 if none. With ignore_case, as (?i:...) in
// Oniguruma: ASCII letters of either case, and U+017F LATIN SMALL LETTER LONG S, whose case folding is 's'
// (no other character folds to one of t, r, e, v, m, l, d).
static size_t contraction(const char *t, size_t n, size_t pos, bool ignore_case) {
    if (t[pos] != '\'' || pos + 1 >= n) return 0;
    const unsigned char *u = (const unsigned char *)t + pos + 1;
    size_t avail = n - pos - 1;
    unsigned char c0 = u[0], c1 = avail > 1 ? u[1] : 0;
    if (ignore_case) {
        if (c0 == 0xC5 && c1 == 0xBF) return 3; // 'ſ
        if (c0 < 0x80) c0 = (unsigned char)(c0 | 0x20);
        if (c1 < 0x80 && ((c1 | 0x20) == 'e' || (c1 | 0x20) == 'l')) c1 = (unsigned char)(c1 | 0x20);
    }
    if (c0 == 's' || c0 == 't' || c0 == 'm' || c0 == 'd') return 2;
    if ((c0 == 'r' || c0 == 'v') && c1 == 'e') return 3;
    if (c0 == 'l' && c1 == 'l') return 3;
    return 0;
}

// \s+(?!\S)|\s+ at pos (a whitespace character): the whole run when it ends the text, else the run less
// its last character (left to lead the next piece), or the single character when the run has only one.
static size_t match_space_run(const char *t, size_t n, size_t pos) {
    size_t end = pos, last = pos;
    while (end < n) {
        uchar c = char_at(t, n, end);
        if (c.cls != CLASS_SPACE) break;
        last = end;
        end += c.len;
    }
    if (end == n || last == pos) return end;
    return last;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
static size_t match_gpt2(const char *t, size_t n, size_t pos) {
    size_t k = contraction(t, n, pos, false);
    if (k) return pos + k;
    uchar c = char_at(t, n, pos);
    if (c.cp == ' ' && pos + 1 < n) { // ' ?' then a run of one class
        uchar next = char_at(t, n, pos + 1);
        if (next.cls != CLASS_SPACE) return run_end(t, n, pos + 1, next.cls, SIZE_MAX);
    }
    if (c.cls != CLASS_SPACE) return run_end(t, n, pos, c.cls, SIZE_MAX);
    return match_space_run(t, n, pos);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
static size_t match_llama3(const char *t, size_t n, size_t pos, size_t max_digits) {
    size_t k = contraction(t, n, pos, true);
    if (k) return pos + k;
    uchar c = char_at(t, n, pos);
    if (c.cls == CLASS_LETTER) return run_end(t, n, pos, CLASS_LETTER, SIZE_MAX);
    size_t after = pos + c.len;
    uchar next = {0, 0, CLASS_OTHER};
    if (after < n) next = char_at(t, n, after);
    if (c.cls != CLASS_NUMBER && !is_cr_lf(c.cp) && after < n && next.cls == CLASS_LETTER)
        return run_end(t, n, after, CLASS_LETTER, SIZE_MAX); // one leading non-letter, then letters
    if (c.cls == CLASS_NUMBER) return run_end(t, n, pos, CLASS_NUMBER, max_digits);
    size_t others = SIZE_MAX; // where ' ?[^\s\p{L}\p{N}]+' starts its run, if it matches
    if (c.cls == CLASS_OTHER)
        others = pos;
    else if (c.cp == ' ' && after < n && next.cls == CLASS_OTHER)
        others = after;
    if (others != SIZE_MAX) {
        size_t end = run_end(t, n, others, CLASS_OTHER, SIZE_MAX);
        while (end < n && (t[end] == '\r' || t[end] == '\n')) end++;
        return end;
    }
    // whitespace: \s*[\r\n]+ ends after the run's last CR or LF; without one, \s+(?!\S)|\s+
    size_t end = pos, after_crlf = 0;
    while (end < n) {
        uchar s = char_at(t, n, end);
        if (s.cls != CLASS_SPACE) break;
        end += s.len;
        if (is_cr_lf(s.cp)) after_crlf = end;
    }
    if (after_crlf) return after_crlf;
    return match_space_run(t, n, pos);
}

// Digits(individual_digits=true): each \p{N} alone, the runs between as they are.
static size_t match_digits(const char *t, size_t n, size_t pos) {
    uchar c = char_at(t, n, pos);
    if (c.cls == CLASS_NUMBER) return pos + c.len;
    size_t end = pos + c.len;
    while (end < n) {
        uchar d = char_at(t, n, end);
        if (d.cls == CLASS_NUMBER) break;
        end += d.len;
    }
    return end;
}

int rt_spans_push(rt_spans *out, size_t offset, size_t length, rt_error *err) {
    if (out->count == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64, bytes;
        if (cap < out->cap || !rt_mul_size(cap, sizeof *out->items, &bytes))
            return rt_fail(err, "pre-tokenizer: too many pieces");
        rt_span *items = realloc(out->items, bytes);
        if (!items) return rt_fail(err, "pre-tokenizer: out of memory for %zu pieces", cap);
        out->items = items;
        out->cap = cap;
    }
    out->items[out->count].offset = offset;
    out->items[out->count].length = length;
    out->count++;
    return 0;
}

void rt_spans_free(rt_spans *spans) {
    free(spans->items);
    memset(spans, 0, sizeof *spans);
}

int rt_pretok_split(rt_pretok_kind kind, const char *text, size_t len, rt_spans *out, rt_error *err) {
    if (kind != RT_PRETOK_GPT2 && kind != RT_PRETOK_LLAMA3 && kind != RT_PRETOK_QWEN2 &&
        kind != RT_PRETOK_DIGITS)
        return rt_fail(err, "pre-tokenizer: unknown kind %d", (int)kind);
    for (size_t pos = 0; pos < len;) {
        size_t end;
        switch (kind) {
        case RT_PRETOK_GPT2:
            end = match_gpt2(text, len, pos);
            break;
        case RT_PRETOK_LLAMA3:
            end = match_llama3(text, len, pos, 3);
            break;
        case RT_PRETOK_QWEN2:
            end = match_llama3(text, len, pos, 1);
            break;
        default:
            end = match_digits(text, len, pos);
            break;
        }
        if (rt_spans_push(out, pos, end - pos, err)) return -1;
        pos = end;
    }
    return 0;
}

int rt_pretok_split_seq(const rt_pretok_kind *kinds, int n, const char *text, size_t len, rt_spans *out,
                        rt_error *err) {
    if (n <= 0) return len ? rt_spans_push(out, 0, len, err) : 0;
    if (n == 1) return rt_pretok_split(kinds[0], text, len, out, err);
    rt_spans cur = {0}, next = {0};
    int rc = rt_pretok_split(kinds[0], text, len, &cur, err);
    for (int k = 1; rc == 0 && k < n; k++) {
        rt_spans *dst = k == n - 1 ? out : &next;
        for (size_t i = 0; rc == 0 && i < cur.count; i++) {
            size_t base = cur.items[i].offset, mark = dst->count;
            rc = rt_pretok_split(kinds[k], text + base, cur.items[i].length, dst, err);
            for (size_t j = mark; rc == 0 && j < dst->count; j++) dst->items[j].offset += base;
        }
        if (dst == &next) { // the new pieces become the input of the next splitter
            rt_spans swap = cur;
            cur = next;
            next = swap;
            next.count = 0;
        }
    }
    rt_spans_free(&cur);
    rt_spans_free(&next);
    return rc;
}

// The patterns as tokenizer.json files hold them (after JSON unescaping).
static const char *const GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                          "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                          "\\s+(?!\\S)|\\s+";
static const char *const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                         "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                         "\\s+(?!\\S)|\\s+";

int rt_pretok_kind_from_regex(const char *pattern) {
    if (!pattern) return -1;
    if (strcmp(pattern, GPT2_PATTERN) == 0) return RT_PRETOK_GPT2;
    // GPT-2's original pattern lacks the final |\s+; the lone whitespace character it leaves unmatched
    // becomes a piece of its own under "isolated", so the pieces are the same
    size_t gpt2_len = strlen(GPT2_PATTERN) - strlen("|\\s+");
    if (strlen(pattern) == gpt2_len && strncmp(pattern, GPT2_PATTERN, gpt2_len) == 0) return RT_PRETOK_GPT2;
    if (strcmp(pattern, LLAMA3_PATTERN) == 0) return RT_PRETOK_LLAMA3;
    if (strcmp(pattern, QWEN2_PATTERN) == 0) return RT_PRETOK_QWEN2;
    return -1;
}

const char *rt_pretok_regex(rt_pretok_kind kind) {
    return kind == RT_PRETOK_GPT2     ? GPT2_PATTERN
           : kind == RT_PRETOK_LLAMA3 ? LLAMA3_PATTERN
           : kind == RT_PRETOK_QWEN2  ? QWEN2_PATTERN
                                      : NULL;
}

const char *rt_pretok_kind_name(rt_pretok_kind kind) {
    switch (kind) {
    case RT_PRETOK_GPT2:
        return "gpt2";
    case RT_PRETOK_LLAMA3:
        return "llama3";
    case RT_PRETOK_QWEN2:
        return "qwen2";
    case RT_PRETOK_DIGITS:
        return "digits";
    }
    return "unknown";
}
