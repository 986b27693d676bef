#!/usr/bin/env bash
# Data-parallel trials (ranks_per_trial): a trial trained by a group of 2 or 3 ranks computes
# what one rank does. On resnet18 and vgg11_bn (width 8, augmentation, shuffling and VGG's
# dropout on; 64-pixel crops, so that resnet18's last stage keeps 2x2 values per channel),
# with batches of 9 over 82 training and 82 validation images (the last batch holds 1 image, so
# the other ranks of a group have an empty shard of it):
# - sync_bn (the default): 2- and 3-rank groups give the 1-rank trial's per-epoch losses to
#   1e-4 relative and its accuracies to one image in 82 (the sums run in another order: about
#   1e-5 seen);
# - sync_bn: false runs, and differs (each shard normalises with its own statistics);
# - data.device_images: true (each rank's shard made by kn_images_to_batch, here on the CPU)
#   gives the 2-rank numbers exactly;
# - -np 5 with ranks_per_trial: 2 forms two groups that train at once; every trial and epoch
#   once; a kill -9 of one group's second rank and a rerun completes it, every epoch once;
# - the checkpoint a group wrote resumes in `tlsweep train` on one process, to the numbers of
#   the 1-rank run;
# - a rank whose step fails between two collectives (TLSWEEP_TEST_FAIL_STEP: its forward, at
#   epoch 2 batch 3), member or voice, with sync_bn or without, ends the job at once (exit 5, one line naming it) instead
#   of leaving the group waiting for good; the file stays readable and a rerun completes it,
#   every epoch once; a rank kept waiting by a hung voice ends the job after
#   TLSWEEP_GROUP_TIMEOUT seconds, naming the collective.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

check "synth-flowers makes 41 classes of 4 images" \
  quiet $tlsweep synth-flowers "$tmp/data" --classes 41 --per-class 4 --width 64 --height 64
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s|output: runs/smoke.h5|output: $tmp/one.h5|" \
  -e "s/batch_size: 16/batch_size: 9/" -e "s/resize: 40, crop: 32/resize: 72, crop: 64/" \
  sweeps/smoke.yaml >"$tmp/all.yaml"
# the two backbones with one schedule: 2 trials of 2 + 1 epochs
sed -e "s/schedule: \[linear-decay, exp-decay-3\]/schedule: [exp-decay-3]/" "$tmp/all.yaml" >"$tmp/one.yaml"
{ cat "$tmp/one.yaml"; echo "ranks_per_trial: 2"; } >"$tmp/two.yaml"
{ cat "$tmp/one.yaml"; echo "ranks_per_trial: 3"; } >"$tmp/three.yaml"
sed -e "s/bn_in_frozen: train}/bn_in_frozen: train, sync_bn: false}/" "$tmp/two.yaml" >"$tmp/nosync.yaml"
sed -e "s|root: $tmp/data|root: $tmp/data, device_images: true|" "$tmp/two.yaml" >"$tmp/two-device.yaml"
{ cat "$tmp/all.yaml"; echo "ranks_per_trial: 2"; } >"$tmp/pairs.yaml"
run() { timeout 300 $mpirun -np "$1" $tlsweep run --threads 1 -q -o "$2" "$3"; }
close() { $py tests/integration/close_curves.py "$@" --loss-rel 1e-4 --acc-abs 0.0122; }

check "one rank a trial: the sweep runs" quiet run 2 "$tmp/one.h5" "$tmp/one.yaml"
out=$(run 3 "$tmp/two.h5" "$tmp/two.yaml")
check "two ranks a trial: the sweep runs" test $? -eq 0
check "two ranks a trial: the start names the group" \
  grep -q "group 1: ranks 1,2" <<<"$(run 3 "$tmp/two-again.h5" "$tmp/two.yaml" 2>&1)"
check "two ranks a trial: complete, every epoch once" \
  $py tests/integration/check_results.py "$tmp/two.h5" --trials 2 --epochs 3 --mode real
