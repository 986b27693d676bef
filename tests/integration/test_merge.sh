#!/usr/bin/env bash
# The job-array path: every grid point trained alone (`tlsweep train --sweep S --trial I
# --output T_I.h5`, as a Slurm array task would) and `tlsweep merge` of the per-trial files give
# the same file as `mpirun tlsweep run`: every trial once, every epoch once, the same numbers.
# Also: a train stopped by SIGUSR1 resumes to the uninterrupted numbers, and merge refuses files
# of another sweep, disagreeing duplicates and an existing output, and never changes its inputs.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT

check "synth-flowers makes a small dataset" \
  $tlsweep synth-flowers "$tmp/data" --per-class 4 --width 64 --height 64
sed -e "s|root: data/smoke|root: $tmp/data|" -e "s|^output: .*|output: $tmp/arr.h5|" \
  sweeps/smoke.yaml >"$tmp/s.yaml"
results() { $py tests/integration/check_results.py "$@" --mode real; }

# one thread on both sides, so the arithmetic is the same
check "reference: mpirun -np 3 tlsweep run" \
  timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q -o "$tmp/ref.h5" "$tmp/s.yaml"

names=$($tlsweep train --sweep "$tmp/s.yaml" --list)
check "--list: the four trials in grid order" \
  test "$(echo $names)" = "resnet18__linear-decay resnet18__exp-decay-3 vgg11_bn__linear-decay vgg11_bn__exp-decay-3"
expect_fail "--trial past the grid: exit 2 naming the sweep and the count" 2 \
  "s.yaml has 4 trials \(indices 0 to 3\); no trial index 4" \
  $tlsweep train --sweep "$tmp/s.yaml" --trial 4 --output "$tmp/t4.h5"
check "--trial past the grid wrote nothing" test ! -e "$tmp/t4.h5"

for i in 0 1 2 3; do
  check "train --trial $i --output t$i.h5 (exit 0)" \
    quiet $tlsweep train --sweep "$tmp/s.yaml" --trial $i --output "$tmp/t$i.h5" --threads 1
done
check "a per-trial file: the sweep's schema, its trial done, the others pending" \
  results "$tmp/t2.h5" --trials 4 --epochs 3 --done 1
check "the trial directory is run's (the sweep output's .h5.d/TRIAL)" \
  test -s "$tmp/arr.h5.d/vgg11_bn__linear-decay/best.safetensors"
out=$($tlsweep train --sweep "$tmp/s.yaml" --trial vgg11_bn__linear-decay --output "$tmp/t2.h5" --threads 1)
check "rerunning a done trial (by name) does nothing (exit 0)" grep -q "already done in $tmp/t2.h5" <<<"$out"
check "... and leaves it exactly once" results "$tmp/t2.h5" --trials 4 --epochs 3 --done 1

md5sum "$tmp"/t[0-3].h5 >"$tmp/inputs.md5"
out=$($tlsweep merge -o "$tmp/merged.h5" "$tmp"/t[0-3].h5)
check "merge of the four files (exit 0)" test $? -eq 0
check "merge says what it made" grep -q "4 trials from 4 files: 4 done, 0 running, 0 pending" <<<"$out"
check "merged = run: every trial and epoch once, the same numbers" \
  results "$tmp/merged.h5" --trials 4 --epochs 3 --compare "$tmp/ref.h5"
check "merged file names its inputs" $py -c "
import h5py, sys
f = h5py.File('$tmp/merged.h5', 'r')
sys.exit(0 if f.attrs['merged_from'].decode().split(',') == ['$tmp/t%d.h5' % i for i in range(4)] else 1)"
check "tlsweep status reads it" bash -c "$tlsweep status $tmp/merged.h5 | grep -q '4 trials: 4 done'"
if $py -c "import matplotlib" 2>/dev/null; then
  check "tlsweep plot draws it" $tlsweep plot "$tmp/merged.h5" -o "$tmp/figures" --format png
  check "... all five figures" test "$(ls "$tmp"/figures/*.png | wc -l)" -eq 5
else
  skip 2 "tlsweep plot (no matplotlib for $py)"
fi

expect_fail "an existing output is refused" 2 "merged.h5 exists; --force replaces it" \
  $tlsweep merge -o "$tmp/merged.h5" "$tmp/t0.h5"
check "--force replaces it" quiet $tlsweep merge --force -o "$tmp/merged.h5" "$tmp"/t[0-3].h5
expect_fail "an input as the output is refused, also with --force" 2 "t0.h5 is also an input" \
  $tlsweep merge --force -o "$tmp/t0.h5" "$tmp/t0.h5" "$tmp/t1.h5"

$tlsweep merge -o "$tmp/half.h5" "$tmp/t0.h5" "$tmp/t3.h5" >/dev/null
check "a partial merge: two done, two pending" results "$tmp/half.h5" --trials 4 --epochs 3 --done 2
check "tlsweep run finishes a partial merge (it is a sweep file)" \
  timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q -o "$tmp/half.h5" "$tmp/s.yaml"
