// cpu_v16 without AVX2 (simd.h): an array of sixteen floats, each operation the scalar code lane by lane,
// which the compiler vectorizes as far as the instruction set allows.
#ifndef RT_CPU_SIMD_PLAIN_H
#define RT_CPU_SIMD_PLAIN_H

typedef struct cpu_v16 {
    float f[16];
} cpu_v16;

static inline cpu_v16 cpu_v16_set(float x) {
    cpu_v16 v;
    for (int j = 0; j < 16; j++) v.f[j] = x;
    return v;
}

static inline cpu_v16 cpu_v16_load(const float *p) {
    cpu_v16 v;
    memcpy(v.f, p, sizeof v.f);
    return v;
}

static inline cpu_v16 cpu_v16_load_n(const float *p, int n) {
    cpu_v16 v = cpu_v16_set(0.0f);
    memcpy(v.f, p, (size_t)n * sizeof *p);
    return v;
}

static inline void cpu_v16_store(float *p, cpu_v16 v) {
    memcpy(p, v.f, sizeof v.f);
}

static inline void cpu_v16_store_n(float *p, cpu_v16 v, int n) {
    memcpy(p, v.f, (size_t)n * sizeof *p);
}

static inline cpu_v16 cpu_v16_load_bf16_n(const uint16_t *p, int n) {
    cpu_v16 v = cpu_v16_set(0.0f);
    for (int j = 0; j < n; j++) v.f[j] = cpu_bf16_load(p[j]);
    return v;
}

static inline cpu_v16 cpu_v16_load_bf16(const uint16_t *p) {
    return cpu_v16_load_bf16_n(p, 16);
}

static inline void cpu_v16_store_bf16_n(uint16_t *p, cpu_v16 v, int n) {
    for (int j = 0; j < n; j++) p[j] = cpu_bf16_store(v.f[j]);
}

static inline void cpu_v16_store_bf16(uint16_t *p, cpu_v16 v) {
    cpu_v16_store_bf16_n(p, v, 16);
}

#define CPU_V16_LANEWISE(name, expr)                                                                         \
    static inline cpu_v16 cpu_v16_##name(cpu_v16 a, cpu_v16 b) {                                             \
        cpu_v16 v;                                                                                           \
        for (int j = 0; j < 16; j++) v.f[j] = (expr);                                                        \
        return v;                                                                                            \
    }
CPU_V16_LANEWISE(add, a.f[j] + b.f[j])
CPU_V16_LANEWISE(sub, a.f[j] - b.f[j])
CPU_V16_LANEWISE(mul, a.f[j] * b.f[j])
CPU_V16_LANEWISE(div, a.f[j] / b.f[j])
CPU_V16_LANEWISE(max, a.f[j] > b.f[j] ? a.f[j] : b.f[j])
#undef CPU_V16_LANEWISE

static inline cpu_v16 cpu_v16_neg(cpu_v16 x) {
    for (int j = 0; j < 16; j++) x.f[j] = -x.f[j];
    return x;
}

static inline float cpu_v16_hmax(cpu_v16 v) {
    float m = v.f[0];
    for (int j = 1; j < 16; j++) m = v.f[j] > m ? v.f[j] : m;
    return m;
}

static inline cpu_v16 cpu_v16_keep_first(cpu_v16 v, int n) {
    for (int j = n; j < 16; j++) v.f[j] = 0.0f;
    return v;
}

static inline cpu_v16 cpu_v16_exp(cpu_v16 x) {
    for (int j = 0; j < 16; j++) x.f[j] = cpu_expf(x.f[j]);
    return x;
}

#endif
