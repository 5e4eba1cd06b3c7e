// libFuzzer harness: a PEFT adapter_config.json (rt_peft_config_parse, csrc/export/peft_config.c). What it
// accepts must be an adapter retort computes (a rank >= 1, alpha > 0, dropout in [0, 1), targets among
// retort's sites unless the tensors decide), and rt_peft_config_json must write it back as a file that
// parses to the same settings.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "export/peft_config.h"
#include "fuzz_util.h"

static void check_accepted(const rt_peft_config *c) {
    if (c->rank < 1 || !(c->alpha > 0) || !isfinite(c->alpha) || !(c->dropout >= 0 && c->dropout < 1))
        abort();
    if (c->targets >> RT_N_SITES || (c->pattern && c->targets) || (!c->pattern && !c->targets)) abort();
    if (c->base_model[0]) abort(); // the reader does not keep the name
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rt_peft_config c;
    rt_error err;
    if (rt_peft_config_parse((const char *)data, size, "adapter_config.json", &c, &err) != 0) {
        if (!memchr(err.msg, 0, sizeof err.msg) || strncmp(err.msg, "adapter_config.json", 19) != 0) abort();
        return 0;
    }
    check_accepted(&c);
    if (c.pattern) return 0; // a pattern is kept as "the tensors decide", which the writer cannot say
    snprintf(c.base_model, sizeof c.base_model, "base \"model\"\n\\%.*s", (int)(size < 8 ? size : 8),
             (const char *)data); // escapes and raw input bytes in the one free-text field
    rt_buf b = {0};
    rt_peft_config_json(&b, &c);
    if (b.oom) abort();
    rt_peft_config back;
    if (rt_peft_config_parse((const char *)b.data, b.len, "adapter_config.json", &back, &err) != 0) abort();
    if (back.rank != c.rank || back.alpha != c.alpha || back.dropout != c.dropout ||
        back.rslora != c.rslora || back.targets != c.targets)
        abort();
    rt_buf_free(&b);
    return 0;
}