check "two ranks a trial: the 1-rank numbers" close "$tmp/one.h5" "$tmp/two.h5"
check "three ranks a trial: the sweep runs" quiet run 4 "$tmp/three.h5" "$tmp/three.yaml"
check "three ranks a trial: the 1-rank numbers" close "$tmp/one.h5" "$tmp/three.h5"
check "two ranks a trial, device_images: true: the sweep runs" \
  quiet run 3 "$tmp/two-device.h5" "$tmp/two-device.yaml"
check "two ranks a trial, device_images: true: exactly the 2-rank numbers" \
  $py tests/integration/check_results.py "$tmp/two-device.h5" --trials 2 --epochs 3 --mode real \
  --compare "$tmp/two.h5"
check "sync_bn: false: the sweep runs" quiet run 3 "$tmp/nosync.h5" "$tmp/nosync.yaml"
check "sync_bn: false: not the 1-rank numbers" close "$tmp/one.h5" "$tmp/nosync.h5" --differ

out=$(run 5 "$tmp/pairs.h5" "$tmp/pairs.yaml" 2>&1)
check "-np 5, pairs: the sweep runs" test $? -eq 0
check "-np 5, pairs: two groups" grep -q "group 2: ranks 3,4" <<<"$out"
check "-np 5, pairs: complete, every epoch once" \
  $py tests/integration/check_results.py "$tmp/pairs.h5" --trials 4 --epochs 3 --mode real
check "-np 5, pairs: both groups trained trials" $py -c "
import h5py
ranks = set(h5py.File('$tmp/pairs.h5', 'r')['trials']['rank'])
assert ranks == {1, 3}, ranks
"

# kill -9 of a group's second rank while its voice hangs after its trial's epoch 2 (the test
# hook: the sweep takes a second otherwise), then a rerun
TLSWEEP_TEST_HANG_AFTER_EPOCH=2,1 timeout 300 $mpirun -np 5 $tlsweep run --threads 1 -q \
  -o "$tmp/kill.h5" "$tmp/pairs.yaml" >"$tmp/kill.log" 2>&1 &
job=$!
check "kill: epochs reach the file" $py tests/integration/wait_rows.py "$tmp/kill.h5" 2 120
sleep 1
kill -9 "$(rank_pid $job 2)" 2>/dev/null
kill_job $job
check "kill: the rerun completes" quiet run 5 "$tmp/kill.h5" "$tmp/pairs.yaml"
check "kill: complete, every epoch once" \
  $py tests/integration/check_results.py "$tmp/kill.h5" --trials 4 --epochs 3 --mode real

# a group's checkpoint resumed on one process: the group's voice hangs after its first trial's
# epoch 2 is in the file (its epoch-1 checkpoint written), the job is killed, and `tlsweep
# train` continues that trial from the group's checkpoint
TLSWEEP_TEST_HANG_AFTER_EPOCH=2,1 timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q \
  -o "$tmp/moved.h5" "$tmp/two.yaml" >"$tmp/moved.log" 2>&1 &
