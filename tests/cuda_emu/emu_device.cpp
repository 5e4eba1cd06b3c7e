// The emulator's device side: kernel launches, CUDA threads as fibers (one stack each), the block barrier,
// warp collectives and cp.async. A block's fibers run on the launching OS thread and switch
// only where a thread must wait for others: __syncthreads, a warp collective, or its exit. When no fiber
// can run and some have not finished, the kernel has deadlocked (or a barrier is one that not every thread
// reaches): the emulator stops and names the place every waiting thread is stuck at.
//
// Knobs (environment): RT_EMU_SCHEDULE = forward (the default), reverse, warp or warp-reverse, the order in
// which runnable fibers are resumed (schedule_knob); RT_EMU_CP_ASYNC = lazy (a cp.async lands at the latest
// moment the PTX allows: the wait_group that covers it; the default) or eager (at once); RT_EMU_STACK = fiber
// stack size in KiB (256).
//
// Switching: a fiber's stack is made once with makecontext and then lives as long as the OS thread,
// running one CUDA thread after another; switches are _setjmp/_longjmp, which (unlike swapcontext) make no
// system call. _FORTIFY_SOURCE's longjmp check rejects jumps between stacks, so it is off in this file.
//
// ThreadSanitizer variant (RT_EMU_TSAN, emu_tsan.h): every fiber stack is also a TSan fiber, switched with
// swapcontext (what TSan's fiber API expects) and __tsan_switch_to_fiber without synchronisation, so the
// only happens-before edges between the threads of a block are the barriers' and warp collectives' own:
// each thread releases its `arrive` object as it reaches one, the last one in acquires every participant's
// and releases every participant's `leave` object, which each acquires as it goes on. A thread's two
// objects live in the block's sync storage, renewed for every block (so blocks do not synchronise through
// them), and shared memory is renewed too (so one block's accesses do not race with the next block's).
// A fiber runs thread t of every block of a grid in turn, so thread t of block i happens before thread t
// of block i + 1 (and no other pair of blocks is ordered). The launch releases what the host did before it,
// which the threads of the first block acquire; the threads of the last block release to the host, which
// acquires that when the grid is done.
#undef _FORTIFY_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "emu_internal.h"
#include "emu_tsan.h"

