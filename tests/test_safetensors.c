// The safetensors reader's refusals: hand-made files, one per check, each refused with a message that names
// the file (and the tensor where there is one) and says what was expected. The values of real files are
// checked against the safetensors package in check_safetensors.py; here only a small hand-made file is read.
// Also the writer's edge cases (a scalar, an empty tensor, a name needing JSON escapes, BF16 rounding ties,
// refusals); transformers reads the writer's files in check_import_hf.py.
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/safetensors_write.h"
#include "import/safetensors.h"
#include "testutil.h"

static char path[4096];

// Writes an 8-byte length (n, which may lie), the header text and data bytes.
static void write_st(uint64_t n, const char *header, size_t header_len, const void *data, size_t data_len) {
    snprintf(path, sizeof path, "%s/t.safetensors", rt_test_tmpdir("safetensors"));
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(n >> (8 * i));
    ck_assert_uint_eq(fwrite(len, 1, 8, fp), 8);
    if (header_len) ck_assert_uint_eq(fwrite(header, 1, header_len, fp), header_len);
    if (data_len) ck_assert_uint_eq(fwrite(data, 1, data_len, fp), data_len);
    fclose(fp);
}

// A header as written, then data_len zero bytes.
static void write_header(const char *header, size_t data_len) {
    void *zeros = calloc(1, data_len + 1);
    write_st(strlen(header), header, strlen(header), zeros, data_len);
    free(zeros);
}

// rt_st_open fails, and the message holds the path and every needle (NULL-terminated list).
static void refused(const char *what, ...) {
    rt_st_file f;
    rt_error err = {{0}};
    int rc = rt_st_open(path, &f, &err);
    ck_assert_msg(rc != 0, "%s: accepted", what);
    ck_assert_msg(strstr(err.msg, path), "%s: message does not name the file: %s", what, err.msg);
    va_list ap;
    va_start(ap, what);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err.msg, needle), "%s: message lacks '%s': %s", what, needle, err.msg);
    va_end(ap);
    ck_assert_ptr_null(f.map);
    ck_assert_ptr_null(f.tensors);
}

START_TEST(test_lengths) {
    write_st(0, "", 0, NULL, 0);
    ck_assert_int_eq(fclose(fopen(path, "wb")), 0); // 0 bytes
    refused("empty file", "shorter than the 8-byte", NULL);
    write_st(100u * 1000u * 1000u + 1u, "{}", 2, NULL, 0);
    refused("header over 100 MB", "exceeds the limit", NULL);
    write_st(UINT64_MAX, "{}", 2, NULL, 0);
    refused("header length 2^64-1", "exceeds the limit", NULL);
    write_st(1000, "{}", 2, NULL, 0);
    refused("header past EOF", "runs past the end of the file", NULL);
    write_st(3, "{}", 2, NULL, 0);
    refused("header one byte past EOF", "runs past the end", NULL);
}
END_TEST

// One hand-made header (followed by data_len zero bytes) that must be refused with both needles in the
// message.
typedef struct bad_header {
    const char *what, *header;
    size_t data_len;
    const char *needle, *needle2;
} bad_header;