job=$!
$py tests/integration/wait_rows.py "$tmp/moved.h5" 2 120 >/dev/null
kill_job $job
trial=$($py -c "
import h5py
print(h5py.File('$tmp/moved.h5', 'r', libver='latest', swmr=True)['curves']['trial'][0].decode())")
check "moved: the group left a resume checkpoint" test -s "$tmp/moved.h5.d/$trial/resume.safetensors"
check "moved: one process resumes it" \
  quiet timeout 300 $tlsweep train --sweep "$tmp/two.yaml" --trial "$trial" --threads 1 \
  --trials-dir "$tmp/moved.h5.d" --output "$tmp/moved1.h5"
check "moved: epochs 2 and 3 of $trial as one rank trains them" $py -c "
import h5py
rows = h5py.File('$tmp/moved1.h5', 'r')['curves']
got = sorted(int(e) for t, e in zip(rows['trial'], rows['epoch']) if t.decode() == '$trial')
assert got == [2, 3], got
"
check "moved: the 1-rank numbers" close "$tmp/one.h5" "$tmp/moved1.h5" --trial "$trial"

# a failed step between two collectives: before the group aborted, the failed rank's next
# collective met the other rank's, waiting in the step: garbage (a protocol error, or
# MPI_ERR_TRUNCATE) where both were nonblocking, a hang until the timeout here where the voice
# waited in the blocking gradient sum (sync_bn: false), its heartbeats hiding it from the root
bounded() { timeout -k 10 120 $mpirun -np 3 $tlsweep run --threads 1 -q "$@"; }
TLSWEEP_TEST_FAIL_STEP=2,3,2 bounded -o "$tmp/abort.h5" "$tmp/two.yaml" >"$tmp/abort.log" 2>&1
rc=$?
check "failed step on the member: the job ends with exit 5 (got $rc)" test $rc -eq 5
check "failed step on the member: one line names rank, trial, epoch, batch and why" grep -qE \
  "^tlsweep run: rank 2 on [^ ]+: trial [^ ]+: the forward failed .*\(epoch 2, training batch 3 of 10; rank 1 of the trial's group of 2\): .*rerun" \
  "$tmp/abort.log"
check "failed step on the member: tlsweep status reads the file" \
  quiet $tlsweep status "$tmp/abort.h5"
check "failed step on the member: the rerun completes" quiet run 3 "$tmp/abort.h5" "$tmp/two.yaml"
check "failed step on the member: complete, every epoch once" \
  $py tests/integration/check_results.py "$tmp/abort.h5" --trials 2 --epochs 3 --mode real
TLSWEEP_TEST_FAIL_STEP=2,3,2 bounded -o "$tmp/abort-nosync.h5" "$tmp/nosync.yaml" \
  >"$tmp/abort-nosync.log" 2>&1
rc=$?
check "failed step on the member, sync_bn: false: the job ends with exit 5 (got $rc)" \
  test $rc -eq 5
check "failed step on the member, sync_bn: false: one line names it" \
  grep -qE "^tlsweep run: rank 2 on [^ ]+: trial [^ ]+: the forward failed .*epoch 2" \
  "$tmp/abort-nosync.log"
TLSWEEP_TEST_FAIL_STEP=2,3,1 bounded -o "$tmp/abort1.h5" "$tmp/two.yaml" >"$tmp/abort1.log" 2>&1
rc=$?
check "failed step on the voice: the job ends with exit 5 (got $rc)" test $rc -eq 5
check "failed step on the voice: one line names it" \
  grep -qE "^tlsweep run: rank 1 on [^ ]+: trial [^ ]+: the forward failed .*epoch 2" \
  "$tmp/abort1.log"
# the voice hangs after epoch 2 (heartbeats and all; the root would wait --heartbeat-timeout)
TLSWEEP_GROUP_TIMEOUT=5 TLSWEEP_TEST_HANG_AFTER_EPOCH=2,1 bounded -o "$tmp/late.h5" \
  "$tmp/two.yaml" >"$tmp/late.log" 2>&1
rc=$?
check "a hung voice: its member ends the job with exit 5 (got $rc)" test $rc -eq 5
check "a hung voice: the member names the wait" grep -qE \
  "^tlsweep run: rank 2 on [^ ]+: waited 5 s \(TLSWEEP_GROUP_TIMEOUT\) in MPI_Iallgather" \
  "$tmp/late.log"
expect_fail "TLSWEEP_GROUP_TIMEOUT=soon is refused" 2 "TLSWEEP_GROUP_TIMEOUT=soon: want seconds" \
  env TLSWEEP_GROUP_TIMEOUT=soon timeout -k 10 120 $mpirun -np 3 $tlsweep run --threads 1 -q \
  -o "$tmp/soon.h5" "$tmp/two.yaml"
finish
