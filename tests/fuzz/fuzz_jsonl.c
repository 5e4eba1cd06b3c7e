// libFuzzer harness: the JSON object reader (rt_json_object) and the tree reader (rt_json_parse) on the input
// as one line, then the prompts file of `retort synth` (rt_synth_prompts_from_jsonl) on the input as a file.
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "data/tokenizer.h"
#include "distill/synth.h"
#include "fuzz_util.h"

typedef struct seen {
    size_t strings, bytes;
} seen;

// The decoded value must be readable to its end, and the key a C string.
static int on_string(const char *key, const char *value, size_t len, void *user) {
    seen *s = user;
    fz_sink ^= (uint8_t)strlen(key);
    for (size_t i = 0; i < len; i++) fz_sink ^= (uint8_t)value[i];
    s->strings++;
    s->bytes += len;
    return 0;
}

static int on_other(const char *key, void *user) {
    fz_sink ^= (uint8_t)strlen(key);
    return 0;
}

// Every node of a parsed tree is readable: strings to their length, keys as C strings, lookups find keys.
static void walk(const rt_json *v, size_t size) {
    if ((v->type == RT_JSON_STRING || v->type == RT_JSON_NUMBER) && v->len > size) abort();
    for (size_t i = 0; i < v->len; i++) fz_sink ^= (uint8_t)v->str[i];
    for (size_t i = 0; i < v->n; i++) {
        if (v->type == RT_JSON_OBJECT && rt_json_get(v, v->keys[i]) == NULL) abort();
        walk(&v->items[i], size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size ? size : 1); // exact size: the reader must stay inside len
    if (!text) return 0;
    memcpy(text, data, size);
    seen s = {0, 0};
    char msg[256];
    if (rt_json_object(text, size, on_string, on_other, &s, msg, sizeof msg) == 0 && s.bytes > size) abort();
    rt_json tree;
    if (rt_json_parse(text, size, &tree, msg, sizeof msg) == 0) {
        uint64_t u;
        walk(&tree, size);
        if (rt_json_u64(&tree, &u) == 0) fz_sink ^= (uint8_t)u;
        rt_json_free(&tree);
    }
    free(text);

    const char *path = fz_path("prompts.jsonl");
    fz_write(path, data, size);
    rt_synth_prompts p;
    rt_error err;
    static rt_tokenizer *bytes;
    if (!bytes && rt_tokenizer_bytes(&bytes, &err)) abort();
    if (rt_synth_prompts_from_jsonl(path, bytes, "byte", "", &p, &err) == 0) {
        if (p.n == 0) abort();
        for (size_t i = 0; i < p.n; i++) {
            if (p.len[i] < 1 || p.ids[i][0] != RT_TOK_BOS) abort();
            for (int32_t j = 1; j < p.len[i]; j++)
                if (p.ids[i][j] < 0 || p.ids[i][j] > 255) abort();
        }
        rt_synth_prompts_free(&p);
    }
    return 0;
}
