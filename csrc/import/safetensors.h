// The safetensors reader: a file (or a folder of shards with model.safetensors.index.json) memory-mapped
// read-only, its JSON header checked as strictly as the GGUF reader checks its header, and tensors read into
// fp32 from F32, F16 and BF16. docs/formats.md describes the layout and every check.
#ifndef RT_SAFETENSORS_H
#define RT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

#define RT_ST_MAX_DIMS   8
#define RT_ST_MAX_HEADER (100u * 1000u * 1000u) // the safetensors package's own limit

struct rt_st_file;

typedef struct rt_st_tensor {
    char *name;
    char dtype[16]; // as written: "F32", "BF16", "I64", ...
    int dtype_size; // bytes per element
    int ndim;       // 0 for a scalar
    int64_t shape[RT_ST_MAX_DIMS];
    size_t count; // elements (1 for a scalar, 0 when a dim is 0)
    size_t begin; // byte range inside the data section
    size_t nbytes;
    const uint8_t *data; // inside the mapping, not aligned (unpadded headers are allowed)
    const struct rt_st_file *file;
} rt_st_tensor;

typedef struct rt_st_file {
    char *path;
    uint8_t *map;
    size_t size;
    size_t data_start;     // 8 + header length
    rt_st_tensor *tensors; // sorted by name
    size_t n_tensors;
    char **meta_keys, **meta_values; // "__metadata__", in file order
    size_t n_meta;
} rt_st_file;

// Open and check one .safetensors file. On failure *f is empty (rt_st_close on it is harmless).
int rt_st_open(const char *path, rt_st_file *f, rt_error *err);
void rt_st_close(rt_st_file *f);
const rt_st_tensor *rt_st_find(const rt_st_file *f, const char *name);
// The value of a "__metadata__" key, or NULL.
const char *rt_st_metadata(const rt_st_file *f, const char *key);

// 1 when the dtype converts to fp32 (F32, F16, BF16).
int rt_st_readable(const rt_st_tensor *t);
// Convert a tensor to fp32 into out (count must equal t->count). F16 and BF16 convert exactly. Other dtypes
// are refused with the tensor's name and dtype.
int rt_st_read_f32(const rt_st_tensor *t, float *out, size_t count, rt_error *err);

// A model: one file, or the shards that a model.safetensors.index.json names.
typedef struct rt_st_model {
    rt_st_file *files;
    size_t n_files;
    const rt_st_tensor **tensors; // every tensor of every shard, sorted by name
    size_t n_tensors;
} rt_st_model;

// path: a .safetensors file, a model.safetensors.index.json, or a folder holding either (the index wins).
// With an index, every weight_map entry must name a shard file in the index's folder (no paths) that holds
// that tensor, and every tensor of the shards must be in the weight_map.
int rt_st_model_open(const char *path, rt_st_model *m, rt_error *err);
void rt_st_model_close(rt_st_model *m);
const rt_st_tensor *rt_st_model_find(const rt_st_model *m, const char *name);

#endif
