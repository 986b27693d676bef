#!/usr/bin/env bash
# Fault injection over the smoke sweep on a tiny dataset: 20 runs, each killed with kill -9 at a
# seeded random moment (a worker rank, the root, or the whole job), then rerun to completion.
# After each: every grid point once in /trials, every epoch committed before the kill still
# there once with the same numbers, every epoch once in /curves, the file opens in h5py, and
# every column equals an uninterrupted run's (simulated runs and, for a few, real CPU training).
# A simulated epoch depends on the state in its trial's checkpoint, as a real one does. A real
# run counts only when the kill landed after at least one committed epoch and the rerun
# resumed the file; a self-kill hook that did not fire fails the run.
# Then a worker that hangs (TLSWEEP_TEST_HANG_AFTER_EPOCH) must be found by the heartbeat
# timeout, reported with its rank and trial, and the sweep resume from there.
# FAULT_SEED changes the timings; FAULT_RUNS the number of runs (default 20, every 5th real).
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
tlsweep=$PWD/${TLSWEEP:-bin/tlsweep}
py=${PYTHON:-/usr/bin/python3}
mpirun="mpirun --allow-run-as-root --oversubscribe"
export TERM=dumb
seed=${FAULT_SEED:-20261128}
runs=${FAULT_RUNS:-20}
RANDOM=$seed
tmp=$(mktemp -d)
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

$tlsweep synth-flowers "$tmp/data" --classes 4 --per-class 6 --width 48 --height 44 >/dev/null
sed "s#root: data/smoke#root: $tmp/data#" sweeps/smoke.yaml >"$tmp/smoke.yaml"
# run OUTPUT [options]: the smoke sweep on 3 ranks, to completion (or failure)
run() {
  local out=$1
  shift
  timeout 120 $mpirun -np 3 $tlsweep run -q -o "$out" "$@" "$tmp/smoke.yaml"
}
check "uninterrupted simulated reference" run "$tmp/ref_sim.h5" --simulate --sim-seconds 0.02
check "uninterrupted real reference" run "$tmp/ref_real.h5"

# random_delay LO_MS HI_MS: seconds, drawn from the seeded $RANDOM
random_delay() {
  local ms=$(($1 + RANDOM % ($2 - $1)))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

kills=0 landed=0 recoveries=0 problems=0
declare -A by_target=()
for i in $(seq 1 "$runs"); do
  out=$tmp/run$i.h5
  case $((i % 3)) in
    0) target=job ;;
    1) target=worker ;;
    2) target=root ;;
  esac
  if [ $((i % 5)) -eq 0 ]; then
    # real epochs take a few tens of ms here: the kill follows a seeded number of committed
    # epochs (of 12) instead of a delay
    mode=real opts=() ref=$tmp/ref_real.h5 delay=0 after=$((1 + RANDOM % 5))
  else
    mode=simulated opts=(--simulate --sim-seconds 1) ref=$tmp/ref_sim.h5 delay=$(random_delay 300 2400)
  fi
  # every 6th run (a root kill) the root kills itself inside a seeded random HDF5 append instead,
  # between an epoch's /lr rows and its /curves row (after a committed epoch when real)
  hook=
  [ $((i % 6)) -eq 2 ] && hook=$((1 + RANDOM % 11))
  [ -n "$hook" ] && [ $mode = real ] && hook=$((hook > 1 ? hook : 2))
  TLSWEEP_TEST_KILL_AFTER_LR=$hook $mpirun -x TLSWEEP_TEST_KILL_AFTER_LR -np 3 $tlsweep run -q \
    -o "$out" "${opts[@]}" "$tmp/smoke.yaml" >"$tmp/run$i.log" 2>&1 &
  job=$!
  disown $job # no "Killed" notice from bash; the loop below waits for it with kill -0
  [ -z "$hook" ] || delay=0
  [ $mode = real ] && [ -z "$hook" ] && $py tests/integration/wait_rows.py "$out" $after 60 >/dev/null
  sleep "$delay"
  victim=
  case $target in
    job) victim=$job ;;
    worker) victim=$(rank_pid $job $((1 + RANDOM % 2))) ;;
    root) victim=$(rank_pid $job 0) ;;
  esac
  kills=$((kills + 1))
  hit=0
  what="run $i ($mode): kill -9 $target after ${delay}s"
  [ $mode = real ] && what="run $i ($mode): kill -9 $target once $after epochs were in the file"
  if [ -n "$hook" ]; then
    what="run $i ($mode): the root kills itself inside HDF5 append $hook"
    for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
    if grep -q "exited on signal 9" "$tmp/run$i.log"; then
      hit=1 landed=$((landed + 1))
      by_target[root]=$((${by_target[root]:-0} + 1))
    else
      what="$what (it did not die)"
    fi
  elif [ -n "$victim" ] && kill -0 "$victim" 2>/dev/null; then
    if [ $target = job ]; then kill_job $job; else kill -9 "$victim"; fi
    hit=1 landed=$((landed + 1))
    by_target[$target]=$((${by_target[$target]:-0} + 1))
  else
    what="$what (the run had already ended)"
  fi
  # Open MPI ends the job when one rank dies; give it 20 s, then end what is left
  for _ in $(seq 200); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  kill -0 $job 2>/dev/null && { echo "note: $what: mpirun still there after 20 s, killed"; kill_job $job; }
  committed=$($py tests/integration/fault_check.py snapshot "$out" "$tmp/snap$i.json")
  rerun_opts=("${opts[@]}")
  [ $mode = simulated ] && rerun_opts=(--simulate --sim-seconds 0.02)
  # what makes this run count: a hook that fired; for a real run, a kill after a committed epoch
  # and a rerun that resumed the file
  valid=1
  [ -n "$hook" ] && [ $hit = 0 ] && valid=0
  [ $mode = real ] && { [ $hit = 0 ] || [ "$committed" -lt 1 ]; } && valid=0
  if [ $valid = 1 ] && run "$out" "${rerun_opts[@]}" >"$tmp/rerun$i.log" 2>&1 &&
    { [ $mode = simulated ] || grep -q "^resuming $out: " "$tmp/rerun$i.log"; } &&
    $py tests/integration/check_results.py "$out" --trials 4 --epochs 3 --mode $mode --compare "$ref" &&
    $py tests/integration/fault_check.py verify "$out" "$tmp/snap$i.json"; then
    recoveries=$((recoveries + 1))
    echo "ok   $what: $committed epochs committed before, rerun complete, exactly once, every column the same"
    passed=$((passed + 1))
  else
    why="the rerun or the check failed"
    [ $valid = 0 ] && why="the run does not count (a real run needs a kill after a committed epoch, a hook must fire)"
    echo "FAIL $what: $committed epochs committed before; $why; rerun log:"
    sed 's/^/    /' "$tmp/rerun$i.log" | head -20
    failed=$((failed + 1))
  fi
