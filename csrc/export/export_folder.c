// Folder exports written whole and swapped in (export_folder.h).
#define _POSIX_C_SOURCE 200809L // lstat, getpid
#include "export/export_folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/files.h"

static int is_export_file(const rt_export_folder *f, const char *name) {
    for (int i = 0; i < f->n_files; i++)
        if (strcmp(name, f->files[i]) == 0) return 1;
    return 0;
}

// 1 when path is absent, 0 when it is a folder holding only export files, -1 (err set) otherwise.
static int check_replaceable(const char *path, const rt_export_folder *f, rt_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 1;
        return rt_fail(err, "%s: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode)) // replacing it would move the link and empty the folder it points to
        return rt_fail(err, "%s is a symbolic link: give the folder itself as --out", path);
    if (!S_ISDIR(st.st_mode))
        return rt_fail(err, "%s exists and is not a folder: the %s export is a folder (give another --out)",
                       path, f->kind);
    DIR *dir = opendir(path);
    if (!dir) return rt_fail(err, "%s: cannot list: %s", path, strerror(errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 || is_export_file(f, e->d_name))
            continue;
        rc = rt_fail(
            err,
            "%s holds %s, which is not part of the %s export: refusing to replace the folder (give an "
            "empty or new --out)",
            path, e->d_name, f->kind);
    }
    closedir(dir);
    return rc;
}

// Removes the export files from dir, then dir.
static void remove_folder(const char *dir, const rt_export_folder *f) {
    char path[4096];
    for (int i = 0; i < f->n_files; i++)
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, f->files[i]) < sizeof path) unlink(path);
    rmdir(dir);
}

int rt_export_folder_write(const char *out_dir, const rt_export_folder *f, rt_error *err) {
    char tmp[4096], old[4096], target[4096];
    size_t len = strlen(out_dir);
    if (len == 0) return rt_fail(err, "--out is empty: give the folder to write");
    while (len > 1 && out_dir[len - 1] == '/') len--; // "out/" names the folder out
    if (len + 32 >= sizeof tmp) return rt_fail(err, "%s: path too long", out_dir);
    memcpy(target, out_dir, len);
    target[len] = '\0';
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", target, (long)getpid());
    snprintf(old, sizeof old, "%s.old.%ld", target, (long)getpid());
    int absent = check_replaceable(target, f, err);
    if (absent < 0) return -1;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", target);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (rt_mkdir_p(parent, err)) return -1;
    }
    remove_folder(tmp, f); // a leftover of an interrupted export with the same pid
    if (mkdir(tmp, 0777) != 0) return rt_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = f->write(tmp, f->user, err);
    if (rc == 0 && !absent && rename(target, old) != 0)
        rc = rt_fail(err, "%s: cannot move the previous export aside: %s", target, strerror(errno));
    if (rc == 0 && rename(tmp, target) != 0) {
        rc = rt_fail(err, "%s: rename failed: %s", target, strerror(errno));
        if (!absent) rename(old, target); // put the previous export back
    }
    if (rc != 0) {
        remove_folder(tmp, f);
        return -1;
    }
    if (!absent) remove_folder(old, f);
    return rt_fsync_parent_dir(target, err);
}

int rt_export_text_file(const char *dir, const char *name, const rt_buf *b, uint64_t *total, rt_error *err) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return rt_fail(err, "%s/%s: path too long", dir, name);
    if (b->oom) return rt_fail(err, "out of memory writing %s", path);
    if (rt_write_file_atomic(path, b->data, b->len, err)) return -1;
    if (total) *total += b->len;
    return 0;
}
