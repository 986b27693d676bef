#!/usr/bin/env bash
# Resume: after kill -9 of the whole job (between epochs, mid-epoch, in the middle of an HDF5
# append, while the file is being created or resumed) and after a graceful stop (--time-limit,
# SIGTERM), rerunning finishes the sweep with every trial once in /trials, every epoch once in
# /curves and the same numbers as an uninterrupted run. A changed sweep file is refused with
# what changed, the file untouched; --extend adds points.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT
run() { # run OUTPUT [options...]: the smoke sweep, simulated, 3 ranks
  local out=$1
  shift
  timeout 120 $mpirun -np 3 $tlsweep run --simulate -q -o "$out" "$@" sweeps/smoke.yaml
}
compare() { $py tests/integration/check_results.py "$1" --trials 4 --epochs 3 --compare "$tmp/ref.h5"; }

check "uninterrupted reference run" run "$tmp/ref.h5" --sim-seconds 0.02

# between epochs: kill right after the 3rd epoch is committed (the next one is seconds away),
# then again after the 5th
start() { # start OUTPUT LOG [options...]: like run, in the background; $job is mpirun
  local out=$1 log=$2
  shift 2
  $mpirun -np 3 $tlsweep run --simulate -q -o "$out" "$@" sweeps/smoke.yaml >"$log" 2>&1 &
  job=$!
}
# wait_resumed LOG: the resumed run has repaired the file and writes again (a reader that
# opens a killed file first would hold HDF5's file lock and keep the writer out)
wait_resumed() {
  for _ in $(seq 300); do grep -q '^resuming' "$1" && return 0; sleep 0.02; done
  return 1
}
start "$tmp/a.h5" "$tmp/a1.log" --sim-seconds 1.5
$py tests/integration/wait_rows.py "$tmp/a.h5" 3 && kill_job $job
check "between epochs: the killed file is readable and partial" \
  $py -c "import h5py,sys; f=h5py.File('$tmp/a.h5','r',libver='latest',swmr=True); sys.exit(0 if 3 <= f['curves'].shape[0] < 12 else 1)"
status=$($tlsweep status "$tmp/a.h5")
check "after kill -9: status shows the trials that were running as interrupted" \
  bash -c "grep -qE '^interrupted: ' <<<'$status' && ! grep -qE '^running: ' <<<'$status'"
check "after kill -9: status --json says the same, as JSON" $py -c "
import json, subprocess, sys
s = json.loads(subprocess.run(['$tlsweep', 'status', '--json', '$tmp/a.h5'], capture_output=True, check=True).stdout)
states = [t['status'] for t in s['trials']]
sys.exit(0 if s['counts']['interrupted'] == states.count('interrupted') > 0 and s['counts']['running'] == 0 else 1)"
start "$tmp/a.h5" "$tmp/a2.log" --sim-seconds 1.5
wait_resumed "$tmp/a2.log" && $py tests/integration/wait_rows.py "$tmp/a.h5" 5 && kill_job $job
check "between epochs: rerun finishes (exit 0)" run "$tmp/a.h5" --sim-seconds 0.02
check "between epochs: exactly once, same numbers" compare "$tmp/a.h5"

# mid-epoch: kill at arbitrary moments while epochs are sleeping
for delay in 1.3 0.9; do
  run "$tmp/b.h5" --sim-seconds 0.4 >/dev/null 2>&1 &
  job=$!
  sleep $delay
  kill_job $job
done
check "mid-epoch: rerun finishes (exit 0)" run "$tmp/b.h5" --sim-seconds 0.02
check "mid-epoch: exactly once, same numbers" compare "$tmp/b.h5"

# during the HDF5 write: the root dies between an epoch's /lr rows and its /curves row
TLSWEEP_TEST_KILL_AFTER_LR=6 run "$tmp/c.h5" --sim-seconds 0.02 >/dev/null 2>&1
check "mid-write: the job died" test $? -ne 0
check "mid-write: the orphan /lr rows are there before resume" \
  $py -c "import h5py,sys; f=h5py.File('$tmp/c.h5','r',libver='latest',swmr=True); sys.exit(0 if f['curves'].shape[0]==5 and f['lr'].shape[0] > 0 else 1)"
# a kill inside the resume itself (after the repair, before the repaired copy replaces the
# file) leaves the file as it was
sum=$(md5sum <"$tmp/c.h5")
TLSWEEP_TEST_KILL_BEFORE_RENAME=1 run "$tmp/c.h5" --sim-seconds 0.02 >/dev/null 2>&1
check "kill inside the resume: the job died" test $? -ne 0
check "kill inside the resume: the file is byte-identical, the copy left aside" \
  test "$(md5sum <"$tmp/c.h5")" = "$sum" -a -e "$tmp/c.h5.resuming"
out=$(run "$tmp/c.h5" --sim-seconds 0.02 2>&1)
check "mid-write: rerun finishes (exit 0)" test $? -eq 0
check "mid-write: no working copy left" test ! -e "$tmp/c.h5.resuming"
check "mid-write: resume dropped the uncommitted /lr rows" grep -qE 'resume dropped 0 unfinished or repeated /curves rows and [1-9][0-9]* /lr rows' <<<"$out"
check "mid-write: exactly once, same numbers" compare "$tmp/c.h5"

