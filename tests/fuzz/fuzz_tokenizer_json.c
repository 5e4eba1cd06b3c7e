// libFuzzer harness: the tokenizer.json reader (rt_tokenizer_from_json) on the input as the file's text.
// Any input gives an error or a tokenizer that encodes, decodes and answers every accessor
// (fuzz_tokenizer.c).
#include "fuzz_tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rt_tokenizer *t;
    rt_error err;
    if (rt_tokenizer_from_json((const char *)data, size, "fuzz.json", &t, &err) != 0) return 0;
    fz_exercise_tokenizer(t, data, size);
    rt_tokenizer_free(t);
    return 0;
}
