#!/usr/bin/env bash
# build.sh: the one way stampd is built. The README's first command, CI
# (tests/run.sh) and the Dockerfile's builder stage all call it, so the
# container image is built exactly as the tested binary is.
#
#   deploy/build.sh [--with-tests] [DIR [TYPE [TARGET...]]]
#
# DIR defaults to "build", TYPE to "Release" (also Debug, Asan). Without
# --with-tests it installs only the packages the daemon needs and builds the
# `stampd` target (about 2 minutes on 2 cores); with it, it installs the test
# packages too and builds everything: unit tests and benchmarks as well, or
# the TARGETs given. STAMPD_BUILD_JOBS sets the parallel jobs (default: all
# cores). Our libraries are compiled as a unity build (CMakeLists.txt says
# which); STAMPD_UNITY_BUILD=OFF compiles them file by file, which rebuilds
# less after an edit. cmake's configure output is shown only when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=OFF
if [ "${1:-}" = "--with-tests" ]; then with_tests=ON; shift; fi
dir=${1:-build}
type=${2:-Release}
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")

if [ $with_tests = ON ]; then
  bash deploy/install-deps.sh
else
  bash deploy/install-deps.sh --build-only
  [ ${#targets[@]} -gt 0 ] || targets=(stampd)
fi

mkdir -p "$dir"
log="$dir/configure.log"
if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" \
     -DSTAMPD_BUILD_TESTS="$with_tests" -DCMAKE_UNITY_BUILD="${STAMPD_UNITY_BUILD:-ON}" >"$log" 2>&1; then
  cat "$log" >&2
  # Name the package for what CMake or pkg-config could not find.
  declare -A package_of=(
    [hogweed]=nettle-dev [nettle]=nettle-dev [libevent]=libevent-dev
    [libunbound]=libunbound-dev [Boost]=libboost1.81-dev [OpenSSL]=libssl-dev
    [tomlplusplus]=libtomlplusplus-dev [prometheus-cpp]=prometheus-cpp-dev [CLI11]=libcli11-dev
    [GTest]=libgtest-dev [benchmark]=libbenchmark-dev [yaml-cpp]=libyaml-cpp-dev
  )
  missing=$(sed -n -e "s/.*Package '\([^']*\)'.*not found.*/\1/p" \
                   -e 's/.*provided by "\([^"]*\)".*/\1/p' \
                   -e 's/.*Could NOT find \([A-Za-z0-9_+-]*\).*/\1/p' "$log" | sort -u)
  for m in $missing; do
    echo "build.sh: cmake did not find $m: install the Debian package ${package_of[$m]:-that provides it (apt-file search $m)}" \
         "and add it to deploy/install-deps.sh" >&2
  done
  echo "build.sh: configuring $dir failed (log above, also in $log)" >&2
  exit 1
fi
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
cmake --build "$dir" -j "${STAMPD_BUILD_JOBS:-$(nproc)}" "${target_args[@]}"