#define T(name, rest) "{\"" name "\":{" rest "}}"
static const bad_header BAD[] = {
    {"invalid byte", "{\"a\xff\":{}}", 0, "not valid UTF-8", ""},
    {"overlong '/'", "{\"a\xc0\xaf\":{}}", 0, "not valid UTF-8", ""},
    {"encoded surrogate", "{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8", ""},
    {"truncated sequence", "{\"a\xe2\x82\":{}}", 0, "not valid UTF-8", ""},
    {"unterminated JSON", "{\"a\": {", 0, "invalid JSON", ""},
    {"text after the object", "{\"a\": 1} x", 0, "invalid JSON", ""},
    {"not an object", "[1, 2]", 0, "JSON object", ""},
    {"NUL in a name", "{\"a\\u0000b\":{}}", 0, "NUL", ""},
    {"offsets past the data", T("w", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]"), 8, "'w'",
     "outside the data section"},
    {"begin after end", T("w", "\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]"), 8, "'w'",
     "begin <= end"},
    {"offset over 2^64", T("w", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]"),
     8, "'w'", "data_offsets"},
    {"fractional offset", T("w", "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]"), 8, "'w'",
     "data_offsets"},
    {"size mismatch", T("w", "\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8, "'w'",
     "need 3 elements x 4 bytes"},
    {"negative dim", T("w", "\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]"), 8, "'w'", "shape[0]"},
    {"element count overflow",
     T("w", "\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]"), 8, "'w'",
     "overflows"},
    {"unknown dtype", T("w", "\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]"), 1, "'w'",
     "unknown dtype 'F4'"},
    {"no dtype", T("w", "\"shape\":[2],\"data_offsets\":[0,8]"), 8, "'w'", "dtype"},
    {"too many dims", T("w", "\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4,
     "'w'", "dimensions"},
    {"metadata not a string", "{\"__metadata__\":{\"k\":1}}", 0, "'k'", "string value"},
};

START_TEST(test_bad_headers) {
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        write_header(BAD[i].header, BAD[i].data_len);
        refused(BAD[i].what, BAD[i].needle, BAD[i].needle2, NULL);
    }
}
END_TEST

START_TEST(test_layout) {
    const char *two = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[%d,%d]}}";
    char h[512];
    snprintf(h, sizeof h, two, 4, 12);
    write_header(h, 12);
    refused("overlap", "'b'", "begins at byte 4", "ends at 8", "contiguous", "overlaps", NULL);
    snprintf(h, sizeof h, two, 12, 20);
    write_header(h, 20);
    refused("gap", "'b'", "contiguous", "gaps", NULL);
    snprintf(h, sizeof h, two, 8, 16);
    write_header(h, 20);
    refused("bytes after the last tensor", "cover it exactly", NULL);
    write_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    refused("not starting at 0", "'a'", "begins at byte 4", NULL);
    write_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8);
    refused("duplicate name", "'a'", "appears twice", NULL);
}
END_TEST