done
echo "fault injection (seed $seed): $runs runs, $kills kills ($landed landed: ${by_target[worker]:-0} worker, ${by_target[root]:-0} root, ${by_target[job]:-0} whole job), $recoveries recovered exactly once"
check "at least half of the kills landed on a running job" test $((landed * 2)) -ge $kills

# A worker that hangs after its 2nd epoch (heartbeats stop too): the root's heartbeat timeout
# finds it, names rank and trial, and stops the sweep (exit 3); the rerun resumes it.
start=$(date +%s)
TLSWEEP_TEST_HANG_AFTER_EPOCH=2,2 timeout 60 $mpirun -x TLSWEEP_TEST_HANG_AFTER_EPOCH -np 3 \
  $tlsweep run -q --simulate --sim-seconds 0.5 --heartbeat 0.2 --heartbeat-timeout 2 \
  -o "$tmp/hang.h5" "$tmp/smoke.yaml" >"$tmp/hang.log" 2>&1
code=$?
elapsed=$(($(date +%s) - start))
check "hang: the sweep stops with exit 3 (got $code) within 30 s (took $elapsed s)" test $code -eq 3 -a $elapsed -lt 30
check "hang: the report names the rank, the trial and the timeout" \
  grep -qE "^tlsweep run: rank 2 on [^:]+: trial [a-z0-9_]+__[a-z0-9-]+: no message for [0-9]+ s \(heartbeat timeout 2 s\); stopping the sweep, rerun to resume" "$tmp/hang.log"
trial=$(grep -oE "^tlsweep run: rank 2 on [^:]+: trial [^:]+" "$tmp/hang.log" | sed 's/.*trial //')
check "hang: status shows $trial interrupted on rank 2 (running when the run stopped)" \
  bash -c "$tlsweep status '$tmp/hang.h5' | grep -qE '^interrupted: $trial +rank 2 on '"
check "hang: rerun (without the hook) finishes" run "$tmp/hang.h5" --simulate --sim-seconds 0.02
check "hang: exactly once, same numbers" \
  $py tests/integration/check_results.py "$tmp/hang.h5" --trials 4 --epochs 3 --compare "$tmp/ref_sim.h5"
finish
