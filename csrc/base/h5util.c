// Checked HDF5 helpers (see h5util.h). Every function reports through rt_error; HDF5 itself stays silent.
#define _POSIX_C_SOURCE 200809L
#include "base/h5util.h"
#include "base/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_BYTES   ((size_t)1 << 20)  // HDF5's default chunk cache is 1 MiB: a chunk must fit in it
#define MAX_FIXED_STR ((size_t)16 << 20) // a fixed-length string attribute larger than this is damage
// Deflate cannot expand data more than ~1032x, so a compressed dataset (written by someone else's h5py)
// claiming more than this many bytes per stored byte has a damaged header.
#define MAX_RATIO 1100

void rt_h5_quiet(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

// Access properties for every file we open: close every object with the file (a leaked id must never keep
// an old version of a path alive in HDF5's open-file cache), and tolerate filesystems without locks (NFS).
static hid_t make_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return fapl;
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 1, 1);
#endif
    return fapl;
}

// "/group/name" of a child of loc, for messages.
static void child_name(hid_t loc, const char *name, char *buf, size_t cap) {
    char parent[512] = "";
    ssize_t n = H5Iget_name(loc, parent, sizeof parent);
    if (n <= 0 || strcmp(parent, "/") == 0) parent[0] = '\0';
    snprintf(buf, cap, "%s/%s", parent, name);
}

// Name of an object itself ("/" for the file), for messages.
static void self_name(hid_t obj, char *buf, size_t cap) {
    if (H5Iget_name(obj, buf, cap) <= 0) snprintf(buf, cap, "/");
}

// ---------------------------------------------------------------------------------------------------
// Global heap guard
//
// Variable-length strings (what h5py reads as str) live in "global heap collections", the one HDF5
// structure without a checksum. HDF5 1.10 trusts the object sizes in a collection: one flipped byte there
// makes H5Aread copy gigabytes past its buffer. So before HDF5 sees a file we find every collection
// ("GCOL", version 1, 3 zero bytes, 8-byte size) and walk its objects exactly as HDF5 will, refusing the
// file unless every object lies inside its collection and the indices are 1..k without repeats or gaps (a
// gap is what a damaged index looks like, and reading it would dereference nothing). Files whose
// superblock declares lengths other than 8 bytes are not checked (retort and h5py never write them).

#define GCOL_MIN 4096
#define GCOL_MAX ((uint64_t)1 << 30)
#define OBJ_HDR  16 // index u16, refcount u16, reserved u32, size u64

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// 0 when the collection [c, c + size) parses cleanly; otherwise a reason.
static const char *walk_collection(const unsigned char *c, uint64_t size) {
    unsigned char seen[65536 / 8] = {0}; // one bit per possible index
    unsigned max_idx = 0, count = 0, free_seen = 0;
    uint64_t p = OBJ_HDR; // the collection header is as long as an object header
    while (p < size) {
        if (p + OBJ_HDR > size) break; // a tail too small for a header: free space to HDF5 too
        unsigned idx = (unsigned)c[p] | (unsigned)c[p + 1] << 8;
        uint64_t osize = le64(c + p + 8), need;
        if (idx > 0) {
            if (osize > size) return "an object larger than its collection";
            need = OBJ_HDR + ((osize + 7) & ~(uint64_t)7);
            if (seen[idx >> 3] & (1u << (idx & 7))) return "an object index used twice";
            seen[idx >> 3] |= (unsigned char)(1u << (idx & 7));
            count++;
            max_idx = idx > max_idx ? idx : max_idx;
        } else {
            if (free_seen++) return "two free-space records";
            need = osize;
        }
        if (need < OBJ_HDR || need > size - p) return "an object that overruns its collection";
        p += need;
    }
    if (count != max_idx) return "missing object indices";
    return NULL;
}

