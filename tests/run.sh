#!/usr/bin/env bash
# Runs the whole suite: the PyTorch exporters first (they write reference tensors into a fresh
# $BUILD/testdata), then every C test binary and every tests/integration/test_*.sh script.
# Each part ends with its own "N passed, N failed, N skipped" line (a C binary adds "(N need
# a GPU)"); this script adds them up. Under CI=true a skip that is not for want of a GPU fails.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export TLSWEEP_TESTDATA=${TLSWEEP_TESTDATA:-$PWD/$BUILD/testdata}
export PYTHON OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# fresh: a case an exporter no longer writes must not be compared with a stale file
[ "$(realpath -m "$TLSWEEP_TESTDATA")" != / ] || { echo "run.sh: TLSWEEP_TESTDATA is /"; exit 2; }
rm -rf "$TLSWEEP_TESTDATA"
mkdir -p "$TLSWEEP_TESTDATA"

passed=0 failed=0 skipped=0 no_gpu=0
tally() { # $1 = part name, $2 = exit status, $3 = its output file
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$3" | tail -n 1)
  if [ -z "$line" ]; then
    echo "FAIL $1: no tally line \"N passed, N failed, N skipped\" (exit $2)"
    failed=$((failed + 1))
    return
  fi
  local p f s g
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(sed -E 's/^[0-9]+ passed, [0-9]+ failed, ([0-9]+) skipped.*/\1/' <<<"$line")
  g=$(sed -nE 's/.* \(([0-9]+) need a GPU\)$/\1/p' <<<"$line")
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s)) no_gpu=$((no_gpu + ${g:-0}))
  if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $1: exit status $2 with no failed case"
    failed=$((failed + 1))
  fi
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

for exporter in tests/*/export_*.py; do
  [ -e "$exporter" ] || continue
  echo "== $exporter"
  if ! "$PYTHON" "$exporter" "$TLSWEEP_TESTDATA" >"$log" 2>&1; then
    cat "$log"
    echo "FAIL $exporter"
    failed=$((failed + 1))
  fi
done

# tests/gpu: built with CUDA=1; says "skipped" where there is no GPU
for bin in "$BUILD"/tests/unit/test_* "$BUILD"/tests/conformance/test_* "$BUILD"/tests/gpu/test_*; do
  [ -x "$bin" ] && [ "${bin%.d}" = "$bin" ] || continue
  echo "== $bin"
  "$bin" 2>&1 | tee "$log"
  tally "$bin" "${PIPESTATUS[0]}" "$log"
done

for script in tests/integration/test_*.sh; do
  [ -e "$script" ] || continue
  echo "== $script"
  bash "$script" 2>&1 | tee "$log"
  tally "$script" "${PIPESTATUS[0]}" "$log"
done

echo "$passed passed, $failed failed, $skipped skipped ($no_gpu need a GPU)"
if [ "${CI:-}" = true ] && [ "$skipped" -gt "$no_gpu" ]; then
  echo "FAIL: $((skipped - no_gpu)) skipped check(s) under CI, where only the GPU's may skip"
  failed=$((failed + 1))
fi
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
