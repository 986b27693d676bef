#!/usr/bin/env bash
# tlsweep run on the smoke sweep under mpirun (-np 1 and -np 3, --simulate), checked from
# Python with h5py and pandas, including a live SWMR read while the sweep runs; failing
# trials are retried and recorded; tlsweep status; bad sweep files touch nothing.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
trap 'rm -rf "$tmp"' EXIT

# -np 1: rank 0 runs the trials itself
check "np 1: smoke sweep runs (exit 0)" \
  bash -c 'timeout 60 "$@" >"$0"' "$tmp/np1.log" $mpirun -np 1 $tlsweep run --simulate --sim-seconds 0.02 -q -o "$tmp/np1.h5" sweeps/smoke.yaml
check "np 1, -q: no progress lines, the end-of-run summary with the pandas line" bash -c "
  ! grep -q '^\[' '$tmp/np1.log' && grep -q '^tlsweep run: 4 done, 0 failed, 0 not finished of 4 trials' '$tmp/np1.log' &&
  grep -qF \"pandas.DataFrame(h5py.File('$tmp/np1.h5', 'r', libver='latest', swmr=True)['trials'][:])\" '$tmp/np1.log'"
check "np 1: every trial and epoch in the file (h5py/pandas)" \
  $py tests/integration/check_results.py "$tmp/np1.h5" --trials 4 --epochs 3
check "np 1: per-trial directories beside the file" test -d "$tmp/np1.h5.d/resnet18__exp-decay-3"

# -np 3: two workers; a notebook-style reader follows the file while it is written
timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 0.3 -o "$tmp/np3.h5" \
  sweeps/smoke.yaml >"$tmp/np3.log" 2>&1 &
run=$!
check "np 3: live SWMR read sees epochs while the sweep runs" \
  timeout 60 $py tests/integration/live_read.py "$tmp/np3.h5" 12 "$tmp/seen.json" 50
wait $run
check "np 3: smoke sweep exits 0" test $? -eq 0
check "np 3: every row read live is in the final file, unchanged" \
  $py tests/integration/live_read.py --compare "$tmp/np3.h5" "$tmp/seen.json"
check "np 3: every trial and epoch, same numbers as np 1" \
  $py tests/integration/check_results.py "$tmp/np3.h5" --trials 4 --epochs 3 --compare "$tmp/np1.h5"
check "np 3: the placement is printed" grep -qE '^rank 2 on .*: CPU \(--simulate: nothing trains\), [0-9]+ threads' "$tmp/np3.log"
check "np 3: progress lines" grep -qE 'vgg11_bn__linear-decay epoch 3/3 \(phase 2\) val_acc' "$tmp/np3.log"
check "np 3: output to a file has no cursor codes" bash -c "! grep -q $'\\033' '$tmp/np3.log'"
check "np 3: longest first (vgg11_bn before resnet18)" \
  bash -c "grep -m1 'start' '$tmp/np3.log' | grep -q vgg11_bn"
check "np 3: trials were spread over both workers" \
  bash -c "grep -q 'rank 1 on' '$tmp/np3.log' && grep -q 'rank 2 on' '$tmp/np3.log'"

status=$($tlsweep status "$tmp/np3.h5")
check "status counts the states" grep -q '4 trials: 4 done, 0 running, 0 pending, 0 failed' <<<"$status"
# the ranking, accuracies and best epochs that status prints are those of the file's /trials
check "status ranks the best trials as /trials has them" $py -c "
import h5py, sys
t = h5py.File('$tmp/np3.h5', 'r')['trials'][:]
rows = sorted(t, key=lambda r: -r['best_val_acc'])
want = ['  %-48s  %.4f at epoch %d' % (r['name'].decode(), r['best_val_acc'], r['best_epoch'])
        for r in rows]
got = [l[:len(w)] for l, w in zip(sys.stdin.read().splitlines()[2:], want)]
sys.exit(0 if got == want else 1)" <<<"$status"
sum=$(md5sum <"$tmp/np1.h5")
out=$(timeout 60 $mpirun -np 1 $tlsweep run --simulate -o "$tmp/np1.h5" sweeps/smoke.yaml)
code=$?
check "a finished sweep reruns as a no-op: exit 0 (got $code)" test $code -eq 0
check "... it says so" grep -q '4 of 4 trials already done' <<<"$out"
check "... and leaves the file byte-identical" test "$(md5sum <"$tmp/np1.h5")" = "$sum"
curves=$($tlsweep status --curves=vgg11_bn__exp-decay-3 "$tmp/np3.h5")
check "status --curves: a header with the record's columns, data_wait_s included" \
  grep -qE '^ +epoch +phase +train_loss .* images_per_second +data_wait_s$' <<<"$curves"
check "status --curves=TRIAL: that trial's 3 epochs only" \
  test "$(grep -cE '^ +[1-3] +[12] +[0-9]' <<<"$curves")" -eq 3 -a \
  "$(grep -cE '^vgg11_bn__exp-decay-3 \(done(; phase 1 computed by [a-z0-9_-]+)?\):$' <<<"$curves")" -eq 1
expect_fail "status --curves of an unknown trial: named, exit 2" 2 "no trial 'nope'" \
  $tlsweep status --curves=nope "$tmp/np3.h5"

