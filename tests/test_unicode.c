// UTF-8 decoding edge cases (RFC 3629), Unicode property and NFC facts from the standard, and the shape of
// the pre-tokenizer API. The exhaustive comparisons against HF tokenizers, the regex module and the Unicode
// conformance file NormalizationTest.txt are in check_pretokenize.py.
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

// Decodes s[0..len) fully; the code points (RT_UTF8_INVALID for invalid bytes) and the bytes each took.
static size_t decode_all(const char *s, size_t len, uint32_t *cps, size_t *used) {
    size_t n = 0;
    for (size_t pos = 0; pos < len; n++) {
        used[n] = rt_utf8_next(s + pos, len - pos, &cps[n]);
        ck_assert_uint_ge(used[n], 1);
        pos += used[n];
    }
    return n;
}

#define INV RT_UTF8_INVALID

START_TEST(test_utf8_decode) {
    static const struct {
        const char *bytes;
        size_t len;
        size_t n;
        uint32_t cps[6];
    } cases[] = {
        {"A", 1, 1, {0x41}},
        {"\xC2\x80", 2, 1, {0x80}},                       // smallest 2-byte
        {"\xDF\xBF", 2, 1, {0x7FF}},                      // largest 2-byte
        {"\xE0\xA0\x80", 3, 1, {0x800}},                  // smallest 3-byte
        {"\xED\x9F\xBF", 3, 1, {0xD7FF}},                 // just below the surrogates
        {"\xEE\x80\x80", 3, 1, {0xE000}},                 // just above them
        {"\xEF\xBF\xBF", 3, 1, {0xFFFF}},                 // a noncharacter is still a code point
        {"\xF0\x90\x80\x80", 4, 1, {0x10000}},            // smallest 4-byte
        {"\xF4\x8F\xBF\xBF", 4, 1, {0x10FFFF}},           // the last code point
        {"\xF4\x90\x80\x80", 4, 4, {INV, INV, INV, INV}}, // above U+10FFFF: every byte alone
        {"\xED\xA0\x80", 3, 3, {INV, INV, INV}},          // an encoded surrogate (CESU-8)
        {"\xC0\xAF", 2, 2, {INV, INV}},                   // overlong '/'
        {"\xC1\xBF", 2, 2, {INV, INV}},                   // overlong
        {"\xE0\x80\xAF", 3, 3, {INV, INV, INV}},          // overlong 3-byte
        {"\xF0\x80\x80\xAF", 4, 4, {INV, INV, INV, INV}}, // overlong 4-byte
        {"\x80", 1, 1, {INV}},                            // a lone continuation byte
        {"\xE2\x82", 2, 2, {INV, INV}},                   // truncated euro sign
        {"\xE2\x82"
         "A",
         3,
         3,
         {INV, INV, 0x41}},                                        // truncated then resynchronized
        {"\xF8\x88\x80\x80\x80", 5, 5, {INV, INV, INV, INV, INV}}, // old 5-byte form
        {"\xFF\xFE", 2, 2, {INV, INV}},
        {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9, 3, {0xE9, 0x20AC, 0x1F600}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t cps[16];
        size_t used[16];
        size_t n = decode_all(cases[c].bytes, cases[c].len, cps, used);
        ck_assert_msg(n == cases[c].n, "case %zu: %zu code points, expected %zu", c, n, cases[c].n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(cps[i] == cases[c].cps[i], "case %zu cp %zu: %x expected %x", c, i, cps[i],
                          cases[c].cps[i]);
    }
    uint32_t cp = 0;
    ck_assert_uint_eq(rt_utf8_next("A", 0, &cp), 0);
    // a 4-byte lead with only 3 bytes available is invalid even though the bytes beyond would complete it
    ck_assert_uint_eq(rt_utf8_next("\xF0\x9F\x98\x80", 3, &cp), 1);
    ck_assert_uint_eq(cp, INV);
}
END_TEST

START_TEST(test_utf8_round_trip) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        char buf[4];
        int n = rt_utf8_encode(cp, buf);
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            ck_assert_int_eq(n, 0);
            continue;
        }
        ck_assert_int_eq(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        uint32_t back;
        ck_assert_uint_eq(rt_utf8_next(buf, (size_t)n, &back), (size_t)n);
        ck_assert_uint_eq(back, cp);
    }
    char buf[4];
    ck_assert_int_eq(rt_utf8_encode(0x110000, buf), 0);
    ck_assert_int_eq(rt_utf8_encode(INV, buf), 0);
}
END_TEST

