// Measured matmul peak of a backend context, the denominator of MFU: a square GEMM in the context's
// compute dtype, timed after a warm-up, through the same matmul op the model uses.
#ifndef RT_PEAK_H
#define RT_PEAK_H

#include "backend/backend.h"

// FLOP/s of the best of a few runs of an n x n x n matmul (n = 1024 on CPU). 0 on allocation failure.
double rt_measure_matmul_peak(rt_ctx *ctx, int n);

#endif
