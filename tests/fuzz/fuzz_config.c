// libFuzzer harness: the config reader. The first byte picks YAML text (rt_config_load_string) or a list of
// key=value overrides, one a line (rt_config_apply_override). Whatever loads and validates must print as
// YAML (rt_config_to_yaml) that loads back to the same config: what `retort train` stores in a checkpoint
// is read back from that text.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static void round_trip(const rt_config *cfg) {
    char *yaml = rt_config_to_yaml(cfg);
    if (!yaml) abort();
    rt_config back;
    rt_error err;
    rt_config_defaults(&back);
    if (rt_config_load_string(&back, yaml, strlen(yaml), "printed", &err) ||
        rt_config_validate(&back, &err)) {
        fprintf(stderr, "fuzz_config: the printed config does not load back: %s\n%s\n", err.msg, yaml);
        abort();
    }
    char *again = rt_config_to_yaml(&back);
    if (!again || strcmp(yaml, again) != 0) {
        fprintf(stderr, "fuzz_config: the printed config changes on a round trip:\n%s\n---\n%s\n", yaml,
                again ? again : "(null)");
        abort();
    }
    free(yaml);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    rt_config cfg;
    rt_error err;
    rt_config_defaults(&cfg);
    int ok = 1;
    if (data[0] % 2 == 0) {
        // an exact-size copy: the reader must not look past len
        char *text = malloc(size - 1 ? size - 1 : 1);
        if (!text) return 0;
        memcpy(text, data + 1, size - 1);
        ok = rt_config_load_string(&cfg, text, size - 1, "fuzz.yaml", &err) == 0;
        free(text);
    } else {
        const uint8_t *p = data + 1, *end = data + size;
        while (ok && p < end) {
            const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            char *line = malloc(n + 1);
            if (!line) return 0;
            memcpy(line, p, n);
            line[n] = '\0';
            ok = rt_config_apply_override(&cfg, line, &err) == 0;
            free(line);
            p += n + 1;
        }
    }
    if (ok && rt_config_validate(&cfg, &err) == 0) round_trip(&cfg);
    return 0;
}
