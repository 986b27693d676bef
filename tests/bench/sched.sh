#!/usr/bin/env bash
# make bench, orchestrator part: the scheduling simulation (1,000 trials over 256 simulated
# workers through the root's real message handling) and the share of a real CPU smoke sweep
# that rank 0 spends writing HDF5 (target < 1%).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
status=0
"$BUILD"/tests/bench/bench_sched || status=1
echo "bench_sched (exact estimates): $(BENCH_EXACT=1 "$BUILD"/tests/bench/bench_sched | grep -o 'efficiency [0-9.]*% longest-first')"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin/tlsweep synth-flowers "$tmp/data" --per-class 4 --width 64 --height 64 >/dev/null || exit 1
sed -e "s|root: data/smoke|root: $tmp/data|" sweeps/smoke.yaml >"$tmp/smoke.yaml"
line=$(TERM=dumb mpirun --allow-run-as-root --oversubscribe -np 3 bin/tlsweep run -o "$tmp/smoke.h5" \
  "$tmp/smoke.yaml" 2>&1 | grep '^tlsweep run: ')
echo "smoke sweep (real, CPU, 3 ranks): ${line#tlsweep run: }"
share=$(grep -oE '\(([0-9.]+)%\)' <<<"$line" | tr -d '()%')
if [ -n "$share" ] && awk "BEGIN {exit !($share < 1)}"; then
  echo "HDF5 share of the smoke sweep: $share% (target < 1%: met)"
else
  echo "HDF5 share of the smoke sweep: ${share:-?}% (target < 1%: NOT met)"
  status=1
fi
exit $status
