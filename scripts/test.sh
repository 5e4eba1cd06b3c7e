#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest. The last line gives the totals.
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
summary=$(grep -E "tests passed, [0-9]+ tests failed out of [0-9]+" "$log" | tail -1 || true)
rm -f "$log"
echo "test totals: ${summary:-no tests ran}"
exit "$status"
