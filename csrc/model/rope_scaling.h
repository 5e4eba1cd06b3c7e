// RoPE frequencies with the context-extension schemes real checkpoints use (model.rope_scaling): none, linear
// (position interpolation: every frequency divided by the factor) and llama3 (Llama 3.1's per-frequency
// blend: high frequencies kept, low ones divided by the factor, a smooth ramp between). The model's tables,
// the ONNX caches and the GGUF files all take their frequencies from here, so the math exists once.
#ifndef RT_ROPE_SCALING_H
#define RT_ROPE_SCALING_H

#include "config/config.h"

typedef enum rt_rope_scaling_type {
    RT_ROPE_SCALING_NONE = 0,
    RT_ROPE_SCALING_LINEAR = 1,
    RT_ROPE_SCALING_LLAMA3 = 2
} rt_rope_scaling_type;

// All zero is "none". The fields after type are used only by the types that read them.
typedef struct rt_rope_scaling {
    rt_rope_scaling_type type;
    float factor;             // linear, llama3: how much longer the context became (>= 1)
    float low_freq_factor;    // llama3: wavelengths above original_max_seq_len / low are divided by factor
    float high_freq_factor;   // llama3: wavelengths below original_max_seq_len / high stay as they are
    int original_max_seq_len; // llama3: the context the model was pretrained on
} rt_rope_scaling;

// The scaling of a validated config (model.rope_scaling and the model.rope_* keys).
rt_rope_scaling rt_rope_scaling_from_config(const rt_config *cfg);

// The inverse frequency of rotation pair i (0 <= i < D/2) of a head of D dims: theta^(-2i/D), then scaled.
double rt_rope_inv_freq(double theta, int i, int D, const rt_rope_scaling *s);

// llama.cpp's rope_freqs.weight for llama3 scaling: out[i] = unscaled / scaled inverse frequency of pair i
// (llama.cpp divides each pair's angle by it), for i < D/2. 1 everywhere for the other types.
void rt_rope_freq_factors(double theta, int D, const rt_rope_scaling *s, float *out);

#endif
