// Shared pieces of the libFuzzer harnesses (tests/fuzz/README.md): a scratch directory for readers that
// take a path, and a reader of the fuzz input as a stream of small decisions.
#ifndef RT_FUZZ_UTIL_H
#define RT_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

// A per-process scratch directory (on /dev/shm when it exists: the readers take paths, and tmpfs keeps the
// writes out of the disk), removed at exit. Returns "<dir>/<name>".
const char *fz_path(const char *name);

// Write bytes to path (whole file); aborts on failure, which is the harness's fault, not the reader's.
void fz_write(const char *path, const void *data, size_t len);

// Harnesses fold the bytes a reader hands back into this, so ASan sees every one of them read.
extern volatile uint8_t fz_sink;

// Read a whole file into a malloc'd buffer; aborts on failure.
uint8_t *fz_read(const char *path, size_t *len);

// The fuzz input read front to back; past its end every read gives zeros, so any input is a valid program.
typedef struct fz_in {
    const uint8_t *p;
    size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint64_t fz_u64(fz_in *in);
// Up to max bytes (the count comes from the input), copied NUL-terminated into out[max + 1].
size_t fz_str(fz_in *in, char *out, size_t max);

#endif
