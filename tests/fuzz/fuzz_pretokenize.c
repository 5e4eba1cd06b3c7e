// libFuzzer harness: the input as text (any bytes, valid UTF-8 or not) through every pre-tokenizer splitter,
// SmolLM's Digits-then-GPT-2 sequence and NFC. The pieces must cover the input exactly, in order, none
// empty; NFC must return and be idempotent (NFC of its output is the same), and must leave valid UTF-8
// valid and ASCII unchanged.
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"

static void check_cover(const rt_spans *spans, size_t len) {
    size_t pos = 0;
    for (size_t i = 0; i < spans->count; i++) {
        if (spans->items[i].offset != pos || spans->items[i].length == 0) abort();
        pos += spans->items[i].length;
    }
    if (pos != len) abort();
}

static bool valid_utf8(const char *s, size_t len) {
    for (size_t pos = 0; pos < len;) {
        uint32_t cp;
        pos += rt_utf8_next(s + pos, len - pos, &cp);
        if (cp == RT_UTF8_INVALID) return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    rt_error err;
    rt_spans spans = {0};
    for (int k = 0; k < 4; k++) {
        spans.count = 0;
        if (rt_pretok_split((rt_pretok_kind)k, text, size, &spans, &err)) abort();
        check_cover(&spans, size);
    }
    const rt_pretok_kind smollm[2] = {RT_PRETOK_DIGITS, RT_PRETOK_GPT2};
    spans.count = 0;
    if (rt_pretok_split_seq(smollm, 2, text, size, &spans, &err)) abort();
    check_cover(&spans, size);
    rt_spans_free(&spans);

    char *once, *twice;
    size_t once_len, twice_len;
    if (rt_unicode_nfc(text, size, &once, &once_len, &err)) abort();
    if (rt_unicode_nfc(once, once_len, &twice, &twice_len, &err)) abort();
    if (twice_len != once_len || memcmp(once, twice, once_len) != 0) abort();
    if (valid_utf8(text, size) && !valid_utf8(once, once_len)) abort();
    bool ascii = true;
    for (size_t i = 0; i < size; i++) ascii = ascii && data[i] < 0x80;
    if (ascii && (once_len != size || memcmp(once, text, size) != 0)) abort();
    free(once);
    free(twice);
    return 0;
}
