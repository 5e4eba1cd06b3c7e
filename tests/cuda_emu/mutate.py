#!/usr/bin/env python3
"""Proof that the emulation build catches bugs (docs/cuda_emulation.md, issue 16).

Copies cuda/ to a temporary folder, injects one bug at a time (the classes the CUDA backend is most exposed
to), rebuilds the emulation build against the mutated copy (-DRT_EMU_CUDA_DIR), runs the twin suites with
`ctest -L emu` (every suite under every schedule CI runs it under, tests/cuda.cmake) and records which
tests catch it. A mutant is caught when some test fails: a wrong result, or the emulator stopping the
kernel (deadlock, mismatched barrier, bad address, invalid launch).

    tests/cuda_emu/mutate.py [--build DIR] [--out FILE] [--only NAME ...] [--schedules LIST] [--tsan] [-j N]

--tsan builds the ThreadSanitizer variant instead (-DRT_CUDA_EMU_TSAN=ON) and runs `ctest -L tsan`: the
suites once, under the default schedule, where a race TSan reports fails the test.

--out writes the results as a Markdown table (bench/results/cuda_emu_mutations.md is the committed one).
Exits 1 when a mutant is missed or the unmutated copy fails. Standard library only.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ["test_cuda_ops", "test_cuda_kv", "test_cuda_lora", "test_cuda_model"]

# (name, bug class of issue 16, file in cuda/, text to find (exactly once), replacement, what it does)
MUTANTS = [
    ("ldsm-b-in-a-order-fwd", "B-fragment ldmatrix address in the A order", "attention_mma.cu",
     "am_off_b(lane, LD));\n                am_mma(sc[2 * np], qf[kc], f[0], f[1]);\n"
     "                am_mma(sc[2 * np + 1], qf[kc], f[2], f[3]);\n            }\n        // Online",
     "am_off_a(lane, LD));\n                am_mma(sc[2 * np], qf[kc], f[0], f[1]);\n"
     "                am_mma(sc[2 * np + 1], qf[kc], f[2], f[3]);\n            }\n        // Online",
     "forward: K fragments of S = Q K^T loaded with the A-operand lane addresses"),
    ("ldsm-b-in-a-order-dkdv", "B-fragment ldmatrix address in the A order", "attention_mma.cu",
     "am_ldsm_x4(f, Qt + np * 16 * LD + kc * 16 + am_off_b(lane, LD));",
     "am_ldsm_x4(f, Qt + np * 16 * LD + kc * 16 + am_off_a(lane, LD));",
     "dK/dV: Q fragments of S^T = K Q^T loaded with the A-operand lane addresses"),
    ("pack-a-swapped", "swapped registers when P is repacked into an A fragment", "attention_mma.cu",
     "    a[1] = am_pack(c0[2], c0[3]);\n    a[2] = am_pack(c1[0], c1[1]);",
     "    a[1] = am_pack(c1[0], c1[1]);\n    a[2] = am_pack(c0[2], c0[3]);",
     "am_pack_a: registers 1 and 2 of the A fragment swapped (rows g+8 and columns 2t+8 mixed up)"),
    ("no-barrier-before-refill-fwd", "the barrier before a cp.async refill removed", "attention_mma.cu",
     "        __syncthreads(); // everyone is done with buffer st before the next iteration refills it\n",
     "\n", "forward: a warp may refill the K/V buffer another warp still reads"),
    ("no-barrier-before-refill-dq", "the barrier before a cp.async refill removed", "attention_mma.cu",
     "                am_mma(acc[2 * np + 1], da, f[2], f[3]);\n            }\n        }\n        __syncthreads();",
     "                am_mma(acc[2 * np + 1], da, f[2], f[3]);\n            }\n        }\n",
     "dQ: the barrier at the end of the key-tile loop removed"),
    ("no-barrier-before-refill-dkdv", "the barrier before a cp.async refill removed", "attention_mma.cu",
     "                am_mma(dka[2 * np + 1], da, f[2], f[3]);\n            }\n        }\n        __syncthreads();",
     "                am_mma(dka[2 * np + 1], da, f[2], f[3]);\n            }\n        }\n",
     "dK/dV: the barrier at the end of the query-tile loop removed"),
    ("wait-group-too-little-fwd", "cp.async.wait_group waiting for too little", "attention_mma.cu",
     "am_cp_wait<1>(); // everything but the prefetch has landed",
     "am_cp_wait<2>(); // everything but the prefetch has landed",
     "forward: wait_group 2 lets the tile about to be read still be in flight"),
    ("wait-group-too-little-dkdv", "cp.async.wait_group waiting for too little", "attention_mma.cu",
     "        if (it + 1 < n_it) issue(it + 1, st ^ 1);\n        am_cp_commit();\n        am_cp_wait<1>();",
     "        if (it + 1 < n_it) issue(it + 1, st ^ 1);\n        am_cp_commit();\n        am_cp_wait<2>();",
     "dK/dV: wait_group 2"),
    ("mask-hides-diagonal-fwd", "the causal mask hiding the diagonal", "attention_mma.cu",
     "if (edge && k0 + 8 * j + 2 * t4 + (e & 1) > row0 + 8 * (e >> 1)) x = -INFINITY;",
     "if (edge && k0 + 8 * j + 2 * t4 + (e & 1) >= row0 + 8 * (e >> 1)) x = -INFINITY;",
     "MMA forward: a query no longer sees its own key"),
    ("mask-hides-diagonal-dkdv", "the causal mask hiding the diagonal", "attention_mma.cu",
     "if (edge && (key0 + 8 * (e >> 1) > q0 + c || q0 + c >= s.T)) p = 0.0f;",
     "if (edge && (key0 + 8 * (e >> 1) >= q0 + c || q0 + c >= s.T)) p = 0.0f;",
     "MMA dK/dV: the diagonal's probability dropped"),
    ("mask-hides-diagonal-portable", "the causal mask hiding the diagonal", "attention.cu",
     "if (tq < s.T && tk <= tq) {", "if (tq < s.T && tk < tq) {",
     "portable dK/dV: the diagonal's probability dropped"),
    ("no-smem-opt-in", "the shared-memory opt-in above 48 KB missing", "attention_mma.cu",
     "if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) != cudaSuccess) {",
     "if (false) {", "MMA kernels launched with over 48 KiB of dynamic shared memory without the opt-in"),
    ("no-syncwarp-dkdv", "a __syncwarp removed", "attention.cu",
     "__syncwarp(); // column c of Ps and dSs", "// column c of Ps and dSs",
     "portable dK/dV: lanes read P and dS entries other lanes of the row have not written yet"),
    ("no-syncwarp-dq", "a __syncwarp removed", "attention.cu",
     "__syncwarp(); // row r of dSs", "// row r of dSs",
     "portable dQ: lanes read dS entries other lanes of the row have not written yet"),
    ("off-by-one-tile-rows-mma", "an index off by one at a tile edge", "attention_mma.cu",
     "const bool ok = r0 + r < T;", "const bool ok = r0 + r < T - 1;",
     "MMA tile loads: the last row before T zero-filled as if past the end"),
    ("off-by-one-tile-rows-portable", "an index off by one at a tile edge", "attention.cu",
     "tile[r * ld + d] = t < T ? to_f32(x[(size_t)t * stride + d]) : 0.0f;",
     "tile[r * ld + d] = t < T - 1 ? to_f32(x[(size_t)t * stride + d]) : 0.0f;",
     "portable tile loads: the last row before T zero-filled"),
    ("off-by-one-key-tiles-mma", "an index off by one at a tile edge", "attention_mma.cu",
     "const int kend = s.T < q0 + AM_BM ? s.T : q0 + AM_BM, nkt = (kend + BN - 1) / BN;\n\n    am_load_rows<AM_BM, D>(Qs, qb",
     "const int kend = s.T < q0 + AM_BM ? s.T : q0 + AM_BM, nkt = kend / BN;\n\n    am_load_rows<AM_BM, D>(Qs, qb",
     "MMA forward: a partial last key tile is skipped"),
    ("cublaslt-transa-flipped", "a cuBLASLt transpose flipped", "matmul.cu",
     "cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;",
     "cublasOperation_t op_first = trans_b ? CUBLAS_OP_N : CUBLAS_OP_T;",
     "cuBLASLt TRANSA (our b) the opposite of what the layout says"),
    ("cublaslt-transb-from-a", "a cuBLASLt transpose flipped", "matmul.cu",
     "cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;",
     "cublasOperation_t op_second = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;",
     "cuBLASLt TRANSB taken from our b's transpose instead of a's"),
    # beyond the list: what the other increments of the emulator are for
    ("block-sum-first-barrier", "a __syncthreads removed (inter-warp)", "cuda_internal.h",
     "    __syncthreads(); // shared may still be read by a previous call\n    if (lane == 0) shared[warp] = v;",
     "    if (lane == 0) shared[warp] = v;",
     "block_sum: a warp may overwrite the partial sums another warp still reads"),
    ("block-sum-reads-unwritten", "static __shared__ read before written", "cuda_internal.h",
     "float s = lane < n_warps ? shared[lane] : 0.0f;", "float s = lane < 2 * n_warps ? shared[lane] : 0.0f;",
     "block_sum reads twice as many slots as warps wrote (garbage on a GPU)"),
    ("grid-y-no-stride", "a grid-stride loop that stops after one grid", "attention.cu",
     "    const E *vb = v + (size_t)b * s.T * kstride + (size_t)g * D;\n"
     "    for (int y = blockIdx.y; y < s.nt; y += gridDim.y) {",
     "    const E *vb = v + (size_t)b * s.T * kstride + (size_t)g * D;\n"
     "    for (int y = blockIdx.y; y < s.nt && y < (int)gridDim.y; y += gridDim.y) {",
     "portable forward: query tiles past the grid's y size never computed"),
    ("grid-cap-no-stride", "a grid-stride loop that stops after one grid", "bias.cu",
     "         i += (size_t)gridDim.x * blockDim.x)\n        out[i]",
     "         i += (size_t)gridDim.x * blockDim.x * 1000000)\n        out[i]",
     "add_bias_rows: elements past the capped grid never written"),
]


def run(cmd, cwd, log, timeout=None):
    with open(log, "ab") as f:
        f.write(("$ " + " ".join(cmd) + "\n").encode())
        f.flush()
        try:
            return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return 124


def first_symptom(text):
    """The first line of a failing suite's output that says what went wrong."""
    m = re.search(r"SUMMARY: ThreadSanitizer: (.*)", text)
    if m:
        return re.sub(r"/\S*/(cuda|tests)/", r"\1/", m.group(1).strip())[:140]
    for line in text.splitlines():
        if re.search(r"cuda emulator:|:[EF]:|[Ff]ailed|differ|mismatch|nan|Assertion", line) and \
                "Test #" not in line and "tests failed" not in line:
            line = line.strip()
            m = re.search(r"tests/\w+\.c:\d+:[EF]:[^:]*:[^:]*:\d+:\s*(.*)", line)
            if m:
                line = m.group(1)
            line = re.sub(r"/\S*/(cuda|tests)/", r"\1/", line)
            return line[:140]
    return ""


