// A safetensors writer (the reader is csrc/import/safetensors.h): fp32 tensors written as F32 or BF16, laid
// out as the safetensors package lays them out: the JSON header with "__metadata__" {"format": "pt"} first,
// tensors sorted by name and packed from offset 0, the header padded with spaces to a multiple of 8 so
// every tensor starts aligned. The file goes to a temp file, is fsynced and renamed into place.
#ifndef RT_SAFETENSORS_WRITE_H
#define RT_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

typedef struct rt_st_out {
    const char *name;
    int ndim;             // 0 (a scalar) to 8
    const int64_t *shape; // [ndim], each >= 0
    const float *data;    // product(shape) fp32 values
} rt_st_out;

// Writes n tensors to path, all as BF16 (round to nearest even) when bf16, else F32. Names must be unique.
// bytes receives the file's size (may be NULL).
int rt_st_write(const char *path, const rt_st_out *ts, size_t n, int bf16, size_t *bytes, rt_error *err);

#endif
