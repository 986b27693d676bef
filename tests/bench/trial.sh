#!/usr/bin/env bash
# A full small trial, ours (tlsweep train) against the PyTorch reference (tests/reference/seed.py)
# on the same generated 102-class data in the same run: resnet18 at 112 px, batch 16, 1 + 1
# epochs, 2 threads each. Prints each phase's epoch seconds and the ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bin/tlsweep synth-flowers "$work/data" --classes 102 --per-class 8 --trnid 1 --valid 1 \
  --width 500 --height 600 --seed 11 >/dev/null
common=(--data "$work/data" --backbone resnet18 --resize 128 --crop 112 --batch-size 16
        --fe-epochs 1 --ft-epochs 1)
OMP_NUM_THREADS=$THREADS bin/tlsweep train "${common[@]}" --weights none --threads "$THREADS" \
  --out "$work/ours" >"$work/ours.log"
OMP_NUM_THREADS=$THREADS "$PYTHON" tests/reference/seed.py "${common[@]}" --threads "$THREADS" \
  --out "$work/torch" >/dev/null

# ours: "epoch  N  phase P (...) ... S s  I img/s"; torch: records.txt "epoch phase ... seconds"
ours_fe=$(awk '/^epoch +1 /{for(i=1;i<=NF;i++) if($i=="s") print $(i-1)}' "$work/ours.log")
ours_ft=$(awk '/^epoch +2 /{for(i=1;i<=NF;i++) if($i=="s") print $(i-1)}' "$work/ours.log")
torch_fe=$(awk '$1==1{print $7}' "$work/torch/records.txt")
torch_ft=$(awk '$1==2{print $7}' "$work/torch/records.txt")
echo "small trial: resnet18, 112 px, batch 16, 612 train + 204 val images (the seed's 3:1 split), $THREADS threads (epoch seconds)"
printf '%-20s %8s %8s %8s\n' phase ours torch speedup
printf '%-20s %8.1f %8.1f %7.2fx\n' "feature extraction" "$ours_fe" "$torch_fe" "$(awk -v a="$ours_fe" -v b="$torch_fe" 'BEGIN{print b/a}')"
printf '%-20s %8.1f %8.1f %7.2fx\n' "fine-tuning" "$ours_ft" "$torch_ft" "$(awk -v a="$ours_ft" -v b="$torch_ft" 'BEGIN{print b/a}')"
printf 'our feature-extraction epoch / fine-tuning epoch: %.2f (target <= 0.35)\n' "$(awk -v a="$ours_fe" -v b="$ours_ft" 'BEGIN{print a/b}')"
