#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ (clang, ASan, UBSan) into build-fuzz/ and runs
# each for SECONDS (default 60) from its seed corpus fuzz/corpus/<harness>/, then the
# regression inputs fuzz/regressions/<harness>/ once. One summary line per harness
# (executions, coverage, crashes), a last line with the totals; non-zero on any crash.
# New corpus entries go to build-fuzz/corpus/<harness>/, crashes to build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
jobs=${FUZZ_BUILD_JOBS:-$(nproc)}
cmake -S fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" >/dev/null
cmake --build build-fuzz -j "$jobs" >/dev/null
export ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
total_runs=0 total_crashes=0
for bin in build-fuzz/fuzz_*; do
  name=${bin#build-fuzz/fuzz_}
  work=build-fuzz/corpus/$name crashes=build-fuzz/crashes/$name
  mkdir -p "$work" "$crashes"
  log=build-fuzz/$name.log
  crashed=0
  if [ -d "fuzz/regressions/$name" ] && [ -n "$(ls -A "fuzz/regressions/$name")" ]; then
    "$bin" -runs=0 fuzz/regressions/"$name"/* >"$log.regressions" 2>&1 || crashed=1
  fi
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$work" "fuzz/corpus/$name" >"$log" 2>&1 || crashed=1
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  found=$(ls "$crashes" | wc -l)
  [ "$crashed" = 1 ] && [ "$found" = 0 ] && found=1
  echo "fuzz_$name: ${runs:-0} executions, coverage ${cov:-0} edges, $found crashes"
  total_runs=$((total_runs + ${runs:-0})) total_crashes=$((total_crashes + found))
done
echo "fuzz total: $total_runs executions, $total_crashes crashes"
[ "$total_crashes" = 0 ]
