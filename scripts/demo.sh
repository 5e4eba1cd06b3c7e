#!/usr/bin/env bash
# The whole distillation flow on the embedded default configs, about 8 minutes on an idle 2-core machine
# (13-14 on a busy one; README): install what is missing, build, make the datasets (data/make_datasets.sh:
# 3-digit additions at a fixed width, 305+098=0403), train a teacher (trainer/configs/tiny.yaml), let it
# answer problems with its top-k log-probs kept (retort synth), train a student with a seventh of its
# parameters on them (retort distill, trainer/configs/distill.yaml), and compare the two (retort eval); then
# teach the teacher a new format with LoRA (retort finetune, trainer/configs/lora.yaml), before and after;
# last, export the student to GGUF and ONNX and run a prompt through llama.cpp and onnxruntime-genai (retort
# export; the runtimes are installed from PyPI into .pydeps/ by scripts/bootstrap.sh runtimes).
#   RT_DEMO_RUN=dir   where the runs go (default runs/demo)
#   RT_DEMO_QUICK=1   a minute-long smoke run of the same flow (few steps and prompts: the numbers mean little)
#   extra arguments   overrides for the teacher's training, e.g. train.steps=500 for a quicker look
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/bootstrap.sh runtimes
./scripts/build.sh
retort=./build/retort
run=${RT_DEMO_RUN:-runs/demo}

RETORT=$retort ./data/make_datasets.sh

teacher_quick=() synth_quick=() student_quick=() lora_quick=() limit=500
if [[ "${RT_DEMO_QUICK:-0}" == 1 ]]; then
    teacher_quick=(train.steps=150 train.warmup_steps=10 train.eval_every=0)
    synth_quick=(synth.n_prompts=1000 synth.chunk=500)
    student_quick=(train.steps=60 train.warmup_steps=5)
    lora_quick=(train.steps=40 train.warmup_steps=5 train.eval_every=0)
    limit=100
fi

rm -rf "$run"
echo "== 1. the teacher: $(grep -c . trainer/configs/tiny.yaml) lines of trainer/configs/tiny.yaml"
# the loss on the answers only: the teacher learns the sums, not the random prompts; over 95% exact match on
# held-out problems on every seed tried (bench/results/demo_seeds.md)
$retort train trainer/configs/tiny.yaml data.loss_on=answer run.out_dir="$run/teacher" "${teacher_quick[@]}" "$@"

echo "== 2. the teacher answers 20000 problems, keeping its top-8 log-probs at every answer position"
rm -rf "$run/synth.h5" "$run/synth.h5.part"
$retort synth trainer/configs/distill.yaml synth.teacher="$run/teacher/ckpt-latest.h5" synth.out="$run/synth.h5" \
    "${synth_quick[@]}"

echo "== 3. the student (115K parameters) distills from the answers and the top-8 distributions"
$retort distill trainer/configs/distill.yaml data.train="$run/synth.h5" run.out_dir="$run/student" "${student_quick[@]}"

echo "== 4. teacher and student on $limit held-out problems"
$retort eval --compare "$run/teacher/ckpt-latest.h5" "$run/student/ckpt-latest.h5" --data data/addpad_val.h5 --limit "$limit"
for p in "012+034=" "305+098=" "007+007="; do
    $retort generate "$run/student/ckpt-latest.h5" --prompt "$p" --max-tokens 5 --temperature 0
done
echo "== 5. LoRA: the teacher learns the same sums asked as a question (\"what is 305+098? \")"
$retort finetune trainer/configs/lora.yaml base="$run/teacher/ckpt-latest.h5" run.out_dir="$run/lora" "${lora_quick[@]}"
echo "before (the base) and after (base + adapters, $(du -hL "$run/lora/ckpt-latest.h5" | cut -f1) of adapters):"
$retort eval "$run/teacher/ckpt-latest.h5" "$run/lora/ckpt-latest.h5" --data data/askpad_val.h5 --limit "$limit"
$retort generate "$run/lora/ckpt-latest.h5" --prompt "what is 305+098? " --max-tokens 5 --temperature 0
echo "== 6. the student exported: GGUF (q8_0) for llama.cpp, ONNX (int4) for onnxruntime-genai, a prompt through each"
$retort export "$run/student/ckpt-latest.h5" --format gguf --type q8_0 --out "$run/student-q8_0.gguf"
$retort export "$run/student/ckpt-latest.h5" --format onnx --precision int4 --out "$run/student-onnx"
PYTHONPATH="$root/.pydeps" /usr/bin/python3 - "$run/student-q8_0.gguf" "$run/student-onnx" <<'PY'
import sys
import onnxruntime_genai as og
from llama_cpp import Llama
prompt = "305+098="
llm = Llama(model_path=sys.argv[1], n_ctx=0, verbose=False, n_threads=2)  # n_ctx 0: the model's own
out = llm(prompt, max_tokens=5, temperature=0.0, top_k=1)
print("llama.cpp:        ", prompt + out["choices"][0]["text"])
model = og.Model(sys.argv[2])
tok = og.Tokenizer(model)
tok.update_options(add_special_tokens="true")  # BOS first, as retort starts every sequence
params = og.GeneratorParams(model)
params.set_search_options(max_length=24, do_sample=False)
gen = og.Generator(model, params)
gen.append_tokens(tok.encode(prompt))
while not gen.is_done():
    gen.generate_next_token()
