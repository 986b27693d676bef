#!/usr/bin/env bash
# Runs the whole suite: the PyTorch exporters first (they write reference tensors under
# $BUILD/testdata), then every C test binary and every tests/integration/test_*.sh script.
# Each part ends with its own "N passed, N failed" line; this script adds them up.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export TLSWEEP_TESTDATA=${TLSWEEP_TESTDATA:-$PWD/$BUILD/testdata}
export PYTHON OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$TLSWEEP_TESTDATA"

passed=0 failed=0 skipped=0
tally() { # $1 = part name, $2 = exit status, $3 = its output file
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$3" | tail -n 1)
  if [ -z "$line" ]; then
    echo "FAIL $1: no tally line (exit $2)"
    failed=$((failed + 1))
    return
  fi
  local p f s
  p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
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

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
