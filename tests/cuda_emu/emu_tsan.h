// The emulator's hooks into ThreadSanitizer (the TSan variant of the emulation build, -DRT_CUDA_EMU_TSAN=ON,
// docs/cuda_emulation.md). Every CUDA thread runs on a TSan fiber, and fibers switch with no
// synchronisation, so the only happens-before edges between the threads of a block are the ones these hooks
// add: barriers, warp collectives, the host's launch and the end of the grid. The emulator's own bookkeeping
// is shared between fibers without such edges, so it runs with TSan's memory checks off (emu_quiet); what it
// does to memory on a kernel's behalf (ldmatrix reads, cp.async copies) it records as the thread's own
// access. Without RT_EMU_TSAN every hook is empty.
#ifndef RT_EMU_TSAN_H
#define RT_EMU_TSAN_H

#include <stddef.h>

#ifdef RT_EMU_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin(void);
extern "C" void __tsan_ignore_thread_end(void);
extern "C" void __tsan_read_range(void *addr, unsigned long size);
extern "C" void __tsan_write_range(void *addr, unsigned long size);
#endif

namespace rt_emu {

#ifdef RT_EMU_TSAN
// The emulator's code between a kernel's accesses: no memory access is checked or recorded (sync is).
struct emu_quiet {
    emu_quiet() { __tsan_ignore_thread_begin(); }
    ~emu_quiet() { __tsan_ignore_thread_end(); }
    emu_quiet(const emu_quiet &) = delete;
    emu_quiet &operator=(const emu_quiet &) = delete;
};
static inline void hb_release(void *sync) {
    __tsan_release(sync);
}
static inline void hb_acquire(void *sync) {
    __tsan_acquire(sync);
}
// A kernel's access made by the emulator for the current thread (call it outside emu_quiet).
static inline void kernel_read(const void *p, size_t bytes) {
    __tsan_read_range((void *)p, (unsigned long)bytes);
}
static inline void kernel_write(void *p, size_t bytes) {
    __tsan_write_range(p, (unsigned long)bytes);
}
#else
struct emu_quiet {
    emu_quiet() {}
};
static inline void hb_release(void *) {}
static inline void hb_acquire(void *) {}
static inline void kernel_read(const void *, size_t) {}
static inline void kernel_write(void *, size_t) {}
#endif

} // namespace rt_emu

#endif
