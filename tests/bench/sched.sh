#!/usr/bin/env bash
# make bench, orchestrator part: the scheduling simulation (1,000 trials over 256 simulated
# workers through the root's real message handling; the seed sweep with and without a shared
# phase 1 on 2, 4 and 7 ranks), the share of a real CPU smoke sweep that rank 0 spends writing
# HDF5 (target < 1%), and that smoke sweep's wall time with and without a shared phase 1.
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

# shared phase 1, real trials: the smoke sweep with 4 + 2 epochs both ways, 3 ranks
sed -e "s/feature_extraction: {epochs: 2/feature_extraction: {epochs: 4/" \
  -e "s/fine_tuning: {epochs: 1/fine_tuning: {epochs: 2/" "$tmp/smoke.yaml" >"$tmp/shared.yaml"
{ cat "$tmp/shared.yaml"; echo "share_phase1: false"; } >"$tmp/whole.yaml"
for how in shared whole; do
  line=$(TERM=dumb mpirun --allow-run-as-root --oversubscribe -np 3 bin/tlsweep run -q \
    -o "$tmp/$how.h5" "$tmp/$how.yaml" 2>/dev/null | grep '^tlsweep run: ')
  seconds=$(grep -oE 'trials in [0-9.]+ s' <<<"$line" | grep -oE '[0-9.]+ s')
  echo "smoke sweep 4+2 epochs (real, CPU, 3 ranks), $how phase 1: ${seconds:-?}"
  [ -n "$seconds" ] || status=1
done
exit $status
