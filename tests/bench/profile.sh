#!/usr/bin/env bash
# Where a CPU training step's time goes, ours beside PyTorch's on the same shapes and threads:
# oneDNN's verbose log (both sides run oneDNN's primitives) summed per kind of primitive and
# direction, per step, and the rest of the step (everything outside oneDNN: Adam, the loss,
# casts, our own elementwise kernels; on PyTorch's side also ATen's batch norm, ReLU and
# autograd). The timed steps are the last lines of a run's log: a run of 2 steps tells how many
# lines one step adds, so the warm-up step (primitive creation, JIT, first touches) is left out.
#   tests/bench/profile.sh [BACKBONE SIZE BATCH [full|frozen [fp32|bf16]]]   (resnet18 112 16 full fp32)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
STEPS=${BENCH_STEPS:-4} # timed steps, at least 2
backbone=${1:-resnet18} size=${2:-112} batch=${3:-16} mode=${4:-full} precision=${5:-fp32}

# run WHO STEPS: the verbose log of one run in $log_dir/WHO-STEPS, its s/step line on stdout
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
run() {
  local cmd=("$BUILD/tests/bench/bench_train")
  [ "$1" = torch ] && cmd=("$PYTHON" tests/bench/bench_train_torch.py)
  DNNL_VERBOSE=1 ONEDNN_VERBOSE=1 OMP_NUM_THREADS=$THREADS "${cmd[@]}" "$backbone" "$size" \
    "$batch" "$2" "$THREADS" "$mode" "$precision" >"$log_dir/$1-$2"
  grep -E "^(ours|torch) " "$log_dir/$1-$2"
}
# milliseconds per step and kind ("convolution backward_data", "reorder", ...) over the last
# STEPS steps of a log that has $2 lines per step
sums() {
  grep '^onednn_verbose,exec' "$1" | tail -n $(($2 * STEPS)) |
    awk -F, -v n="$STEPS" '{ k = $4 ($4 == "reorder" ? "" : " " $6); s[k] += $NF }
                           END { for (k in s) printf "%s\t%.1f\n", k, s[k] / n }'
}
execs() { grep -c '^onednn_verbose,exec' "$1"; }

echo "where one $mode $precision step of $backbone (${size}px, batch $batch, $THREADS threads) goes:"
echo "milliseconds per step: the last $STEPS steps of oneDNN's verbose log"
declare -A ms
kinds=""
for who in ours torch; do
  run "$who" 1 >/dev/null
  line=$(run "$who" "$STEPS")
  # the timed steps' seconds/step (the last field), in ms
  ms[$who,step]=$(awk '{ printf "%.1f", $NF * 1000 }' <<<"$line")
  per_step=$(($(execs "$log_dir/$who-$STEPS") - $(execs "$log_dir/$who-1")))
  per_step=$((per_step / (STEPS - 1)))
  while IFS=$'\t' read -r kind value; do
    ms[$who,$kind]=$value
    kinds+=$'\n'$kind
  done < <(sums "$log_dir/$who-$STEPS" "$per_step")
done
printf '%-36s %9s %9s\n' "" ours torch
total_ours=0 total_torch=0
while read -r kind; do
  [ -n "$kind" ] || continue
  o=${ms[ours,$kind]:-0} t=${ms[torch,$kind]:-0}
  printf '%-36s %9s %9s\n' "$kind" "$o" "$t"
  total_ours=$(awk -v a="$total_ours" -v b="$o" 'BEGIN { print a + b }')
  total_torch=$(awk -v a="$total_torch" -v b="$t" 'BEGIN { print a + b }')
done < <(sort -u <<<"${kinds:-}")
printf '%-36s %9.1f %9.1f\n' "all oneDNN primitives" "$total_ours" "$total_torch"
printf '%-36s %9.1f %9.1f\n' "outside oneDNN" \
  "$(awk -v s="${ms[ours,step]}" -v d="$total_ours" 'BEGIN { print s - d }')" \
  "$(awk -v s="${ms[torch,step]}" -v d="$total_torch" 'BEGIN { print s - d }')"
printf '%-36s %9s %9s\n' "step (timed, verbose logging on)" "${ms[ours,step]}" "${ms[torch,step]}"
