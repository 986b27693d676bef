#!/usr/bin/env bash
# Data-parallel trials (ranks_per_trial, sync_bn): one fine-tuning epoch of resnet18 at 112 px,
# batch 16, on the bench's generated 102-class data, trained by 1, 2 and 4 ranks of one thread
# each.
# Prints the epoch seconds and the scaling efficiency (1-rank seconds / (K x K-rank seconds)),
# and one rank with K threads beside each K-rank group: the same cores used by threads instead.
# On a machine with fewer cores than ranks the larger groups are oversubscribed: the line says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpirun="mpirun --allow-run-as-root --oversubscribe --bind-to none" # Open MPI binds -np 2 to one core each
cores=$(nproc)

bin/tlsweep synth-flowers "$work/data" --classes 102 --per-class 8 --trnid 1 --valid 1 \
  --width 500 --height 600 --seed 11 >/dev/null
cat >"$work/one.yaml" <<YAML
name: groups
data: {format: flowers102, root: $work/data, train_splits: [tstid], val_splits: [trnid, valid],
       resize: 128, crop: 112}
train: {batch_size: 16, seed: 0, threads: 1, sync_bn: true}
model: {weights: none}
grid: {backbone: [resnet18], schedule: [fine-tune]}
schedules:
  fine-tune:
    feature_extraction: {epochs: 0, lr: 1.0e-3, step_every: 6, gamma: 0.3}
    fine_tuning: {epochs: 1, lr: 1.0e-4, layer_decay: exponential, factor: 3, step_every: 2,
                  gamma: 0.7}
YAML
echo "data-parallel trial: resnet18, 112 px, batch 16, 612 train + 204 val images, one fine-tuning epoch, $cores cores (epoch seconds)"
printf '%-8s %8s %11s %18s\n' ranks seconds efficiency "1 rank, K threads"
# epoch_seconds K THREADS: the fine-tuning epoch's seconds of the trial on K ranks of THREADS each
epoch_seconds() {
  { sed "s/threads: 1,/threads: $2,/" "$work/one.yaml"; echo "ranks_per_trial: $1"; } >"$work/k$1-$2.yaml"
  $mpirun -np $(($1 + 1)) bin/tlsweep run -q -o "$work/k$1-$2.h5" "$work/k$1-$2.yaml" >/dev/null
  "$PYTHON" -c "import h5py; print(h5py.File('$work/k$1-$2.h5', 'r')['curves']['seconds'][0])"
}
one=""
for k in ${BENCH_RANKS:-1 2 4}; do
  seconds=$(epoch_seconds "$k" 1)
  one=${one:-$seconds}
  threads="-"
  [ "$k" -gt 1 ] && threads=$(printf '%.1f' "$(epoch_seconds 1 "$k")")
  note=""
  [ "$k" -gt "$cores" ] && note="  (oversubscribed: $k ranks on $cores cores)"
  printf '%-8s %8.1f %10.2f %18s%s\n' "$k" "$seconds" \
    "$(awk -v a="$one" -v b="$seconds" -v k="$k" 'BEGIN{print a/(k*b)}')" "$threads" "$note"
done
