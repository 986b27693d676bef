#!/usr/bin/env bash
# The image cache file (worker/data/cache_file.h) against private decoding, on synthetic
# Flowers102-like JPEGs (500 x 600, quality 90): a trial's start-up when it decodes into its
# own memory (before), builds the cache file (the first trial on a node) or maps it (every
# later trial), and BENCH_RANKS processes starting at once as one node's ranks, each way, with
# the node's resident memory. BENCH_CACHE_IMAGES=8189 measures Flowers102's size (about 2 GB
# of decoded pixels per copy, several minutes on 2 cores); the default, 1020, takes about a
# minute and scales linearly.
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
printf '    %-26s %12s %12s %11s %15s\n' "each maps the cache" "$(v ranks_map_seconds)" \
  "$(v ranks_map_anon_mib)" "$(v ranks_map_file_mib)" "$(v ranks_map_total_mib)"
echo "  (node total: the ranks' proportional set sizes summed; a page they share counts once)"
