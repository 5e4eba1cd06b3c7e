#!/usr/bin/env bash
# The measurement behind the CPU backend's GEMM library (docs/cpu_performance.md): fp32 GEMM throughput of
# every packaged candidate at the shapes of bench/cpu_train.sh's model, on this machine, in one run.
#
#   bench/cpu_gemm_libs.sh [THREADS]
#
# Candidates: oneDNN (libdnnl-dev, what the backend links), Debian's OpenBLAS (OpenMP build) as it detects
# the CPU and with each kernel family forced through OPENBLAS_CORETYPE, BLIS (libblis-openmp-dev), and a
# current OpenBLAS from PyPI (the scipy-openblas32 wheel, its library and headers; kept under bench/.cache).
# Prints GFLOP/s per shape and library and the model-shape aggregate (all whole-batch shapes' flops over
# their total time); appends one JSON line per library and shape to bench/results/cpu_gemm_libs.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
threads=${1:-$(nproc)}
scipy_openblas=scipy-openblas32==0.3.34.481.3
./scripts/bootstrap.sh >/dev/null
pkgs=(libopenblas-openmp-dev libblis-openmp-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "cpu_gemm_libs: run as root: apt-get install ${missing[*]}" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
cache=$root/bench/.cache/scipy-openblas32
if [[ ! -f "$cache/scipy_openblas32/lib/libscipy_openblas.so" ]]; then
    mkdir -p "$cache"
    /usr/bin/python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$cache" "$scipy_openblas"
    /usr/bin/python3 -m zipfile -e "$cache"/scipy_openblas32-*.whl "$cache"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=bench/gemm/gemm_libs.c
arch=$(gcc -print-multiarch)
ob=/usr/lib/$arch/openblas-openmp blis=/usr/lib/$arch/blis-openmp so=$cache/scipy_openblas32
cc=(gcc -O2 -std=c11 -fopenmp "$src" -o)
"${cc[@]}" "$work/onednn" -DGEMM_DNNL -ldnnl
"${cc[@]}" "$work/openblas" -I/usr/include/$arch/openblas-openmp -L$ob -lopenblas -Wl,-rpath,$ob
"${cc[@]}" "$work/blis" -I/usr/include/$arch/blis-openmp -L$blis -lblis -Wl,-rpath,$blis
"${cc[@]}" "$work/scipy-openblas" -DGEMM_PREFIX -I$so/include -L$so/lib -lscipy_openblas -Wl,-rpath,$so/lib

# binary, label, OPENBLAS_CORETYPE (- for the library's own detection)
runs=("onednn oneDNN-2.6.3 -" "openblas OpenBLAS-0.3.21 -")
coretypes=(Haswell Zen)
if grep -qw avx512f /proc/cpuinfo; then coretypes+=(SkylakeX Cooperlake); fi
for c in "${coretypes[@]}"; do runs+=("openblas OpenBLAS-0.3.21/$c $c"); done
runs+=("blis BLIS-0.9.0 -" "scipy-openblas OpenBLAS-0.3.34(PyPI) -")
out=$work/raw.jsonl
for r in "${runs[@]}"; do
    read -r bin label coretype <<<"$r"
    core=()
    if [[ $coretype != - ]]; then core=("OPENBLAS_CORETYPE=$coretype"); fi
    env "${core[@]}" OMP_NUM_THREADS="$threads" BLIS_NUM_THREADS="$threads" "$work/$bin" "$label" all >>"$out"
    env "${core[@]}" OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 "$work/$bin" "$label" single >>"$out"
done
/usr/bin/python3 - "$out" "$threads" "bench/cpu_gemm_libs.sh $*" <<'PY'
import collections, datetime, json, subprocess, sys
raw, threads, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
recs = [json.loads(l) for l in open(raw)]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
fam = {k: next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith(k)), "?")
       for k in ("cpu family", "model")}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
libs = list(dict.fromkeys(r["library"] for r in recs))
shapes = list(dict.fromkeys(r["shape"] for r in recs))
by = {(r["library"], r["shape"]): r for r in recs}
print(f"{cpu} (family {fam['cpu family']} model {fam['model']}), {threads} threads (attention shapes: 1)")
agg = {}
for l in libs:
    rs = [by[(l, s)] for s in shapes if s != "square 1024" and not by[(l, s)]["single_thread"]]
    agg[l] = sum(2.0 * r["M"] * r["N"] * r["K"] for r in rs) / sum(r["us"] * 1e-6 for r in rs) / 1e9
print("GFLOP/s".ljust(20) + "".join(f"{s[:10]:>11}" for s in shapes) + "  model shapes")
for l in libs:
    print(l[:20].ljust(20) + "".join(f"{by[(l, s)]['gflops']:11.1f}" for s in shapes) + f"{agg[l]:14.1f}")
with open("bench/results/cpu_gemm_libs.jsonl", "a") as f:
    for r in recs:
        r.update(date=datetime.date.today().isoformat(), commit=commit, cpu=cpu, cpu_family=fam["cpu family"],
                 cpu_model=fam["model"], threads=1 if r["single_thread"] else threads,
                 aggregate_gflops=round(agg[r["library"]], 1), command=command)
        f.write(json.dumps(r) + "\n")
PY
