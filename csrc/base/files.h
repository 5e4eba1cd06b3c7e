// Files: whole reads, atomic whole writes, fsync of a file and of its directory, mkdir -p, content hash.
#ifndef RT_FILES_H
#define RT_FILES_H

#include <stddef.h>

#include "base/common.h"

// Read a whole file into a NUL-terminated buffer. *len excludes the terminator.
int rt_read_file(const char *path, char **out, size_t *len, rt_error *err);

// Write a whole file atomically: temp file in the same directory, fsync, rename, fsync directory.
// On any failure the temp file is removed and path is left as it was; a full disk is named as such.
int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_error *err);

// The same with the temp file's name given (in path's directory, so the rename stays on one file system).
int rt_write_file_via(const char *path, const char *tmp, const void *data, size_t len, rt_error *err);

// fsync a file by path, and the directory that holds a path.
int rt_fsync_path(const char *path, rt_error *err);
int rt_fsync_parent_dir(const char *path, rt_error *err);

// mkdir -p.
int rt_mkdir_p(const char *path, rt_error *err);

// Content hash of a file: 64-bit FNV-1a over its bytes, as 16 hex digits in out (identity, not security:
// it tells which teacher or base checkpoint a file came from).
int rt_file_hash(const char *path, char out[17], rt_error *err);
// The same hash of bytes in memory (a tokenizer's source bytes, which checkpoints and datasets record).
void rt_bytes_hash(const void *data, size_t len, char out[17]);

#endif
