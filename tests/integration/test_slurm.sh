#!/usr/bin/env bash
# Real Slurm: starts a private one-node cluster (munged, slurmctld, slurmd as root; see
# slurm_cluster.sh), then
#  - submits sweeps/slurm/tlsweep.sbatch with a real CPU sweep and stops it mid-run with
#    SIGTERM (scancel --signal=TERM --batch): a clean stop, exit 3, no requeue;
#  - submits it again on the same file, sends the time-limit signal mid-run (scancel
#    --signal=USR1 --batch), checks that the root stopped, said how long the stop took and
#    requeued the job, that the requeued job resumed the same file to the end, and that every
#    trial and epoch is there exactly once with the numbers of an uninterrupted run;
#  - submits the job-array variant with sweeps/slurm/submit-array.sh, preempts one array task
#    the same way, and checks the file `tlsweep merge` made against the same run.
# Every daemon it started is stopped by pid, also on failure. Skipped, with the reason, where
# the Slurm and MUNGE programs are missing (tools/install-deps.sh installs them) or not root.
cd "$(dirname "$0")/../.." || exit 1
. tests/integration/lib.sh
. tests/integration/slurm_cluster.sh

skip_all() { # the whole suite counts as one skip
  skip 1 "the Slurm tests: $1"
  finish
  exit
}
PATH=$PATH:/usr/sbin:/sbin # the daemons live in sbin
missing=()
for program in munged slurmctld slurmd sbatch scontrol scancel squeue sinfo; do
  command -v "$program" >/dev/null || missing+=("$program")