print("onnxruntime-genai:", tok.decode(gen.get_sequence(0)))
PY
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
    /usr/bin/python3 scripts/plot_metrics "$run/student/metrics.jsonl" --out "$run/student/metrics.png" &&
        echo "curves: $run/student/metrics.png"
fi

# Part 2: a real pretrained model as teacher and base. No weights can be downloaded on the machines this runs on,
# so a small model made by transformers stands in for SmolLM-135M (scripts/demo_standin.py: LlamaForCausalLM with
# tied embeddings and a SmolLM-style byte-level BPE tokenizer, trained here on a few hundred facts). With
# RT_DEMO_HF=DIR and RT_DEMO_PROMPTS=FILE.jsonl the same steps run on your own Hugging Face folder and prompts.
echo "== 7. a real model's folder: import it, check its tokenizer"
./scripts/bootstrap.sh hf
hf=$run/hf
mkdir -p "$hf"
if [[ -n "${RT_DEMO_HF:-}" ]]; then
    src=$RT_DEMO_HF prompts=${RT_DEMO_PROMPTS:?RT_DEMO_PROMPTS: a JSONL file of {\"prompt\": ...} lines}
else
    .venv-hf/bin/python scripts/demo_standin.py "$hf/standin"
    src=$hf/standin/model prompts=$hf/standin/prompts.jsonl
fi
$retort import hf "$src" --out "$hf/teacher.h5" --max-seq-len 64
$retort tokenize "$hf/teacher.h5" --text "the capital of france is paris."
for p in "the capital of france is" "the duck says it" "7 plus 5 is"; do
    $retort generate "$hf/teacher.h5" --prompt "$p" --max-tokens 8 --temperature 0
done
echo "== 8. the imported model is the teacher: it answers the prompts; a student a third its size, with its tokenizer, distills"
hf_quick=() hf_lora_quick=()
if [[ "${RT_DEMO_QUICK:-0}" == 1 ]]; then hf_quick=(train.steps=100) hf_lora_quick=(train.steps=40); fi
rm -rf "$hf/synth.h5" "$hf/synth.h5.part"
$retort synth trainer/configs/hf_distill.yaml synth.teacher="$hf/teacher.h5" synth.prompts="$prompts" \
    synth.out="$hf/synth.h5"
$retort distill trainer/configs/hf_distill.yaml model.tokenizer="$hf/teacher.h5" data.train="$hf/synth.h5" \
    run.out_dir="$hf/student" "${hf_quick[@]}"
for p in "the capital of france is" "the duck says it" "7 plus 5 is"; do
    $retort generate "$hf/student/ckpt-latest.h5" --prompt "$p" --max-tokens 8 --temperature 0
done
echo "== 9. LoRA teaches the teacher a question format, from prompt/answer pairs in its own tokenizer"
if [[ -z "${RT_DEMO_HF:-}" ]]; then
    $retort data text --in "$hf/standin/quiz.jsonl" --format jsonl --tokenizer "$hf/teacher.h5" --out "$hf/quiz.h5"
    $retort finetune trainer/configs/hf_lora.yaml base="$hf/teacher.h5" data.train="$hf/quiz.h5" \
        run.out_dir="$hf/lora" "${hf_lora_quick[@]}"
    for p in "q: what is the capital of japan? a:" "q: what does the owl do? a:"; do
        $retort generate "$hf/lora/ckpt-latest.h5" --prompt "$p" --max-tokens 6 --temperature 0
    done
fi
echo "== 10. the student exported to GGUF (llama.cpp) and to a Hugging Face folder (transformers), greedy text from each"
$retort export "$hf/student/ckpt-latest.h5" --format gguf --type f32 --out "$hf/student.gguf"
rm -rf "$hf/student-hf"
$retort export "$hf/student/ckpt-latest.h5" --format hf --out "$hf/student-hf"
$retort generate "$hf/student/ckpt-latest.h5" --prompt "the capital of italy is" --max-tokens 8 --temperature 0
PYTHONPATH="$root/.pydeps" /usr/bin/python3 - "$hf/student.gguf" <<'PY'
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, verbose=False, n_threads=2)
out = llm("the capital of italy is", max_tokens=8, temperature=0.0, top_k=1)
print("llama.cpp:   ", "the capital of italy is" + out["choices"][0]["text"])
PY
.venv-hf/bin/python - "$hf/student-hf" <<'PY'
import sys
import transformers
transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
ids = tok("the capital of italy is", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=8, do_sample=False)
print("transformers:", tok.decode(out[0], skip_special_tokens=True))
PY
