"""What ptxas made of every CUDA kernel (the emulation build cannot see registers, spills or occupancy).

The nvcc build compiles cuda/*.cu with -Xptxas=-v through tests/ptxas_record.sh, which keeps ptxas's report
next to each object (<object>.ptxas). This collects them into <build>/ptxas_report.txt (kernel, arch,
registers, stack frame, spill stores and loads, shared memory), prints it, and fails when a kernel spills
registers to local memory (beyond the few bytes TOLERATED below), or when its registers times the threads its
__launch_bounds__ promises (AM_THREADS = 128 for the tensor-core attention kernels) exceed the 64 K
registers of an SM: the hot loops are written to live in registers, and a spill there costs more than
any tuning gains.

    python3 tests/check_ptxas.py BUILD_DIR
"""
import glob
import os
import re
import shutil
import subprocess
import sys

REGS_PER_SM = 65536
# Spills known and accepted, by kernel name prefix: the most bytes of spill stores or loads. The portable
# attention kernels are the fallback (fp32 activations, head dims the tensor cores do not take); the hot
# bf16 path is attention_mma.cu, which must not spill at all. The numbers are ptxas 13.0's for sm_80/sm_90.
TOLERATED = {
    "void attention_dkdv_kernel<": 16,  # 72-register cap of its launch bounds; 8-16 bytes around the tile loop
    "void attention_cached_kernel<float, 2>": 16,  # generation with D > 128 in fp32: 12 bytes on sm_80
}
# kernels declared with __launch_bounds__(n): a name prefix and n
LAUNCH_BOUNDS = {"am_forward_kernel": 128, "am_dkdv_kernel": 128, "am_dq_kernel": 128}


def demangle(names):
    if not names or not shutil.which("c++filt"):
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout
    return dict(zip(names, out.splitlines()))


def parse(path):
    """[(mangled kernel, arch, registers, stack, spill stores, spill loads, smem bytes)]"""
    rows, cur = [], None
    for line in open(path, errors="replace"):
        m = re.match(r"ptxas info\s*: Compiling entry function '(\S+)' for '(\S+)'", line)
        if m:
            cur = {"name": m.group(1), "arch": m.group(2), "regs": 0, "stack": 0, "st": 0, "ld": 0, "smem": 0}
            rows.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"\s+(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            cur["stack"], cur["st"], cur["ld"] = (int(x) for x in m.groups())
        m = re.match(r"ptxas info\s*: Used (\d+) registers", line)
        if m:
            cur["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["smem"] = int(s.group(1)) if s else 0
    return rows


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RT_BUILD_DIR", "build")
    objects = sorted(glob.glob(os.path.join(build, "CMakeFiles", "rt_cuda.dir", "cuda", "*.cu.o")))
    if not objects:
        sys.exit("no CUDA objects under %s (not an nvcc build?)" % build)
    rows, problems = [], []
    for o in objects:
        rec = o + ".ptxas"
        if not os.path.exists(rec):
            problems.append("%s: no ptxas report (%s); rebuild with the launcher tests/ptxas_record.sh" %
                            (os.path.basename(o), rec))
            continue
        found = parse(rec)  # (matmul.cu has no kernels of its own: cuBLASLt's)
        for r in found:
            r["file"] = os.path.basename(o)[:-2]
        rows += found
    names = demangle(sorted({r["name"] for r in rows}))
    lines = ["%-14s %-6s %4s %6s %6s %6s %7s  %s" % ("file", "arch", "regs", "stack", "spillS", "spillL", "smem",
                                                     "kernel")]
    for r in rows:
        pretty = names.get(r["name"], r["name"])
        lines.append("%-14s %-6s %4d %6d %6d %6d %7d  %s" % (r["file"], r["arch"], r["regs"], r["stack"], r["st"],
                                                          r["ld"], r["smem"], pretty))
        allowed = max([b for k, b in TOLERATED.items() if pretty.startswith(k)], default=0)
        if r["st"] > allowed or r["ld"] > allowed:
            problems.append("%s (%s, %s): %d bytes stack frame, %d bytes spill stores, %d bytes spill loads" %
                            (pretty, r["file"], r["arch"], r["stack"], r["st"], r["ld"]))
        for prefix, threads in LAUNCH_BOUNDS.items():
            if pretty.startswith(prefix) and r["regs"] * threads > REGS_PER_SM:
                problems.append("%s (%s): %d registers x %d threads exceed the %d of an SM" %
                                (pretty, r["arch"], r["regs"], threads, REGS_PER_SM))
    report = "\n".join(lines) + "\n"
    with open(os.path.join(build, "ptxas_report.txt"), "w") as f:
        f.write(report)
    print(report)
    if problems:
        print("ptxas check FAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("ptxas: %d kernel compilations, no spills beyond the tolerated ones, launch bounds met" % len(rows))


if __name__ == "__main__":
    main()
