// Shared between the emulator's runtime (emu_runtime.cpp: memory, streams, errors) and its device side
// (emu_device.cpp: fibers, barriers, warp collectives, launches).
#ifndef RT_EMU_INTERNAL_H
#define RT_EMU_INTERNAL_H

#include "cuda_runtime.h"

namespace rt_emu {

// The properties of the emulated device (an sm_80 part: the smaller shared-memory opt-in of A100 and H100).
const cudaDeviceProp &device_prop(void);
// Records e as the last error (and, when sticky, as the error every later call returns); returns e.
cudaError_t set_error(cudaError_t e);
// The sticky error of the context (cudaSuccess while healthy).
cudaError_t sticky_error(void);
// Whether `stream` names a live stream (0, the legacy default stream, always does).
bool stream_ok(cudaStream_t stream);
// The dynamic shared-memory limit of `kernel` set by cudaFuncSetAttribute (48 KiB by default).
size_t kernel_smem_limit(const void *kernel);
// Stops the kernel from inside a warp collective's completion, naming the collective's place.
[[noreturn]] void collective_fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// An environment knob, or `fallback` when unset.
const char *knob(const char *name, const char *fallback);

} // namespace rt_emu

#endif
