#!/usr/bin/env bash
# run.sh: installs what is missing (Debian 12), builds stampd in the Release
# and the sanitizer (ASan+UBSan) configurations, and runs the whole test suite:
# unit, integration, interop and benchmark tests on the Release build,
# clang-tidy on our sources, unit and integration tests again on the
# sanitizer build.
#
#   tests/run.sh            everything
#   tests/run.sh -L unit    pass ctest options (only the Release build is run)
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh

# The same build script as the README's first command and the Dockerfile.
build() {  # build DIR TYPE
  bash deploy/build.sh "$1" "$2"
}

build build Release
if [ $# -gt 0 ]; then
  (cd build && ctest --output-on-failure -j 2 "$@")
  exit
fi
(cd build && ctest --output-on-failure -j 2 --timeout 900)

# Static analysis of our own code (the root .clang-tidy; warnings are errors).
tests/lint/clang_tidy.sh build

if [ "${STAMPD_SKIP_ASAN:-}" != "1" ]; then
  build build-asan Asan
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure -j 2 -L 'unit|integration' --timeout 900)
fi
echo "tests/run.sh: all tests passed"
