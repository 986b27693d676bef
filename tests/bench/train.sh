#!/usr/bin/env bash
# Training step, ours against PyTorch CPU on the same shapes and thread count, side by side:
# a full step (forward + backward + Adam) and a feature-extraction step (frozen backbone) in
# fp32, and a full step in bf16 mixed precision (ours against torch.autocast). Every figure is
# the median of BENCH_REPEAT runs (default 3) with their range: the machine may be shared.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-3}
REPEAT=${BENCH_REPEAT:-3}
bench=$BUILD/tests/bench/bench_train

# PyTorch's convolutions run on its own oneDNN; its fp32 linear layers on the system BLAS
blas=$("$PYTHON" -c 'import torch; torch.ones(64, 64) @ torch.ones(64, 64)
print(next((l.split()[-1] for l in open("/proc/self/maps") if "blas" in l), "none found"))')
echo "training step on $THREADS threads, $STEPS timed steps after one warm-up (images/s, median of $REPEAT runs [min-max])"
echo "PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)'), BLAS for its fp32 linear layers: $blas"
bf16=1
if ! grep -q avx512_bf16 /proc/cpuinfo; then
  bf16=0
  echo "no AVX512-BF16 on this CPU: bf16 rows skipped (tlsweep refuses bf16 here)"
fi

# median [min-max] of REPEAT runs of a command printing "who B S N MODE images/s s/step";
# sets $med (images/s) and $sec (seconds/step of the median run)
measure() {
  local runs=() line
  for _ in $(seq "$REPEAT"); do
    line=$(OMP_NUM_THREADS=$THREADS "$@")
    runs+=("$(awk '{print $6, $7}' <<<"$line")")
  done
  read -r med sec lo hi < <(printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR]=$1; s[NR]=$2} END{m=int((NR+1)/2); print v[m], s[m], v[1], v[NR]}')
  range="[$lo-$hi]"
}

row() { # label ours_med ours_range torch_med torch_range
  printf '%-10s %5s %5s %-11s %9s %-19s %9s %-19s %6.2fx\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" \
    "$(awk -v a="$5" -v b="$7" 'BEGIN{print a/b}')"
}

printf '%-10s %5s %5s %-11s %9s %-19s %9s %-19s %7s\n' backbone size batch mode ours range torch range ratio
for shape in "resnet18 112 16" "resnet50 224 8"; do
  set -- $shape
  measure $bench "$1" "$2" "$3" "$STEPS" "$THREADS" full fp32
  o_full=$med o_full_r=$range o_full_s=$sec
  measure "$PYTHON" tests/bench/bench_train_torch.py "$1" "$2" "$3" "$STEPS" "$THREADS" full fp32
  row "$1" "$2" "$3" "full fp32" "$o_full" "$o_full_r" "$med" "$range"
  measure $bench "$1" "$2" "$3" "$STEPS" "$THREADS" frozen fp32
  o=$med o_r=$range o_s=$sec
  measure "$PYTHON" tests/bench/bench_train_torch.py "$1" "$2" "$3" "$STEPS" "$THREADS" frozen fp32
  row "$1" "$2" "$3" "frozen fp32" "$o" "$o_r" "$med" "$range"
  printf '%-10s frozen step / full step time (ours): %.3f (target <= 0.28)\n' "$1" "$(awk -v a="$o_s" -v b="$o_full_s" 'BEGIN{print a/b}')"
  [ $bf16 = 1 ] || continue
  measure $bench "$1" "$2" "$3" "$STEPS" "$THREADS" full bf16
  o=$med o_r=$range
  measure "$PYTHON" tests/bench/bench_train_torch.py "$1" "$2" "$3" "$STEPS" "$THREADS" full bf16
  row "$1" "$2" "$3" "full bf16" "$o" "$o_r" "$med" "$range"
  printf '%-10s ours bf16 / ours fp32 (full step, medians): %.2fx (target >= 1.6)\n' "$1" "$(awk -v a="$o" -v b="$o_full" 'BEGIN{print a/b}')"
done
