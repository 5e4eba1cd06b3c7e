// libFuzzer harness: a tokenizer from a GGUF file's tokenizer.ggml.* keys (rt_gguf_read, then
// rt_tokenizer_from_gguf) on the input as the file. Whatever the reader accepts must work (fuzz_tokenizer.c).
#include "gguf/gguf.h"
#include "fuzz_tokenizer.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path("vocab.gguf");
    fz_write(path, data, size);
    rt_gguf_file f;
    rt_error err;
    if (rt_gguf_read(path, &f, &err) != 0) return 0;
    rt_tokenizer *t;
    if (rt_tokenizer_from_gguf(&f, path, &t, &err) == 0) {
        fz_exercise_tokenizer(t, data, size);
        rt_tokenizer_free(t);
    }
    rt_gguf_free(&f);
    return 0;
}
