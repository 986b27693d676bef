#!/usr/bin/env bash
# Shared feature extraction: trials whose phase-1 settings are equal compute phase 1 once.
# On the smoke sweep (resnet18 and vgg11_bn x 2 schedules, augmentation and shuffling on):
# - share_phase1 true and false give the same /curves and /lr numbers and bit-identical best
#   weights; the sharing trials' phase-1 rows are their computer's, replayed (even the timings),
#   and only the computers' folders hold a phase-1 node;
# - -n prints who computes whose phase 1 and the epochs computed with and without sharing;
# - kill -9 of the root at appends around the end of phase 1 (the last phase-1 epoch, after it
#   and before the sharing trials start, during a replay) and a rerun: complete, exactly once,
#   the same numbers;
# - a job array: a computer and its sharing trial started at the same moment compute the phase
#   1 once between them, and merged with the other tasks' files equal the mpirun sweep; a task
#   stopped while it computes another trial's phase 1 resumes the node to the same numbers.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

check "synth-flowers makes a small dataset" \
  $tlsweep synth-flowers "$tmp/data" --per-class 4 --width 64 --height 64
# 3 + 2 epochs, so that the best epoch may fall in either phase
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s|output: runs/smoke.h5|output: $tmp/arr.h5|" \
  -e "s/feature_extraction: {epochs: 2/feature_extraction: {epochs: 3/" \
  -e "s/fine_tuning: {epochs: 1/fine_tuning: {epochs: 2/" sweeps/smoke.yaml >"$tmp/shared.yaml"
{ cat "$tmp/shared.yaml"; echo "share_phase1: false"; } >"$tmp/whole.yaml"
# one thread per rank everywhere, so the arithmetic is the same in every run
run() { timeout 300 $mpirun -np "$1" $tlsweep run --threads 1 -q -o "$2" "$3"; }
results() { $py tests/integration/check_results.py "$1" --trials 4 --epochs 5 --mode real "${@:2}"; }

plan=$($mpirun -np 1 $tlsweep run -n "$tmp/shared.yaml")
check "-n: who computes whose phase 1" \
  grep -qE '^  resnet18__exp-decay-3 +cost +[0-9.]+  phase 1 from resnet18__linear-decay$' <<<"$plan"
check "-n: the computer" \
  grep -qE '^  vgg11_bn__linear-decay +cost +[0-9.]+  computes phase 1 for 1 more$' <<<"$plan"
check "-n: epochs with and without sharing" \
  grep -qx 'epochs computed: phase 1 6 (12 without sharing), phase 2 8' <<<"$plan"
plan=$($mpirun -np 1 $tlsweep run -n "$tmp/whole.yaml")
check "-n with share_phase1: false shares nothing" \
  grep -qx 'epochs computed: phase 1 12 (12 without sharing), phase 2 8 (share_phase1: false)' <<<"$plan"

out=$(run 3 "$tmp/shared.h5" "$tmp/shared.yaml")
check "shared: the sweep runs (exit 0)" test $? -eq 0
check "shared: the summary says what was reused" \
  grep -qx 'shared phase 1: 6 of 12 phase-1 epochs computed, 6 reused' <<<"$out"
check "whole: the sweep runs (exit 0)" quiet run 3 "$tmp/whole.h5" "$tmp/whole.yaml"
check "shared: every trial and epoch once, lineage consistent" results "$tmp/shared.h5"
check "shared and whole: the same /curves and /lr numbers" \
  results "$tmp/shared.h5" --compare "$tmp/whole.h5" --ignore phase1_trial,computed_by,estimated_cost
check "shared and whole: bit-identical best weights, each under its own name" $py -c "
import sys
sys.path.insert(0, '.')
import numpy as np
from results.weights import read_safetensors
for t in ['resnet18__linear-decay', 'resnet18__exp-decay-3', 'vgg11_bn__linear-decay', 'vgg11_bn__exp-decay-3']:
    a, ma = read_safetensors('$tmp/shared.h5.d/%s/best.safetensors' % t)
    b, mb = read_safetensors('$tmp/whole.h5.d/%s/best.safetensors' % t)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), t
    assert ma == mb and ma['trial'] == t, (ma, mb)
"
check "shared: two trials reuse a phase 1, replayed with the computer's timings" $py -c "
import h5py, sys
f = h5py.File('$tmp/shared.h5', 'r')
t, c = f['trials'][:], f['curves'][:]
sharing = [r for r in t if r['phase1_trial'] != r['id']]
ok = len(sharing) == 2
for r in sharing:
    mine = sorted((x['epoch'], x['seconds']) for x in c if x['trial_id'] == r['id'] and x['phase'] == 1)
    theirs = sorted((x['epoch'], x['seconds']) for x in c if x['trial_id'] == r['phase1_trial'] and x['phase'] == 1)
    ok = ok and mine == theirs and len(mine) == 3
sys.exit(0 if ok else 1)"
check "status --curves names the computer of a shared phase 1" bash -c "$tlsweep status \
  --curves=resnet18__exp-decay-3 '$tmp/shared.h5' | grep -qx 'resnet18__exp-decay-3 (done; phase 1 computed by resnet18__linear-decay):'"
nodes=$(ls -d "$tmp"/shared.h5.d/*/phase1 | xargs -n1 dirname | xargs -n1 basename | sort | tr '\n' ' ')
check "shared: phase-1 nodes only in the computers' folders ($nodes)" \
  test "$nodes" = "resnet18__linear-decay vgg11_bn__linear-decay "
check "whole: no phase-1 nodes" test -z "$(ls -d "$tmp"/whole.h5.d/*/phase1 2>/dev/null)"

# One worker (-np 2) makes the append order fixed: vgg11_bn__linear-decay's phase 1 (appends
# 1-3) and phase 2 (4-5), then vgg11_bn__exp-decay-3's replay (6-8) and phase 2 (9-10), ...
for k in 3 4 7; do
  TLSWEEP_TEST_KILL_AFTER_LR=$k run 2 "$tmp/k$k.h5" "$tmp/shared.yaml" >/dev/null 2>&1
  check "kill in append $k: the job died" test $? -ne 0
  check "kill in append $k: the rerun finishes" quiet run 2 "$tmp/k$k.h5" "$tmp/shared.yaml"
  check "kill in append $k: exactly once, the same numbers" \
    results "$tmp/k$k.h5" --compare "$tmp/shared.h5"
done

# The job array: tasks 1 (shares resnet18__linear-decay's phase 1) and 0 start together
task() { timeout 300 $tlsweep train --sweep "$tmp/shared.yaml" --trial "$1" --threads 1 \
  --output "$tmp/t$1.h5" >"$tmp/t$1.log" 2>&1; }
task 1 &
sharing=$!
task 0
computer_rc=$?
wait $sharing
check "job array: both tasks finish" test $computer_rc -eq 0 -a $? -eq 0
computed=$(cat "$tmp/t0.log" "$tmp/t1.log" | grep -c "computing the shared phase 1")
check "job array: the shared phase 1 computed once ($computed times)" test "$computed" -eq 1
check "job array: tasks 2 and 3" bash -c "$(declare -f task); tmp='$tmp' tlsweep='$tlsweep'; task 2 && task 3"
check "job array: merged" quiet $tlsweep merge -o "$tmp/merged.h5" "$tmp"/t[0-3].h5
check "job array: the merge equals the mpirun sweep" results "$tmp/merged.h5" --compare "$tmp/shared.h5"

# A stop while a task computes another trial's phase 1 (SIGUSR1, as Slurm's preemption): the
# node keeps its place, the task exits 3, and the rerun resumes the node and finishes with the
# uninterrupted numbers.
sed -e "s|output: $tmp/arr.h5|output: $tmp/stop.h5|" "$tmp/shared.yaml" >"$tmp/stop.yaml"
$tlsweep train --sweep "$tmp/stop.yaml" --trial 1 --threads 1 --output "$tmp/s1.h5" \
  >"$tmp/s1.log" 2>&1 &
task_pid=$!
for _ in $(seq 3000); do grep -q "computing the shared phase 1" "$tmp/s1.log" && break; sleep 0.01; done
kill -USR1 $task_pid
wait $task_pid
check "stop inside a phase-1 node: exit 3" test $? -eq 3
check "stop inside a phase-1 node: the node is incomplete" $py -c "
import json, struct, sys
with open('$tmp/stop.h5.d/resnet18__linear-decay/phase1/resume.safetensors', 'rb') as f:
    meta = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))['__metadata__']
sys.exit(0 if int(meta['epochs_done']) < 3 else 1)"
check "stop inside a phase-1 node: the rerun finishes" \
  quiet $tlsweep train --sweep "$tmp/stop.yaml" --trial 1 --threads 1 --output "$tmp/s1.h5"
check "stop inside a phase-1 node: the uninterrupted numbers" $py -c "
import h5py, sys
import numpy as np
def rows(path):
    c = h5py.File(path, 'r')['curves'][:]
    c = np.sort(c[c['trial'] == b'resnet18__exp-decay-3'], order='epoch')
    return [tuple(r[k] for k in ('epoch', 'phase', 'computed_by', 'train_loss', 'train_acc', 'val_loss', 'val_acc', 'head_lr')) for r in c]
a, b = rows('$tmp/s1.h5'), rows('$tmp/shared.h5')
sys.exit(0 if a == b and len(a) == 5 else 1)"
finish
