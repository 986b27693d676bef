#!/usr/bin/env bash
# tlsweep run with real trials (CPU, tiny networks) on a dataset made by tlsweep synth-flowers:
# -np 3 and -np 1 give the same numbers, a crash inside the HDF5 append resumes to the same
# numbers (workers checkpoint only epochs the file holds; one recorded but not checkpointed is
# trained again and its repeat dropped), a broken weights file is refused before the start,
# and diverging trials fail with the reason, after a retry.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
trap 'rm -rf "$tmp"' EXIT

check "synth-flowers makes a small dataset" \
  $tlsweep synth-flowers "$tmp/data" --per-class 4 --width 64 --height 64
sed -e "s|root: data/smoke|root: $tmp/data|" sweeps/smoke.yaml >"$tmp/real.yaml"
# one thread per worker on both sides, so the arithmetic is the same in every run
real() { timeout 300 $mpirun -np "$1" $tlsweep run --threads 1 -q -o "$2" "$tmp/real.yaml"; }

check "np 3: real smoke sweep (exit 0)" real 3 "$tmp/np3.h5"
check "np 3: every trial and epoch, mode real" \
  $py tests/integration/check_results.py "$tmp/np3.h5" --trials 4 --epochs 3 --mode real
check "np 3: best weights beside the file" test -s "$tmp/np3.h5.d/resnet18__exp-decay-3/best.safetensors"
check "np 1: same numbers as np 3" real 1 "$tmp/np1.h5"
check "np 1 vs np 3" $py tests/integration/check_results.py "$tmp/np1.h5" --trials 4 --epochs 3 --mode real --compare "$tmp/np3.h5"

TLSWEEP_TEST_KILL_AFTER_LR=5 real 3 "$tmp/crash.h5" >/dev/null 2>&1
check "crash inside an HDF5 append: the job died" test $? -ne 0
out=$(real 3 "$tmp/crash.h5" 2>&1)
check "crash: the rerun finishes (exit 0)" test $? -eq 0
check "crash: exactly once, the same numbers as without the crash" \
  $py tests/integration/check_results.py "$tmp/crash.h5" --trials 4 --epochs 3 --mode real --compare "$tmp/np3.h5"

# Device placement on a machine without a usable GPU (where one is visible these would train
# on it, so they are skipped): auto trains on the CPU and says why; cuda refuses to start,
# naming every rank and its host, exit 2, no results file.
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  echo "skip device placement without a GPU: this machine has one"
else
  host=$(hostname)
  out=$(timeout 300 $tlsweep train --sweep "$tmp/real.yaml" --trial 0 --threads 1 --device auto \
    --out "$tmp/auto-trial" 2>&1)
  check "train --device auto, no GPU: trains on the CPU (exit 0)" test $? -eq 0
  check "train --device auto, no GPU: the placement line says CPU and why" \
    grep -q "^tlsweep train on $host: CPU (auto: no GPU visible" <<<"$out"
  sed -e "s|bn_in_frozen: train}|bn_in_frozen: train, device: cuda}|" "$tmp/real.yaml" >"$tmp/cuda.yaml"
  out=$(timeout 60 $tlsweep train --sweep "$tmp/cuda.yaml" --trial 0 --out "$tmp/cuda-trial" 2>&1)
  check "train with train.device cuda, no GPU: exit 2" test $? -eq 2
  check "train with train.device cuda, no GPU: names rank and host" \
    grep -q "^tlsweep train: rank 0 on $host: device cuda: asked for a GPU (cuda) but none is visible" <<<"$out"
  timeout 60 $mpirun -np 3 $tlsweep run -o "$tmp/cuda.h5" "$tmp/cuda.yaml" >"$tmp/cuda.log" 2>&1
  check "run with train.device cuda, no GPU: exit 2" test $? -eq 2
  check "run with train.device cuda, no GPU: each worker rank named with its host" \
    bash -c "grep -q '^tlsweep run: rank 1 on $host: train.device cuda: asked for a GPU (cuda) but none is visible' '$tmp/cuda.log' &&
             grep -q '^tlsweep run: rank 2 on $host: train.device cuda: asked for a GPU' '$tmp/cuda.log' &&
             grep -q 'nothing was started' '$tmp/cuda.log'"
  check "run with train.device cuda, no GPU: no results file" test ! -e "$tmp/cuda.h5"
fi

# a broken weights file is refused before anything starts
printf 'PK\003\004 not really a zip' >"$tmp/broken.pth"
sed -e "s|^retries: 1|retries: 1\nbackbones:\n  resnet18: {weights: $tmp/broken.pth}|" "$tmp/real.yaml" >"$tmp/broken.yaml"
timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q -o "$tmp/broken.h5" "$tmp/broken.yaml" >"$tmp/broken.log" 2>&1
check "broken weights: exit 2 before any trial" test $? -eq 2
check "broken weights: each use named, no results file" \
  bash -c "grep -q 'trial resnet18__linear-decay: $tmp/broken.pth' '$tmp/broken.log' && test ! -e '$tmp/broken.h5'"

# trials that diverge (an lr of 3e38 overflows the head's weights) fail, are retried, and
# the others finish
awk '/^  exp-decay-3:/ {e = 1} e && /feature_extraction/ {sub(/lr: 1.0e-3/, "lr: 3.0e+38"); e = 0} {print}' \
  "$tmp/real.yaml" >"$tmp/fail.yaml"
timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q -o "$tmp/fail.h5" "$tmp/fail.yaml" >"$tmp/fail.log" 2>&1
check "diverging trials: exit status 1" test $? -eq 1
check "diverging trials: 2 failed with reasons, 2 done" \
  $py tests/integration/check_results.py "$tmp/fail.h5" --trials 4 --epochs 3 --mode real --failed 2
check "diverging trials: each was tried twice and says it diverged" \
  $py -c "
import h5py, sys
t = h5py.File('$tmp/fail.h5', 'r')['trials'][:]
bad = [r for r in t if r['status'] == b'failed']
sys.exit(0 if len(bad) == 2 and all(r['attempts'] == 2 and b'exp-decay-3' in r['name'] and b'diverged at epoch 1' in r['error'] for r in bad) else 1)"
finish
