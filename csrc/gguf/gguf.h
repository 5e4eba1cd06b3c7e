// GGUF v3 files (docs/formats.md, GGUF): a writer that builds the whole file in memory and commits it
// atomically, and a reader that checks every size and offset against the file before trusting it (llama.cpp's
// loader had several overflow CVEs), for `retort inspect` and round-trip tests.
#ifndef RT_GGUF_H
#define RT_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "base/buf.h"

enum {
    RT_GGUF_UINT8 = 0,
    RT_GGUF_INT8 = 1,
    RT_GGUF_UINT16 = 2,
    RT_GGUF_INT16 = 3,
    RT_GGUF_UINT32 = 4,
    RT_GGUF_INT32 = 5,
    RT_GGUF_FLOAT32 = 6,
    RT_GGUF_BOOL = 7,
    RT_GGUF_STRING = 8,
    RT_GGUF_ARRAY = 9,
    RT_GGUF_UINT64 = 10,
    RT_GGUF_INT64 = 11,
    RT_GGUF_FLOAT64 = 12
};
#define RT_GGUF_ALIGNMENT 32
#define RT_GGUF_NAME_MAX  64 // tensor names are shorter (gguf.cpp's GGML_MAX_NAME)

typedef struct rt_gguf_tensor_out {
    char name[RT_GGUF_NAME_MAX];
    int type;      // rt_ggml_type
    int n_dims;    // 1..4
    int64_t ne[4]; // GGUF order: ne[0] is the contiguous dimension
    uint8_t *data; // encoded bytes (owned)
    size_t nbytes;
} rt_gguf_tensor_out;

typedef struct rt_gguf_writer {
    rt_buf kv; // the key-value section as it will be written (kv.oom: reported by rt_gguf_write)
    int64_t n_kv;
    rt_gguf_tensor_out *tensors;
    int n_tensors, cap_tensors;
} rt_gguf_writer;

void rt_gguf_writer_init(rt_gguf_writer *w);
void rt_gguf_writer_free(rt_gguf_writer *w);
void rt_gguf_add_string(rt_gguf_writer *w, const char *key, const char *value);
void rt_gguf_add_u32(rt_gguf_writer *w, const char *key, uint32_t value);
void rt_gguf_add_f32(rt_gguf_writer *w, const char *key, float value);
void rt_gguf_add_bool(rt_gguf_writer *w, const char *key, int value);
// Arrays: strings (n of them, each NUL-terminated), int32 and float32.
void rt_gguf_add_string_array(rt_gguf_writer *w, const char *key, const char *const *values, size_t n);
void rt_gguf_add_i32_array(rt_gguf_writer *w, const char *key, const int32_t *values, size_t n);
void rt_gguf_add_f32_array(rt_gguf_writer *w, const char *key, const float *values, size_t n);
// A row-major fp32 tensor of shape [rows, cols] (cols = 0 for a vector), encoded as type. The rows' length
// must be a multiple of the type's block size.
int rt_gguf_add_tensor(rt_gguf_writer *w, const char *name, int type, const float *data, int64_t rows,
                       int64_t cols, rt_error *err);
// Write the file atomically (temp file, fsync, rename).
int rt_gguf_write(rt_gguf_writer *w, const char *path, rt_error *err);
// The same file image in memory instead (*out malloc'd, *len bytes): a vocab-only GGUF a checkpoint stores.
int rt_gguf_write_mem(rt_gguf_writer *w, uint8_t **out, size_t *len, rt_error *err);
// Appends a key read by rt_gguf_read as it was: its type, and its value or elements byte for byte.
struct rt_gguf_kv;
void rt_gguf_add_kv_copy(rt_gguf_writer *w, const struct rt_gguf_kv *kv);

// ---- reading ----

typedef struct rt_gguf_kv {
    char *key;
    int type;             // value type; for arrays RT_GGUF_ARRAY
    int elem_type;        // arrays: the element type
    uint64_t n;           // arrays: elements
    uint64_t u;           // integer and bool scalars (sign-extended for signed types)
    double f;             // float scalars
    char *str;            // string scalars; string arrays: the first element (or NULL)
    const uint8_t *array; // arrays of numbers: the raw little-endian elements inside the file image;
                          // arrays of strings: the first element (walk them with rt_gguf_next_string)
} rt_gguf_kv;

typedef struct rt_gguf_tensor {
    char name[RT_GGUF_NAME_MAX];
    int type;
    int n_dims;
    int64_t ne[4];
    uint64_t offset; // from the data section
    size_t nbytes;
    const uint8_t *data; // inside the file image
} rt_gguf_tensor;

typedef struct rt_gguf_file {
    uint8_t *image; // the whole file
    size_t size;
    uint32_t version;
    size_t alignment;
    rt_gguf_kv *kv;
    int64_t n_kv;
    rt_gguf_tensor *tensors;
    int64_t n_tensors;
} rt_gguf_file;

// Read and validate a GGUF file: magic, version 2..3, bounded counts and strings, known value types, no
// nested arrays, unique keys and tensor names, known tensor types with whole blocks, contiguous aligned
// offsets inside the file. Any problem is an error naming the file and what is wrong.
int rt_gguf_read(const char *path, rt_gguf_file *out, rt_error *err);
// The same checks on a GGUF image in memory (copied; name stands for the file in messages).
int rt_gguf_read_mem(const void *data, size_t size, const char *name, rt_gguf_file *out, rt_error *err);
void rt_gguf_free(rt_gguf_file *f);
const rt_gguf_kv *rt_gguf_find_kv(const rt_gguf_file *f, const char *key);
// One element of a string array at `at` (kv->array for the first): its bytes (not NUL-terminated) and
// length; returns where the next element starts. The reader checked that all n elements lie in the image.
const uint8_t *rt_gguf_next_string(const uint8_t *at, const char **s, size_t *len);
const char *rt_gguf_value_type_name(int type);
// Bytes of one value of a numeric or bool type; 0 for strings, arrays and unknown types.
int rt_gguf_scalar_size(int type);

#endif