static int check_global_heaps(const char *path, rt_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    unsigned char sb[16];
    int lengths8 = 1;
    if (fread(sb, 1, sizeof sb, fp) == sizeof sb && memcmp(sb, "\x89HDF\r\n\x1a\n", 8) == 0)
        lengths8 = sb[8] >= 2 ? sb[10] == 8 : sb[14] == 8; // superblock v2/v3 vs v0/v1 field positions
    struct stat st;
    if (!lengths8 || fstat(fileno(fp), &st) != 0) {
        fclose(fp);
        return 0;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    enum { BLOCK = 1 << 20, KEEP = 15 };
    unsigned char *buf = malloc(BLOCK + KEEP);
    if (!buf) {
        fclose(fp);
        return rt_fail(err, "%s: out of memory checking the file", path);
    }
    int rc = 0;
    uint64_t base = 0; // file offset of buf[0]
    size_t have = 0;
    rewind(fp);
    for (;;) {
        size_t got = fread(buf + have, 1, BLOCK, fp);
        size_t len = have + got;
        for (size_t i = 0; rc == 0 && i + 16 <= len; i++) {
            const unsigned char *g = memchr(buf + i, 'G', len - 15 - i);
            if (!g) break;
            i = (size_t)(g - buf);
            if (memcmp(g, "GCOL\x01\0\0\0", 8) != 0) continue;
            uint64_t at = base + i, size = le64(buf + i + 8);
            const char *why = NULL;
            if (size < GCOL_MIN || size > GCOL_MAX || size > fsize - at) {
                why = "an impossible size";
            } else {
                unsigned char *c = malloc((size_t)size);
                if (!c) {
                    rc = rt_fail(err, "%s: out of memory checking the file", path);
                    break;
                }
                long pos = ftell(fp);
                if (fseek(fp, (long)at, SEEK_SET) != 0 || fread(c, 1, (size_t)size, fp) != size)
                    why = "a read error";
                else
                    why = walk_collection(c, size);
                free(c);
                fseek(fp, pos, SEEK_SET);
            }
            if (why)
                rc = rt_fail(
                    err, "%s: the file is damaged: the string storage (HDF5 global heap) at byte %llu has %s",
                    path, (unsigned long long)at, why);
        }
        if (rc || got == 0) break;
        // keep the last KEEP bytes: a header may straddle two blocks
        size_t keep = len < KEEP ? len : KEEP;
        memmove(buf, buf + len - keep, keep);
        base += len - keep;
        have = keep;
    }
    free(buf);
    fclose(fp);
    return rc;
}

hid_t rt_h5_open_read(const char *path, rt_error *err) {
    rt_h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0)
        return rt_fail(err, "%s: cannot open: %s", path, strerror(errno)), H5I_INVALID_HID;
    if (!S_ISREG(st.st_mode)) return rt_fail(err, "%s: not a regular file", path), H5I_INVALID_HID;
    hid_t fapl = make_fapl();
#if H5_VERSION_GE(1, 12, 0)
    htri_t is = H5Fis_accessible(path, fapl);
#else
    htri_t is = H5Fis_hdf5(path);
#endif
    hid_t f = H5I_INVALID_HID;
    if (is <= 0) {
        rt_fail(err, "%s: not an HDF5 file (no HDF5 signature: wrong file, or its header is damaged)", path);
    } else if (check_global_heaps(path, err) == 0) {
        f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
        if (f < 0) rt_fail(err, "%s: cannot open as HDF5: the file is damaged or truncated", path);
    }
    H5Pclose(fapl);
    return f;
}

// Compact storage limits: far above any model's tensor count, so HDF5 never switches to dense storage.
#define MAX_COMPACT_LINKS 65535
#define MAX_COMPACT_ATTRS 1000

// Also without modification times: HDF5 stamps each object header with the second it was made, so the same
// content written a second later would be other bytes (a multi-rank synth is checked against one process's
// file byte for byte).
static int set_compact(hid_t ocpl, int links) {
    if (H5Pset_attr_phase_change(ocpl, MAX_COMPACT_ATTRS, 0) < 0 || H5Pset_obj_track_times(ocpl, 0) < 0)
        return -1;
    return links ? (H5Pset_link_phase_change(ocpl, MAX_COMPACT_LINKS, 0) < 0 ? -1 : 0) : 0;
}

