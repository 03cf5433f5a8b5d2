#!/usr/bin/env bash
# run.sh: installs what is missing (Debian 12), builds stampd in the Release
# and the sanitizer (ASan+UBSan) configurations, and runs the whole test suite:
# unit, integration, interop and benchmark tests on the Release build,
# clang-tidy on our sources, the libFuzzer targets for a bounded time
# (STAMPD_SKIP_FUZZ=1 leaves them out), unit and integration tests again on
# the sanitizer build. Each phase prints how long it took; the end says how
# many tests ran and skipped per label. With CI=true (as .ci/run sets it) a test
# that skips for a missing tool or privilege fails.
#
#   tests/run.sh            everything
#   tests/run.sh -L unit    pass ctest options (only the Release build is run)
set -euo pipefail
cd "$(dirname "$0")/.."

phase_start=$SECONDS
phase_done() {  # phase_done NAME
  echo "tests/run.sh: $1 took $((SECONDS - phase_start)) s"
  phase_start=$SECONDS
}

# ctest_run DIR JUNIT [ctest options]: runs ctest in DIR, then says what ran.
ctest_run() {
  local dir=$1 junit=$2
  shift 2
  rm -rf "$dir/test-results"
  local status=0
  (cd "$dir" && ctest --output-on-failure -j 2 --timeout 900 --output-junit "$junit" "$@") || status=$?
  /usr/bin/python3 tests/summary.py "$dir" "$dir/$junit"
  return $status
}

# The same build script as the README's first command and the Dockerfile.
bash deploy/build.sh --with-tests build Release
phase_done "install and Release build"
if [ $# -gt 0 ]; then
  (cd build && ctest --output-on-failure -j 2 "$@")
  exit
fi
ctest_run build junit-release.xml
phase_done "Release tests"

# Static analysis of our own code (the root .clang-tidy; warnings are errors).
tests/lint/clang_tidy.sh build
phase_done "clang-tidy"

# The libFuzzer targets (clang build of their own), each for 25 s on its seed
# corpus in tests/fuzz/corpus, two at a time: a crash, an assertion, a leak
# or a slow input fails the run.
if [ "${STAMPD_SKIP_FUZZ:-}" != "1" ]; then
  tests/fuzz/run_fuzzers.sh --seconds 25 --parallel 2 build-fuzz
  phase_done "fuzzing"
fi

if [ "${STAMPD_SKIP_ASAN:-}" != "1" ]; then
  bash deploy/build.sh --with-tests build-asan Asan
  phase_done "sanitizer build"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  ctest_run build-asan junit-asan.xml -L 'unit|integration'
  phase_done "sanitizer tests"
fi
echo "tests/run.sh: all tests passed"
