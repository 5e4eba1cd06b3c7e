// Small checked helpers over the HDF5 C API. HDF5's own error printing is switched off; failures become
// rt_error messages that name the file and the object.
#ifndef RT_H5UTIL_H
#define RT_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

// Silence HDF5's automatic error stack printing (idempotent).
void rt_h5_quiet(void);

// Open an existing file read-only; a missing file, a non-HDF5 file and a damaged one get distinct messages.
hid_t rt_h5_open_read(const char *path, rt_error *err);

// Attributes on an object (file, group or dataset).
int rt_h5_attr_write_str(hid_t obj, const char *name, const char *value, rt_error *err);
int rt_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, rt_error *err);
int rt_h5_attr_write_u64s(hid_t obj, const char *name, const uint64_t *values, size_t n, rt_error *err);
// Read a string attribute into a malloc'd buffer (*out). file/what name the object in messages.
int rt_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *file, const char *what,
                        rt_error *err);
int rt_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, const char *file, const char *what,
                        rt_error *err);
int rt_h5_attr_read_u64s(hid_t obj, const char *name, uint64_t *out, size_t n, const char *file, const char *what,
                         rt_error *err);

// Write a dataset chunked with a Fletcher-32 checksum, so damaged bytes fail the read instead of loading.
// dims has rank entries; data holds their product of elements of mem_type.
int rt_h5_write(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, const hsize_t *dims,
                const void *data, const char *file, rt_error *err);

// Read a whole dataset of rank 1..4 converted to mem_type (elem_size bytes each) into a malloc'd buffer.
// *rank and dims receive its shape. The element count is computed with overflow checks and compared with
// the bytes the file actually stores, so a corrupted header cannot make us allocate without bound.
int rt_h5_read(hid_t loc, const char *name, hid_t mem_type, size_t elem_size, int *rank, hsize_t dims[4],
               void **data, size_t *count, const char *file, rt_error *err);

#endif
