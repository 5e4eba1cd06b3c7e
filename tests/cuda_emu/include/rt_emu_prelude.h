// Emulation build: included first by every translated cuda/*.cu (translate.cmake). The runtime and bf16,
// and the host bodies of the inline-PTX wrappers of attention_mma.cu (which RT_ATT_MMA_EMULATION leaves
// out there): mma.sync m16n8k16 bf16, ldmatrix .x4 with and without .trans, cp.async with its groups, each
// emulated as the PTX ISA documents it (emu_ptx.cpp), so the kernels' own fragment bookkeeping is what
// gets checked.
#ifndef RT_EMU_PRELUDE_H
#define RT_EMU_PRELUDE_H

#include "cuda_runtime.h"
#include "cuda_bf16.h"

namespace rt_emu {
// d += a b over a warp (every lane must call; layouts of mma.m16n8k16.row.col.f32.bf16.bf16.f32).
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, const char *file,
                       int line);
// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: `row` is this lane's row address.
void ldmatrix_x4(uint32_t (&r)[4], const void *row, bool trans, const char *file, int line);
} // namespace rt_emu

#define am_mma(d, a, b0, b1)           rt_emu::mma_m16n8k16_bf16(d, a, b0, b1, __FILE__, __LINE__)
#define am_ldsm_x4(r, p)               rt_emu::ldmatrix_x4(r, p, false, __FILE__, __LINE__)
#define am_ldsm_x4_t(r, p)             rt_emu::ldmatrix_x4(r, p, true, __FILE__, __LINE__)
#define am_cp_async16(dst, src, valid) rt_emu::cp_async(dst, src, 16, (valid) ? 16 : 0, __FILE__, __LINE__)
#define am_cp_async4(dst, src, valid)  rt_emu::cp_async(dst, src, 4, (valid) ? 4 : 0, __FILE__, __LINE__)
#define am_cp_commit()                 rt_emu::cp_async_commit()
template <int N> static inline void am_cp_wait() {
    rt_emu::cp_async_wait(N, __FILE__, __LINE__);
}

#endif
