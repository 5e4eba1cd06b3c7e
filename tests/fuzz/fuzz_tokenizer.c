#include "fuzz_tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/tokenizer_json_write.h"

static void one(rt_tokenizer *t, const char *text, size_t len) {
    rt_error err;
    int32_t V = rt_tokenizer_vocab_size(t);
    for (int special = 0; special < 2; special++) {
        rt_tok_ids ids = {0};
        if (rt_tokenizer_encode(t, text, len, special, &ids, &err) != 0) abort(); // fails only without memory
        for (size_t i = 0; i < ids.n; i++)
            if (ids.ids[i] < 0 || ids.ids[i] >= V) abort();
        rt_buf out = {0};
        if (rt_tokenizer_decode(t, ids.ids, ids.n, special, &out, &err) != 0) abort();
        fz_sink ^= (uint8_t)out.len;
        rt_buf_free(&out);
        for (size_t i = 0; i < ids.n && i < 64; i++) {
            rt_buf piece = {0};
            if (rt_tokenizer_piece(t, ids.ids[i], &piece, &err) != 0) abort();
            fz_sink ^= (uint8_t)piece.len;
            rt_buf_free(&piece);
        }
        rt_tok_ids_free(&ids);
    }
}

void fz_exercise_tokenizer(rt_tokenizer *t, const uint8_t *data, size_t size) {
    static const char *const texts[] = {
        "",
        " ",
        "Hello world",
        "  Hello\n\n\tworld  ",
        "<s>x</s><unk> <|endoftext|><|begin_of_text|>",
        "caf\xc3\xa9 e\xcc\x81 \xef\xbc\x91\xef\xbc\x92 123456 'RE 's",
        "\xf0\x9f\x9a\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xe6\x97\xa5\xe6\x9c\xac \xd0\x9f\xd1\x80\xd0\xb8",
        "\r\n\r\n x\xe2\x96\x81y \xe2\x96\x81\xe2\x96\x81",
        "\xff\xfe\xc3 broken \xed\xa0\x80 utf-8",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) one(t, texts[i], strlen(texts[i]));
    one(t, (const char *)data, size < 4096 ? size : 4096);
    rt_error err;
    int32_t V = rt_tokenizer_vocab_size(t);
    rt_buf out = {0};
    int32_t probe[4] = {0, V - 1, V / 2, -1};
    if (rt_tokenizer_decode(t, probe, 3, 0, &out, &err) != 0) abort();
    if (rt_tokenizer_decode(t, probe, 4, 0, &out, &err) == 0) abort(); // -1 is no token
    rt_buf_free(&out);
    for (int32_t id = 0; id < V && id < 512; id++) {
        size_t len = 0;
        const char *s = rt_tokenizer_token(t, id, &len);
        if (s) fz_sink ^= (uint8_t)(s[0] ^ (char)len);
        fz_sink ^= (uint8_t)rt_tokenizer_token_type(t, id);
    }
    size_t n = rt_tokenizer_n_merges(t);
    for (size_t r = 0; r < n && r < 512; r++) {
        int32_t a, b;
        rt_tokenizer_merge(t, r, &a, &b);
        if (a < 0 || a >= V || b < 0 || b >= V) abort();
    }
    fz_sink ^=
        (uint8_t)(rt_tokenizer_bos(t) ^ rt_tokenizer_eos(t) ^ rt_tokenizer_pad(t) ^ rt_tokenizer_unk(t));
    // the exports' tokenizer.json writer: an error or text that the JSON reader takes in (or refuses cleanly)
    rt_buf json = {0};
    if (rt_tokenizer_to_json(t, &json, &err) == 0) {
        rt_tokenizer *back = NULL;
        if (rt_tokenizer_from_json((const char *)json.data, json.len, "written", &back, &err) == 0)
            fz_sink ^= (uint8_t)rt_tokenizer_vocab_size(back);
        rt_tokenizer_free(back);
    }
    rt_buf_free(&json);
}
