// Scratch files and input decoding for the harnesses.
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile uint8_t fz_sink;

static char dir[256];

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[600];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

const char *fz_path(const char *name) {
    static char out[600];
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/retort-fuzz-XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    snprintf(out, sizeof out, "%s/%s", dir, name);
    return out;
}

void fz_write(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

uint8_t *fz_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        perror(path);
        abort();
    }
    long n = ftell(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (n < 0 || !buf || fseek(f, 0, SEEK_SET) != 0 || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        abort();
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

uint8_t fz_u8(fz_in *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

uint16_t fz_u16(fz_in *in) {
    return (uint16_t)(fz_u8(in) | fz_u8(in) << 8);
}

uint64_t fz_u64(fz_in *in) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)fz_u8(in) << (8 * i);
    return v;
}

size_t fz_str(fz_in *in, char *out, size_t max) {
    size_t n = fz_u8(in) % (max + 1);
    if (n > in->n) n = in->n;
    memcpy(out, in->p, n);
    out[n] = '\0';
    in->p += n;
    in->n -= n;
    return n;
}
