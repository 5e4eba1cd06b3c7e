#!/usr/bin/env bash
# The demo's main job (scripts/demo.sh steps 1-4) on several seeds, with the embedded configs unchanged but
# for run.seed (and the demo's data.loss_on=answer): train the teacher (trainer/configs/tiny.yaml), let it
# answer the synth prompts, distill the student (trainer/configs/distill.yaml), and score both on 500
# held-out addpad problems (retort eval --compare). One JSON line per seed is appended to
# bench/results/demo_seeds.jsonl: the teacher's and the student's exact match, steps, wall time and training
# tokens/s, with the machine's core count and load.
#
#   bench/demo_seeds.sh SEED [SEED ...]
#   RT_BENCH_WORK=dir   where the runs go (default a new temporary folder)
#   RT_THREADS=n        CPU threads per run (default 0 = all cores; 1 to run two copies side by side)
#   RT_STAGES=both      teacher only: RT_STAGES=teacher
#   RT_BENCH_OUT=file   the JSONL record (default bench/results/demo_seeds.jsonl)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ $# -ge 1 ]] || { sed -n 2,13p "$0"; exit 2; }
./scripts/build.sh >/dev/null
retort=./build/retort
./data/make_datasets.sh >/dev/null
work=${RT_BENCH_WORK:-$(mktemp -d)}
threads=${RT_THREADS:-0}
stages=${RT_STAGES:-both}
out=${RT_BENCH_OUT:-bench/results/demo_seeds.jsonl}
mkdir -p "$work" "$(dirname "$out")"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git status --porcelain -- csrc trainer 2>/dev/null)" ]] || commit="$commit+dirty"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$([[ $threads == 0 ]] && nproc || echo "$threads")}

now() { date +%s.%N; }
for seed in "$@"; do
    d=$work/seed$seed
    rm -rf "$d"
    mkdir -p "$d"
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(now)
    $retort train trainer/configs/tiny.yaml data.loss_on=answer "run.seed=$seed" "run.out_dir=$d/teacher" "system.threads=$threads" \
        >"$d/teacher.log" 2>&1
    t1=$(now)
    models=("$d/teacher/ckpt-latest.h5")
    if [[ $stages == both ]]; then
        $retort synth trainer/configs/distill.yaml "synth.teacher=$d/teacher/ckpt-latest.h5" "synth.out=$d/synth.h5" \
            "system.threads=$threads" >"$d/synth.log" 2>&1
        t2=$(now)
        $retort distill trainer/configs/distill.yaml "run.seed=$seed" "data.train=$d/synth.h5" \
            "run.out_dir=$d/student" "system.threads=$threads" >"$d/student.log" 2>&1
        t3=$(now)
        models+=("$d/student/ckpt-latest.h5")
    else
        t2=$t1 t3=$t1
    fi
    $retort eval --compare "${models[@]}" --data data/addpad_val.h5 --limit 500 --threads "$threads" --json \
        >"$d/eval.json" 2>"$d/eval.log"
    t4=$(now)
    /usr/bin/python3 - "$d" "$seed" "$stages" "$threads" "$load" "$commit" "$t0" "$t1" "$t2" "$t3" "$t4" >>"$out" <<'PY'
import json, os, re, sys
d, seed, stages, threads, load, commit = sys.argv[1:7]
t0, t1, t2, t3, t4 = map(float, sys.argv[7:12])
ev = json.load(open(os.path.join(d, "eval.json")))

def run(log):
    m = re.search(r"done: (\d+) steps, (\d+) tokens, ([\d.]+) s", open(os.path.join(d, log)).read())
    steps, tokens, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    return steps, round(tokens / secs)

rec = {"seed": int(seed), "commit": commit, "cores": os.cpu_count(), "threads": int(threads),
       "load_at_start": float(load), "eval_problems": ev["rows"][0]["total"]}
steps, tps = run("teacher.log")
rec["teacher"] = {"exact_match": ev["rows"][0]["accuracy"], "steps": steps, "tokens_per_s": tps,
                  "train_wall_s": round(t1 - t0, 1), "params": ev["rows"][0]["params"]}
if stages == "both":
    steps, tps = run("student.log")
    rec["student"] = {"exact_match": ev["rows"][1]["accuracy"], "steps": steps, "tokens_per_s": tps,
                      "synth_wall_s": round(t2 - t1, 1), "train_wall_s": round(t3 - t2, 1),
                      "params": ev["rows"][1]["params"], "accuracy_retained": ev["compare"][0]["accuracy_retained"]}
rec["total_wall_s"] = round(t4 - t0, 1)
print(json.dumps(rec))
PY
    tail -n 1 "$out"
done