namespace rt_emu {

thread_local uint3 tl_thread_idx, tl_block_idx;
thread_local dim3 tl_block_dim, tl_grid_dim;

namespace {

enum fiber_state { READY, AT_BARRIER, AT_WARP, DONE };

struct cp_copy {
    void *dst;
    const void *src;
    int bytes, src_bytes;
    long group;
};

// One fiber stack of the OS thread: made once, then it runs CUDA thread after CUDA thread.
struct slot {
    char *stack;
    bool made;
    jmp_buf jb; // where the fiber goes on when resumed
#ifdef RT_EMU_TSAN
    ucontext_t ctx;
    void *tsan_fiber;
#endif
};

struct fiber {
    slot *s;
    uint3 idx;
    int lane, warp;
    fiber_state st;
    const char *what, *file; // where it waits
    int line;
    int pred;
    // at a warp collective
    collective_fn fn;
    int arg;
    unsigned mask;
    const void *in;
    void *out;
    // cp.async groups: copies not landed yet; group n_committed is the open one
    std::vector<cp_copy> copies;
    long n_committed;
};

struct static_array {
    const void *tag;
    unsigned char *p;
    size_t bytes, align;
};

struct block {
    const launch_config *cfg;
    void (*body)(void *);
    void *arg;
    std::vector<fiber> f;
    int n, n_done, n_barrier, reduce_result;
    jmp_buf sched;
    fiber *cur;
    unsigned char *smem;
    size_t smem_bytes;
    std::vector<static_array> statics; // static __shared__ arrays met so far in this launch
    size_t static_bytes;
    // The happens-before objects (RT_EMU_TSAN): two for the block barrier, used by alternate generations
    // (a thread leaving barrier k acquires generation k's, never what a faster thread released at k + 1);
    // two per warp alike for full-warp collectives; and an arrive and a leave object per thread for
    // collectives of part of a warp, which the last lane in acquires and releases one by one.
    unsigned char *sync;
    long barrier_gen;
    std::vector<long> warp_gen;
    // the first and the last block of the grid: a fiber runs the same thread index of every block in turn,
    // so it acquires the launch in the first and releases to the host in the last (RT_EMU_TSAN)
    bool first_block, last_block;
#ifdef RT_EMU_TSAN
    ucontext_t sched_ctx;
    void *host_fiber;
#endif
};

thread_local block *tl_block;
thread_local std::vector<slot *> tl_slots;
thread_local const char *tl_collective_file; // the collective being completed, for its faults
thread_local int tl_collective_line;
// RT_EMU_TSAN: the host releases to every thread of a launch, and acquires every thread's exit
thread_local char tl_launch_sync, tl_grid_sync;

size_t n_sync(const block *b) {
    return 2 + 2 * b->warp_gen.size() + 2 * (size_t)b->n;
}
void *barrier_obj(block *b) {
    return b->sync ? b->sync + (b->barrier_gen & 1) : NULL;
}
void *warp_obj(block *b, int warp) {
    return b->sync ? b->sync + 2 + 2 * warp + (b->warp_gen[(size_t)warp] & 1) : NULL;
}
void *arrive_obj(block *b, const fiber *f) {
    return b->sync ? b->sync + 2 + 2 * b->warp_gen.size() + 2 * (size_t)(f - b->f.data()) : NULL;
}
void *leave_obj(block *b, const fiber *f) {
    return b->sync ? b->sync + 2 + 2 * b->warp_gen.size() + 2 * (size_t)(f - b->f.data()) + 1 : NULL;
}
// Memory the block's threads use as new: under TSan a fresh allocation (freed and allocated again inside
// emu_quiet, which clears TSan's record of earlier accesses and sync objects there); otherwise the same one.
void renew(unsigned char *&p, size_t bytes, size_t align) {
#ifdef RT_EMU_TSAN
    free(p);
    p = NULL;
    if (posix_memalign((void **)&p, align < 16 ? 16 : align, bytes ? bytes : 1) != 0) {
        fprintf(stderr, "cuda emulator: cannot allocate %zu bytes of block memory\n", bytes);
        abort();
    }
#else
    (void)align;
    (void)bytes;
#endif
}

bool same_place(const char *file_a, int line_a, const char *file_b, int line_b) {
    return line_a == line_b && strcmp(file_a, file_b) == 0;
}

size_t stack_bytes() {
    static size_t kib = (size_t)strtoull(knob("RT_EMU_STACK", "256"), NULL, 10);
    return (kib < 64 ? 64 : kib) * 1024;
}

// The order runnable fibers are resumed in: forward (thread index order, one step of each per pass),
// reverse (the same from the last thread), warp (each warp in turn runs until all its threads wait at a
// block barrier or have exited, so one warp gets as far ahead of the others as the barriers allow),
// warp-reverse (the same from the last warp). A missing barrier between warps shows under some of them.
enum schedule { FORWARD, REVERSE, WARP, WARP_REVERSE };
schedule schedule_knob() {
    static const schedule s = [] {
        std::string v = knob("RT_EMU_SCHEDULE", "forward");
        if (v == "forward") return FORWARD;
        if (v == "reverse") return REVERSE;
        if (v == "warp") return WARP;
        if (v == "warp-reverse") return WARP_REVERSE;
        fprintf(stderr,
                "cuda emulator: RT_EMU_SCHEDULE=%s: expected forward, reverse, warp or warp-reverse\n",
                v.c_str());
        abort();
    }();
    return s;
}

bool eager_cp_async() {
    static int e = std::string(knob("RT_EMU_CP_ASYNC", "lazy")) == "eager";
    return e;
}

// A fiber stack with an inaccessible guard page below it, so an overflow faults instead of corrupting.
slot *slot_for(size_t i) {
    while (tl_slots.size() <= i) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = stack_bytes() + page;
        void *m =
            mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "cuda emulator: cannot map a %zu-byte fiber stack\n", bytes);
            abort();
        }
        mprotect(m, page, PROT_NONE);
        slot *s = new slot();
        s->stack = (char *)m + page;
        s->made = false;
        tl_slots.push_back(s);
    }
    return tl_slots[i];
}

