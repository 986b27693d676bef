#!/usr/bin/env bash
# Runs libFuzzer targets: first over their committed regression inputs (tests/fuzz/regressions/
# TARGET/, each a once-found crash that must stay fixed), then fuzzing SECONDS each from the
# generated seeds plus the corpus kept in $FUZZ_BUILD/corpus/TARGET. Fails on any crash, leak,
# timeout, out-of-memory or sanitizer report; prints each target's executions. FUZZ_SEED fixes
# libFuzzer's random seed (make fuzz-ci: 1), otherwise every run explores afresh.
#   tests/fuzz/run.sh SECONDS TARGET...
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=$1
shift
build=${FUZZ_BUILD:-build-fuzz}
# leaks are findings; UBSan stops at its first report (the objects are built not to recover)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# one thread in the code under test, as each loader thread decodes alone
export OMP_NUM_THREADS=1
mkdir -p "$build/artifacts" "$build/logs"

failed=0
summary=()
for target in "$@"; do
  bin=$build/$target
  log=$build/logs/$target.log
  regressions=tests/fuzz/regressions/$target
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    if ! "$bin" -rss_limit_mb=2048 -timeout=30 "$regressions"/* >"$log.regressions" 2>&1; then
      tail -n 40 "$log.regressions"
      echo "FAIL $target: a regression input fails again (log: $log.regressions)"
      failed=$((failed + 1))
      summary+=("$target: regression inputs FAIL")
      continue
    fi
  fi
  mkdir -p "$build/corpus/$target"
  echo "== $target: fuzzing ${seconds}s"
  flags=()
  if [ -f "tests/fuzz/$target.dict" ]; then flags=(-dict="tests/fuzz/$target.dict"); fi
  if [ -n "${FUZZ_SEED:-}" ]; then flags+=(-seed="$FUZZ_SEED"); fi
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 -max_len=65536 \
    "${flags[@]}" -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
    "$build/corpus/$target" "$build/seeds/$target" >"$log" 2>&1
  rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE '(INITED|DONE|pulse|REDUCE|NEW) +cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo '?')
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    tail -n 60 "$log"
    echo "FAIL $target: exit $rc after $execs executions (log: $log; input: $build/artifacts/$target-*)"
    failed=$((failed + 1))
    summary+=("$target: FAIL after $execs executions")
  else
    summary+=("$target: $execs executions, coverage $cov, no findings")
  fi
done
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
[ "$failed" -eq 0 ]