hid_t rt_h5_group_create(hid_t loc, const char *name, rt_error *err) {
    rt_h5_quiet();
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), gcpl = H5Pcreate(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
    if (lcpl >= 0 && gcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 && set_compact(gcpl, 1) == 0)
        g = H5Gcreate2(loc, name, lcpl, gcpl, H5P_DEFAULT);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (gcpl >= 0) H5Pclose(gcpl);
    if (g < 0) rt_fail(err, "cannot create group /%s", name);
    return g;
}

// HDF5 builds the file in memory (the core driver without a backing store) and we write the finished
// image ourselves. Writing through HDF5's own disk driver cannot be made safe on a full disk: a failed
// flush leaves dirty metadata that H5Fclose cannot drop, so the file stays open inside the library and
// its teardown at exit crashes (H5F__close_cb from H5_term_library), and on tmpfs some failed chunk writes
// were not reported at all. In memory HDF5 sees no I/O errors; ours are checked byte for byte.
//
// The image is taken from H5Fclose itself, through the file image callbacks: the driver's buffer is kept
// instead of freed when the file closes. (H5Fget_file_image would copy it, and HDF5 1.10.8 clears the
// superblock's "open for writing" flag in that copy without updating the superblock checksum.)
#define CORE_INCREMENT ((size_t)4 << 20) // the in-memory file grows by this much at a time

typedef struct {
    void *kept; // the driver's buffer, handed over at close
    size_t cap; // its allocated size
} core_image;

static void *img_malloc(size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op;
    core_image *ci = udata;
    void *p = malloc(size ? size : 1);
    if (p) ci->cap = size;
    return p;
}

static void *img_memcpy(void *dest, const void *src, size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op;
    (void)udata;
    return memcpy(dest, src, size);
}

static void *img_realloc(void *ptr, size_t size, H5FD_file_image_op_t op, void *udata) {
    (void)op;
    core_image *ci = udata;
    void *p = realloc(ptr, size ? size : 1);
    if (p) ci->cap = size;
    return p;
}

static herr_t img_free(void *ptr, H5FD_file_image_op_t op, void *udata) {
    core_image *ci = udata;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && ptr) {
        free(ci->kept);
        ci->kept = ptr;
    } else {
        free(ptr);
    }
    return 0;
}

static void *img_udata_copy(void *udata) { // the property list is copied with the same user data
    return udata;
}

static herr_t img_udata_free(void *udata) {
    (void)udata;
    return 0;
}

// The file's length as its closed superblock records it (version 2 or 3, 8-byte addresses: what the 1.10
// bounds write): the end-of-file address at byte 28. 0 when the image is not such a superblock.
static size_t image_length(const core_image *ci) {
    const unsigned char *b = ci->kept;
    if (!b || ci->cap < 48 || memcmp(b, "\x89HDF\r\n\x1a\n", 8) != 0 || (b[8] != 2 && b[8] != 3) || b[9] != 8)
        return 0;
    uint64_t base = le64(b + 12), eof = le64(b + 28);
    return base == 0 && eof >= 48 && eof <= ci->cap ? (size_t)eof : 0;
}

