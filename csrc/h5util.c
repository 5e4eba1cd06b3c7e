#include "h5util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void rt_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hid_t rt_h5_open_read(const char *path, rt_error *err) {
    rt_h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0) return rt_fail(err, "%s: no such file", path), H5I_INVALID_HID;
    if (!S_ISREG(st.st_mode)) return rt_fail(err, "%s: not a regular file", path), H5I_INVALID_HID;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return rt_fail(err, "%s: not an HDF5 file (or its header is damaged)", path), H5I_INVALID_HID;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return rt_fail(err, "%s: cannot open as HDF5: the file is damaged or truncated", path), H5I_INVALID_HID;
    return f;
}

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf, rt_error *err) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, type, buf) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    return rc ? rt_fail(err, "cannot write attribute %s", name) : 0;
}

int rt_h5_attr_write_str(hid_t obj, const char *name, const char *value, rt_error *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = attr_write(obj, name, t, s, &value, err);
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

int rt_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, rt_error *err) {
    hid_t s = H5Screate(H5S_SCALAR);
    int rc = attr_write(obj, name, H5T_NATIVE_INT64, s, &value, err);
    H5Sclose(s);
    return rc;
}

int rt_h5_attr_write_u64s(hid_t obj, const char *name, const uint64_t *values, size_t n, rt_error *err) {
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    int rc = attr_write(obj, name, H5T_NATIVE_UINT64, s, values, err);
    H5Sclose(s);
    return rc;
}

static hid_t attr_open(hid_t obj, const char *name, const char *file, const char *what, rt_error *err) {
    if (H5Aexists(obj, name) <= 0) return rt_fail(err, "%s: %s lacks attribute '%s'", file, what, name), -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) rt_fail(err, "%s: cannot open attribute %s of %s", file, name, what);
    return a;
}

int rt_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *file, const char *what,
                        rt_error *err) {
    *out = NULL;
    hid_t a = attr_open(obj, name, file, what, err);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    if (H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        rt_fail(err, "%s: attribute %s of %s is not a single string", file, name, what);
    } else if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *s = NULL;
        if (H5Aread(a, mt, &s) >= 0 && s) {
            *out = rt_strdup(s);
            rc = *out ? 0 : rt_fail(err, "out of memory");
            H5free_memory(s);
        } else {
            rt_fail(err, "%s: cannot read attribute %s of %s", file, name, what);
        }
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(ft);
        char *s = n < ((size_t)1 << 30) ? calloc(n + 1, 1) : NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n);
        if (s && H5Aread(a, mt, s) >= 0) {
            *out = s;
            rc = 0;
        } else {
            free(s);
            rt_fail(err, "%s: cannot read attribute %s of %s", file, name, what);
        }
        H5Tclose(mt);
    }
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int attr_read_ints(hid_t obj, const char *name, hid_t mt, void *out, size_t n, const char *file,
                          const char *what, rt_error *err) {
    hid_t a = attr_open(obj, name, file, what, err);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    if (H5Tget_class(ft) != H5T_INTEGER || H5Sget_simple_extent_npoints(sp) != (hssize_t)n)
        rc = rt_fail(err, "%s: attribute %s of %s should be %zu integer(s)", file, name, what, n);
    else if (H5Aread(a, mt, out) < 0)
        rc = rt_fail(err, "%s: cannot read attribute %s of %s", file, name, what);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int rt_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, const char *file, const char *what,
                        rt_error *err) {
    return attr_read_ints(obj, name, H5T_NATIVE_INT64, out, 1, file, what, err);
}

int rt_h5_attr_read_u64s(hid_t obj, const char *name, uint64_t *out, size_t n, const char *file, const char *what,
                         rt_error *err) {
    return attr_read_ints(obj, name, H5T_NATIVE_UINT64, out, n, file, what, err);
}

int rt_h5_write(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, const hsize_t *dims,
                const void *data, const char *file, rt_error *err) {
    // chunks of about 256K elements: whole rows of the last dimension where they fit
    hsize_t chunk[4];
    size_t budget = 1 << 18;
    for (int i = rank - 1; i >= 0; i--) {
        hsize_t c = dims[i] < budget ? dims[i] : budget;
        chunk[i] = c > 0 ? c : 1;
        budget = budget / chunk[i] > 0 ? budget / chunk[i] : 1;
    }
    int empty = 0;
    for (int i = 0; i < rank; i++) empty |= dims[i] == 0;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (!empty) {
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t ds = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds >= 0 && (empty || H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0) ? 0 : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc ? rt_fail(err, "%s: cannot write dataset %s", file, name) : 0;
}

int rt_h5_read(hid_t loc, const char *name, hid_t mem_type, size_t elem_size, int *rank, hsize_t dims[4],
               void **data, size_t *count, const char *file, rt_error *err) {
    *data = NULL;
    *count = 0;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return rt_fail(err, "%s: dataset %s is missing", file, name);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return rt_fail(err, "%s: cannot open dataset %s (damaged file?)", file, name);
    hid_t sp = H5Dget_space(ds), ft = H5Dget_type(ds);
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int rc = 0;
    size_t n = 1, bytes = 0;
    H5T_class_t want = H5Tget_class(mem_type), got = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (r < 1 || r > 4) {
        rc = rt_fail(err, "%s: dataset %s has rank %d, expected 1 to 4", file, name, r);
    } else if (got != want) {
        rc = rt_fail(err, "%s: dataset %s holds %s values, expected %s", file, name,
                     got == H5T_FLOAT ? "floating-point" : got == H5T_INTEGER ? "integer" : "non-numeric",
                     want == H5T_FLOAT ? "floating-point" : "integer");
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        for (int i = 0; i < r && rc == 0; i++)
            if (dims[i] > SIZE_MAX || !rt_mul_size(n, (size_t)dims[i], &n))
                rc = rt_fail(err, "%s: dataset %s has an impossible shape", file, name);
        if (rc == 0 && !rt_mul_size(n, elem_size, &bytes))
            rc = rt_fail(err, "%s: dataset %s is too large", file, name);
        size_t file_elem = ft >= 0 ? H5Tget_size(ft) : 0;
        size_t stored_needed;
        if (rc == 0 && n > 0 &&
            (!rt_mul_size(n, file_elem, &stored_needed) || (size_t)H5Dget_storage_size(ds) < stored_needed))
            rc = rt_fail(err, "%s: dataset %s is truncated: its shape needs %zu elements the file does not hold",
                         file, name, n);
    }
    void *buf = NULL;
    if (rc == 0) {
        buf = malloc(bytes ? bytes : 1);
        if (!buf) rc = rt_fail(err, "%s: out of memory reading dataset %s (%zu bytes)", file, name, bytes);
    }
    if (rc == 0 && n > 0 && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = rt_fail(err, "%s: dataset %s cannot be read: checksum mismatch or truncated file", file, name);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    if (rc) {
        free(buf);
        return -1;
    }
    *rank = r;
    *data = buf;
    *count = n;
    return 0;
}
