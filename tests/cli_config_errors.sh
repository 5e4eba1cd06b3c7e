#!/usr/bin/env bash
# `retort train` with bad configs and overrides: each must exit 2 (a usage/config error, before any training)
# with "retort train: error: ..." on stderr naming the file:line and the key.
set -u
if [[ -z "${RETORT_BIN:-}" || ! -x "$RETORT_BIN" ]]; then
    echo "FAIL: RETORT_BIN ('${RETORT_BIN:-}') is not an executable; run through ctest"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
checks=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# expect NEEDLE... -- ARGS...: `retort ARGS` exits 2 and its stderr holds every needle (fixed strings).
expect() {
    local needles=()
    while [[ $# -gt 0 && $1 != -- ]]; do needles+=("$1"); shift; done
    shift
    checks=$((checks + 1))
    (cd "$tmp" && "$RETORT_BIN" "$@") >"$tmp/out" 2>"$tmp/err"
    local code=$?
    if [[ $code -ne 2 ]]; then
        fail "retort $* exited $code, expected 2; stderr: $(head -c 2000 "$tmp/err")"
        return
    fi
    if ! grep -qF -- "retort train: error: " "$tmp/err"; then
        fail "retort $*: stderr lacks 'retort train: error: ': $(head -c 2000 "$tmp/err")"
    fi
    local n
    for n in "${needles[@]}"; do
        if ! grep -qF -- "$n" "$tmp/err"; then
            fail "retort $*: stderr lacks '$n': $(head -c 2000 "$tmp/err")"
        fi
    done
    if [[ -e "$tmp/r" ]]; then fail "retort $*: created the run directory despite the config error"; fi
}

# A valid base: the run directory is under $tmp, so a run that wrongly starts leaves evidence.
base="run:
  out_dir: $tmp/r
"
cfg() {  # cfg NAME TEXT: write $tmp/NAME.yaml
    printf '%s' "$2" >"$tmp/$1.yaml"
}

cfg unknown "${base}train:
  lr: 0.1
  lrr: 1
"
expect "unknown.yaml:5:" "train.lrr" "unknown key" "did you mean train.lr?" -- train "$tmp/unknown.yaml"

cfg section "${base}trian:
  lr: 0.1
"
expect "section.yaml:3:" "trian" "unknown section" -- train "$tmp/section.yaml"

cfg type "${base}model:
  dim: wide
"
expect "type.yaml:4:" "model.dim" "expected an integer" -- train "$tmp/type.yaml"

cfg float "${base}train:
  steps: 10
  lr: 1e-3x
"
expect "float.yaml:5:" "train.lr" "expected a number" -- train "$tmp/float.yaml"

cfg bool "${base}model:
  tie_embeddings: maybe
"
expect "bool.yaml:4:" "model.tie_embeddings" "expected true or false" -- train "$tmp/bool.yaml"

cfg enum "${base}system:
  device: tpu
"
expect "enum.yaml:4:" "system.device" "cpu|cuda|auto" -- train "$tmp/enum.yaml"

cfg range "${base}train:
  beta2: 7
"
expect "range.yaml:4:" "train.beta2" "out of range" -- train "$tmp/range.yaml"

cfg dup "${base}train:
  steps: 5
  lr: 0.1
  steps: 6
"
expect "dup.yaml:6:" "train.steps" "duplicate key" "line 4" -- train "$tmp/dup.yaml"

cfg list "${base}train:
  lr: [0.1, 0.2]
"
expect "list.yaml:4:" "train.lr" "a list" -- train "$tmp/list.yaml"

cfg syntax "${base}train:
  steps: 5
 lr: 0.1
"
expect "syntax.yaml:5:" "YAML syntax error" -- train "$tmp/syntax.yaml"

cfg ok "${base}train:
  steps: 5
"
expect "train.lr=abc" "expected a number" -- train "$tmp/ok.yaml" train.lr=abc
expect "train.learning_rate" "unknown key" -- train "$tmp/ok.yaml" train.learning_rate=1
expect "model.n_layers" "out of range" -- train "$tmp/ok.yaml" model.n_layers=0
# cross-key validation names the file and both keys
expect "ok.yaml" "model.n_kv_heads" "model.n_heads" -- train "$tmp/ok.yaml" model.n_kv_heads=3
expect "no-such.yaml" -- train "$tmp/no-such.yaml"
expect "system.peak_tflops" "out of range" -- train "$tmp/ok.yaml" system.peak_tflops=-5

# --help lists every key with its default and range
checks=$((checks + 1))
if ! "$RETORT_BIN" train --help >"$tmp/help" 2>&1; then fail "retort train --help exited non-zero"; fi
for row in "train.lr" "model.n_kv_heads" "checkpoint.keep" "system.threads" "system.peak_tflops" "cpu|cuda|auto" "[8, 65536]"; do
    grep -qF -- "$row" "$tmp/help" || fail "retort train --help does not list '$row'"
done

if [[ $fails -ne 0 ]]; then
    echo "FAILED: $fails problems in $checks checks"
    exit 1
fi
echo "config errors: $checks checks, all reported with exit 2 and file:line: key"
