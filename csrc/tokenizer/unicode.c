// UTF-8, Unicode property lookups and NFC (see unicode.h). The tables come from unicode_tables.c.
#include "tokenizer/unicode.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/unicode_tables.h"

size_t rt_utf8_next(const char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    const unsigned char *u = (const unsigned char *)s;
    unsigned char b0 = u[0];
    *cp = RT_UTF8_INVALID;
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t need;
    uint32_t v, min;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2, v = b0 & 0x1Fu, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3, v = b0 & 0x0Fu, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4, v = b0 & 0x07u, min = 0x10000;
    } else {
        return 1; // a continuation byte, C0/C1 (always overlong) or F5..FF
    }
    if (len < need) return 1;
    for (size_t i = 1; i < need; i++) {
        if ((u[i] & 0xC0) != 0x80) return 1;
        v = (v << 6) | (u[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 1;
    *cp = v;
    return need;
}

int rt_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return 0;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Value of the run containing cp in a (first << 8 | value) run table whose first entry starts at 0.
static uint32_t run_value(const uint32_t *runs, size_t count, uint32_t cp) {
    size_t lo = 0, hi = count; // invariant: runs[lo].first <= cp < runs[hi].first
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((runs[mid] >> 8) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return runs[lo] & 0xFFu;
}

uint32_t rt_unicode_flags(uint32_t cp) {
    if (cp > 0x10FFFF) return 0;
    if (cp < 0x80) return rt_uc_ascii_flags[cp];
    return run_value(rt_uc_flag_runs, rt_uc_flag_runs_count, cp);
}

uint8_t rt_unicode_ccc(uint32_t cp) {
    if (cp < 0x300 || cp > 0x10FFFF) return 0;
    return (uint8_t)run_value(rt_uc_ccc_runs, rt_uc_ccc_runs_count, cp);
}

// ---- NFC ----

// Hangul syllables decompose and compose algorithmically (Unicode chapter 3.12).
enum {
    HANGUL_S = 0xAC00,
    HANGUL_L = 0x1100,
    HANGUL_V = 0x1161,
    HANGUL_T = 0x11A7,
    HANGUL_LN = 19,
    HANGUL_VN = 21,
    HANGUL_TN = 28,
    HANGUL_NN = HANGUL_VN * HANGUL_TN,
    HANGUL_SN = HANGUL_LN * HANGUL_NN,
};

// A byte that is not well-formed UTF-8 travels through NFC as this value (above U+10FFFF, so no table
// knows it: a starter with no decomposition or composition) and is written back as the byte.
#define RAW_BYTE 0x80000000u

// The decomposition-table entry of cp, or NULL.
static const uint32_t *find_decomp(uint32_t cp) {
    size_t lo = 0, hi = rt_uc_decomp_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt_uc_decomp[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rt_uc_decomp_count && rt_uc_decomp[lo][0] == cp ? rt_uc_decomp[lo] : NULL;
}

// The primary composite of a + b, or 0 when they do not compose.
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TN)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = rt_uc_compose_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint32_t *e = rt_uc_decomp[rt_uc_compose[mid]];
        if (e[1] < a || (e[1] == a && e[2] < b))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == rt_uc_compose_count) return 0;
    const uint32_t *e = rt_uc_decomp[rt_uc_compose[lo]];
    return e[1] == a && e[2] == b ? e[0] : 0;
}

// Appends the full canonical decomposition of cp to buf (room for 4 more code points is guaranteed: no
// canonical decomposition is longer, Hangul gives at most 3).
static size_t decompose(uint32_t cp, uint32_t *buf) {
    if (cp >= HANGUL_S && cp < HANGUL_S + HANGUL_SN) {
        uint32_t s = cp - HANGUL_S;
        buf[0] = HANGUL_L + s / HANGUL_NN;
        buf[1] = HANGUL_V + (s % HANGUL_NN) / HANGUL_TN;
        if (s % HANGUL_TN == 0) return 2;
        buf[2] = HANGUL_T + s % HANGUL_TN;
        return 3;
    }
    const uint32_t *e = cp <= 0x10FFFF ? find_decomp(cp) : NULL;
    if (!e) {
        buf[0] = cp;
        return 1;
    }
    // only the first part recurses: in the UCD the second part of a pair never decomposes further
    uint32_t first[4];
    size_t n = decompose(e[1], first);
    memcpy(buf, first, n * sizeof *buf);
    if (e[2]) buf[n++] = e[2];
    return n;
}

static uint8_t ccc_of(uint32_t cp) {
    return cp > 0x10FFFF ? 0 : rt_unicode_ccc(cp);
}

// Stable sort of the marks run cps[0..n) by combining class: insertion sort for short runs, a counting sort
// (the class is one byte) for long ones so that a hostile run of marks stays linear.
static void order_marks(uint32_t *cps, size_t n, uint32_t *tmp) {
    if (n < 32) {
        for (size_t i = 1; i < n; i++) {
            uint32_t c = cps[i];
            uint8_t k = ccc_of(c);
            size_t j = i;
            while (j > 0 && ccc_of(cps[j - 1]) > k) {
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = c;
        }
        return;
    }
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) start[ccc_of(cps[i]) + 1]++;
    for (int k = 1; k < 257; k++) start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++) tmp[start[ccc_of(cps[i])]++] = cps[i];
    memcpy(cps, tmp, n * sizeof *cps);
}