int rt_h5_write_atomic(const char *path, rt_h5_fill_fn fill, void *user, rt_error *err) {
    rt_h5_quiet();
    char tmp[4200];
    int len = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof tmp) return rt_fail(err, "%s: path too long", path);
    core_image ci = {NULL, 0};
    H5FD_file_image_callbacks_t cb = {img_malloc,     img_memcpy,     img_realloc, img_free,
                                      img_udata_copy, img_udata_free, (void *)&ci};
    hid_t fapl = make_fapl();
    int ok = fapl >= 0 && H5Pset_fapl_core(fapl, CORE_INCREMENT, 0) >= 0 &&
             H5Pset_file_image_callbacks(fapl, &cb) >= 0 &&
             // The 1.10 format checksums object headers, B-trees and heaps, so damaged metadata is an error
             // too.
             H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) >= 0;
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE); // the root group's creation properties
    hid_t f = H5I_INVALID_HID;
    if (ok && fcpl >= 0 && set_compact(fcpl, 1) == 0) f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) {
        free(ci.kept);
        return rt_fail(err, "%s: cannot create the file in memory (out of memory?)", path);
    }
    int rc = fill(f, path, user, err) ? rt_fail_wrap(err, "%s", path) : 0;
    // In memory the close cannot fail for want of disk space; it releases the id either way.
    if (H5Fclose(f) < 0 && rc == 0) rc = rt_fail(err, "%s: HDF5 could not finish the file in memory", path);
    size_t size = rc == 0 ? image_length(&ci) : 0;
    if (rc == 0 && size == 0) rc = rt_fail(err, "%s: HDF5 left no complete file image in memory", path);
    if (rc == 0) rc = rt_write_file_via(path, tmp, ci.kept, size, err);
    free(ci.kept);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// attributes

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf, rt_error *err) {
    rt_h5_quiet();
    int rc = type >= 0 && space >= 0 ? 0 : -1;
    if (rc == 0 && H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) rc = -1;
    hid_t a = rc == 0 ? H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : H5I_INVALID_HID;
    if (a < 0 || H5Awrite(a, type, buf) < 0) rc = -1;
    if (a >= 0) H5Aclose(a);
    if (rc == 0) return 0;
    char where[512];
    self_name(obj, where, sizeof where);
    return rt_fail(err, "cannot write attribute '%s' of %s", name, where);
}

int rt_h5_attr_write_str(hid_t obj, const char *name, const char *value, rt_error *err) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)) {
        H5Tclose(t);
        t = H5I_INVALID_HID;
    }
    hid_t s = H5Screate(H5S_SCALAR);
    const char *v = value ? value : "";
    int rc = attr_write(obj, name, t, s, &v, err);
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    return rc;
}

// One scalar attribute, stored as file_type (little-endian whatever the host) and converted from mem_type.
static int write_scalar_attr(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *value,
                             rt_error *err) {
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t t = H5Tcopy(file_type);
    int rc = t >= 0 && s >= 0 ? 0 : -1;
    if (rc == 0) {
        rt_h5_quiet();
        if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
        hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, mem_type, value) < 0) rc = -1;
        if (a >= 0) H5Aclose(a);
    }
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (rc == 0) return 0;
    char where[512];
    self_name(obj, where, sizeof where);
    return rt_fail(err, "cannot write attribute '%s' of %s", name, where);
}

int rt_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, rt_error *err) {
    return write_scalar_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err);
}

int rt_h5_attr_write_f64(hid_t obj, const char *name, double value, rt_error *err) {
    return write_scalar_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
}

int rt_h5_attr_write_u64s(hid_t obj, const char *name, const uint64_t *values, size_t n, rt_error *err) {
    hsize_t dims[1] = {n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    int rc = -1;
    if (s >= 0) {
        rt_h5_quiet();
        if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
        hid_t a = H5Acreate2(obj, name, H5T_STD_U64LE, s, H5P_DEFAULT, H5P_DEFAULT);
        rc = a >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, values) >= 0 ? 0 : -1;
        if (a >= 0) H5Aclose(a);
        H5Sclose(s);
    }
    if (rc == 0) return 0;
    char where[512];
    self_name(obj, where, sizeof where);
    return rt_fail(err, "cannot write attribute '%s' of %s", name, where);
}

uint32_t rt_h5_crc32_str(uint32_t crc, const char *s) {
    crc = ~crc;
    size_t n = strlen(s) + 1; // the NUL separates consecutive strings
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned char)s[i];
        for (int k = 0; k < 8; k++) crc = crc >> 1 ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

int rt_h5_attr_exists(hid_t obj, const char *name) {
    rt_h5_quiet();
    htri_t e = H5Aexists(obj, name);
    return e > 0 ? 1 : e == 0 ? 0 : -1;
}

static hid_t attr_open(hid_t obj, const char *name, const char *file, const char *what, rt_error *err) {
    int e = rt_h5_attr_exists(obj, name);
    if (e < 0) return rt_fail(err, "%s: cannot read the attributes of %s (damaged file?)", file, what), -1;
    if (e == 0) return rt_fail(err, "%s: %s lacks attribute '%s'", file, what, name), -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) rt_fail(err, "%s: cannot open attribute '%s' of %s (damaged file?)", file, name, what);
    return a;
}