START_TEST(test_flags) {
    static const struct {
        uint32_t cp, flags;
    } cases[] = {
        {'A', RT_UC_LETTER},
        {0xE9, RT_UC_LETTER},   // é
        {0x4E2D, RT_UC_LETTER}, // 中 (a range in UnicodeData.txt)
        {0xAC00, RT_UC_LETTER}, // 가
        {'7', RT_UC_NUMBER},
        {0x0664, RT_UC_NUMBER}, // Arabic-Indic four
        {0xFF11, RT_UC_NUMBER}, // fullwidth one
        {0x2167, RT_UC_NUMBER}, // Roman numeral eight (Nl)
        {0xB2, RT_UC_NUMBER},   // superscript two (No)
        {'!', RT_UC_PUNCT},
        {'\'', RT_UC_PUNCT},
        {'$', RT_UC_SYMBOL},
        {0x1F600, RT_UC_SYMBOL}, // 😀
        {0x0301, RT_UC_MARK},
        {0x200D, RT_UC_CONTROL}, // zero width joiner is Cf
        {0x200B, RT_UC_CONTROL}, // zero width space is Cf and not White_Space
        {0xFEFF, RT_UC_CONTROL},
        {0xE000, RT_UC_CONTROL},   // private use
        {0x0378, RT_UC_CONTROL},   // unassigned
        {0xD800, RT_UC_CONTROL},   // a surrogate
        {0x10FFFF, RT_UC_CONTROL}, // a noncharacter (unassigned)
        {' ', RT_UC_SEPARATOR | RT_UC_WHITESPACE},
        {0xA0, RT_UC_SEPARATOR | RT_UC_WHITESPACE},
        {0x3000, RT_UC_SEPARATOR | RT_UC_WHITESPACE},
        {0x2028, RT_UC_SEPARATOR | RT_UC_WHITESPACE},
        {'\t', RT_UC_CONTROL | RT_UC_WHITESPACE},
        {'\n', RT_UC_CONTROL | RT_UC_WHITESPACE},
        {0x85, RT_UC_CONTROL | RT_UC_WHITESPACE},
        {0x1C, RT_UC_CONTROL},   // a file separator: Python's isspace() says yes, White_Space no
        {0x180E, RT_UC_CONTROL}, // Mongolian vowel separator: Cf since Unicode 6.3, not White_Space
        {0x110000, 0},
        {INV, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        ck_assert_msg(rt_unicode_flags(cases[c].cp) == cases[c].flags, "U+%04X: flags %x expected %x",
                      cases[c].cp, rt_unicode_flags(cases[c].cp), cases[c].flags);
    // exactly one general category per code point
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint32_t gc = rt_unicode_flags(cp) & ~(uint32_t)RT_UC_WHITESPACE;
        ck_assert_msg(gc != 0 && (gc & (gc - 1)) == 0, "U+%04X has flags %x", cp, gc);
    }
    ck_assert_uint_eq(rt_unicode_ccc(0x0301), 230);
    ck_assert_uint_eq(rt_unicode_ccc(0x0323), 220);
    ck_assert_uint_eq(rt_unicode_ccc('a'), 0);
}
END_TEST

static void expect_nfc(const char *in, size_t len, const char *want, size_t want_len) {
    char *out;
    size_t out_len;
    rt_error err;
    ck_assert_int_eq(rt_unicode_nfc(in, len, &out, &out_len, &err), 0);
    ck_assert_msg(out_len == want_len && memcmp(out, want, want_len) == 0, "NFC of %zu bytes: got %zu bytes",
                  len, out_len);
    ck_assert_int_eq(out[out_len], 0);
    free(out);
}
#define NFC(in, want) expect_nfc(in, sizeof in - 1, want, sizeof want - 1)

START_TEST(test_nfc) {
    NFC("", "");
    NFC("plain ascii", "plain ascii");
    NFC("e\xCC\x81", "\xC3\xA9");                                // e + combining acute -> é
    NFC("\xE2\x84\xAB", "\xC3\x85");                             // U+212B ANGSTROM SIGN -> U+00C5 (singleton)
    NFC("\xE2\x84\xA6", "\xCE\xA9");                             // U+2126 OHM SIGN -> U+03A9
    NFC("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"); // Hangul L V T -> U+AC01
    NFC("\xEA\xB0\x80\xE1\x86\xA8", "\xEA\xB0\x81");             // LV + T -> LVT
    // q + dot above (230) + dot below (220): reordered to below, above; q has no precomposed forms
    NFC("q\xCC\x87\xCC\xA3", "q\xCC\xA3\xCC\x87");
    // a + dot above + dot below: after reordering, a + dot below composes to U+1EA1, which has no form
    // with a dot above, so that mark stays
    NFC("a\xCC\x87\xCC\xA3", "\xE1\xBA\xA1\xCC\x87");
    // U+0958 DEVANAGARI QA is a composition exclusion: it stays decomposed
    NFC("\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC");
    // invalid bytes pass through and block nothing after them from staying as they are
    NFC("\xFF"
        "e\xCC\x81\x80",
        "\xFF\xC3\xA9\x80");
    NFC("\xFF\xCC\x81", "\xFF\xCC\x81");
}
END_TEST

START_TEST(test_nfc_many_marks) {
    // 200,000 marks alternating between two classes must reorder in linear time (and correctly)
    size_t n = 200000;
    char *in = malloc(2 * n + 1), *want = malloc(2 * n + 1);
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(want);
    in[0] = want[0] = 'q';
    for (size_t i = 0; i < n; i++) memcpy(in + 1 + 2 * i, i % 2 ? "\xCC\xA3" : "\xCC\x87", 2);
    for (size_t i = 0; i < n; i++) memcpy(want + 1 + 2 * i, i < n / 2 ? "\xCC\xA3" : "\xCC\x87", 2);
    expect_nfc(in, 2 * n + 1, want, 2 * n + 1);
    free(in);
    free(want);
}
END_TEST

START_TEST(test_pretok_api) {
    rt_error err;
    rt_spans spans = {0};
    const char *text = "Hello world's 12345 \xFF\xFE end  ";
    size_t len = strlen(text);
    for (int k = 0; k < 4; k++) {
        spans.count = 0;
        ck_assert_int_eq(rt_pretok_split((rt_pretok_kind)k, text, len, &spans, &err), 0);
        size_t pos = 0;
        for (size_t i = 0; i < spans.count; i++) {
            ck_assert_uint_eq(spans.items[i].offset, pos);
            ck_assert_uint_gt(spans.items[i].length, 0);
            pos += spans.items[i].length;
        }
        ck_assert_uint_eq(pos, len);
    }
    spans.count = 0;
    ck_assert_int_eq(rt_pretok_split(RT_PRETOK_GPT2, "", 0, &spans, &err), 0);
    ck_assert_uint_eq(spans.count, 0);
    ck_assert_int_eq(rt_pretok_split((rt_pretok_kind)9, "a", 1, &spans, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "unknown"));
    // a sequence with no splitter keeps the text whole
    ck_assert_int_eq(rt_pretok_split_seq(NULL, 0, "ab", 2, &spans, &err), 0);
    ck_assert_uint_eq(spans.count, 1);
    rt_spans_free(&spans);
    ck_assert_ptr_null(spans.items);
    ck_assert_int_eq(rt_pretok_kind_from_regex("\\p{L}+"), -1);
    ck_assert_int_eq(rt_pretok_kind_from_regex(NULL), -1);
    ck_assert_int_eq(
        rt_pretok_kind_from_regex(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"),
        RT_PRETOK_GPT2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("unicode");
    TCase *tc = tcase_create("unicode");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_utf8_decode);
    tcase_add_test(tc, test_utf8_round_trip);
    tcase_add_test(tc, test_flags);
    tcase_add_test(tc, test_nfc);
    tcase_add_test(tc, test_nfc_many_marks);
    tcase_add_test(tc, test_pretok_api);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