check "... to the same numbers" results "$tmp/half.h5" --trials 4 --epochs 3 --compare "$tmp/ref.h5"

cp "$tmp/t1.h5" "$tmp/dup.h5"
check "a duplicate with the same numbers merges (the first kept)" \
  quiet $tlsweep merge -o "$tmp/dup_same.h5" "$tmp"/t[0-3].h5 "$tmp/dup.h5"
check "... each epoch once" results "$tmp/dup_same.h5" --trials 4 --epochs 3 --compare "$tmp/ref.h5"
$py -c "
import h5py
f = h5py.File('$tmp/dup.h5', 'r+')
c = f['curves'][:]
c['val_loss'][1] += 0.5
f['curves'][:] = c"
expect_fail "a done duplicate with other numbers: exit 2 naming both files" 2 \
  "trial resnet18__exp-decay-3 is done in both .*t1.h5 and .*dup.h5 with different numbers \(epoch 2\)" \
  $tlsweep merge -o "$tmp/dup_bad.h5" "$tmp"/t[0-3].h5 "$tmp/dup.h5"
check "... and writes nothing" test ! -e "$tmp/dup_bad.h5"

sed -e "s|seed: 0|seed: 1|" "$tmp/s.yaml" >"$tmp/other.yaml"
$tlsweep train --sweep "$tmp/other.yaml" --trial 0 --output "$tmp/other.h5" --threads 1 >/dev/null
expect_fail "a file of another sweep: exit 2 naming it" 2 "other.h5 comes from a different sweep than .*t0.h5" \
  $tlsweep merge -o "$tmp/mixed.h5" "$tmp/t0.h5" "$tmp/other.h5"
expect_fail "a missing input: exit 2 naming it" 2 "results $tmp/none.h5: cannot open the file.*No such file" \
  $tlsweep merge -o "$tmp/x.h5" "$tmp/t0.h5" "$tmp/none.h5"
$py -c "import h5py; h5py.File('$tmp/foreign.h5', 'w')['x'] = [1]"
expect_fail "an HDF5 file that is not tlsweep's: exit 2 naming it" 2 "foreign.h5: not a tlsweep results file" \
  $tlsweep merge -o "$tmp/x.h5" "$tmp/foreign.h5"
check "no merge changed an input" md5sum --quiet -c "$tmp/inputs.md5"

# a stop by signal: a longer trial (12 + 4 epochs), SIGUSR1 once two epochs are in the file
sed -e "s|epochs: 2,|epochs: 12,|" -e "s|epochs: 1,|epochs: 4,|" -e "s|^output: .*|output: $tmp/long.h5|" \
  "$tmp/s.yaml" >"$tmp/long.yaml"
long() { $tlsweep train --sweep "$tmp/long.yaml" --trial 0 --threads 1 --output "$@"; }
check "long trial uninterrupted" quiet long "$tmp/long_ref.h5"
rm -rf "$tmp/long.h5.d"
# not through the function: $! must be tlsweep itself, not a subshell
$tlsweep train --sweep "$tmp/long.yaml" --trial 0 --threads 1 --output "$tmp/stop.h5" >"$tmp/stop.log" 2>&1 &
job=$!
$py tests/integration/wait_rows.py "$tmp/stop.h5" 2 && kill -USR1 $job
wait $job
code=$?
check "SIGUSR1: train exits 3 (got $code)" test $code -eq 3
check "SIGUSR1: it says so" grep -q "stopped by a signal after epoch [0-9]*; rerun the same command to resume" "$tmp/stop.log"
check "SIGUSR1: the file marks the trial preempted, with some epochs" $py -c "
import h5py, sys
f = h5py.File('$tmp/stop.h5', 'r')
t, c = f['trials'][:], f['curves'][:]
sys.exit(0 if t['status'][0] == b'preempted' and 2 <= len(c) < 16 else 1)"
cp "$tmp/stop.h5" "$tmp/preempted.h5"
out=$(long "$tmp/stop.h5")
check "rerun resumes the file (exit 0)" test $? -eq 0
check "... from where it stopped" grep -qE "resuming $tmp/stop.h5: trial resnet18__linear-decay \([1-9][0-9]* of 16 epochs" <<<"$out"
check "... every epoch once, the uninterrupted numbers" \
  results "$tmp/stop.h5" --trials 4 --epochs 16 --done 1 --compare "$tmp/long_ref.h5"
check "merge: a done copy beats a preempted one given first" \
  quiet $tlsweep merge -o "$tmp/pre_done.h5" "$tmp/preempted.h5" "$tmp/stop.h5"
check "... the done one's epochs, once" \
  results "$tmp/pre_done.h5" --trials 4 --epochs 16 --done 1 --compare "$tmp/long_ref.h5"
finish
