// The generated Unicode tables (unicode_tables.c, written by scripts/gen_unicode_tables.py); only unicode.c
// reads them. Each is sorted for binary search; the script's docstring describes the layout.
#ifndef RT_TOKENIZER_UNICODE_TABLES_H
#define RT_TOKENIZER_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

extern const char rt_uc_version[];
extern const uint8_t rt_uc_ascii_flags[128];
extern const size_t rt_uc_flag_runs_count;
extern const uint32_t rt_uc_flag_runs[];
extern const size_t rt_uc_ccc_runs_count;
extern const uint32_t rt_uc_ccc_runs[];
extern const size_t rt_uc_decomp_count;
extern const uint32_t rt_uc_decomp[][3];
extern const size_t rt_uc_compose_count;
extern const uint16_t rt_uc_compose[];
extern const size_t rt_uc_compose_second_count;
extern const uint32_t rt_uc_compose_second[];

#endif