void where(FILE *out) {
    block *b = tl_block;
    if (!b) return;
    fprintf(out,
            "cuda emulator: in the kernel launched at %s:%d, grid (%u, %u, %u) x block (%u, %u, %u), block "
            "(%u, %u, %u)",
            b->cfg->file, b->cfg->line, b->cfg->grid.x, b->cfg->grid.y, b->cfg->grid.z, b->cfg->block.x,
            b->cfg->block.y, b->cfg->block.z, tl_block_idx.x, tl_block_idx.y, tl_block_idx.z);
    if (b->cur) fprintf(out, ", thread (%u, %u, %u)", b->cur->idx.x, b->cur->idx.y, b->cur->idx.z);
    fprintf(out, ":\n");
}

void land(const cp_copy &c) {
    if (c.src_bytes > 0) memcpy(c.dst, c.src, (size_t)c.src_bytes);
    if (c.bytes > c.src_bytes) memset((char *)c.dst + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
}

// The body of every fiber stack: one CUDA thread per turn, then park until the scheduler hands it the next.
void to_scheduler(block *b, fiber *f) {
#ifdef RT_EMU_TSAN
    __tsan_switch_to_fiber(b->host_fiber, __tsan_switch_to_fiber_no_sync);
    swapcontext(&f->s->ctx, &b->sched_ctx);
#else
    if (!_setjmp(f->s->jb)) _longjmp(b->sched, 1);
#endif
}

void fiber_entry() {
    for (;;) {
        block *b;
        fiber *f;
        {
            emu_quiet q;
            b = tl_block;
            f = b->cur;
            if (b->first_block) hb_acquire(&tl_launch_sync);
        }
        b->body(b->arg);
        emu_quiet q;
        for (const cp_copy &c : f->copies) land(c); // copies still in flight land after the thread is gone
        f->copies.clear();
        f->st = DONE;
        f->what = "exit";
        b->n_done++;
        if (b->last_block) hb_release(&tl_grid_sync);
        to_scheduler(b, f);
    }
}

void resume(block *b, fiber *f) {
    b->cur = f;
    tl_thread_idx = f->idx;
#ifdef RT_EMU_TSAN
    if (!f->s->made) {
        getcontext(&f->s->ctx);
        f->s->ctx.uc_stack.ss_sp = f->s->stack;
        f->s->ctx.uc_stack.ss_size = stack_bytes();
        f->s->ctx.uc_link = NULL;
        makecontext(&f->s->ctx, fiber_entry, 0);
        f->s->tsan_fiber = __tsan_create_fiber(0);
        char name[48];
        snprintf(name, sizeof name, "CUDA thread %zu of a block", (size_t)(f - b->f.data()));
        __tsan_set_fiber_name(f->s->tsan_fiber, name);
        f->s->made = true;
    }
    __tsan_switch_to_fiber(f->s->tsan_fiber, __tsan_switch_to_fiber_no_sync);
    swapcontext(&b->sched_ctx, &f->s->ctx);
    b->cur = NULL;
    return;
#endif
    if (!_setjmp(b->sched)) {
        if (!f->s->made) {
            static thread_local ucontext_t start;
            getcontext(&start);
            start.uc_stack.ss_sp = f->s->stack;
            start.uc_stack.ss_size = stack_bytes();
            start.uc_link = NULL;
            makecontext(&start, fiber_entry, 0);
            f->s->made = true;
            setcontext(&start);
        }
        _longjmp(f->s->jb, 1);
    }
    b->cur = NULL;
}

// The current fiber waits: back to the scheduler until a barrier or collective releases it.
void wait_here(block *b) {
    to_scheduler(b, b->cur);
}

[[noreturn]] void deadlock(block *b) {
    b->cur = NULL;
    where(stderr);
    fprintf(stderr, "  deadlock: no thread can go on; %d of %d threads have exited; the others wait at:\n",
            b->n_done, b->n);
    // one line per place, with how many threads wait there and the first few of them
    std::vector<bool> shown(b->f.size(), false);
    for (size_t i = 0; i < b->f.size(); i++) {
        const fiber &a = b->f[i];
        if (shown[i] || a.st == DONE) continue;
        int count = 0;
        char ids[160] = "";
        size_t used = 0;
        for (size_t j = i; j < b->f.size(); j++) {
            const fiber &c = b->f[j];
            if (shown[j] || c.st == DONE || !same_place(c.file, c.line, a.file, a.line) ||
                strcmp(c.what, a.what))
                continue;
            shown[j] = true;
            if (++count <= 8 && used < sizeof ids)
                used += (size_t)snprintf(ids + used, sizeof ids - used, " %u",
                                         c.idx.x + b->cfg->block.x * (c.idx.y + b->cfg->block.y * c.idx.z));
        }
        fprintf(stderr, "    %s at %s:%d: %d thread%s (linear ids%s%s)\n", a.what, a.file, a.line, count,
                count == 1 ? "" : "s", ids, count > 8 ? " ..." : "");
    }
    abort();
}

void run_block(block *b) {
    for (int i = 0; i < b->n; i++) {
        fiber &f = b->f[i];
        f.st = READY;
        f.what = f.file = "";
        f.line = 0;
        f.copies.clear();
        f.n_committed = 0;
    }
    b->n_done = b->n_barrier = 0;
    // shared memory starts as garbage: NaN bytes, so a read before the block wrote shows in the results
    if (b->smem_bytes) {
        renew(b->smem, b->smem_bytes, 128);
        memset(b->smem, 0xff, b->smem_bytes);
    }
    for (static_array &a : b->statics) {
        renew(a.p, a.bytes, a.align);
        memset(a.p, 0xff, a.bytes);
    }
    b->barrier_gen = 0;
    for (long &g : b->warp_gen) g = 0;
    renew(b->sync, n_sync(b), 16);
    schedule sch = schedule_knob();
    bool rev = sch == REVERSE || sch == WARP_REVERSE, by_warp = sch == WARP || sch == WARP_REVERSE;
    int n_warps = (b->n + 31) / 32;
    for (;;) {
        bool ran = false;
        if (by_warp) {
            for (int k = 0; k < n_warps; k++) {
                int w = rev ? n_warps - 1 - k : k, lo = 32 * w, hi = lo + 32 < b->n ? lo + 32 : b->n;
                for (bool again = true; again;) { // this warp until none of its threads can go on
                    again = false;
                    for (int i = lo; i < hi; i++)
                        if (b->f[i].st == READY) resume(b, &b->f[i]), again = ran = true;
                }
            }
        } else {
            for (int k = 0; k < b->n; k++) {
                fiber *f = &b->f[rev ? b->n - 1 - k : k];
                if (f->st != READY) continue;
                resume(b, f);
                ran = true;
            }
        }
        if (b->n_done == b->n) return;
        if (!ran) deadlock(b);
    }
}

block *current(const char *what, const char *file, int line) {
    block *b = tl_block;
    if (!b || !b->cur) {
        fprintf(stderr, "cuda emulator: %s at %s:%d outside a kernel\n", what, file, line);
        abort();
    }
    return b;
}

} // namespace

