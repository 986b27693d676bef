#!/usr/bin/env bash
# The image cache file (worker/data/cache_file.h) against private decoding, on synthetic
# Flowers102-like JPEGs (500 x 600, quality 90): BENCH_RANKS processes starting a trial at once
# as one node's ranks (each decoding privately, one building the cache while the others wait,
# all mapping it) with the node's resident memory; one trial's start-up each way; then the
# smoke sweep's wall time each way. BENCH_CACHE_IMAGES=8189 measures Flowers102's size (about
# 2 GB of decoded pixels per copy, 5 minutes on 2 cores); the default, 1020, takes about 40 s
# and scales linearly.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
IMAGES=${BENCH_CACHE_IMAGES:-1020}
RANKS=${BENCH_RANKS:-4}
THREADS=${BENCH_THREADS:-2}
dir=$BUILD/bench/flowers-500x600-$IMAGES
cache=$BUILD/bench/image-cache
export OMP_NUM_THREADS=1

make -s "$BUILD/tests/bench/bench_cache" >/dev/null
ours=$(mktemp)
trap 'rm -f "$ours"' EXIT
"$BUILD/tests/bench/bench_cache" "$dir" "$cache" "$IMAGES" "$RANKS" "$THREADS" >"$ours"
v() { awk -v k="$1" '$2 == k {print $3}' "$ours"; }

echo "image cache: $(v images) JPEGs of 500x600, $(v threads) threads per process"
echo "  one trial's start-up (wall s)   private decode $(v start_private_seconds)," \
  "cache build $(v start_build_seconds), cache map $(v start_map_seconds)"
echo "  its private memory (MiB)        private decode $(v start_private_anon_mib)," \
  "cache map $(v start_map_anon_mib)"
echo "  $(v ranks) ranks at once            start-up (s)  private MiB  mapped MiB  node total MiB"
printf '    %-26s %12s %12s %11s %15s\n' "each decodes privately" "$(v ranks_private_seconds)" \
  "$(v ranks_private_anon_mib)" "$(v ranks_private_file_mib)" "$(v ranks_private_total_mib)"
printf '    %-26s %12s %12s %11s %15s\n' "one builds, others wait" "$(v ranks_build_seconds)" \
  "$(v ranks_build_anon_mib)" "$(v ranks_build_file_mib)" "$(v ranks_build_total_mib)"
printf '    %-26s %12s %12s %11s %15s\n' "each maps the cache" "$(v ranks_map_seconds)" \
  "$(v ranks_map_anon_mib)" "$(v ranks_map_file_mib)" "$(v ranks_map_total_mib)"
echo "  (node total: the ranks' proportional set sizes summed; a page they share counts once)"

# the smoke sweep (3 ranks, tiny images: decoding is a small part of it) both ways, wall time
make -s bin/tlsweep >/dev/null
smoke=$BUILD/bench/smoke
[ -f "$smoke/data/setid.mat" ] ||
  bin/tlsweep synth-flowers "$smoke/data" --per-class 4 --width 64 --height 64 >/dev/null
mpirun=(mpirun --oversubscribe -np 3)
if [ "$(id -u)" -eq 0 ]; then mpirun+=(--allow-run-as-root); fi
smoke_run() { # $1 = data.cache_dir, $2 = name: prints the wall seconds
  sed -e "s|root: data/smoke|root: $smoke/data, cache_dir: $1|" sweeps/smoke.yaml >"$smoke/$2.yaml"
  rm -f "$smoke/$2.h5" && rm -rf "$smoke/$2.h5.d"
  local t0=$(date +%s.%N)
  "${mpirun[@]}" bin/tlsweep run --threads 1 -q -o "$smoke/$2.h5" "$smoke/$2.yaml" >/dev/null 2>&1 ||
    { echo "failed"; return; }
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'
}
rm -rf "$smoke/cache"
echo "smoke sweep (3 ranks, 4 trials) wall s: private decode $(smoke_run none private)," \
  "cache build $(smoke_run "$smoke/cache" build), cache map $(smoke_run "$smoke/cache" map)"