static int read_vlen_str(hid_t a, hid_t ft, char **out) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = -1;
    char *s = NULL;
    if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 && H5Tset_cset(mt, H5Tget_cset(ft)) >= 0 &&
        H5Aread(a, mt, &s) >= 0) {
        *out = rt_strdup(s ? s : "");
        rc = *out ? 0 : -2;
    }
    if (s) H5free_memory(s);
    if (mt >= 0) H5Tclose(mt);
    return rc;
}

static int read_fixed_str(hid_t a, hid_t ft, char **out) {
    size_t n = H5Tget_size(ft);
    if (n == 0 || n > MAX_FIXED_STR) return -1;
    char *s = calloc(n + 1, 1); // +1: the terminator survives whatever padding the file uses
    if (!s) return -2;
    hid_t mt = H5Tcopy(H5T_C_S1);
    int rc = mt >= 0 && H5Tset_size(mt, n) >= 0 && H5Tset_strpad(mt, H5T_STR_NULLPAD) >= 0 &&
                     H5Aread(a, mt, s) >= 0
                 ? 0
                 : -1;
    if (mt >= 0) H5Tclose(mt);
    if (rc)
        free(s);
    else
        *out = s;
    return rc;
}

int rt_h5_attr_read_str(hid_t obj, const char *name, char **out, const char *file, const char *what,
                        rt_error *err) {
    *out = NULL;
    hid_t a = attr_open(obj, name, file, what, err);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_STRING || H5Sget_simple_extent_npoints(sp) != 1) {
        rt_fail(err, "%s: attribute '%s' of %s is not a single string", file, name, what);
    } else {
        rc = H5Tis_variable_str(ft) > 0 ? read_vlen_str(a, ft, out) : read_fixed_str(a, ft, out);
        if (rc == -2)
            rt_fail(err, "%s: out of memory reading attribute '%s' of %s", file, name, what);
        else if (rc)
            rt_fail(err, "%s: cannot read attribute '%s' of %s (damaged file?)", file, name, what);
        rc = rc ? -1 : 0;
    }
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int attr_read_ints(hid_t obj, const char *name, hid_t mt, void *out, size_t n, const char *file,
                          const char *what, rt_error *err) {
    hid_t a = attr_open(obj, name, file, what, err);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_INTEGER ||
        H5Sget_simple_extent_npoints(sp) != (hssize_t)n)
        rc = rt_fail(err, "%s: attribute '%s' of %s should be %zu integer%s", file, name, what, n,
                     n == 1 ? "" : "s");
    else if (H5Aread(a, mt, out) < 0)
        rc = rt_fail(err, "%s: cannot read attribute '%s' of %s (damaged file?)", file, name, what);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

int rt_h5_attr_read_i64(hid_t obj, const char *name, int64_t *out, const char *file, const char *what,
                        rt_error *err) {
    return attr_read_ints(obj, name, H5T_NATIVE_INT64, out, 1, file, what, err);
}

int rt_h5_attr_read_u64s(hid_t obj, const char *name, uint64_t *out, size_t n, const char *file,
                         const char *what, rt_error *err) {
    return attr_read_ints(obj, name, H5T_NATIVE_UINT64, out, n, file, what, err);
}

int rt_h5_attr_read_f64(hid_t obj, const char *name, double *out, const char *file, const char *what,
                        rt_error *err) {
    hid_t a = attr_open(obj, name, file, what, err);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = 0;
    if (ft < 0 || sp < 0 || H5Tget_class(ft) != H5T_FLOAT || H5Sget_simple_extent_npoints(sp) != 1)
        rc = rt_fail(err, "%s: attribute '%s' of %s should be one number", file, name, what);
    else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0)
        rc = rt_fail(err, "%s: cannot read attribute '%s' of %s (damaged file?)", file, name, what);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

// ---------------------------------------------------------------------------------------------------
// datasets

