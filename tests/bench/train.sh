#!/usr/bin/env bash
# Training step, ours against PyTorch CPU on the same shapes and thread count, side by side:
# a full step (forward + backward + Adam) and a feature-extraction step (frozen backbone).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-3}
bench=$BUILD/tests/bench/bench_train

echo "training step on $THREADS threads, $STEPS timed steps after one warm-up (images/s)"
printf '%-10s %5s %5s %-7s %10s %10s %8s\n' backbone size batch mode ours torch ratio
declare -A full
for shape in "resnet18 112 16" "resnet50 224 8"; do
  set -- $shape
  for mode in full frozen; do
    ours=$(OMP_NUM_THREADS=$THREADS $bench "$1" "$2" "$3" "$STEPS" "$THREADS" $mode)
    torch=$(OMP_NUM_THREADS=$THREADS "$PYTHON" tests/bench/bench_train_torch.py "$1" "$2" "$3" "$STEPS" "$THREADS" $mode)
    o=$(awk '{print $6}' <<<"$ours") t=$(awk '{print $6}' <<<"$torch")
    printf '%-10s %5s %5s %-7s %10s %10s %7.2fx\n' "$1" "$2" "$3" $mode "$o" "$t" "$(awk -v a="$o" -v b="$t" 'BEGIN{print a/b}')"
    if [ $mode = full ]; then
      full[$1]=$(awk '{print $7}' <<<"$ours")
    else
      frozen=$(awk '{print $7}' <<<"$ours")
      printf '%-10s frozen step / full step time (ours): %.3f (target <= 0.35)\n' "$1" "$(awk -v a="$frozen" -v b="${full[$1]}" 'BEGIN{print a/b}')"
    fi
  done
done
