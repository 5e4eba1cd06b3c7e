// RoPE frequency scaling (rope_scaling.h). llama3 follows transformers' _compute_llama3_parameters: with
// wavelength w = 2 pi / f of the unscaled frequency f and original context n, w < n / high keeps f,
// w > n / low uses f / factor, and between them smooth = (n / w - low) / (high - low) blends the two,
// (1 - smooth) f / factor + smooth f.
#include "model/rope_scaling.h"

#include <math.h>
#include <string.h>

#define TWO_PI 6.283185307179586476925286766559

rt_rope_scaling rt_rope_scaling_from_config(const rt_config *cfg) {
    rt_rope_scaling s;
    memset(&s, 0, sizeof s);
    if (strcmp(cfg->model.rope_scaling, "linear") == 0)
        s.type = RT_ROPE_SCALING_LINEAR;
    else if (strcmp(cfg->model.rope_scaling, "llama3") == 0)
        s.type = RT_ROPE_SCALING_LLAMA3;
    s.factor = (float)cfg->model.rope_factor;
    s.low_freq_factor = (float)cfg->model.rope_low_freq_factor;
    s.high_freq_factor = (float)cfg->model.rope_high_freq_factor;
    s.original_max_seq_len = cfg->model.rope_original_max_seq_len;
    return s;
}

static double llama3_scaled(double f, const rt_rope_scaling *s) {
    double n = (double)s->original_max_seq_len, low = s->low_freq_factor, high = s->high_freq_factor;
    double wavelen = TWO_PI / f;
    if (wavelen < n / high) return f;
    if (wavelen > n / low) return f / s->factor;
    double smooth = (n / wavelen - low) / (high - low);
    return (1.0 - smooth) * f / s->factor + smooth * f;
}

double rt_rope_inv_freq(double theta, int i, int D, const rt_rope_scaling *s) {
    double f = pow(theta, -2.0 * i / (double)D);
    switch (s->type) {
    case RT_ROPE_SCALING_LINEAR:
        return f / s->factor;
    case RT_ROPE_SCALING_LLAMA3:
        return llama3_scaled(f, s);
    default:
        return f;
    }
}

void rt_rope_freq_factors(double theta, int D, const rt_rope_scaling *s, float *out) {
    rt_rope_scaling none;
    memset(&none, 0, sizeof none);
    for (int i = 0; i < D / 2; i++)
        out[i] = s->type == RT_ROPE_SCALING_LLAMA3
                     ? (float)(rt_rope_inv_freq(theta, i, D, &none) / rt_rope_inv_freq(theta, i, D, s))
                     : 1.0f;
}