int rt_h5_write(hid_t loc, const char *name, hid_t mem_type, hid_t file_type, int rank, const hsize_t *dims,
                const void *data, rt_error *err) {
    rt_h5_quiet();
    char obj[640];
    child_name(loc, name, obj, sizeof obj);
    if (rank < 1 || rank > 4) return rt_fail(err, "dataset %s: rank %d, expected 1 to 4", obj, rank);
    size_t n = 1, elem = H5Tget_size(file_type);
    for (int i = 0; i < rank; i++)
        if (dims[i] > SIZE_MAX || !rt_mul_size(n, (size_t)dims[i], &n))
            return rt_fail(err, "dataset %s: its shape overflows", obj);
    if (n > 0 && !data) return rt_fail(err, "dataset %s: no data for %zu elements", obj, n);
    if (elem == 0) return rt_fail(err, "dataset %s: invalid element type", obj);
    // Chunk: whole trailing rows while they fit in CHUNK_BYTES; every chunk dim in [1, dim].
    hsize_t chunk[4];
    size_t budget = CHUNK_BYTES / elem > 0 ? CHUNK_BYTES / elem : 1;
    for (int i = rank - 1; i >= 0; i--) {
        hsize_t c = dims[i] < budget ? dims[i] : budget;
        chunk[i] = c > 0 ? c : 1;
        budget = budget / chunk[i] > 0 ? budget / chunk[i] : 1;
    }
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = space >= 0 && dcpl >= 0 ? 0 : -1;
    // n == 0: nothing to checksum, and HDF5 cannot chunk a zero-sized dim; contiguous and empty
    if (rc == 0 && H5Pset_obj_track_times(dcpl, 0) < 0) rc = -1; // reproducible bytes (set_compact says why)
    if (rc == 0 && n > 0 && (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_fletcher32(dcpl) < 0)) rc = -1;
    hid_t ds =
        rc == 0 ? H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT) : H5I_INVALID_HID;
    if (ds < 0) rc = -1;
    if (rc == 0 && n > 0 && H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) rc = -1;
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return rc ? rt_fail(err, "cannot write dataset %s (duplicate name or disk full?)", obj) : 0;
}

// Whether a dataset's filters may shrink data (anything but the checksum and the byte shuffle).
static int is_compressed(hid_t ds) {
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return -1;
    int nf = H5Pget_nfilters(dcpl), compressed = nf < 0 ? -1 : 0;
    for (int k = 0; k < nf && compressed == 0; k++) {
        unsigned flags = 0, conf = 0;
        size_t nel = 0;
        char fname[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &nel, NULL, sizeof fname, fname, &conf);
        if (id < 0)
            compressed = -1;
        else if (id != H5Z_FILTER_FLETCHER32 && id != H5Z_FILTER_SHUFFLE)
            compressed = 1;
    }
    H5Pclose(dcpl);
    return compressed;
}

// The bytes the file stores for a dataset must be able to hold `need` bytes of its shape.
static int check_storage(hid_t ds, size_t need, const char *obj, const char *file, rt_error *err) {
    int compressed = is_compressed(ds);
    if (compressed < 0)
        return rt_fail(err, "%s: dataset %s has unreadable filters (damaged file?)", file, obj);
    hsize_t stored = H5Dget_storage_size(ds), fsize = 0;
    hid_t f = H5Iget_file_id(ds);
    if (f < 0 || H5Fget_filesize(f, &fsize) < 0) fsize = 0;
    if (f >= 0) H5Fclose(f);
    if (stored > fsize)
        return rt_fail(err, "%s: dataset %s claims %llu bytes in a file of %llu (damaged file?)", file, obj,
                       (unsigned long long)stored, (unsigned long long)fsize);
    int ok = compressed ? need / MAX_RATIO <= stored : need <= stored;
    if (!ok)
        return rt_fail(
            err, "%s: dataset %s is truncated or damaged: its shape needs %zu bytes, the file stores %llu",
            file, obj, need, (unsigned long long)stored);
    return 0;
}

