#!/usr/bin/env bash
# CPU training throughput: retort against the PyTorch a user would pick instead, on the same model, batch,
# sequence length and threads, in the same run:
#   - PyTorch 2 from PyPI (.venv-hf, made by scripts/bootstrap.sh test), eager, attention through
#     F.scaled_dot_product_attention: the reference of the ratio;
#   - the same with torch.compile (its compilation falls in the warm-up steps);
#   - Debian's PyTorch 1.13 (python3-torch) with the explicit attention of tests/torch_llama.py;
#   - where retort trains in bf16 too: PyTorch 2 eager + SDPA under bf16 autocast, its mixed precision on
#     CPUs, the reference of retort bf16's ratio.
# Prints tokens/s, GFLOP/s against the fp32 GEMM peak retort measures at start, the ratios, peak resident
# memory, and the GEMM library and kernels each one ran; appends one JSON line to
# bench/results/cpu_train.jsonl. Nothing in the environment is set for any of them, except:
#
#   RT_BENCH_ISA=avx2: the run stands in for an AVX2 CPU on this one. retort is built for x86-64-v3 (AVX2 and
#   FMA, in build-avx2/) and every GEMM library is told to stop at AVX2: oneDNN by ONEDNN_MAX_CPU_ISA, MKL by
#   MKL_ENABLE_INSTRUCTIONS, PyTorch's own kernels by ATEN_CPU_CAPABILITY, OpenBLAS by OPENBLAS_CORETYPE. The
#   caches, clock and memory stay this machine's; the record's "isa" says "avx2".
#
#   bench/cpu_train.sh [STEPS] [THREADS]
# Model: dim 256, 4 layers, 8 heads, ffn 688, byte vocabulary (3.2M parameters), B=8, T=256.
# retort trains in fp32 and, where the CPU runs bf16 (oneDNN has bf16 kernels for it), again in bf16. The
# fp32 peers are compared with retort's fp32, PyTorch's bf16 autocast with retort's bf16, and retort's bf16
# with its own fp32.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-30}
threads=${2:-$(nproc)}
isa=${RT_BENCH_ISA:-native}
./scripts/bootstrap.sh test >/dev/null
case $isa in
native)
    ./scripts/build.sh >/dev/null
    retort=./build/retort
    ;;
avx2)
    RT_BUILD_DIR=$root/build-avx2 ./scripts/build.sh -DRT_NATIVE=OFF -DRT_CUDA=OFF \
        -DCMAKE_C_FLAGS=-march=x86-64-v3 >/dev/null
    retort=./build-avx2/retort
    export ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell
    ;;
*)
    echo "cpu_train: RT_BENCH_ISA is native or avx2, not '$isa'" >&2
    exit 2
    ;;
esac
torch2=$root/.venv-hf/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$retort data synth --task kv --n 20000 --out "$work/train.h5" >/dev/null
dims=(model.dim=256 model.n_layers=4 model.n_heads=8 model.n_kv_heads=8 model.ffn_dim=688 model.max_seq_len=256
      data.seq_len=256 train.batch_size=8 train.grad_accum=1)
# peak resident memory of a child process, in MiB, printed on the last line of stderr
maxrss=(/usr/bin/python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("peak_rss_mib %.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024), file=sys.stderr)
sys.exit(rc)')
retort_run() { # PRECISION: trains into $work/PRECISION/, its log in $work/retort-PRECISION.log
    "${maxrss[@]}" $retort train trainer/configs/tiny.yaml "${dims[@]}" "train.steps=$steps" \
        train.warmup_steps=2 train.eval_every=0 checkpoint.every=0 run.log_every=1 "system.threads=$threads" \
        "system.precision=$1" "data.train=$work/train.h5" data.val= "run.out_dir=$work/$1" >/dev/null \
        2>"$work/retort-$1.log"
}
retort_run fp32
if ! retort_run bf16; then
    echo "cpu_train: no bf16 run: $(grep -m1 error "$work/retort-bf16.log")" >&2
    rm -f "$work/retort-bf16.log"
fi

# the peers: NAME PYTHON ARGS...; each writes NAME.json (torch_train.py's record plus peak_rss_mib)
peer() {
    local name=$1 py=$2
    shift 2
    OMP_NUM_THREADS=$threads "${maxrss[@]}" "$py" bench/torch_train.py --steps "$steps" --threads "$threads" "$@" \
        >"$work/$name.out" 2>"$work/$name.log"
    /usr/bin/python3 - "$work/$name.out" "$work/$name.log" >"$work/$name.json" <<'PY'
import json, re, sys
rec = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
rec["peak_rss_mib"] = float(re.findall(r"peak_rss_mib ([0-9.]+)", open(sys.argv[2]).read())[-1])
print(json.dumps(rec))
PY
}
peer torch2_sdpa "$torch2" --attention sdpa
peer torch2_compile "$torch2" --attention sdpa --compile
peer torch_debian /usr/bin/python3 --attention explicit
if [[ -f "$work/retort-bf16.log" ]]; then
    peer torch2_sdpa_bf16 "$torch2" --attention sdpa --bf16
fi

command="bench/cpu_train.sh $*"
if [[ $isa != native ]]; then command="RT_BENCH_ISA=$isa $command"; fi
/usr/bin/python3 - "$work" "$threads" "$steps" "$command" "$isa" <<'PY'
import datetime, json, os, platform, re, subprocess, sys
work, threads, steps, command, isa = sys.argv[1:]
runs = {}
for precision in ("fp32", "bf16"):
    path = os.path.join(work, f"retort-{precision}.log")
    if not os.path.exists(path):
        continue
    log = open(path).read()
    # skip the first 3 steps (warm-up), average the rest
    recs = [json.loads(l) for l in open(os.path.join(work, precision, "metrics.jsonl")) if '"train"' in l][3:]
    runs[precision] = {
        "tokens_per_s": sum(r["tokens_per_s"] for r in recs) / len(recs),
        "gemm_peak": float(re.search(r"matmul peak ([0-9.]+) GFLOP/s", log).group(1)),
        "gemm": re.search(r"threads, ([^)]*)\) \|", log).group(1),
        "peak_rss_mib": float(re.findall(r"peak_rss_mib ([0-9.]+)", log)[-1]),
    }
log = open(os.path.join(work, "retort-fp32.log")).read()
mflop = float(re.search(r"([0-9.]+) MFLOP per training token", log).group(1))
params = int(re.search(r"model: ([0-9]+) parameters", log).group(1))
rt = runs["fp32"]["tokens_per_s"]
peak = runs["fp32"]["gemm_peak"]
peers = {n: json.load(open(os.path.join(work, n + ".json"))) for n in ("torch2_sdpa", "torch2_compile", "torch_debian")}
bf16_peer = json.load(open(os.path.join(work, "torch2_sdpa_bf16.json"))) if "bf16" in runs else None
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
fam = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("cpu family")), "?")
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model\t")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"{cpu} (family {fam} model {model}); model: {params} parameters, B=8, T=256, {threads} threads, {steps} steps"
      + ("" if isa == "native" else f"; every library held to {isa}"))
