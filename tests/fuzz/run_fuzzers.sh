#!/usr/bin/env bash
# run_fuzzers.sh: builds the libFuzzer targets (clang, build type Fuzz) and
# runs each one for a bounded time on its seed corpus in
# tests/fuzz/corpus/TARGET. A crash, an assertion of the target, a leak, an
# input slower than 10 s or more than 2 GiB of memory fails the run, with
# the input left in the run's directory and named in the output. The
# corpus in the tree is read only; with --merge the inputs the run found
# that add coverage are merged into it (what a longer offline run keeps).
#
#   tests/fuzz/run_fuzzers.sh [--seconds N | --runs N] [--parallel P] [--merge] [BUILD_DIR [TARGET...]]
#
# Defaults: 25 s per target, 2 targets at a time, BUILD_DIR build-fuzz,
# every target. --runs N runs each target for N executions instead (the
# offline run: --runs 10000000). The table at the end gives each target's
# executions, rate and seconds.
#
# Inputs are at most 16 KiB: enough for every buffer and chunk boundary of
# the parsers (the body canonicalizer's buffer is 8 KiB), and a long-body
# seed then no longer drags every mutation to 128 KiB (header_canon ran at
# 800/s with 64 KiB inputs, 4,800/s with 16 KiB, with more coverage).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=25
runs=0
parallel=2
merge=0
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --merge) merge=1; shift ;;
    *) break ;;
  esac
done
dir=${1:-build-fuzz}
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(data_decoder smtp_command proxy_protocol spf_record dkim_message config dkim_signature
           header_canon dmarc_record)
fi

if ! command -v clang++ >/dev/null; then
  echo "run_fuzzers.sh: clang++ not found (deploy/install-deps.sh installs clang)" >&2
  exit 1
fi
log="$dir/configure.log"
mkdir -p "$dir"
if ! CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Fuzz -DSTAMPD_BUILD_FUZZERS=ON \
     -DSTAMPD_BUILD_TESTS=OFF >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
build_args=()
for t in "${targets[@]}"; do build_args+=(--target "fuzz_$t"); done
cmake --build "$dir" -j "${STAMPD_BUILD_JOBS:-$(nproc)}" "${build_args[@]}"

work="$dir/fuzz-runs"
rm -rf "$work"
mkdir -p "$work"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# run_one TARGET: fuzzes a copy of the seed corpus (new inputs go there).
run_one() {
  local t=$1 out="$work/$1"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$out/corpus/"
  local status=0 limit=(-max_total_time="$seconds") started=$SECONDS
  if [ "$runs" != 0 ]; then limit=(-runs="$runs"); fi
  "$dir/tests/fuzz/fuzz_$t" "${limit[@]}" -timeout=30 -rss_limit_mb=2048 \
    -max_len=16384 -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$out/corpus" \
    >"$out/log" 2>&1 || status=$?
  echo "$status" >"$out/status"
  echo $((SECONDS - started)) >"$out/seconds"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$parallel" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-16s %12s %10s %8s %8s  %s\n' target executions exec/s seconds corpus result
for t in "${targets[@]}"; do
  out="$work/$t"
  status=$(cat "$out/status")
  done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log" | tail -1)
  units=$(find "$out/corpus" -type f | wc -l)
  result=ok
  if [ "$status" != 0 ]; then
    result="FAILED (exit $status): $(ls "$out/artifacts" | head -3 | tr '\n' ' ')"
    failed=1
    echo "--- fuzz_$t ---" >&2
    grep -E -m 20 'terminate called|what\(\)|ERROR|SUMMARY|==[0-9]+==|Test unit written|#[0-9]+ in ' "$out/log" >&2 || tail -n 30 "$out/log" >&2
  fi
  printf '%-16s %12s %10s %8s %8s  %s\n' "$t" "${done_runs:-?}" "${rate:-?}" "$(cat "$out/seconds")" \
    "$units" "$result"
  if [ $merge = 1 ] && [ "$status" = 0 ]; then
    # Keep only what adds coverage to the tree's corpus.
    "$dir/tests/fuzz/fuzz_$t" -merge=1 -max_len=16384 "tests/fuzz/corpus/$t" "$out/corpus" \
      >"$out/merge.log" 2>&1
  fi
done
if [ $failed != 0 ]; then
  echo "run_fuzzers.sh: a fuzz target failed; its input is under $work/TARGET/artifacts" >&2
  exit 1
fi
if [ "$runs" != 0 ]; then
  echo "run_fuzzers.sh: every target ran $runs executions without a crash, leak or timeout"
else
  echo "run_fuzzers.sh: every target ran ${seconds} s without a crash, leak or timeout"
fi