void collective_fault(const char *fmt, ...) {
    where(stderr);
    fprintf(stderr, "  %s:%d: ", tl_collective_file, tl_collective_line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

void fault(const char *file, int line, const char *fmt, ...) {
    where(stderr);
    fprintf(stderr, "  %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

unsigned char *dynamic_smem(void) {
    emu_quiet q;
    block *b = current("extern __shared__", __FILE__, __LINE__);
    return b->smem;
}

void *static_smem(const void *tag, size_t bytes, size_t align) {
    emu_quiet q;
    block *b = current("__shared__", __FILE__, __LINE__);
    for (const static_array &a : b->statics)
        if (a.tag == tag) return a.p;
    // the static shared memory of a kernel is at most 48 KiB (the rest of the opt-in is dynamic only)
    if (b->static_bytes + bytes > 48 * 1024 ||
        b->static_bytes + bytes + b->smem_bytes > device_prop().sharedMemPerBlockOptin)
        fault(__FILE__, __LINE__,
              "static __shared__ arrays of %zu bytes in all: over 48 KiB, or with the %zu dynamic bytes over "
              "the opt-in limit",
              b->static_bytes + bytes, b->smem_bytes);
    void *p = NULL;
    if (posix_memalign(&p, align < 16 ? 16 : align, bytes ? bytes : 1) != 0) {
        fprintf(stderr, "cuda emulator: cannot allocate %zu bytes of static shared memory\n", bytes);
        abort();
    }
    memset(p, 0xff, bytes);
    b->statics.push_back(static_array{tag, (unsigned char *)p, bytes, align});
    b->static_bytes += bytes;
    return p;
}

bool in_shared(const void *p, size_t bytes) {
    block *b = tl_block;
    if (!b) return false;
    auto inside = [&](const unsigned char *base, size_t size) {
        uintptr_t a = (uintptr_t)p, s = (uintptr_t)base;
        return base && a >= s && bytes <= size && a - s <= size - bytes;
    };
    if (inside(b->smem, b->smem_bytes)) return true;
    for (const static_array &a : b->statics)
        if (inside(a.p, a.bytes)) return true;
    return false;
}

void syncthreads(const char *file, int line) {
    syncthreads_reduce(-1, 0, file, line);
}

int syncthreads_reduce(int op, int predicate, const char *file, int line) {
    emu_quiet q;
    block *b = current("__syncthreads", file, line);
    fiber *f = b->cur;
    f->st = AT_BARRIER;
    f->what = "__syncthreads";
    f->file = file;
    f->line = line;
    f->pred = predicate != 0;
    void *hb = barrier_obj(b);
    hb_release(hb);
    if (++b->n_barrier < b->n) {
        wait_here(b);
        hb_acquire(hb);
        return b->reduce_result;
    }
    // the last thread in: every thread must be at this same barrier
    int any = 0, all = 1, count = 0;
    for (fiber &o : b->f) {
        if (!same_place(o.file, o.line, file, line))
            fault(
                file, line,
                "__syncthreads reached at different places: thread (%u, %u, %u) waits at %s:%d while thread "
                "(%u, %u, %u) arrives here",
                o.idx.x, o.idx.y, o.idx.z, o.file, o.line, f->idx.x, f->idx.y, f->idx.z);
        any |= o.pred;
        all &= o.pred;
        count += o.pred;
    }
    b->reduce_result = op == 0 ? any : op == 1 ? all : count;
    b->n_barrier = 0;
    b->barrier_gen++;
    hb_acquire(hb);
    for (fiber &o : b->f) o.st = READY;
    return b->reduce_result;
}

void warp_collective(const char *what, collective_fn complete, int arg, unsigned mask, const void *in,
                     void *out, const char *file, int line) {
    emu_quiet q;
    block *b = current(what, file, line);
    fiber *f = b->cur;
    int first = f->warp * 32, lanes = b->n - first < 32 ? b->n - first : 32;
    unsigned present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
    if (!(mask >> f->lane & 1u))
        fault(file, line, "%s with mask 0x%08x called by lane %d, which the mask leaves out", what, mask,
              f->lane);
    if (mask & ~present)
        fault(file, line, "%s with mask 0x%08x names lanes that do not exist (the warp has %d)", what, mask,
              lanes);
    f->st = AT_WARP;
    f->what = what;
    f->file = file;
    f->line = line;
    f->fn = complete;
    f->arg = arg;
    f->mask = mask;
    f->in = in;
    f->out = out;
    fiber *w = &b->f[first];
    bool whole_warp = mask == 0xffffffffu;
    void *hb = whole_warp ? warp_obj(b, f->warp) : arrive_obj(b, f);
    hb_release(hb);
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1u) && w[l].st != AT_WARP) {
            wait_here(b); // released by the last lane in
            hb_acquire(whole_warp ? hb : leave_obj(b, f));
            return;
        }
    const void *ins[32] = {0};
    void *outs[32] = {0};
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        if (w[l].fn != complete || w[l].mask != mask || w[l].arg != arg)
            fault(
                file, line,
                "warp collectives do not match: lane %d is at %s (mask 0x%08x) at %s:%d, lane %d at %s (mask "
                "0x%08x) here",
                l, w[l].what, w[l].mask, w[l].file, w[l].line, f->lane, what, mask);
        ins[l] = w[l].in;
        outs[l] = w[l].out;
    }
    if (whole_warp) {
        b->warp_gen[(size_t)f->warp]++;
        hb_acquire(hb);
    } else {
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1u) hb_acquire(arrive_obj(b, &w[l]));
        for (int l = 0; l < 32; l++)
            if (mask >> l & 1u) hb_release(leave_obj(b, &w[l]));
    }
    tl_collective_file = file;
    tl_collective_line = line;
    complete(ins, outs, mask, arg);
    for (int l = 0; l < 32; l++)
        if (mask >> l & 1u) w[l].st = READY;
}

