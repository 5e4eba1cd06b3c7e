#!/usr/bin/env bash
# Coverage-guided fuzzing of every file reader with libFuzzer under ASan/UBSan (tests/fuzz/README.md).
#   scripts/fuzz.sh [SECONDS] [HARNESS...]  build build-fuzz/ with clang, then run each harness (default:
#                                           all) for SECONDS (default 600) with $RT_FUZZ_JOBS parallel
#                                           jobs (default: every core). New corpus entries go to
#                                           fuzz-out/<harness>/corpus (git-ignored), crashes to
#                                           fuzz-out/<harness>/crash-*, each reported with the command
#                                           that replays it.
#   scripts/fuzz.sh --ci                    what CI runs: build, then `ctest -L fuzz` (each harness for
#                                           RT_FUZZ_SECONDS, 30 by default, over its committed seeds;
#                                           one harness per core at a time: 13 harnesses, 3.5 minutes on 2 cores)
#   scripts/fuzz.sh --run-one SECONDS BINARY SEEDS WORKDIR
#                                           one bounded run (the ctest tests use it)
# Harnesses: config jsonl text_import gguf safetensors hf_config dataset checkpoint pretokenize
# tokenizer_json tokenizer_gguf gguf_import.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RT_FUZZ_BUILD_DIR:-$root/build-fuzz}

sanitizer_env() {
    # libFuzzer reports leaks itself; HDF5's own small leaks on rejected files are suppressed as in the
    # sanitizer tests (tests/lsan.supp)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
    export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    export OMP_NUM_THREADS=1
}

# The inputs are at most a few KB and every reader caps what it allocates by its input's size, so any
# allocation over 256 MB is a finding, as is one input taking over 25 s.
fuzz_flags=(-malloc_limit_mb=256 -rss_limit_mb=2048 -timeout=25 -print_final_stats=1)

build_fuzz() {
    "$root/scripts/bootstrap.sh" test
    if [[ ! -f "$build/CMakeCache.txt" ]]; then
        local gen=()
        if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
        CC=clang cmake -S "$root" -B "$build" "${gen[@]}" -DRT_FUZZ=ON -DRT_CUDA=OFF -DRT_NATIVE=OFF \
            -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang >/dev/null
    fi
    cmake --build "$build" -j "$(nproc)" --target rt_fuzz_all
}

run_one() { # SECONDS BINARY SEEDS WORKDIR
    local seconds=$1 bin=$2 seeds=$3 work=$4
    rm -rf "$work"
    mkdir -p "$work/corpus"
    sanitizer_env
    local status=0
    "$bin" "${fuzz_flags[@]}" -max_total_time="$seconds" -artifact_prefix="$work/" "$work/corpus" "$seeds" ||
        status=$?
    local found
    found=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | head -1)
    if [[ $status -ne 0 || -n "$found" ]]; then
        echo "fuzz: $(basename "$bin") failed; reproducer: ${found:-(none written)}" >&2
        [[ -n "$found" ]] && echo "fuzz: replay with: $bin $found" >&2
        return 1
    fi
}

if [[ "${1:-}" == "--run-one" ]]; then
    shift
    run_one "$@"
    exit $?
fi

if [[ "${1:-}" == "--ci" ]]; then
    build_fuzz
    log=$(mktemp)
    set +e
    (cd "$build" && ctest -L fuzz -j "$(nproc)" --output-on-failure) 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    passed=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$log" || true)
    failed=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(Failed|Timeout|Exception|Not Run)' "$log" || true)
    rm -f "$log"
    echo "fuzz totals: $passed passed, $failed failed"
    exit "$status"
fi

seconds=600
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
harnesses=("$@")
[[ ${#harnesses[@]} -gt 0 ]] ||
    harnesses=(config jsonl text_import gguf safetensors hf_config dataset checkpoint pretokenize tokenizer_json tokenizer_gguf gguf_import)
jobs=${RT_FUZZ_JOBS:-$(nproc)}
build_fuzz
sanitizer_env
failed=()
for h in "${harnesses[@]}"; do
    bin=$build/tests/fuzz/fuzz_$h
    if [[ ! -x "$bin" ]]; then
        echo "fuzz: no harness '$h' (expected $bin)" >&2
        exit 2
    fi
    out=$root/fuzz-out/$h
    mkdir -p "$out/corpus"
    touch "$out/.start"
    echo "fuzz: $h for ${seconds}s with $jobs jobs; corpus $out/corpus, logs $out/fuzz-*.log"
    # -jobs runs that many fuzzing processes one after another on -workers cores, each until the time is up
    # or it finds something; they share the corpus folder
    (cd "$out" && "$bin" "${fuzz_flags[@]}" -max_total_time="$seconds" -jobs="$jobs" -workers="$jobs" \
        -artifact_prefix="$out/" "$out/corpus" "$root/tests/fuzz/corpus/$h") || true
    mapfile -t found < <(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -newer "$out/.start")
    for f in "${found[@]}"; do
        echo "fuzz: $h found $f; replay with: $bin $f" >&2
        failed+=("$f")
    done
done
echo "fuzz totals: $((${#harnesses[@]})) harnesses run, ${#failed[@]} findings"
[[ ${#failed[@]} -eq 0 ]]
