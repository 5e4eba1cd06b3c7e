// Edits of a valid HDF5 file driven by the fuzz input (fuzz_h5edit.h).
#include "fuzz_h5edit.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/h5util.h"

#define MAX_EDITS    24
#define MAX_ELEMENTS 4096 // of a dataset whose contents come from the input
#define MAX_RAW      (1 << 20)

static void add(char ***list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (strcmp((*list)[i], s) == 0) return;
    char **l = realloc(*list, (size_t)(*n + 1) * sizeof *l);
    char *c = rt_strdup(s);
    if (!l || !c) abort();
    l[(*n)++] = c;
    *list = l;
}

typedef struct collect_ctx {
    fz_h5_names *names;
    hid_t file;
    const char *path;
} collect_ctx;

static herr_t on_attr(hid_t obj, const char *name, const H5A_info_t *info, void *user) {
    collect_ctx *c = user;
    add(&c->names->attrs, &c->names->n_attrs, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    int is_str = t >= 0 && H5Tget_class(t) == H5T_STRING;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    char *s = NULL;
    rt_error err;
    if (is_str && rt_h5_attr_read_str(obj, name, &s, c->path, "base", &err) == 0)
        add(&c->names->strings, &c->names->n_strings, s);
    free(s);
    return 0;
}

static herr_t on_link(hid_t g, const char *name, const H5L_info_t *info, void *user) {
    collect_ctx *c = user;
    add(&c->names->objects, &c->names->n_objects, name);
    hid_t o = H5Oopen(c->file, name, H5P_DEFAULT);
    if (o < 0) abort();
    hsize_t idx = 0;
    H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, on_attr, c);
    H5Oclose(o);
    return 0;
}

void fz_h5_collect(fz_h5_names *names, const char *path) {
    rt_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) abort();
    collect_ctx c = {names, f, path};
    add(&names->objects, &names->n_objects, "/");
    hsize_t idx = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &idx, on_attr, &c);
    H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, on_link, &c);
    H5Fclose(f);
}

// ---- decisions

static const char *pick(fz_in *in, char **list, int n) {
    return n ? list[fz_u8(in) % n] : "/";
}

// A fuzzed object or attribute name, up to max bytes, of letters, digits, '_' and '.' and not "." or "..":
// a '/' would make a path of its own, and odd bytes in a name tell our readers nothing that a name's length
// and presence do not.
static void fuzz_name(fz_in *in, char *out, size_t max) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789_.";
    size_t n = fz_str(in, out, max);
    for (size_t i = 0; i < n; i++) out[i] = alphabet[(uint8_t)out[i] % (sizeof alphabet - 1)];
    out[n] = '\0';
    if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0) out[0] = 'd';
}

// A path for a new or replaced object: an existing one, or a fuzzed name next to one.
static void target_path(fz_in *in, const fz_h5_names *nm, char *out, size_t cap) {
    const char *base = pick(in, nm->objects, nm->n_objects);
    if (fz_u8(in) % 2 == 0 && strcmp(base, "/") != 0) {
        snprintf(out, cap, "%s", base);
        if (getenv("FZ_H5_TRACE")) fprintf(stderr, "fuzz_h5edit: target %s\n", out);
        return;
    }
    char name[101]; // up to 100 bytes: past the longest tensor name a checkpoint holds
    fuzz_name(in, name, 100);
    if (!name[0]) snprintf(name, sizeof name, "x");
    const char *slash = strrchr(base, '/');
    if (strcmp(base, "/") == 0 || fz_u8(in) % 2)
        snprintf(out, cap, "%s/%s", strcmp(base, "/") == 0 ? "" : base, name);
    else
        snprintf(out, cap, "%.*s%s", slash ? (int)(slash - base + 1) : 0, base, name);
    if (out[0] == '/') memmove(out, out + 1, strlen(out));
    if (getenv("FZ_H5_TRACE")) fprintf(stderr, "fuzz_h5edit: target %s\n", out);
}