namespace {
struct shfl_in {
    uint64_t value;
    int arg;
};
void shfl_complete(const void *const ins[32], void *const outs[32], unsigned mask, int packed) {
    int mode = packed & 0xff, width = packed >> 8;
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1u)) continue;
        const shfl_in *me = (const shfl_in *)ins[l];
        int seg = l & ~(width - 1), src = l;
        switch (mode) {
        case SHFL_IDX:
            src = seg + (me->arg & (width - 1));
            break;
        case SHFL_UP:
            src = l - me->arg >= seg ? l - me->arg : l;
            break;
        case SHFL_DOWN:
            src = l + me->arg < seg + width ? l + me->arg : l;
            break;
        case SHFL_XOR:
            src = (l ^ me->arg) >= seg && (l ^ me->arg) < seg + width ? l ^ me->arg : l;
            break;
        }
        if (!(mask >> src & 1u))
            collective_fault("lane %d shuffles from lane %d, which is not in the mask 0x%08x", l, src, mask);
        *(uint64_t *)outs[l] = ((const shfl_in *)ins[src])->value;
    }
}
void syncwarp_complete(const void *const *, void *const *, unsigned, int) {}
} // namespace

uint64_t shfl_bits(shfl_mode mode, unsigned mask, uint64_t value, int arg, int width, const char *file,
                   int line) {
    if (width < 1 || width > 32 || (width & (width - 1)))
        fault(file, line, "shuffle width %d is not a power of two up to 32", width);
    static const char *names[] = {"__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync"};
    shfl_in in = {value, arg};
    uint64_t out = 0;
    warp_collective(names[mode], shfl_complete, (int)mode | width << 8, mask, &in, &out, file, line);
    return out;
}

