// Small checked helpers over the HDF5 C API, shared by datasets and checkpoints. HDF5's own error-stack
// printing is switched off; every failure becomes an rt_error message that names the file and the object.
#ifndef RT_H5UTIL_H
#define RT_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

// Silence HDF5's automatic error stack printing (idempotent; every entry point below calls it).
void rt_h5_quiet(void);

// Open an existing file read-only. A missing file, a non-HDF5 file and a damaged one get distinct messages.
hid_t rt_h5_open_read(const char *path, rt_error *err);

// Writes fill the freshly created file; path is the final name, for messages.
typedef int (*rt_h5_fill_fn)(hid_t file, const char *path, void *user, rt_error *err);

// Write a file atomically: HDF5 fills the file in memory, then its bytes go to "<path>.tmp-<pid>" in the
// same directory, are fsync'd and renamed over path, and the directory is fsync'd. On any failure (a full
// disk included) the temp file is removed, every HDF5 id is closed and path is left as it was. The file
// exists twice in memory for a moment (HDF5's image and its copy). Files use the HDF5 1.10 format, whose
// metadata carries checksums too, and the root group keeps its links and attributes compact like
// rt_h5_group_create.
int rt_h5_write_atomic(const char *path, rt_h5_fill_fn fill, void *user, rt_error *err);

// Create a group (and missing parents) whose links and attributes stay "compact", in its object header:
// that is checksummed, while HDF5 1.10's dense storage crashes on some damaged files instead of failing.
hid_t rt_h5_group_create(hid_t loc, const char *name, rt_error *err);

// Attributes on an object (file, group or dataset). Strings are variable-length UTF-8 (h5py reads str),
// integers int64 little-endian, rng-like words uint64.
int rt_h5_attr_write_str(hid_t obj, const char *name, const char *value, rt_error *err);
int rt_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, rt_error *err);
int rt_h5_attr_write_u64s(hid_t obj, const char *name, const uint64_t *values, size_t n, rt_error *err);
int rt_h5_attr_write_f64(hid_t obj, const char *name, double value, rt_error *err); // IEEE float64 LE

// CRC-32 (zlib's) of s and its terminating NUL, continuing crc (start from 0). Files record one over all
// their string attributes ("strings_crc32"): strings live in the one HDF5 structure without a checksum.
uint32_t rt_h5_crc32_str(uint32_t crc, const char *s);

// Read attributes. file and what ("the file", "/state") name the object in messages. A string attribute
// may be variable- or fixed-length and comes back as a malloc'd NUL-terminated buffer in *out.
int rt_h5_attr_exists(hid_t obj, const char *name); // 1 yes, 0 no, -1 damaged
int rt_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *file, const char *what,
                        rt_error *err);
int rt_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, const char *file, const char *what,
                        rt_error *err);
int rt_h5_attr_read_u64s(hid_t obj, const char *name, uint64_t *out, size_t n, const char *file,
                         const char *what, rt_error *err);
int rt_h5_attr_read_f64(hid_t obj, const char *name, double *out, const char *file, const char *what,
                        rt_error *err); // any float class, converted to double

// Write a dataset of rank 1..4, chunked (at most 1 MiB a chunk) with a Fletcher-32 checksum so damaged
// bytes fail the read instead of loading. A dataset with a zero dim has no data and is stored contiguous.
// data holds product(dims) elements of mem_type (row-major); it may be NULL only when that product is 0.
int rt_h5_write(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, const hsize_t *dims,
                const void *data, rt_error *err);

// Read a whole numeric dataset converted to mem_type (H5T_NATIVE_FLOAT / _INT32 / _INT64 ...) into a
// malloc'd buffer. The stored class must match (float into float, integer into integer).
// want_rank: required rank (0 accepts 1..4). want_dims: NULL, or want_rank expected sizes where a negative
// entry accepts any size. *rank and dims receive the shape (either may be NULL). The element count is
// computed with overflow checks and compared with the bytes the file actually stores, so a corrupted header
// cannot make us allocate without bound.
int rt_h5_read(hid_t loc, const char *name, hid_t mem_type, int want_rank, const int64_t *want_dims,
               int *rank, hsize_t dims[4], void **data, size_t *count, const char *file, rt_error *err);

#endif