# a failing trial (unreadable weights file for one backbone) fails at once: its input fails the
# same way every time, so it is not retried (a training failure is: test_run_real.sh)
printf 'not a weights file' >"$tmp/broken.pth"
sed -e "s|^output: .*|output: $tmp/fail.h5|" -e "s|^retries: 1|retries: 1\nbackbones:\n  vgg11_bn: {weights: $tmp/broken.pth}|" \
  sweeps/smoke.yaml >"$tmp/fail.yaml"
timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 0.02 "$tmp/fail.yaml" >"$tmp/fail.log" 2>&1
check "failed trials: exit status 1" test $? -eq 1
check "failed trials: recorded with their reason, the rest done" \
  $py tests/integration/check_results.py "$tmp/fail.h5" --trials 4 --epochs 3 --failed 2
# (the vgg11_bn trials share a phase 1: the one that computes it fails, the other with it)
check "failed trials: a setup failure is tried once and says why not again" \
  $py -c "
import h5py, sys
t = h5py.File('$tmp/fail.h5', 'r')['trials'][:]
bad = [r for r in t if r['name'].startswith(b'vgg11_bn')]
computer = [r for r in bad if r['phase1_trial'] == r['id']]
sharer = [r for r in bad if r['phase1_trial'] != r['id']]
ok = len(computer) == 1 and len(sharer) == 1 and computer[0]['attempts'] == 1
ok = ok and computer[0]['error'].startswith(b'rank ') and sharer[0]['attempts'] == 0
ok = ok and sharer[0]['error'].startswith(b'its shared phase 1 failed in trial ' + computer[0]['name'] + b': rank ')
ok = ok and all(b'neither a PyTorch' in r['error'] for r in bad) and b'not retried' in computer[0]['error']
sys.exit(0 if ok else 1)"
check "failed trials: the log says it is not retried" grep -q 'FAILED vgg11_bn.*not retried' "$tmp/fail.log"
check "status lists failures with reasons" \
  bash -c "$tlsweep status '$tmp/fail.h5' | grep -q '^failed: vgg11_bn__linear-decay (attempts 1): rank'"

# a worker silent past the heartbeat timeout is named and the sweep stops (exit 3, resumable)
expect_fail "silent worker: reported with rank, host and trial; exit 3" 3 \
  "rank [12] on .*: trial vgg11_bn__.*: no message for [0-9]+ s \\(heartbeat timeout 1 s\\)" \
  timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 30 --heartbeat 100 \
  --heartbeat-timeout 1 -q -o "$tmp/silent.h5" sweeps/smoke.yaml
check "silent worker: the file is readable and says which trials were running (interrupted)" \
  bash -c "$tlsweep status '$tmp/silent.h5' | grep -q '0 done, 0 running, 2 pending, 0 failed, 0 preempted, 2 interrupted'"

# bad input: exit 2, one message with file, line and key, no results file made or touched
printf 'name: bad\ndata: {root: data/smoke}\ntrain:\n  batch_size: x\ngrid: {backbone: [resnet18], schedule: [s]}\nschedules: {s: {}}\noutput: %s/bad.h5\n' "$tmp" >"$tmp/bad.yaml"
expect_fail "bad sweep: exit 2 with file:line: key" 2 "bad.yaml:4: train.batch_size: expected a positive integer, got 'x'" \
  $mpirun -np 3 $tlsweep run --simulate "$tmp/bad.yaml"
check "bad sweep: no results file" test ! -e "$tmp/bad.h5"
check "bad sweep: no results directory" test ! -e "$tmp/bad.h5.d"
sed -e 's/resize: 40/resize: 4x/' sweeps/smoke.yaml >"$tmp/bad2.yaml"
line=$(grep -n 'resize: 4x' "$tmp/bad2.yaml" | cut -d: -f1)
expect_fail "bad sweep aimed at an existing file: exit 2" 2 "bad2.yaml:$line: data.resize: expected a positive integer, got '4x'" \
  $mpirun -np 1 $tlsweep run --simulate -o "$tmp/np1.h5" "$tmp/bad2.yaml"
check "bad sweep: the existing results file is untouched" test "$(md5sum <"$tmp/np1.h5")" = "$sum"
sed 's|root: data/smoke|root: /nonexistent|' sweeps/smoke.yaml >"$tmp/nodata.yaml"
line=$(grep -n 'root: /nonexistent' "$tmp/nodata.yaml" | cut -d: -f1)
expect_fail "missing dataset (not --simulate)" 2 "nodata.yaml:$line: data.root: dataset '/nonexistent' does not exist" \
  $mpirun -np 1 $tlsweep run -o "$tmp/x.h5" "$tmp/nodata.yaml"
check "missing dataset: no results file" test ! -e "$tmp/x.h5"
expect_fail "bad flag" 2 "expects a number >= 0, got 'soon'" $mpirun -np 1 $tlsweep run --time-limit soon sweeps/smoke.yaml
expect_fail "status of a missing file" 2 "cannot open the file" $tlsweep status "$tmp/none.h5"
check "dry run lists the trials" \
  bash -c "$mpirun -np 1 $tlsweep run -n --simulate sweeps/smoke.yaml | grep -c '__' | grep -qx 4"
finish
