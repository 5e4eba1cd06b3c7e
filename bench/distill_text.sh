#!/usr/bin/env bash
# Does distillation beat training the same student on the same data without a teacher, where the teacher's
# distribution says more than its top token? A byte-level language model on English prose (this machine's
# package documentation, data/doc_corpus.py: about 3 MB to train on, 0.2 MB of other documents held out):
#   teacher   trainer/configs/tiny.yaml (821K parameters), 3000 steps (or TEACHER=ckpt to reuse one)
#   students  trainer/configs/distill.yaml's student (115K parameters, 14% of the teacher), 2000 steps on
#             the same text in the same order, for each seed:
#             baseline  CE on the text, no teacher (retort train)
#             online    (1 - alpha) CE + alpha KL(teacher || student) against the teacher's full
#                       distribution at every position, computed live (retort distill, mode online)
# then held-out loss and perplexity of each, and `retort eval --compare` (KL to the teacher, top-1
# agreement) for the first seed; appends the table to bench/results/distill_text.md and its record to
# distill_text.jsonl.
#
#   bench/distill_text.sh [STUDENT_STEPS] [SEEDS...]     (defaults 2000 and 7 8 9; TEACHER=... to reuse)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-2000}
shift || true
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(7 8 9)
./scripts/bootstrap.sh runtimes >/dev/null # python3 for the corpus and the table
./scripts/build.sh >/dev/null
retort=./build/retort
work=${RT_BENCH_WORK:-$(mktemp -d)}
mkdir -p "$work" bench/results
cfg=trainer/configs/distill.yaml

/usr/bin/python3 data/doc_corpus.py "$work/text" | tee "$work/corpus.txt"
$retort data text --in "$work/text/train.jsonl" --format jsonl --out "$work/train.h5" >/dev/null
$retort data text --in "$work/text/val.jsonl" --format jsonl --out "$work/val.h5" >/dev/null
teacher=${TEACHER:-}
if [[ -z "$teacher" ]]; then
    $retort train trainer/configs/tiny.yaml data.loss_on=all "data.train=$work/train.h5" "data.val=$work/val.h5" \
        train.steps=3000 train.eval_every=1000 "run.out_dir=$work/teacher" >"$work/teacher.log" 2>&1
    teacher=$work/teacher/ckpt-latest.h5
fi

val_of() { # CKPT: held-out loss and perplexity
    $retort eval "$1" --data "$work/val.h5" --json | /usr/bin/python3 -c \
        'import json, sys; r = json.load(sys.stdin)["rows"][0]; print(r["loss"], r["ppl"])'
}
rows=()
for seed in "${seeds[@]}"; do
    common=("run.seed=$seed" "train.steps=$steps" data.loss_on=all "data.train=$work/train.h5" "data.val="
            checkpoint.every=1000000)
    $retort train $cfg "${common[@]}" "run.out_dir=$work/baseline.s$seed" >"$work/baseline.s$seed.log" 2>&1
    $retort distill $cfg "${common[@]}" distill.mode=online "distill.teacher=$teacher" \
        "run.out_dir=$work/online.s$seed" >"$work/online.s$seed.log" 2>&1
    rows+=("$seed $(val_of "$work/baseline.s$seed/ckpt-latest.h5") $(val_of "$work/online.s$seed/ckpt-latest.h5")")
done
compare=$($retort eval --compare "$teacher" "$work/baseline.s${seeds[0]}/ckpt-latest.h5" \
    "$work/online.s${seeds[0]}/ckpt-latest.h5" --data "$work/val.h5")

printf '%s\n' "${rows[@]}" | /usr/bin/python3 bench/distill_text_table.py "$steps" "$teacher" \
    "$(cat "$work/corpus.txt")" "$compare"
echo "work files: $work"