# while creating the file: the root dies with the file complete but not yet in place
TLSWEEP_TEST_KILL_BEFORE_RENAME=1 run "$tmp/k.h5" --sim-seconds 0.02 >/dev/null 2>&1
check "mid-create: the job died" test $? -ne 0
check "mid-create: no half-made results file" test ! -e "$tmp/k.h5" -a -e "$tmp/k.h5.creating"
check "mid-create: rerun finishes (exit 0)" run "$tmp/k.h5" --sim-seconds 0.02
check "mid-create: the leftover is gone" test ! -e "$tmp/k.h5.creating"
check "mid-create: exactly once, same numbers" compare "$tmp/k.h5"

# graceful stop: a time limit (and SIGUSR1 to mpirun, which forwards it; SIGTERM under Slurm)
# stop at batch boundaries; the running trials are preempted and continue on the next run
run "$tmp/d.h5" --sim-seconds 1 --time-limit 0.5 >/dev/null 2>&1
check "time limit: exit status 3" test $? -eq 3
check "time limit: running trials recorded as preempted" \
  $py -c "import h5py,sys; t=h5py.File('$tmp/d.h5','r')['trials'][:]; sys.exit(0 if (t['status']==b'preempted').sum() == 2 else 1)"
start "$tmp/d.h5" "$tmp/d2.log" --sim-seconds 4
wait_resumed "$tmp/d2.log" && sleep 0.3
st=$($tlsweep status "$tmp/d.h5")
check "status works while the sweep runs" grep -qE '^running: .* rank [12] on ' <<<"$st"
expect_fail "a second writer on the same file is refused" 2 "is being written by tlsweep pid [0-9]+ on" \
  $mpirun -np 1 $tlsweep run --simulate -o "$tmp/d.h5" sweeps/smoke.yaml
kill -USR1 $job
wait $job
code=$?
check "SIGUSR1 to mpirun: exit status 3 (got $code)" test $code -eq 3
check "SIGUSR1: the root stopped cleanly" stopped_cleanly "$tmp/d2.log"
check "after a stop: rerun finishes" run "$tmp/d.h5" --sim-seconds 0.02
check "after a stop: exactly once, same numbers" compare "$tmp/d.h5"

# a file of the previous results schema (/curves without data_wait_s) resumes as it is
run "$tmp/e.h5" --sim-seconds 1 --time-limit 0.5 >/dev/null 2>&1
check "schema 1: a stopped sweep to convert (exit 3)" test $? -eq 3
$py tests/integration/make_schema1.py "$tmp/e.h5" "$tmp/old.h5" && mv "$tmp/e.h5.d" "$tmp/old.h5.d"
check "schema 1: rerun finishes (exit 0)" run "$tmp/old.h5" --sim-seconds 0.02
check "schema 1: every trial done, every epoch once, the columns still absent" \
  $py -c "
import h5py, sys
f = h5py.File('$tmp/old.h5', 'r')
t, c = f['trials'][:], f['curves'][:]
ok = (t['status'] == b'done').all() and len(c) == 12 and 'data_wait_s' not in c.dtype.names
ok = ok and 'computed_by' not in c.dtype.names and 'phase1_trial' not in t.dtype.names
sys.exit(0 if ok and f.attrs['schema'] == b'tlsweep-results-1' else 1)"
check "schema 1: status --curves shows '-' for data_wait_s" \
  bash -c "$tlsweep status --curves '$tmp/old.h5' | grep -qE '^ +3 +2 .* -$'"

# a changed sweep file is refused with what changed; --extend adds new grid points only
sed 's/gamma: 0.7}/gamma: 0.5}/' sweeps/smoke.yaml >"$tmp/changed.yaml"
sum=$(md5sum <"$tmp/ref.h5")
expect_fail "changed sweep refused with a diff" 2 "different sweep file.*" \
  $mpirun -np 1 $tlsweep run --simulate -o "$tmp/ref.h5" "$tmp/changed.yaml"
check "... leaving the file byte-identical, no working copy" \
  test "$(md5sum <"$tmp/ref.h5")" = "$sum" -a ! -e "$tmp/ref.h5.resuming"
check "the diff names the changed line" bash -c \
  "$mpirun -np 1 $tlsweep run --simulate -o '$tmp/ref.h5' '$tmp/changed.yaml' 2>&1 | grep -qE '^  \\+ new line [0-9]+: .*gamma: 0.5}'"
expect_fail "--extend refuses changed settings" 2 "--extend only adds grid points, but .* changes the settings of trial" \
  $mpirun -np 1 $tlsweep run --simulate --extend -o "$tmp/ref.h5" "$tmp/changed.yaml"
sed 's/backbone: \[resnet18, vgg11_bn\]/backbone: [resnet18, vgg11_bn, resnet34]/' sweeps/smoke.yaml >"$tmp/extended.yaml"
check "--extend with new grid points runs them" \
  timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 0.02 -q --extend -o "$tmp/ref.h5" "$tmp/extended.yaml"
check "--extend: 6 trials, each once, old ones kept" \
  $py tests/integration/check_results.py "$tmp/ref.h5" --trials 6 --epochs 3
finish
