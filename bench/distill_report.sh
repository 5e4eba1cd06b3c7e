#!/usr/bin/env bash
# Does distillation beat training the same student on the same data without a teacher? Runs, on one machine:
#   teacher   trainer/configs/tiny.yaml (or TEACHER=ckpt to reuse one)
#   synth     the teacher answers N problems of the add task, top-8 log-probs kept
#   students  the same student (trainer/configs/distill.yaml) for the same steps, four ways:
#             baseline      the same problems with their true answers, CE only, no teacher
#             sequence      CE on the teacher's answers (distill.mode sequence)
#             offline_topk  (1 - alpha) CE + alpha KL against the stored top-8 (bucket tail)
#             online        (1 - alpha) CE + alpha KL against the teacher's full distribution, live
# then `retort eval --compare` on 1000 held-out problems, and writes the table and JSON to bench/results/.
#
#   bench/distill_report.sh [N_PROMPTS] [STUDENT_STEPS]       (defaults 20000 and 4000; TEACHER=... to reuse)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
n=${1:-20000}
steps=${2:-4000}
./scripts/bootstrap.sh runtimes >/dev/null # python3 for the report
./scripts/build.sh >/dev/null
retort=./build/retort
work=${RT_BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work" bench/results
cfg=trainer/configs/distill.yaml
seed=1337 # synth draws its problems with run.seed; the baseline uses the same problems

$retort data synth --task add --n 1000 --split val --seed 2 --out "$work/val.h5" >/dev/null
teacher=${TEACHER:-}
if [[ -z "$teacher" ]]; then
    $retort data synth --task add --n 40000 --split train --seed 1 --out "$work/train.h5" >/dev/null
    $retort train trainer/configs/tiny.yaml data.loss_on=answer "data.train=$work/train.h5" "data.val=$work/val.h5" \
        "run.out_dir=$work/teacher" >"$work/teacher.log" 2>&1
    teacher=$work/teacher/ckpt-latest.h5
fi
$retort synth $cfg "run.seed=$seed" "synth.teacher=$teacher" "synth.n_prompts=$n" "synth.out=$work/synth.h5" \
    >"$work/synth.log" 2>&1
$retort data synth --task add --n "$n" --split train --seed "$seed" --out "$work/truth.h5" >/dev/null

common=("train.steps=$steps" "data.val=")
$retort train $cfg "${common[@]}" "data.train=$work/truth.h5" "run.out_dir=$work/baseline" >"$work/baseline.log" 2>&1
$retort distill $cfg "${common[@]}" "data.train=$work/synth.h5" distill.mode=sequence \
    "run.out_dir=$work/sequence" >"$work/sequence.log" 2>&1
$retort distill $cfg "${common[@]}" "data.train=$work/synth.h5" distill.mode=offline_topk \
    "run.out_dir=$work/offline_topk" >"$work/offline_topk.log" 2>&1
$retort distill $cfg "${common[@]}" "data.train=$work/synth.h5" distill.mode=online "distill.teacher=$teacher" \
    "run.out_dir=$work/online" >"$work/online.log" 2>&1

ckpts=("$teacher" "$work/baseline/ckpt-latest.h5" "$work/sequence/ckpt-latest.h5" "$work/offline_topk/ckpt-latest.h5"
       "$work/online/ckpt-latest.h5")
$retort eval --compare "${ckpts[@]}" --data "$work/val.h5" | tee "$work/compare.txt"
$retort eval --compare "${ckpts[@]}" --data "$work/val.h5" --json >"$work/compare.json"

stamp=$(date -u +%F)
commit=$(git rev-parse --short HEAD)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
teacher_acc=$(grep -o "teacher exact match on these prompts: [0-9.]*%" "$work/synth.log" || true)
{
    echo "## $stamp, commit $commit, $(nproc) cores ($cpu)"
    echo
    echo "Command: \`bench/distill_report.sh $n $steps\`. Teacher: $teacher ($teacher_acc on the $n synth prompts)."
    echo "Students: trainer/configs/distill.yaml, $steps steps each; rows in the order teacher, baseline (true"
    echo "answers, no teacher), sequence, offline_topk, online. Held-out: 1000 val problems of the add task."
    echo
    echo '```'
    cat "$work/compare.txt"
    echo '```'
    echo
} >>bench/results/distill_cpu.md
/usr/bin/python3 - "$work/compare.json" "$stamp" "$commit" "$n" "$steps" <<'PY'
import json, sys
rec = json.load(open(sys.argv[1]))
rec.update({"date": sys.argv[2], "commit": sys.argv[3], "n_prompts": int(sys.argv[4]), "steps": int(sys.argv[5]),
            "students": ["baseline", "sequence", "offline_topk", "online"]})
with open("bench/results/distill_cpu.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
echo "appended to bench/results/distill_cpu.md and distill_cpu.jsonl (work files in $work)"