// A good file with an unpadded header (MLX's layout): every tensor starts at an odd address.
START_TEST(test_read) {
    const char *h = "{\"__metadata__\":{\"format\":\"mlx1\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                    "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                    "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},"
                    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,7],\"data_offsets\":[14,14]}}";
    ck_assert(strlen(h) % 2 == 1);
    // I32 7; BF16 1.5 (0x3fc0), -2 (0xc000); F16 smallest subnormal 2^-24, -inf, 1.0
    const uint8_t data[14] = {7, 0, 0, 0, 0xc0, 0x3f, 0x00, 0xc0, 0x01, 0x00, 0x00, 0xfc, 0x00, 0x3c};
    write_st(strlen(h), h, strlen(h), data, sizeof data);
    rt_st_file f;
    rt_error err;
    ck_assert_msg(rt_st_open(path, &f, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(f.n_tensors, 4);
    ck_assert_str_eq(rt_st_metadata(&f, "format"), "mlx1");
    ck_assert_ptr_null(rt_st_metadata(&f, "absent"));
    ck_assert_ptr_null(rt_st_find(&f, "absent"));
    float out[3];
    const rt_st_tensor *b = rt_st_find(&f, "b"), *hh = rt_st_find(&f, "h"), *i = rt_st_find(&f, "i");
    ck_assert(b && hh && i && rt_st_find(&f, "z"));
    ck_assert_int_eq(rt_st_read_f32(b, out, 2, &err), 0);
    ck_assert(out[0] == 1.5f && out[1] == -2.0f);
    ck_assert_int_eq(rt_st_read_f32(hh, out, 3, &err), 0);
    ck_assert(out[0] == 0x1p-24f && out[1] < 0 && out[1] * 0 != 0 && out[2] == 1.0f);
    ck_assert_int_eq(i->ndim, 0);
    ck_assert_uint_eq(i->count, 1);
    ck_assert_int_ne(rt_st_read_f32(i, out, 1, &err), 0);
    ck_assert(strstr(err.msg, path) && strstr(err.msg, "'i'") && strstr(err.msg, "dtype I32"));
    ck_assert_int_ne(rt_st_read_f32(b, out, 3, &err), 0);
    ck_assert(strstr(err.msg, "'b' holds 2 elements"));
    rt_st_close(&f);
}
END_TEST

START_TEST(test_write) {
    snprintf(path, sizeof path, "%s/w.safetensors", rt_test_tmpdir("safetensors_write"));
    const float m[6] = {1.0f,
                        -0.0f,
                        NAN,
                        1.00390625f /* 1 + 2^-8: a tie, to even 1.0 */,
                        1.01171875f /* 1 + 3 * 2^-8: a tie, to even 1.015625 */,
                        1.009765625f /* 1 + 2^-7 + 2^-9: down to 1.0078125 */};
    const float scalar = 2.5f, v[3] = {1, 2, 3};
    const int64_t sm[2] = {2, 3}, se[2] = {0, 4}, sv[1] = {3};
    const rt_st_out ts[4] = {{"w\"q\\", 2, sm, m}, {"s", 0, NULL, &scalar}, {"e", 2, se, v}, {"v", 1, sv, v}};
    rt_error err;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        size_t bytes = 0;
        ck_assert_msg(rt_st_write(path, ts, 4, bf16, &bytes, &err) == 0, "%s", err.msg);
        rt_st_file f;
        ck_assert_msg(rt_st_open(path, &f, &err) == 0, "%s", err.msg);
        ck_assert_uint_eq(f.size, bytes);
        ck_assert_uint_eq(f.data_start % 8, 0);
        ck_assert_str_eq(rt_st_metadata(&f, "format"), "pt");
        const rt_st_tensor *w = rt_st_find(&f, "w\"q\\"), *s = rt_st_find(&f, "s"), *e = rt_st_find(&f, "e");
        ck_assert(w && s && e && rt_st_find(&f, "v"));
        ck_assert_str_eq(w->dtype, bf16 ? "BF16" : "F32");
        ck_assert(s->ndim == 0 && e->count == 0 && e->shape[1] == 4);
        ck_assert(e->begin <= s->begin && s->begin < rt_st_find(&f, "v")->begin &&
                  rt_st_find(&f, "v")->begin < w->begin);
        float got[6];
        ck_assert_int_eq(rt_st_read_f32(w, got, 6, &err), 0);
        ck_assert(got[0] == 1.0f && got[1] == 0 && signbit(got[1]) && isnan(got[2]));
        if (bf16)
            ck_assert(got[3] == 1.0f && got[4] == 1.015625f && got[5] == 1.0078125f);
        else
            ck_assert(memcmp(got + 3, m + 3, 3 * sizeof(float)) == 0);
        ck_assert_int_eq(rt_st_read_f32(s, got, 1, &err), 0);
        ck_assert(got[0] == 2.5f);
        rt_st_close(&f);
    }
    const rt_st_out dup[2] = {{"a", 1, sv, v}, {"a", 1, sv, v}};
    ck_assert_int_ne(rt_st_write(path, dup, 2, 0, NULL, &err), 0);
    ck_assert(strstr(err.msg, "a given twice"));
    const int64_t neg[1] = {-1}, huge[2] = {INT64_MAX, INT64_MAX};
    const rt_st_out bad[2] = {{"n", 1, neg, v}, {"h", 2, huge, v}};
    for (int i = 0; i < 2; i++) {
        ck_assert_int_ne(rt_st_write(path, &bad[i], 1, 0, NULL, &err), 0);
        ck_assert(strstr(err.msg, bad[i].name) && strstr(err.msg, "overflows"));
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, test_lengths);
    tcase_add_test(tc, test_bad_headers);
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_read);
    tcase_add_test(tc, test_write);
    suite_add_tcase(s, tc);
    return rt_test_run_suite(s);
}