void syncwarp(const char *file, int line, unsigned mask) {
    warp_collective("__syncwarp", syncwarp_complete, 0, mask, NULL, NULL, file, line);
}

void cp_async(void *dst, const void *src, int bytes, int src_bytes, const char *file, int line) {
    block *b;
    fiber *f;
    {
        emu_quiet q;
        b = current("cp.async", file, line);
        f = b->cur;
        if (!in_shared(dst, (size_t)bytes) || (uintptr_t)dst % (uintptr_t)bytes)
            fault(file, line, "cp.async destination %p (%d bytes) is not aligned shared memory", dst, bytes);
        if (src_bytes > 0 && (!in_device_memory(src, (size_t)src_bytes) || (uintptr_t)src % (uintptr_t)bytes))
            fault(file, line, "cp.async source %p (%d bytes) is not aligned device memory", src, src_bytes);
    }
    // to TSan the copy is this thread's, at the issue: the destination may be written, and the source read,
    // any time until the wait_group that covers it
    if (src_bytes > 0) kernel_read(src, (size_t)src_bytes);
    kernel_write(dst, (size_t)bytes);
    emu_quiet q;
    cp_copy c = {dst, src, bytes, src_bytes, f->n_committed};
    if (eager_cp_async())
        land(c);
    else
        f->copies.push_back(c);
}

