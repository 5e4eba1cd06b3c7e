// Exports that are folders (ONNX, Hugging Face): the files are written into a fresh sibling folder and
// swapped in whole by rename, so a reader sees the old export or the new one, never a mix. An existing
// folder is replaced only when it holds nothing but files such an export writes: --out naming a folder of
// other files must not delete them.
#ifndef RT_EXPORT_FOLDER_H
#define RT_EXPORT_FOLDER_H

#include <stdint.h>

#include "base/buf.h"
#include "base/common.h"

typedef struct rt_export_folder {
    const char *kind;         // "ONNX", "Hugging Face": names the export in messages
    const char *const *files; // every file name the export may write
    int n_files;
    // Writes the files into dir (the temp folder); 0 or -1 with err filled.
    int (*write)(const char *dir, void *user, rt_error *err);
    void *user;
} rt_export_folder;

// Writes the export as out_dir (a trailing '/' names the same folder), creating its parents.
int rt_export_folder_write(const char *out_dir, const rt_export_folder *f, rt_error *err);

// Writes b as dir/name atomically and adds its length to *total (when total is not NULL).
int rt_export_text_file(const char *dir, const char *name, const rt_buf *b, uint64_t *total, rt_error *err);

#endif
