#!/usr/bin/env bash
# build.sh: the one way stampd is built. The README's first command, CI
# (tests/run.sh) and the Dockerfile's builder stage all call it, so the
# container image is built exactly as the tested binary is.
#
#   deploy/build.sh [DIR [TYPE [TARGET...]]]
#
# DIR defaults to "build", TYPE to "Release" (also Debug, Asan); with no
# TARGET everything is built (stampd, unit tests, benchmarks). Installs the
# missing Debian 12 build packages first (deploy/install-deps.sh --build-only).
# STAMPD_BUILD_JOBS sets the parallel jobs (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:-build}
type=${2:-Release}
shift $(( $# < 2 ? $# : 2 ))

bash deploy/install-deps.sh --build-only
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$dir" -j "${STAMPD_BUILD_JOBS:-$(nproc)}" "${targets[@]}"
