#!/usr/bin/env bash
# Configures and builds retort into build/ (or $RT_BUILD_DIR). Extra arguments go to cmake.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RT_BUILD_DIR:-$root/build}
gen=()
if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); fi
if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
