#!/usr/bin/env bash
# Data path: ours (C) against torchvision + PIL on the same synthetic Flowers102-like JPEGs
# (500 x 600, quality 90), images per second on one core each, and the ratio. Kinds:
#   decode_resize   JPEG decode + resize of the shorter side to 256 (both bit-exact with PIL)
#   train_uncached  decode + the seed's training transform (flip, ColorJitter, RandomAffine,
#                   crop 224, normalise): torchvision's cost every epoch
#   train_cached    the training transform from the decoded, resized image: our cost every
#                   epoch (the loader caches decoded images)
#   eval_cached     centre crop + normalise from the cached image
# About 40 s on a free core; BENCH_SECONDS=N sets the time per kind (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
SECONDS_PER_KIND=${BENCH_SECONDS:-2}
dir=$BUILD/bench/flowers-500x600
export OMP_NUM_THREADS=1

make -s "$BUILD/tests/bench/bench_data" >/dev/null
ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
"$BUILD/tests/bench/bench_data" "$dir" "$SECONDS_PER_KIND" "${BENCH_THREADS:-2}" >"$ours"
"$PYTHON" tests/bench/bench_data.py "$dir" "$SECONDS_PER_KIND" >"$theirs"

echo "data path, images/s on one core ($(awk '$2 == "images" {print $3}' "$ours") JPEGs of 500x600 in $dir)"
printf '  %-16s %12s %12s %8s\n' kind tlsweep torchvision ratio
for kind in decode_resize train_uncached train_cached eval_cached; do
  a=$(awk -v k="$kind" '$2 == k {print $3}' "$ours")
  b=$(awk -v k="$kind" '$2 == k {print $3}' "$theirs")
  printf '  %-16s %12s %12s %7.1fx\n' "$kind" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print a / b}')"
done
a=$(awk '$2 == "train_cached" {print $3}' "$ours")
b=$(awk '$2 == "train_uncached" {print $3}' "$theirs")
printf '  %-16s %12s %12s %7.1fx\n' "per-epoch train" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print a / b}')"
echo "  (per-epoch train: our cached transform against torchvision's decode + transform)"
t=$(awk '$2 == "loader_threads" {print $3}' "$ours")
echo "loader with $t threads, batch 16, 256/224, seed augmentation (wall time):"
echo "  cache build $(awk '$2 == "loader_cache_build" {print $3}' "$ours") images/s," \
  "epochs $(awk '$2 == "loader_epochs" {print $3}' "$ours") images/s," \
  "cache $(awk '$2 == "loader_cache_mib" {print $3}' "$ours") MiB"