static int64_t some_int(fz_in *in) {
    static const int64_t special[] = {0,         1,         -1,        2,         3,
                                      4,         16,        255,       256,       259,
                                      260,       65535,     1 << 24,   INT32_MAX, (int64_t)INT32_MAX + 1,
                                      INT32_MIN, INT64_MAX, INT64_MIN, 1LL << 40, (1LL << 62) + 1};
    switch (fz_u8(in) % 4) {
    case 0:
        return special[fz_u8(in) % (sizeof special / sizeof *special)];
    case 1:
        return (int64_t)(int8_t)fz_u8(in);
    case 2:
        return (int64_t)fz_u64(in);
    default:
        return fz_u16(in);
    }
}

static double some_double(fz_in *in) {
    static const double special[] = {0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, 1e30, 1e300, -1e300, 3.4e38};
    switch (fz_u8(in) % 4) {
    case 0:
        return special[fz_u8(in) % (sizeof special / sizeof *special)];
    case 1:
        return NAN;
    case 2: {
        uint64_t bits = fz_u64(in);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    default:
        return (double)(int8_t)fz_u8(in);
    }
}

static hid_t numeric_type(int k) {
    switch (k) {
    case 0:
        return H5T_STD_I64LE;
    case 1:
        return H5T_STD_U64LE;
    case 2:
        return H5T_STD_I32LE;
    case 3:
        return H5T_STD_U8LE;
    case 4:
        return H5T_IEEE_F64LE;
    case 5:
        return H5T_IEEE_F32LE;
    default:
        return H5T_STD_I16BE;
    }
}

// A dataspace: scalar, [1], [n] (n may be 0) or null.
static hid_t attr_space(fz_in *in, hsize_t *n) {
    switch (fz_u8(in) % 5) {
    case 0:
    case 1:
        *n = 1;
        return H5Screate(H5S_SCALAR);
    case 2:
        *n = 1;
        return H5Screate_simple(1, n, NULL);
    case 3:
        *n = fz_u8(in) % 9;
        return H5Screate_simple(1, n, NULL);
    default:
        *n = 0;
        return H5Screate(H5S_NULL);
    }
}

// ---- edits

static void set_attr(hid_t file, fz_in *in, const fz_h5_names *nm) {
    const char *obj_path = pick(in, nm->objects, nm->n_objects);
    char name[17];
    const char *aname = name;
    if (fz_u8(in) % 8 == 0)
        fuzz_name(in, name, 16);
    else
        aname = pick(in, nm->attrs, nm->n_attrs);
    if (!aname[0]) return;
    hid_t obj = H5Oopen(file, obj_path, H5P_DEFAULT);
    if (obj < 0) return;
    if (H5Aexists(obj, aname) > 0) H5Adelete(obj, aname);
    hsize_t n;
    int kind = fz_u8(in) % 9;
    hid_t space = attr_space(in, &n);
    hid_t type = -1, mem = -1;
    void *buf = NULL;
    char *strs[8], text[8][65];
    if (kind < 7) {
        type = H5Tcopy(numeric_type(kind));
        int is_float = kind == 4 || kind == 5;
        mem = H5Tcopy(is_float ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64);
        buf = calloc(n ? n : 1, 8);
        for (hsize_t i = 0; buf && i < n; i++) {
            if (is_float)
                ((double *)buf)[i] = some_double(in);
            else
                ((int64_t *)buf)[i] = some_int(in);
        }
    } else {
        for (hsize_t i = 0; i < n; i++) {
            if (fz_u8(in) % 2 && nm->n_strings)
                snprintf(text[i], sizeof text[i], "%s", pick(in, nm->strings, nm->n_strings));
            else
                fz_str(in, text[i], 64);
            strs[i] = text[i];
        }
        type = H5Tcopy(H5T_C_S1);
        H5Tset_cset(type, H5T_CSET_UTF8);
        if (kind == 7) {
            H5Tset_size(type, H5T_VARIABLE);
            buf = strs;
        } else { // fixed length: padded with NULs, or exactly filled with no terminator
            size_t len = n ? strlen(text[0]) : 0;
            H5Tset_size(type, len + (fz_u8(in) % 2) + (len == 0));
            H5Tset_strpad(type, fz_u8(in) % 2 ? H5T_STR_NULLPAD : H5T_STR_NULLTERM);
            buf = text[0];
            if (n > 1) n = 1; // one fixed string (text[0]) is enough
        }
        mem = H5Tcopy(type);
    }
    hid_t a = space < 0 ? -1 : H5Acreate2(obj, aname, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0 && n) H5Awrite(a, mem, buf);
    if (a >= 0) H5Aclose(a);
    if (kind < 7) free(buf);
    H5Tclose(type);
    H5Tclose(mem);
    if (space >= 0) H5Sclose(space);
    H5Oclose(obj);
}

static void del_attr(hid_t file, fz_in *in, const fz_h5_names *nm) {
    hid_t obj = H5Oopen(file, pick(in, nm->objects, nm->n_objects), H5P_DEFAULT);
    const char *aname = pick(in, nm->attrs, nm->n_attrs);
    if (obj < 0) return;
    if (H5Aexists(obj, aname) > 0) H5Adelete(obj, aname);
    H5Oclose(obj);
}

static const char *edit_path; // the file being edited, to reopen it

// Remove whatever path names, so a new object can take its place. 0 when the path is free. After a
// deletion the file is closed and opened again: HDF5 1.10 crashes inside its own link lookup (strcmp on a
// NULL name in H5G__compact_lookup) when a name deleted from a group's compact storage is created again
// in the same session.
static int clear_path(hid_t *file, const char *path) {
    htri_t ex = H5Lexists(*file, path, H5P_DEFAULT);
    if (ex <= 0) return ex < 0 ? -1 : 0;
    if (H5Ldelete(*file, path, H5P_DEFAULT) < 0) return -1;
    if (H5Fclose(*file) < 0 || (*file = H5Fopen(edit_path, H5F_ACC_RDWR, H5P_DEFAULT)) < 0) abort();
    return 0;
}

static hid_t lcpl_parents(void) {
    hid_t l = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(l, 1);
    return l;
}

static void new_dataset(hid_t *fp, fz_in *in, const fz_h5_names *nm) {
    char path[600];
    target_path(in, nm, path, sizeof path);
    int rank = fz_u8(in) % 5, layout = fz_u8(in) % 3, sparse = fz_u8(in) % 8 == 0;
    hid_t type = numeric_type(fz_u8(in) % 7);
    hsize_t dims[4], maxdims[4], chunk[4];
    double total = 1;
    for (int d = 0; d < rank; d++) {
        // sparse: a huge declared shape whose chunks are never written (the file stores almost nothing)
        dims[d] = sparse ? (hsize_t)(fz_u64(in) % (1ULL << (50 / rank))) : fz_u8(in) % 10;
        maxdims[d] = H5S_UNLIMITED;
        chunk[d] = 1 + fz_u8(in) % 8;
        total *= (double)dims[d];
    }
    if (sparse) layout = 1 + layout % 2;
    if (!sparse && total > MAX_ELEMENTS) return;
    if (clear_path(fp, path)) return;
    hid_t file = *fp;
    hid_t space = rank ? H5Screate_simple(rank, dims, layout ? maxdims : NULL) : H5Screate(H5S_SCALAR);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = lcpl_parents();
    if (layout && rank) {
        H5Pset_chunk(dcpl, rank, chunk);
        if (layout == 2) H5Pset_fletcher32(dcpl);
    }
    hid_t d = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    if (d >= 0 && !sparse && total > 0) {
        size_t bytes = (size_t)total * H5Tget_size(type);
        uint8_t *buf = calloc(bytes, 1);
        // the contents: the rest of the input, repeated, or a constant fill
        int mode = fz_u8(in) % 3;
        for (size_t i = 0; buf && i < bytes; i++) buf[i] = mode == 0 ? fz_u8(in) : mode == 1 ? 0 : 0x7f;
        if (buf) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        free(buf);
    }
    if (d >= 0) H5Dclose(d);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(space);
}

// Flip or set a few bytes of a dataset's contents (the checksum is recomputed: well-formed, wrong values).
static void poke_data(hid_t file, fz_in *in, const fz_h5_names *nm) {
    const char *path = pick(in, nm->objects, nm->n_objects);
    H5O_info_t info;
    if (H5Oget_info_by_name(file, path, &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_DATASET) return;
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return;
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(s);
    size_t size = H5Tget_size(t);
    if (n > 0 && size && (size_t)n <= MAX_RAW / size && H5Tis_variable_str(t) <= 0) {
        size_t bytes = (size_t)n * size;
        uint8_t *buf = malloc(bytes);
        if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            int pokes = 1 + fz_u8(in) % 4;
            for (int i = 0; i < pokes; i++) {
                size_t at = (size_t)(fz_u16(in) | (uint32_t)fz_u8(in) << 16) % bytes;
                uint8_t v = fz_u8(in);
                buf[at] = fz_u8(in) % 2 ? buf[at] ^ v : v;
            }
            H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        }
        free(buf);
    }
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
}

static void del_object(hid_t *fp, fz_in *in, const fz_h5_names *nm) {
    const char *path = pick(in, nm->objects, nm->n_objects);
    if (getenv("FZ_H5_TRACE")) fprintf(stderr, "fuzz_h5edit: delete %s\n", path);
    if (strcmp(path, "/") != 0) clear_path(fp, path);
}

// A second name for a dataset (hard link), a dangling soft link, or an empty group.
static void new_link(hid_t *fp, fz_in *in, const fz_h5_names *nm) {
    const char *src = pick(in, nm->objects, nm->n_objects);
    char path[600];
    target_path(in, nm, path, sizeof path);
    int kind = fz_u8(in) % 3;
    if (getenv("FZ_H5_TRACE")) fprintf(stderr, "fuzz_h5edit: link kind %d from %s\n", kind, src);
    if (clear_path(fp, path)) return;
    hid_t file = *fp;
    hid_t lcpl = lcpl_parents();
    H5O_info_t info;
    if (kind == 0) {
        // datasets only: a second link to a group can make a cycle (the root inside itself), and HDF5 1.10
        // crashes flushing the file after such a link is deleted
        if (H5Oget_info_by_name(file, src, &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET)
            H5Lcreate_hard(file, src, file, path, lcpl, H5P_DEFAULT);
    } else if (kind == 1) {
        H5Lcreate_soft("/nowhere", file, path, lcpl, H5P_DEFAULT);
    } else {
        hid_t g = H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        if (g >= 0) H5Gclose(g);
    }
    H5Pclose(lcpl);
}

void fz_h5_edit(const char *path, fz_in *in, const fz_h5_names *names) {
    rt_h5_quiet();
    edit_path = path;
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) abort();
    for (int i = 0; i < MAX_EDITS && in->n; i++) {
        int op = fz_u8(in) % 8;
        if (getenv("FZ_H5_TRACE")) fprintf(stderr, "fuzz_h5edit: edit %d\n", op);
        switch (op) {
        case 0:
        case 1:
        case 2:
            set_attr(f, in, names);
            break;
        case 3:
            del_attr(f, in, names);
            break;
        case 4:
            new_dataset(&f, in, names);
            break;
        case 5:
            poke_data(f, in, names);
            break;
        case 6:
            del_object(&f, in, names);
            break;
        default:
            new_link(&f, in, names);
            break;
        }
    }
    if (H5Fclose(f) < 0) abort();
}

long fz_h5_open_ids(void) {
    static const H5I_type_t kinds[] = {H5I_FILE,    H5I_GROUP, H5I_DATATYPE,    H5I_DATASPACE,
                                       H5I_DATASET, H5I_ATTR,  H5I_GENPROP_LST, H5I_ERROR_STACK};
    long total = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        hsize_t n = 0;
        if (H5Inmembers(kinds[i], &n) >= 0) total += (long)n;
    }
    return total;
}
