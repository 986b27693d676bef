#!/bin/bash
# Submits a sweep as a Slurm job array (one task per trial, sweeps/slurm/tlsweep-array.sbatch)
# and a merge job that runs when every task has succeeded:
#
#   sweeps/slurm/submit-array.sh SWEEP.yaml OUTPUT.h5 [sbatch options for the array tasks]
#
# Where things land:
#   OUTPUT.h5.array/trial-I.h5     trial I's results (the sweep schema, one trial)
#   OUTPUT.h5.d/NAME/              trial NAME's best weights and resume checkpoint
#   OUTPUT.h5.array/trial-I.log    its log (a requeued task appends)
#   OUTPUT.h5                      `tlsweep merge` of every trial-I.h5, written by the merge job
#   OUTPUT.h5.array/merge.log      the merge job's log
# Prints the array and merge job ids. Run it from the directory the sweep's relative paths
# start at (the jobs run there). TLSWEEP=PATH picks the binary (default: bin/tlsweep here, else
# tlsweep on PATH). To resubmit after a failed task, run the same command again: trials done
# before are finished files, so their tasks end at once.
set -euo pipefail

say() { echo "submit-array: $*" >&2; }

if [ $# -lt 2 ]; then
  say "usage: sweeps/slurm/submit-array.sh SWEEP.yaml OUTPUT.h5 [sbatch options for the array tasks]"
  exit 2
fi
sweep=$1
output=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -r "$sweep" ]; then
  say "cannot read the sweep file $sweep"
  exit 2
fi
tlsweep=${TLSWEEP:-}
if [ -z "$tlsweep" ]; then
  if [ -x bin/tlsweep ]; then
    tlsweep=$(pwd)/bin/tlsweep
  else
    tlsweep=$(command -v tlsweep) || {
      say "no tlsweep: set TLSWEEP=PATH, or run this from the tlsweep checkout (bin/tlsweep)"
      exit 2
    }
  fi
fi
export TLSWEEP=$tlsweep

if ! names=$("$tlsweep" train --sweep "$sweep" --list); then
  say "tlsweep train --sweep $sweep --list failed (see above)"
  exit 2
fi
count=$(printf '%s\n' "$names" | grep -c .) || true
if [ "$count" -lt 1 ]; then
  say "the sweep $sweep has no trials"
  exit 2
fi
dir=$output.array
if ! mkdir -p "$dir"; then
  say "cannot create the directory $dir"
  exit 2
fi

array=$(sbatch --parsable --array="0-$((count - 1))" --output="$dir/trial-%a.log" "$@" \
  "$here/tlsweep-array.sbatch" "$sweep" "$dir")
array=${array%%;*} # --parsable prints JOBID[;CLUSTER]

# the files in grid index order; a missing one makes the merge fail and say which
files=()
for ((i = 0; i < count; i++)); do files+=("$dir/trial-$i.h5"); done
merge_cmd=$(printf '%q ' "$tlsweep" merge -o "$output" "${files[@]}")
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --job-name=tlsweep-merge --ntasks=1 --open-mode=append --output="$dir/merge.log" \
  --wrap="exec $merge_cmd")
merge=${merge%%;*}
echo "submitted $count trials as array job $array (logs $dir/trial-I.log), merge job $merge -> $output"
echo "array $array"
echo "merge $merge"
