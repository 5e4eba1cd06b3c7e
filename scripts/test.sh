#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest. The last line gives the totals:
#   totals: N passed, N failed, N skipped     (skipped tests are named on the line before it)
#   RT_SANITIZE=1 scripts/test.sh   the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
#   scripts/test.sh -R config       extra arguments go to ctest
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/bootstrap.sh test
if [[ "${RT_SANITIZE:-0}" == 1 ]]; then
    export RT_BUILD_DIR=${RT_BUILD_DIR:-$root/build-asan}
    # the sanitizers check the C code; the CUDA runtime's own allocations would read as leaks, and its code
    # is covered by the GPU twin tests instead
    ./scripts/build.sh -DRT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRT_CUDA=OFF
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
# ctest counts a skipped test (exit 77, SKIP_RETURN_CODE) among the passed ones in its "N% tests passed" line,
# so a run whose GPU tests never ran would read as all passed: count the three apart, name what was skipped
# and why (the gpu-labelled tests skip only when no GPU answers), and end on a line CI reads.
total=$(grep -oE "tests failed out of [0-9]+" "$log" | tail -1 | grep -oE "[0-9]+$" || true)
failed=$(grep -oE "[0-9]+ tests failed out of" "$log" | tail -1 | grep -oE "^[0-9]+" || true)
skipped_names=$(awk '/^The following tests did not run:/ {on = 1; next}
    on && /^[[:space:]]+[0-9]+ - .* \((Skipped|Disabled)\)$/ {print $3; next}
    {on = 0}' "$log")
rm -f "$log"
total=${total:-0}
failed=${failed:-0}
skipped=0
if [[ -n "$skipped_names" ]]; then
    gpu_tests=" $( (cd "$RT_BUILD_DIR" && ctest -N -L gpu) | awk '/Test +#[0-9]+:/ {print $3}' | tr '\n' ' ')"
    why=()
    for name in $skipped_names; do
        skipped=$((skipped + 1))
        if [[ "$gpu_tests" == *" $name "* ]]; then why+=("$name (no GPU)"); else why+=("$name"); fi
    done
    echo "skipped, never executed here: ${why[*]}"
fi
echo "totals: $((total - failed - skipped)) passed, $failed failed, $skipped skipped"
exit "$status"
