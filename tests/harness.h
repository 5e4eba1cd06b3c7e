// What the test harness programs share: the tensor-dumping ones (model_harness.c for check_model_torch.py,
// lora_harness.c for check_lora_torch.py) write raw little-endian files and a meta.txt in one output folder
// and run the tiny model below; the text ones (tokenizer_harness.c, unicode_harness.c) read length-prefixed
// records; all die with the program's name (a harness is a test program: it stops at the first problem and
// the Python side reports the exit).
#ifndef RT_TEST_HARNESS_H
#define RT_TEST_HARNESS_H

#include <stddef.h>
#include <stdio.h>

#include "model/model.h"

// Names the program in messages and sets the output folder.
void rt_harness_init(const char *prog, const char *out_dir);

// Prints "<prog>: msg" and exits 1.
_Noreturn void rt_harness_die(const char *msg);

// Reads one record of standard input, "<byte count>\n<bytes>" (the text harnesses' input), into *buf, grown
// as needed: 0 at a clean end of input, 1 with a record; a malformed or truncated record dies.
int rt_harness_read_record(char **buf, size_t *cap, size_t *len);

// Writes bytes to <out_dir>/<name>.bin.
void rt_harness_dump(const char *name, const void *data, size_t bytes);

// <out_dir>/meta.txt opened for writing (the caller closes it).
FILE *rt_harness_meta(void);

// The tiny model both harnesses run: vocabulary 259, width 32, 2 layers, 4 heads over 2 KV heads, ffn 40,
// up to 16 positions.
rt_model_dims rt_harness_dims(int tied);

// Sets every q/k/v bias of m to N(0, 0.3^2) values from seed: the init leaves them at zero, and random ones
// make the forward use them.
void rt_harness_random_biases(rt_model *m, uint64_t seed);

#endif