void cp_async_commit(void) {
    emu_quiet q;
    block *b = current("cp.async.commit_group", __FILE__, __LINE__);
    b->cur->n_committed++;
}

void cp_async_wait(int n, const char *file, int line) {
    emu_quiet q;
    block *b = current("cp.async.wait_group", file, line);
    fiber *f = b->cur;
    long oldest_pending = f->n_committed - n; // groups below this one must have landed
    std::vector<cp_copy> keep;
    for (const cp_copy &c : f->copies)
        if (c.group < oldest_pending)
            land(c);
        else
            keep.push_back(c);
    f->copies.swap(keep);
}

void launch(const launch_config &cfg, const void *kernel, void (*body)(void *), void *arg) {
    cudaError_t s = sticky_error();
    if (s != cudaSuccess) {
        set_error(s);
        return;
    }
    if (!stream_ok(cfg.stream)) {
        set_error(cudaErrorInvalidResourceHandle);
        return;
    }
    const cudaDeviceProp &p = device_prop();
    const dim3 &g = cfg.grid, &bl = cfg.block;
    unsigned long long threads = (unsigned long long)bl.x * bl.y * bl.z;
    if (!g.x || !g.y || !g.z || g.x > (unsigned)p.maxGridSize[0] || g.y > (unsigned)p.maxGridSize[1] ||
        g.z > (unsigned)p.maxGridSize[2] || !threads || threads > (unsigned)p.maxThreadsPerBlock ||
        bl.x > (unsigned)p.maxThreadsDim[0] || bl.y > (unsigned)p.maxThreadsDim[1] ||
        bl.z > (unsigned)p.maxThreadsDim[2]) {
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (cfg.smem > kernel_smem_limit(kernel)) {
        set_error(cudaErrorInvalidValue); // above 48 KiB only after cudaFuncSetAttribute opts the kernel in
        return;
    }
    if (tl_block) fault(cfg.file, cfg.line, "a kernel launched from inside a kernel");
    hb_release(&tl_launch_sync); // the host's work so far happens before every thread of the grid
    emu_quiet q;
    block b;
    b.cfg = &cfg;
    b.body = body;
    b.arg = arg;
    b.n = (int)threads;
    b.f.resize((size_t)b.n);
    for (int i = 0; i < b.n; i++) {
        fiber &f = b.f[(size_t)i];
        f.idx = uint3{(unsigned)i % bl.x, (unsigned)i / bl.x % bl.y, (unsigned)i / (bl.x * bl.y)};
        f.lane = i & 31;
        f.warp = i >> 5;
        f.s = slot_for((size_t)i);
    }
    b.smem_bytes = cfg.smem;
    b.smem = NULL;
    if (b.smem_bytes && posix_memalign((void **)&b.smem, 128, b.smem_bytes) != 0) {
        set_error(cudaErrorMemoryAllocation);
        return;
    }
    b.cur = NULL;
    b.static_bytes = 0;
    b.sync = NULL;
    b.warp_gen.assign((size_t)(b.n + 31) / 32, 0);
#ifdef RT_EMU_TSAN
    b.host_fiber = __tsan_get_current_fiber();
#endif
    tl_grid_dim = g;
    tl_block_dim = bl;
    tl_block = &b;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++) {
                tl_block_idx = uint3{x, y, z};
                b.first_block = x == 0 && y == 0 && z == 0;
                b.last_block = x == g.x - 1 && y == g.y - 1 && z == g.z - 1;
                run_block(&b);
            }
    tl_block = NULL;
    free(b.smem);
    free(b.sync);
    for (static_array &a : b.statics) free(a.p);
    hb_acquire(&tl_grid_sync); // every thread of the grid happens before what the host does next
}

} // namespace rt_emu