print(f"GEMM peak measured by retort at start: fp32 {peak:.1f} GFLOP/s"
      + (f", bf16 {runs['bf16']['gemm_peak']:.1f} GFLOP/s" if "bf16" in runs else ""))
def row(name, tps, mib, kernels):
    g = tps * mflop / 1e3
    print(f"{name:34s} {tps:9.0f} tok/s {g:7.1f} GFLOP/s {100 * g / peak:5.1f}% {mib:7.0f} MiB  {kernels}")
for precision, r in runs.items():
    row(f"retort ({precision})", r["tokens_per_s"], r["peak_rss_mib"], r["gemm"])
labels = {"torch2_sdpa": "PyTorch %s eager + SDPA", "torch2_compile": "PyTorch %s compile + SDPA",
          "torch_debian": "PyTorch %s (Debian), explicit attn"}
for n, p in peers.items():
    row(labels[n] % p["torch"].split("+")[0], p["tokens_per_s"], p["peak_rss_mib"], p["kernels"])
bf16_label = "PyTorch %s bf16 autocast eager + SDPA" % bf16_peer["torch"].split("+")[0] if bf16_peer else ""
if bf16_peer:
    row(bf16_label, bf16_peer["tokens_per_s"], bf16_peer["peak_rss_mib"], bf16_peer["kernels"])
for n, p in peers.items():
    print(f"ratio retort fp32 / {labels[n] % p['torch'].split('+')[0]}: {rt / p['tokens_per_s']:.2f}x")
if "bf16" in runs:
    print(f"ratio retort bf16 / {bf16_label}: {runs['bf16']['tokens_per_s'] / bf16_peer['tokens_per_s']:.2f}x")
    print(f"ratio retort bf16 / retort fp32: {runs['bf16']['tokens_per_s'] / rt:.2f}x")
rec = {"date": datetime.date.today().isoformat(), "commit": commit, "cpu": cpu, "cpu_family": fam, "cpu_model": model,
       "threads": int(threads), "params": params, "B": 8, "T": 256, "steps": int(steps),
       "retort_tokens_per_s": round(rt, 1), "retort_gemm": runs["fp32"]["gemm"],
       "retort_gflops": round(rt * mflop / 1e3, 2), "gemm_peak_gflops": peak,
       "retort_peak_rss_mib": runs["fp32"]["peak_rss_mib"], "command": command,
       "mflop_per_token": mflop, "isa": isa}
for n, p in peers.items():
    rec[n] = {"torch": p["torch"], "tokens_per_s": round(p["tokens_per_s"], 1), "kernels": p["kernels"],
              "peak_rss_mib": p["peak_rss_mib"], "ratio": round(rt / p["tokens_per_s"], 3)}
if "bf16" in runs:
    b = runs["bf16"]
    rec["retort_bf16"] = {"tokens_per_s": round(b["tokens_per_s"], 1), "gemm_peak_gflops": b["gemm_peak"],
                          "peak_rss_mib": b["peak_rss_mib"], "over_fp32": round(b["tokens_per_s"] / rt, 3)}
    rec["torch2_sdpa_bf16"] = {"torch": bf16_peer["torch"], "tokens_per_s": round(bf16_peer["tokens_per_s"], 1),
                               "kernels": bf16_peer["kernels"], "peak_rss_mib": bf16_peer["peak_rss_mib"],
                               "ratio": round(b["tokens_per_s"] / bf16_peer["tokens_per_s"], 3)}
os.makedirs(os.path.join("bench", "results"), exist_ok=True)
with open(os.path.join("bench", "results", "cpu_train.jsonl"), "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
