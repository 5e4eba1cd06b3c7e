// The denominator of MFU (model FLOP utilisation), and where it comes from: system.peak_tflops when the
// config sets it, else the dense spec peak of a known GPU in the run's compute dtype, else (the CPU, an
// unknown GPU) the best of several timed GEMMs. The measured GEMM figure is always taken and reported
// beside MFU, labelled as measured, so a reader can tell a slow run from a busy machine.
#ifndef RT_PEAK_H
#define RT_PEAK_H

#include "backend/backend.h"

typedef struct rt_peak {
    double flops;    // FLOP/s that MFU divides by; 0 when unknown (MFU is then not reported)
    char source[64]; // "spec H100 SXM", "config" or "measured"
    double gemm;     // FLOP/s of the best timed n x n x n GEMM at start; 0 when it could not run
} rt_peak;

// The vendor's dense peak (no structured sparsity) of the GPU whose driver name is device_name, for
// matmuls in dtype t with fp32 accumulation (bf16: tensor cores; fp32: the CUDA cores, since the CUDA
// backend's fp32 GEMM does not use TF32). Returns 1 and fills *flops and *label ("H100 SXM"), or 0 for a
// device the table does not know.
int rt_peak_spec(const char *device_name, rt_dtype t, double *flops, const char **label);

// FLOP/s of the best of several timed n x n x n matmuls through the model's own matmul op, after a warm-up;
// repeats until max_reps runs or budget_s seconds (at least three). 0 on allocation failure.
double rt_measure_matmul_peak(rt_ctx *ctx, int n, int max_reps, double budget_s);

// Fills *out for ctx: config_tflops > 0 wins, then the spec table, then the measured GEMM.
void rt_peak_resolve(rt_ctx *ctx, double config_tflops, rt_peak *out);

#endif
