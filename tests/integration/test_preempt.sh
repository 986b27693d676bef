#!/usr/bin/env bash
# Preemption inside an epoch, with real trials (CPU, tiny networks): a stop signal while the
# trials are in the middle of an epoch stops each at its next batch boundary: exit status 3,
# the trials preempted inside their epoch (the root says at which batch), and the rerun
# finishes with exactly the numbers of an uninterrupted run. Four ways: 3 ranks with the signal
# to the root alone, whose STOP must reach the workers (the path a time limit takes); 3 ranks
# with the signal to mpirun, which forwards it to every rank (as Slurm's SIGTERM reaches every
# task: a worker busy inside oneDNN once aborted with a corrupted heap in about one run in
# five, before the signals went to one sigwait thread); one rank, through mpirun (the root
# trains itself); 3 ranks with the signal to one worker alone, whose stopped trial makes the
# root stop the sweep (it used to hand that worker trial after trial, each stopped at once).
# Prints how long the stop took.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

# epochs of 0.2 to 0.4 s on one thread on a quiet machine (more under load): long enough to
# land a signal inside one when it is sent 0.1 s after the previous epoch was recorded
check "synth-flowers makes a dataset" \
  $tlsweep synth-flowers "$tmp/data" --classes 10 --per-class 40 --width 96 --height 96
# every trial computes its own phase 1, so that each runs the epochs the timing above assumes
# (a stop inside a shared phase 1 is test_share_phase1's)
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s|resize: 40, crop: 32|resize: 80, crop: 64|" \
  sweeps/smoke.yaml >"$tmp/p.yaml"
echo "share_phase1: false" >>"$tmp/p.yaml"
# one thread per worker in every run, so the arithmetic is the same
real() { # real NP OUTPUT: the sweep to its end
  timeout 120 $mpirun -np "$1" $tlsweep run --threads 1 -q -o "$2" "$tmp/p.yaml"
}
compare() { $py tests/integration/check_results.py "$1" --trials 4 --epochs 3 --mode real --compare "$tmp/ref.h5"; }

check "uninterrupted reference run (np 3)" real 3 "$tmp/ref.h5"

now() { date +%s.%N; }
# preempt NP TO OUTPUT LOG: starts the sweep, 0.1 s after a trial's epoch 2 ended (its third,
# fine-tuning, takes about 3 times as long as one of feature extraction) sends SIGUSR1 to rank
# 0 (TO=root), rank 1 (TO=worker) or mpirun (TO=mpirun), and waits for the job; sets $code, $ranks_gone (seconds from
# the signal until every rank has exited), $took (until mpirun has exited too) and $stopped:
# how long the trials took to stop, checkpoint and report. With 3 ranks that is read off the
# root's clock (its "stopping" event to the last "preempted"), as MPI's teardown after exit 3
# varies by seconds; with 1 rank, whose stop event comes once its trial returned, it is
# $ranks_gone.
preempt() {
  local np=$1 to=$2 out=$3 log=$4 sent target ranks
  $mpirun -np "$np" $tlsweep run --threads 1 -o "$out" "$tmp/p.yaml" >"$log" 2>&1 &
  local job=$!
  for _ in $(seq 3000); do grep -q ' epoch 2/3 ' "$log" && break; sleep 0.01; done
  target=$job
  [ "$to" = root ] && target=$(rank_pid $job 0)
  [ "$to" = worker ] && target=$(rank_pid $job 1)
  ranks=$(pgrep -P $job)
  sleep 0.1
  sent=$(now)
  kill -USR1 ${target:-$job}
  while kill -0 $ranks 2>/dev/null; do sleep 0.005; done
  ranks_gone=$(echo "$(now) - $sent" | bc)
  wait $job
  code=$?
  took=$(echo "$(now) - $sent" | bc)
  stopped=$ranks_gone
  [ "$np" -gt 1 ] &&
    stopped=$(awk -F'[][s]' '/stopping \(signal\)/ {a = $2} / preempted / {b = $2} END {print b - a}' "$log")
}

for how in 3:root 3:mpirun 1:mpirun 3:worker; do
  np=${how%:*}
  to=${how#*:}
  name="np $np, SIGUSR1 to $to"
  p=$tmp/p$np$to
  preempt $np $to "$p.h5" "$p.log"
  echo "     $name: trials stopped and reported in ${stopped} s; SIGUSR1 to every rank exited: ${ranks_gone} s, to mpirun's exit: ${took} s"
  check "$name: SIGUSR1 mid-epoch: exit status 3 (got $code)" test "$code" -eq 3
  [ "$code" -eq 3 ] || tail -n 30 "$p.log"
  # a batch here takes about 0.02 s, and a worker takes the root's STOP within 0.05 s (not at
  # its next heartbeat, 5 s away)
  check "$name: the trials stopped within 2.5 s (took $stopped s)" \
    awk -v s="$stopped" 'BEGIN { exit !(s < 2.5) }'
  check "$name: the root stopped cleanly" stopped_cleanly "$p.log"
  check "$name: a trial was preempted inside its epoch, at a batch" \
    grep -qE 'preempted in epoch [0-9]+ at batch [0-9]+/[0-9]+' "$p.log"
  check "$name: tlsweep status shows the preempted trials" \
    bash -c "$tlsweep status '$p.h5' | grep -qE '[1-9][0-9]* preempted'"
  check "$name: its resume checkpoint holds the position inside the epoch" \
    $py -c "
import glob, json, struct, sys
found = 0
for path in glob.glob('$p.h5.d/*/resume.safetensors'):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        meta = json.loads(f.read(n))['__metadata__']
    found += int(meta.get('epoch_batches_done', 0)) > 0 and int(meta.get('epoch_images', 0)) > 0
sys.exit(0 if found else 1)"
  check "$name: the rerun finishes (exit 0)" real $np "$p.h5"
  check "$name: exactly once, the numbers of the uninterrupted run" compare "$p.h5"
done
finish
