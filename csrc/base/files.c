// Whole-file reads, atomic writes, fsync and mkdir (files.h).
#define _POSIX_C_SOURCE 200809L
#include "base/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_read_file(const char *path, char **out, size_t *len, rt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return rt_fail(err, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > SIZE_MAX / 2) {
                free(buf);
                fclose(f);
                return rt_fail(err, "%s: file too large", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return rt_fail(err, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rt_fail(err, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}

int rt_fsync_path(const char *path, rt_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return rt_fail(err, "%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return rt_fail(err, "%s: fsync failed: %s", path, strerror(e));
    return 0;
}

int rt_fsync_parent_dir(const char *path, rt_error *err) {
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) return rt_fail(err, "%s: path too long", path);
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return rt_fail(err, "%s: cannot open directory for fsync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    // Some file systems refuse fsync on directories; that is not a data-loss condition we can fix.
    if (rc != 0 && e != EINVAL && e != EBADF) return rt_fail(err, "%s: fsync failed: %s", dir, strerror(e));
    return 0;
}

// strerror(e), with a plain hint where the cause is a full disk or quota (the usual reason a write fails).
static const char *write_errstr(int e, char *buf, size_t cap) {
    int full = e == ENOSPC
#ifdef EDQUOT
               || e == EDQUOT
#endif
        ;
    snprintf(buf, cap, "%s%s", strerror(e ? e : EIO), full ? " (disk full)" : "");
    return buf;
}

int rt_write_file_via(const char *path, const char *tmp, const void *data, size_t len, rt_error *err) {
    char why[160];
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return rt_fail(err, "%s: cannot create %s: %s", path, tmp, write_errstr(errno, why, sizeof why));
    const unsigned char *p = data;
    size_t left = len;
    int e = 0;
    while (left > 0 && e == 0) {
        ssize_t n = write(fd, p, left > ((size_t)1 << 30) ? (size_t)1 << 30 : left);
        if (n > 0) {
            p += n;
            left -= (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            e = n == 0 ? EIO : errno; // write() returning 0 for a regular file means no progress
        }
    }
    // the data must be on disk before the rename makes it the file; NFS (and a disk that fails late)
    // reports ENOSPC or EIO only at fsync or close, so both are checked too
    if (e == 0 && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && e == 0) e = errno;
    if (e) {
        unlink(tmp);
        return rt_fail(err, "%s: cannot write %s: %s", path, tmp, write_errstr(e, why, sizeof why));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return rt_fail(err, "%s: cannot rename %s over it: %s", path, tmp, strerror(e));
    }
    return rt_fsync_parent_dir(path, err);
}

int rt_write_file_atomic(const char *path, const void *data, size_t len, rt_error *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return rt_fail(err, "%s: path too long", path);
    return rt_write_file_via(path, tmp, data, len, err);
}

int rt_mkdir_p(const char *path, rt_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0) return 0;
    if (n >= sizeof buf) return rt_fail(err, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return rt_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return rt_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return rt_fail(err, "%s: not a directory", buf);
    return 0;
}

void rt_bytes_hash(const void *data, size_t len, char out[17]) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int rt_file_hash(const char *path, char out[17], rt_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rt_fail(err, "%s: cannot open to hash it: %s", path, strerror(errno));
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
    int bad = ferror(f);
    fclose(f);
    if (bad) return rt_fail(err, "%s: read error while hashing it", path);
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}