static int check_shape(int r, const hsize_t *dims, int want_rank, const int64_t *want_dims, const char *obj,
                       const char *file, rt_error *err) {
    if (r < 1) return rt_fail(err, "%s: dataset %s is not an array (scalar or empty dataspace)", file, obj);
    if (r > 4 || (want_rank > 0 && r != want_rank)) {
        if (want_rank > 0)
            return rt_fail(err, "%s: dataset %s has rank %d, expected %d", file, obj, r, want_rank);
        return rt_fail(err, "%s: dataset %s has rank %d, expected 1 to 4", file, obj, r);
    }
    for (int i = 0; want_dims && i < r; i++)
        if (want_dims[i] >= 0 && dims[i] != (hsize_t)want_dims[i])
            return rt_fail(err, "%s: dataset %s has %llu entries along dim %d, expected %lld", file, obj,
                           (unsigned long long)dims[i], i, (long long)want_dims[i]);
    return 0;
}

static const char *class_name(H5T_class_t c) {
    return c == H5T_FLOAT ? "floating-point" : c == H5T_INTEGER ? "integer" : "non-numeric";
}

int rt_h5_read(hid_t loc, const char *name, hid_t mem_type, int want_rank, const int64_t *want_dims,
               int *rank, hsize_t dims[4], void **data, size_t *count, const char *file, rt_error *err) {
    rt_h5_quiet();
    *data = NULL;
    if (count) *count = 0;
    char obj[640];
    child_name(loc, name, obj, sizeof obj);
    htri_t ex = H5Lexists(loc, name, H5P_DEFAULT);
    if (ex < 0) return rt_fail(err, "%s: cannot look up dataset %s (damaged file?)", file, obj);
    if (ex == 0) return rt_fail(err, "%s: dataset %s is missing", file, obj);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0)
        return rt_fail(err, "%s: cannot open dataset %s (not a dataset, or a damaged file)", file, obj);
    hid_t sp = H5Dget_space(ds), ft = H5Dget_type(ds);
    hsize_t d[4] = {0};
    int r = sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_SIMPLE ? H5Sget_simple_extent_ndims(sp) : -1;
    H5T_class_t want = H5Tget_class(mem_type), got = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    size_t n = 1, bytes = 0, need = 0, mem_elem = H5Tget_size(mem_type),
           file_elem = ft >= 0 ? H5Tget_size(ft) : 0;
    int rc = 0;
    if (sp < 0 || ft < 0)
        rc = rt_fail(err, "%s: cannot read the shape of dataset %s (damaged file?)", file, obj);
    else if (r >= 1 && r <= 4 && H5Sget_simple_extent_dims(sp, d, NULL) < 0)
        r = -1;
    if (rc == 0) rc = check_shape(r, d, want_rank, want_dims, obj, file, err);
    if (rc == 0 && got != want)
        rc = rt_fail(err, "%s: dataset %s holds %s values, expected %s", file, obj, class_name(got),
                     class_name(want));
    for (int i = 0; rc == 0 && i < r; i++)
        if (d[i] > SIZE_MAX || !rt_mul_size(n, (size_t)d[i], &n))
            rc = rt_fail(err, "%s: dataset %s has an impossible shape", file, obj);
    if (rc == 0 && (!rt_mul_size(n, mem_elem, &bytes) || !rt_mul_size(n, file_elem, &need) || file_elem == 0))
        rc = rt_fail(err, "%s: dataset %s is too large to read", file, obj);
    if (rc == 0 && n > 0) rc = check_storage(ds, need, obj, file, err);
    void *buf = NULL;
    if (rc == 0) {
        buf = malloc(bytes ? bytes : 1);
        if (!buf) rc = rt_fail(err, "%s: out of memory reading dataset %s (%zu bytes)", file, obj, bytes);
    }
    if (rc == 0 && n > 0 && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = rt_fail(
            err, "%s: dataset %s cannot be read: checksum mismatch or truncated data (the file is damaged)",
            file, obj);
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    if (rc) {
        free(buf);
        return -1;
    }
    if (rank) *rank = r;
    if (dims)
        for (int i = 0; i < 4; i++) dims[i] = i < r ? d[i] : 0;
    *data = buf;
    if (count) *count = n;
    return 0;
}
