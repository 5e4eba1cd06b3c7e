// Fuzzing the HDF5 readers (datasets, checkpoints) through what a file says, not through HDF5's own byte
// layout: the input is a short program of edits (set or delete an attribute, replace, delete, alias or
// corrupt a dataset, add groups) applied with the HDF5 API to a valid file our writer made. The reader then
// sees every kind of well-formed but wrong content (types, ranks, shapes, sizes, values, missing and extra
// objects) while HDF5 parses only structures it wrote itself. Why not raw bytes: HDF5 1.10's parser
// crashes inside its own code on many damaged files, which would bury our readers' bugs under its own.
#ifndef RT_FUZZ_H5EDIT_H
#define RT_FUZZ_H5EDIT_H

#include "fuzz_util.h"

// What the edits can name: every object path and attribute name of the base files, and their string
// attribute values (so a fuzzed "format" can also be the right one).
typedef struct fz_h5_names {
    char **objects, **attrs, **strings;
    int n_objects, n_attrs, n_strings;
} fz_h5_names;

// Add the names found in the file at path (call once per base file at start-up).
void fz_h5_collect(fz_h5_names *names, const char *path);

// Open path read-write, apply edits decoded from in until it runs out (or a bounded number), close it.
void fz_h5_edit(const char *path, fz_in *in, const fz_h5_names *names);

// How many HDF5 ids of any kind are open: a reader must leave this as it found it.
long fz_h5_open_ids(void);

#endif