def ctest(build, log, jobs, stop, label):
    """Runs ctest -L emu; returns ({test: passed}, {test: symptom}, seconds). With stop, ctest stops at the
    first failure (the tests it did not get to count as not run)."""
    t0 = time.time()
    out = os.path.join(build, "mutate-ctest.log")
    # the twin suites only: train_resume_cuda (label emu too) needs the CLI and adds minutes per mutant
    cmd = ["ctest", "-L", label, "-E", "train_resume", "-j", str(jobs), "--timeout", "900", "--output-on-failure"]
    with open(out, "wb") as f:
        subprocess.run(cmd + (["--stop-on-failure"] if stop else []), cwd=build, stdout=f,
                       stderr=subprocess.STDOUT)
    text = open(out, errors="replace").read()
    with open(log, "a") as f:
        f.write(text)
    results, symptoms = {}, {}
    for m in re.finditer(r"Test +#\d+: (\S+) \.+\**\s*(\S.*?)\s+[\d.]+ sec", text):
        results[m.group(1)] = m.group(2).startswith("Passed")
    # ctest prints each failing test's output right after its status line
    blocks = re.split(r"\n(?=\s*\d+/\d+ Test +#\d+: )", text)
    for b in blocks:
        m = re.search(r"Test +#\d+: (\S+) ", b)
        if m and not results.get(m.group(1), True):
            symptoms[m.group(1)] = first_symptom(b.split("\n", 1)[1] if "\n" in b else "")
    return results, symptoms, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(tempfile.gettempdir(), "rt-emu-mutate"))
    ap.add_argument("--out", help="write the Markdown table here")
    ap.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    ap.add_argument("--schedules", help="RT_EMU_SCHEDULES for the build (default: the CI set)")
    ap.add_argument("--all", action="store_true", help="run every test on every mutant (default: stop at "
                    "the first failure, so the failing tests named are the first to fail, not all)")
    ap.add_argument("--tsan", action="store_true", help="the ThreadSanitizer variant (ctest -L tsan)")
    ap.add_argument("-j", type=int, default=2, help="ctest and build jobs")
    args = ap.parse_args()

    mutants = [m for m in MUTANTS if not args.only or m[0] in args.only]
    work = tempfile.mkdtemp(prefix="rt-mutate-")
    pristine, cuda = os.path.join(work, "pristine"), os.path.join(work, "cuda")
    shutil.copytree(os.path.join(ROOT, "cuda"), pristine)
    shutil.copytree(pristine, cuda)
    log = os.path.join(work, "mutate.log")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    conf = ["cmake", "-S", ROOT, "-B", args.build, *gen, "-DCMAKE_BUILD_TYPE=Release",
            "-DRT_CUDA_EMU_TSAN=ON" if args.tsan else "-DRT_CUDA_EMU=ON", "-DRT_EMU_CUDA_DIR=" + cuda]
    if args.schedules is not None:
        conf.append("-DRT_EMU_SCHEDULES=" + args.schedules)
    if run(conf, ROOT, log) != 0:
        sys.exit("configure failed; see " + log)
    build = ["cmake", "--build", args.build, "-j", str(args.j), "--target", *TARGETS]

    def build_and_test(stop):
        if run(build, ROOT, log) != 0:
            return None, {}, 0.0
        return ctest(args.build, log, args.j, stop, "tsan" if args.tsan else "emu")

    print("log: " + log, flush=True)
    results, symptoms, secs = build_and_test(False)
    if results is None or not results or not all(results.values()):
        print("the unmutated copy does not pass: " + str(results) + " " + str(symptoms))
        sys.exit(1)
    tests = sorted(results)
    print("unmutated: %d tests pass (%.0f s)" % (len(tests), secs), flush=True)

    rows, missed = [], 0
    for name, cls, fname, old, new, what in mutants:
        path = os.path.join(cuda, fname)
        shutil.copy2(os.path.join(pristine, fname), path)
        text = open(path).read()
        if text.count(old) != 1:
            sys.exit("%s: the text to mutate occurs %d times in cuda/%s" % (name, text.count(old), fname))
        with open(path, "w") as f:
            f.write(text.replace(old, new))
        t0 = time.time()
        res, sym, _ = build_and_test(not args.all)
        secs = time.time() - t0
        shutil.copy2(os.path.join(pristine, fname), path)  # (copy2 keeps the old mtime: touch it)
        os.utime(path)
        if res is None:
            rows.append((name, cls, what, "BUILD FAILED", "", ""))
            missed += 1
            print("%-32s build failed" % name, flush=True)
            continue
        failed = [t for t in tests if t in res and not res[t]]
        caught = "caught" if failed else "MISSED"
        missed += not failed
        how = sym.get(failed[0], "") if failed else ""
        rows.append((name, cls, what, caught, " ".join(failed), how))
        print("%-32s %-7s %4.0f s  %s  %s" % (name, caught, secs, " ".join(failed), how), flush=True)
    # leave the build pointing at an unmutated copy that is about to disappear: point it back at cuda/
    run(["cmake", "-S", ROOT, "-B", args.build, "-DRT_EMU_CUDA_DIR=" + os.path.join(ROOT, "cuda")], ROOT, log)

    if args.out:
        with open(args.out, "w") as f:
            f.write("# Mutations of cuda/ against the emulation build\n\n")
            f.write("Produced by `tests/cuda_emu/mutate.py %s` (%s; the emu tests: %s). Each row is one bug "
                    "injected into a copy of cuda/; a mutant is caught when an emu test fails (%s); the last "
                    "column is the first line of its output that says why.\n\n" %
                    (" ".join(sys.argv[1:]), time.strftime("%Y-%m-%d"), ", ".join(tests),
                     "every failing test named" if args.all else "ctest stops at the first failure, which is named"))
            f.write("| mutant | bug class | what it does | result | failing tests | first symptom |\n")
            f.write("|---|---|---|---|---|---|\n")
            for r in rows:
                f.write("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n")
            f.write("\n%d of %d caught.\n" % (len(rows) - missed, len(rows)))
    print("%d of %d caught" % (len(rows) - missed, len(rows)))
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