done
[ ${#missing[@]} -eq 0 ] || skip_all "${missing[*]} not installed (tools/install-deps.sh installs slurm-wlm and munge)"
[ "$(id -u)" -eq 0 ] || skip_all "the daemons run as root here; run this test as root"

setup_run_env
tlsweep=$(realpath "$tlsweep")
export TLSWEEP=$tlsweep
unset TLSWEEP_NO_REQUEUE TLSWEEP_LAUNCHER
stepds_before=" $(pgrep -d ' ' -x slurmstepd) "

# cancels what still runs, stops the daemons by pid, removes $tmp (unless KEEP is set)
cleanup() {
  if [ -n "${SLURM_CONF:-}" ] && [ ${#slurm_cluster_pids[@]} -gt 0 ]; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086 # one id per word
      scancel $jobs 2>/dev/null
      for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
  fi
  slurm_cluster_stop
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# job_state ID: the JobState of a job (or of each task of an array, one per line)
job_state() { scontrol -o show job "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
# wait_done TIMEOUT ID...: every job (every array task) has ended; 0 when all COMPLETED
wait_done() {
  local timeout=$1 deadline states
  shift
  deadline=$((SECONDS + timeout))
  while [ $SECONDS -lt $deadline ]; do
    states=$(for id in "$@"; do job_state "$id"; done)
    if [ -n "$states" ] && ! grep -qvE '^(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE)$' <<<"$states"; then
      ! grep -qv '^COMPLETED$' <<<"$states" && return 0
      echo "jobs $*: ended as $(tr '\n' ' ' <<<"$states")"
      return 1
    fi
    sleep 0.5
  done
  echo "jobs $*: not ended after $timeout s: $(tr '\n' ' ' <<<"$states")"
  return 1
}
restarts() { scontrol -o show job "$1" 2>/dev/null | grep -oE 'Restarts=[0-9]+' | cut -d= -f2; }

# a real CPU sweep long enough to be caught mid-run: the smoke sweep with 4 + 1 epochs on 32
# images per class (about 15 s with two workers on 2 cores), one thread per worker everywhere
check "synth-flowers makes the dataset" \
  "$tlsweep" synth-flowers "$tmp/data" --per-class 32 --width 64 --height 64
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s/epochs: 2, lr/epochs: 4, lr/" \
  sweeps/smoke.yaml >"$tmp/sweep.yaml"
compare() { # compare FILE: every trial done once, every epoch once, the reference's numbers
  "$py" tests/integration/check_results.py "$1" --trials 4 --epochs 5 --mode real --compare "$tmp/ref.h5"
}
# shellcheck disable=SC2086 # $mpirun is a command with its flags
check "uninterrupted reference run (mpirun -np 3, no Slurm)" \
  timeout 300 $mpirun -np 3 "$tlsweep" run --threads 1 -q -o "$tmp/ref.h5" "$tmp/sweep.yaml"

# in this shell (not $(...)): it exports SLURM_CONF and records the daemons' pids
if ! slurm_cluster_start "$tmp/cluster" >"$tmp/cluster.err"; then
  check "start munged, slurmctld and slurmd: $(cat "$tmp/cluster.err")" false
  finish
  exit
fi
check "one-node cluster up: $(hostname -s) idle in partition debug" true

# submit LOG: tlsweep.sbatch on the sweep into $tmp/out.h5 with 3 tasks; prints the job id
submit() {
  local id
  id=$(sbatch --parsable --ntasks 3 --cpus-per-task 1 --output "$1" \
    sweeps/slurm/tlsweep.sbatch "$tmp/sweep.yaml" "$tmp/out.h5" -q 2>"$tmp/sbatch.err")
  echo "${id%%;*}"
}
rows() { "$py" -c "import h5py; print(h5py.File('$1', 'r', libver='latest', swmr=True)['curves'].shape[0])"; }

# --- SIGTERM to the batch script: a clean stop, no requeue -----------------------------------
# (scancel --signal=TERM --batch; a plain scancel also signals mpirun, which kills the ranks)
log=$tmp/term.log
job=$(submit "$log")
check "sbatch tlsweep.sbatch: job ${job:-(none)} submitted$(sed 's/^/; /' "$tmp/sbatch.err")" test -n "$job"
if [ -z "$job" ]; then
  finish
  exit
fi
check "SIGTERM job: the job writes its first epoch" "$py" tests/integration/wait_rows.py "$tmp/out.h5" 1 90
scancel --signal=TERM --batch "$job"
wait_done 120 "$job" >/dev/null
check "SIGTERM: the job ends with tlsweep's exit status 3" \
  grep -q 'ExitCode=3:0' <<<"$(scontrol -o show job "$job")"
check "SIGTERM: not requeued (Restarts=0)" test "$(restarts "$job")" = 0
check "SIGTERM: the root stopped cleanly and did not requeue" \
  bash -c "grep -q '^tlsweep run: stopped in ' '$log' && ! grep -q 'requeued Slurm job' '$log'"
check "SIGTERM: the running trials are preempted" \
  grep -qE ' [1-9][0-9]* preempted$' <<<"$("$tlsweep" status "$tmp/out.h5" 2>&1)"
[ "$failed" -eq 0 ] || { echo "--- $log"; cat "$log"; }

# --- the time-limit signal: stop, requeue, resume to the end ---------------------------------
failed_before=$failed
log=$tmp/job.log
have=$(rows "$tmp/out.h5")
job=$(submit "$log")
# read only once the job has the file open again: a reader that opens the closed file first
# holds HDF5's file lock and keeps the writer out
resumed() {
  for _ in $(seq 360); do grep -q '^resuming ' "$log" 2>/dev/null && return 0; sleep 0.25; done
  return 1
}
check "the next job resumes the file" resumed
check "the next job writes another epoch" \
  "$py" tests/integration/wait_rows.py "$tmp/out.h5" $((have + 1)) 90
scancel --signal=USR1 --batch "$job"
requeued() {
  for _ in $(seq 240); do
    [ "$(restarts "$job")" -ge 1 ] 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}
check "SIGUSR1 to the batch script: the job is requeued (Restarts >= 1)" requeued
check "after the stop the file is closed and the running trials are preempted" \
  grep -qE ' [1-9][0-9]* preempted$' <<<"$("$tlsweep" status "$tmp/out.h5" 2>&1)"
check "the requeued job runs to the end" wait_done 180 "$job"
check "the job log says the root requeued it" grep -q "^tlsweep run: requeued Slurm job $job\$" "$log"
stop_line=$(grep -m1 -E '^tlsweep run: stopped in [0-9.]+ s \(signal to results closed\)' "$log")
check "the job log says how long the stop took" test -n "$stop_line"
[ -n "$stop_line" ] && echo "     ${stop_line#tlsweep run: }"
check "the log of both runs is kept (--open-mode=append)" \
  bash -c "grep -q '(restart 0)' '$log' && grep -q '(restart 1)' '$log' && grep -q '^resuming ' '$log'"
check "after two stops in two jobs: every trial and epoch once, the numbers of the uninterrupted run" \
  compare "$tmp/out.h5"
[ "$failed" -eq "$failed_before" ] || { echo "--- $log"; cat "$log"; }

# --- the job array: one task per trial, one of them preempted, then tlsweep merge -----------
failed_before=$failed
sub=$(sweeps/slurm/submit-array.sh "$tmp/sweep.yaml" "$tmp/array.h5" --cpus-per-task=1 2>&1)
array=$(sed -n 's/^array //p' <<<"$sub")
merge=$(sed -n 's/^merge //p' <<<"$sub")
check "submit-array.sh submits the array and the merge job" test -n "$array" -a -n "$merge"
[ -n "$array" ] && [ -n "$merge" ] || echo "--- submit-array.sh said:"$'\n'"$sub"
if [ -n "$array" ] && [ -n "$merge" ]; then
  check "array task 0 writes its first epoch" \
    "$py" tests/integration/wait_rows.py "$tmp/array.h5.array/trial-0.h5" 1 90
  scancel --signal=USR1 --batch "${array}_0"
  check "every array task and the merge job end COMPLETED" wait_done 240 "$array" "$merge"
  check "array task 0 was requeued after SIGUSR1 (Restarts >= 1)" \
    test "$(restarts "${array}_0")" -ge 1
  check "array task 0's log says it requeued itself" \
    grep -q "requeued Slurm job" "$tmp/array.h5.array/trial-0.log"
  check "merged file: every trial and epoch once, the numbers of the uninterrupted run" \
    compare "$tmp/array.h5"
  best_beside() { # every trial's best weights in array.h5.d/NAME/, as run puts them
    local name n=0
    for name in $("$tlsweep" train --sweep "$tmp/sweep.yaml" --list); do
      [ -s "$tmp/array.h5.d/$name/best.safetensors" ] || { echo "no $tmp/array.h5.d/$name/best.safetensors"; return 1; }
      n=$((n + 1))
    done
    [ "$n" -eq 4 ]
  }
  check "array: every trial's best weights beside the merged file (array.h5.d/NAME/)" best_beside
fi
if [ "$failed" -ne "$failed_before" ]; then
  for f in "$tmp"/array.h5.array/*.log; do [ -e "$f" ] && { echo "--- $f"; cat "$f"; }; done
fi

# --- nothing left behind ---------------------------------------------------------------------
pids=("${slurm_cluster_pids[@]}")
cleanup_ok() {
  cleanup
  trap - EXIT
  local pid p
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      echo "daemon pid $pid still runs"
      return 1
    fi
  done
  for p in $(pgrep -x slurmstepd); do
    if [[ $stepds_before != *" $p "* ]]; then
      echo "slurmstepd pid $p still runs"
      return 1
    fi
  done
  if pgrep -f "$tmp/" >/dev/null; then
    echo "processes still use $tmp: $(pgrep -af "$tmp/")"
    return 1
  fi
}
check "munged, slurmctld, slurmd and every job process stopped" cleanup_ok
finish
