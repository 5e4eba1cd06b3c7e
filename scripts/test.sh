#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest. The last line gives the totals:
#   totals: N passed, N failed, N skipped     (skipped tests are named on the line before it)
#   RT_SANITIZE=1 scripts/test.sh   the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   scripts/test.sh -R config       extra arguments go to ctest
#   Second stage: the GPU twin tests (ctest label emu) built again in build-emu/ with -DRT_CUDA_EMU=ON and
#   run on the CPU emulation of the CUDA backend (docs/cuda_emulation.md), each under two schedules of the
#   emulated threads; the totals count both stages.
#   It runs by default when no ctest arguments are given: RT_EMU=0 leaves it out, RT_EMU=1 forces it (with
#   the same ctest arguments). Not under RT_SANITIZE.
#   Third stage, with the second: the same suites under ThreadSanitizer (ctest label tsan) in build-emu-tsan/
#   with -DRT_CUDA_EMU_TSAN=ON, where barriers and warp collectives are the only order between a block's
#   emulated threads, so a missing barrier is a reported race under any schedule. RT_EMU_TSAN=0 leaves it
#   out. The totals count all three stages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/bootstrap.sh test
if [[ "${RT_SANITIZE:-0}" == 1 ]]; then
    export RT_BUILD_DIR=${RT_BUILD_DIR:-$root/build-asan}
    # the sanitizers check the C code; the CUDA runtime's own allocations would read as leaks, and its code
    # is covered by the GPU twin tests instead. Built for plain x86-64 (no -march=native), so the CPU ops run
    # here on csrc/cpu/simd.h's plain form, the main build's tests on the machine's own.
    ./scripts/build.sh -DRT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRT_CUDA=OFF -DRT_NATIVE=OFF
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
    export RT_BUILD_DIR=${RT_BUILD_DIR:-$root/build}
    ./scripts/build.sh
fi
log=$(mktemp)
set +e
(cd "$RT_BUILD_DIR" && ctest --output-on-failure --timeout 900 "$@") 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# Stages 2 and 3 (not under the sanitizers): the CUDA backend's kernels on the CPU emulator, in their own
# builds. emu_stage DIR LABEL LOG CMAKE-OPTION [ctest args]: builds the twin test programs and runs the label.
emu_stage() {
    local build=$1 label=$2 stage_log=$3 option=$4
    shift 4
    # only what the emu tests need: the library and the twin test programs (tests/cuda.cmake)
    local emu_targets gen=()
    mapfile -t emu_targets < <(sed -n 's/^ *rt_check_test(\(test_cuda_[a-z]*\) .*/\1/p' tests/cuda.cmake)
    if [[ $label == emu ]]; then emu_targets+=(retort); fi # train_resume_cuda runs the CLI
    if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
    if [[ ! -f "$build/CMakeCache.txt" ]]; then
        cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$option" >/dev/null
    fi
    cmake --build "$build" -j "$(nproc)" --target "${emu_targets[@]}" >/dev/null
    set +e
    # the suites (under each schedule, tests/cuda.cmake) are independent single-threaded programs
    (cd "$build" && ctest --output-on-failure --timeout 900 -j "$(nproc)" -L "$label" "$@") 2>&1 | tee "$stage_log"
    local stage_status=${PIPESTATUS[0]}
    set -e
    if [[ $stage_status != 0 ]]; then status=$stage_status; fi
}
emu_log=/dev/null
tsan_log=/dev/null
emu_default=1
if [[ $# -gt 0 ]]; then emu_default=0; fi
if [[ "${RT_EMU:-$emu_default}" == 1 && "${RT_SANITIZE:-0}" != 1 ]]; then
    emu_log=$(mktemp)
    emu_stage "${RT_EMU_BUILD_DIR:-$root/build-emu}" emu "$emu_log" -DRT_CUDA_EMU=ON "$@"
    if [[ "${RT_EMU_TSAN:-1}" == 1 ]]; then
        tsan_log=$(mktemp)
        emu_stage "${RT_EMU_TSAN_BUILD_DIR:-$root/build-emu-tsan}" tsan "$tsan_log" -DRT_CUDA_EMU_TSAN=ON "$@"
    fi
fi
# ctest counts a skipped test (exit 77, SKIP_RETURN_CODE) among the passed ones in its "N% tests passed" line,
# so a run whose GPU tests never ran would read as all passed: count the three apart, name what was skipped
# and why (the gpu-labelled tests skip only when no GPU answers), and end on a line CI reads.
count() { # field ($1: total or failed) of ctest's summary line in log $2
    local line
    line=$(grep -oE "[0-9]+ tests failed out of [0-9]+" "$2" | tail -1 || true)
    if [[ -z "$line" ]]; then echo 0; elif [[ $1 == total ]]; then echo "${line##* }"; else echo "${line%% *}"; fi
}
total=$(($(count total "$log") + $(count total "$emu_log") + $(count total "$tsan_log")))
failed=$(($(count failed "$log") + $(count failed "$emu_log") + $(count failed "$tsan_log")))
skipped_names=$(awk '/^The following tests did not run:/ {on = 1; next}
    on && /^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$/ {print $3; next}
    {on = 0}' "$log")
emu_ran=" $(awk '/Test +#[0-9]+: .* Passed/ {print $4}' "$emu_log" | tr '\n' ' ')"
rm -f "$log"
if [[ "$emu_log" != /dev/null ]]; then rm -f "$emu_log"; fi
if [[ "$tsan_log" != /dev/null ]]; then rm -f "$tsan_log"; fi
skipped=0
if [[ -n "$skipped_names" ]]; then
    gpu_tests=" $( (cd "$RT_BUILD_DIR" && ctest -N -L gpu) | awk '/Test +#[0-9]+:/ {print $3}' | tr '\n' ' ')"
    why=()
    for name in $skipped_names; do
        skipped=$((skipped + 1))
        if [[ "$emu_ran" == *" $name "* ]]; then
            why+=("$name (no GPU; its kernels ran on the emulator)")
        elif [[ "$gpu_tests" == *" $name "* ]]; then
            why+=("$name (no GPU)")
        else
            why+=("$name")
        fi
    done
    echo "skipped, never executed here: ${why[*]}"
fi
echo "totals: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
exit "$status"
