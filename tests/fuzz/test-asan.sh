#!/usr/bin/env bash
# make test-asan's runner: the unit and conformance tests built with ASan + UBSan (in
# $ASAN_BUILD), then small mpirun sweeps (simulated and one real) with the sanitized binary.
# Any sanitizer report fails: UBSan does not recover, leaks make the process exit non-zero.
# Leaks inside third-party libraries are suppressed by tests/fuzz/lsan.supp (each says why).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${ASAN_BUILD:-build-asan}
tlsweep=$build/bin/tlsweep
export TLSWEEP_TESTDATA=${TLSWEEP_TESTDATA:-$PWD/build/testdata}
export PYTHON=${PYTHON:-/usr/bin/python3} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Under mpirun, leak stacks are unwound fully (slower): Open MPI has no frame pointers, and the
# suppressions need its frames to be seen.
mpirun=(env "ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0:malloc_context_size=40"
  mpirun --oversubscribe -x ASAN_OPTIONS -x LSAN_OPTIONS -x UBSAN_OPTIONS -x OMP_NUM_THREADS)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi

passed=0 failed=0
log=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$log" "$tmp"' EXIT
# a step passes when it exits 0 and printed no sanitizer report
step() {
  local name=$1
  shift
  echo "== $name"
  "$@" >"$log" 2>&1
  local rc=$?
  if [ "$rc" -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
    tail -n 1 "$log"
    passed=$((passed + 1))
  else
    tail -n 80 "$log"
    echo "FAIL $name (exit $rc)"
    failed=$((failed + 1))
  fi
}

# the reference tensors the tests compare against (make test has written them already in CI)
if [ ! -d "$TLSWEEP_TESTDATA" ] || [ -z "$(ls -A "$TLSWEEP_TESTDATA" 2>/dev/null)" ]; then
  mkdir -p "$TLSWEEP_TESTDATA"
  for exporter in tests/*/export_*.py; do
    step "$exporter" "$PYTHON" "$exporter" "$TLSWEEP_TESTDATA"
  done
fi

for bin in "$build"/tests/unit/test_* "$build"/tests/conformance/test_*; do
  [ -x "$bin" ] && [ "${bin%.d}" = "$bin" ] || continue
  step "$bin" "$bin"
done

step "synth-flowers" "$tlsweep" synth-flowers "$tmp/data" --classes 4 --per-class 6 --width 40 --height 36
sed -e "s|root: data/smoke|root: $tmp/data|" sweeps/smoke.yaml >"$tmp/smoke.yaml"
step "mpirun -np 2 run --simulate" timeout 300 "${mpirun[@]}" -np 2 "$tlsweep" run --simulate \
  --sim-seconds 0.05 -q -o "$tmp/sim.h5" "$tmp/smoke.yaml"
step "mpirun -np 2 run (real, tiny)" timeout 600 "${mpirun[@]}" -np 2 "$tlsweep" run -q \
  -o "$tmp/real.h5" "$tmp/smoke.yaml"
step "status" "$tlsweep" status "$tmp/real.h5"
step "train (one trial, no MPI)" "$tlsweep" train --backbone vgg11_bn --width 8 --data "$tmp/data" \
  --weights none --resize 40 --crop 32 --fe-epochs 1 --ft-epochs 1 --out "$tmp/train"
# a rejected sweep: exit 2 (bad input; not any failure), and nothing leaked on the way out
step "train --sweep (invalid sweep): exit 2" bash -c "'$tlsweep' train --sweep \
  tests/fuzz/regressions/fuzz_sweep/leak-rejected-sweep.yaml --trial x; test \$? -eq 2"

echo "$passed passed, $failed failed, 0 skipped (ASan + UBSan)"
[ "$failed" -eq 0 ]