// True when NFC may cut the text before decomposed code point c: a starter that never composes with what
// precedes it (not a Hangul vowel or trailing consonant, not the second part of a primary composite). Marks
// before it cannot reorder past it, and nothing before it can compose with anything after it.
static bool nfc_boundary(uint32_t c) {
    if (c > 0x10FFFF) return true; // a raw byte
    if (ccc_of(c) != 0) return false;
    if (c >= HANGUL_V && c < HANGUL_V + HANGUL_VN) return false;
    if (c > HANGUL_T && c < HANGUL_T + HANGUL_TN) return false;
    size_t lo = 0, hi = rt_uc_compose_second_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt_uc_compose_second[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == rt_uc_compose_second_count || rt_uc_compose_second[lo] != c;
}

// Orders and composes the decomposed segment cps[0..n) in place; returns its new length.
static size_t order_and_compose(uint32_t *cps, size_t n, uint32_t *tmp) {
    for (size_t i = 0; i < n;) { // canonical ordering of each run of marks
        if (ccc_of(cps[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && ccc_of(cps[j]) != 0) j++;
        order_marks(cps + i, j - i, tmp);
        i = j;
    }
    // canonical composition: a character joins the last starter when nothing between blocks it (a blocker
    // is a character with class 0 or >= its own class; after ordering, that is the one just before it)
    size_t m = 0;
    size_t starter = SIZE_MAX;
    uint8_t last_ccc = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        uint8_t k = ccc_of(c);
        if (starter != SIZE_MAX && (m - 1 == starter || (last_ccc != 0 && last_ccc < k))) {
            uint32_t composite = c > 0x10FFFF ? 0 : compose_pair(cps[starter], c);
            if (composite) {
                cps[starter] = composite;
                continue;
            }
        }
        if (k == 0) starter = m;
        last_ccc = k;
        cps[m++] = c;
    }
    return m;
}

// The output text, grown as segments are appended.
typedef struct {
    char *text;
    size_t len, cap;
} nfc_out;

static int append_segment(nfc_out *out, const uint32_t *cps, size_t m, rt_error *err) {
    size_t need; // at most 4 bytes per code point, plus the final NUL
    if (!rt_mul_size(m, 4, &need) || !rt_add_size(need, out->len + 1, &need))
        return rt_fail(err, "NFC: output too large");
    if (need > out->cap) {
        size_t cap = out->cap * 2 > need ? out->cap * 2 : need;
        char *text = realloc(out->text, cap);
        if (!text) return rt_fail(err, "NFC: out of memory for %zu bytes of output", cap);
        out->text = text;
        out->cap = cap;
    }
    for (size_t i = 0; i < m; i++) {
        if (cps[i] & RAW_BYTE)
            out->text[out->len++] = (char)(cps[i] & 0xFFu);
        else
            out->len += (size_t)rt_utf8_encode(cps[i], out->text + out->len);
    }
    out->text[out->len] = 0;
    return 0;
}

// A segment is cut at the first boundary after this many code points, so memory stays bounded by the
// segment, not the text (only a run of that many marks with no boundary makes a segment longer).
#define NFC_SEGMENT 1024

int rt_unicode_nfc(const char *in, size_t len, char **out, size_t *out_len, rt_error *err) {
    *out = NULL;
    *out_len = 0;
    nfc_out res = {NULL, 0, 0};
    size_t ascii = 0;
    while (ascii < len && (unsigned char)in[ascii] < 0x80) ascii++;
    if (!rt_add_size(len, len / 8 + 16, &res.cap)) return rt_fail(err, "NFC: text too large");
    if (ascii == len)
        res.cap = len + 1; // ASCII is already NFC
    else if (ascii > 0)
        ascii--; // its last character may compose with the mark after it
    res.text = rt_malloc(res.cap, "NFC output", err);
    if (!res.text) return -1;
    memcpy(res.text, in, ascii);
    res.len = ascii;
    res.text[ascii] = 0;
    // the segment's code points and the sort's scratch space, cap each
    size_t cap = 0, n = 0;
    uint32_t *cps = NULL;
    int rc = 0;
    for (size_t pos = ascii; pos < len && rc == 0;) {
        uint32_t cp, parts[4];
        size_t used = rt_utf8_next(in + pos, len - pos, &cp);
        size_t k = decompose(cp == RT_UTF8_INVALID ? RAW_BYTE | (unsigned char)in[pos] : cp, parts);
        pos += used;
        if (n >= NFC_SEGMENT && nfc_boundary(parts[0])) {
            rc = append_segment(&res, cps, order_and_compose(cps, n, cps + cap), err);
            n = 0;
        }
        if (rc == 0 && n + k > cap) {
            size_t new_cap = cap ? 2 * cap : 2 * NFC_SEGMENT, bytes;
            uint32_t *grown = NULL;
            if (rt_mul_size(new_cap, 2 * sizeof *cps, &bytes)) grown = realloc(cps, bytes);
            if (!grown)
                rc = rt_fail(err, "NFC: out of memory for a segment of %zu code points", new_cap);
            else
                cps = grown, cap = new_cap;
        }
        if (rc == 0) {
            memcpy(cps + n, parts, k * sizeof *parts);
            n += k;
        }
    }
    if (rc == 0 && n) rc = append_segment(&res, cps, order_and_compose(cps, n, cps + cap), err);
    free(cps);
    if (rc) {
        free(res.text);
        return -1;
    }
    *out = res.text;
    *out_len = res.len;
    return 0;
}
