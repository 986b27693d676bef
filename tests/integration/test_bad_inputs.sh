#!/usr/bin/env bash
# A catalogue of bad inputs through the real commands (tlsweep run under mpirun, tlsweep train):
# each case checks the exit status, the message (naming the file and the problem) and that
# nothing already written was damaged: a finished results file with its checkpoints stays
# byte-identical, and after a full disk (a checkpoint or the HDF5 file could not be written)
# the checkpoints and the file left behind resume to the numbers of an uninterrupted run.
# Grayscale and CMYK JPEGs must train, not fail. Root is needed for the mounts (read-only
# bind, small tmpfs); without them those checks count as skipped.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
tlsweep=$PWD/${TLSWEEP:-bin/tlsweep}
py=${PYTHON:-/usr/bin/python3}
make_bad=$PWD/tests/integration/make_bad_inputs.py
mpirun="mpirun --allow-run-as-root --oversubscribe"
export TERM=dumb
tmp=$(mktemp -d)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done
  [ -n "$KEEP" ] || rm -rf "$tmp"
  rm -f /tmp/tlsweep-pwned
}
trap cleanup EXIT
rm -f /tmp/tlsweep-pwned

$tlsweep synth-flowers "$tmp/data" --classes 4 --per-class 8 --width 48 --height 44 >/dev/null
sed "s#root: data/smoke#root: $tmp/data#" sweeps/smoke.yaml >"$tmp/smoke.yaml"
# variant NAME SED-SCRIPT: the smoke sweep with one change, as $tmp/NAME.yaml
variant() { sed "$2" "$tmp/smoke.yaml" >"$tmp/$1.yaml"; }
# dataset NAME: a copy of the good dataset to spoil
dataset() { rm -rf "$tmp/$1" && cp -r "$tmp/data" "$tmp/$1" && variant "$1" "s#root: $tmp/data#root: $tmp/$1#"; }
train() { # train OUT [options]: a tiny resnet18 trial without MPI
  local out=$1
  shift
  $tlsweep train --backbone resnet18 --width 8 --resize 40 --crop 32 --fe-epochs 2 --ft-epochs 1 \
    --threads 1 --out "$out" "$@"
}
run() { timeout 120 $mpirun -np "$1" $tlsweep run -q "${@:2}"; }

# What must survive every case: a finished real sweep, its file and its checkpoints.
check "a good sweep runs (the results every case must leave alone)" \
  run 3 -o "$tmp/ok.h5" "$tmp/smoke.yaml"
snapshot() { (cd "$tmp" && find ok.h5 ok.h5.d -type f | sort | xargs sha256sum); }
snapshot >"$tmp/ok.sha256"
intact() { snapshot | cmp -s - "$tmp/ok.sha256"; }
readable() {
  $py -c "import h5py,sys; t=h5py.File('$tmp/ok.h5','r')['trials'][:]; sys.exit(0 if list(t['status']).count(b'done')==4 else 1)"
}
# bad_sweep NAME PATTERN: the sweep is refused before anything starts; ok.h5 untouched
# (--simulate checks no dataset or weights, so those cases run for real: REAL=1)
bad_sweep() {
  local mode=--simulate
  [ -z "$REAL" ] || mode=
  expect_fail "sweep $1: exit 2 with the message" 2 "$2" run 1 $mode -o "$tmp/ok.h5" "$tmp/$1.yaml"
  check "sweep $1: the existing results are byte-identical" intact
}

# ---- sweep files ------------------------------------------------------------------------------
printf 'name: x\ngrid: {backbone: [resnet18\n' >"$tmp/malformed.yaml"
bad_sweep malformed "malformed.yaml:[23]: YAML syntax error: did not find expected ',' or ']'"
variant wrong_type 's/batch_size: 16/batch_size: sixteen/'
bad_sweep wrong_type "wrong_type.yaml:10: train.batch_size: expected a positive integer, got 'sixteen'"
variant wrong_lr 's/lr: 1.0e-3/lr: fast/'
bad_sweep wrong_lr "wrong_lr.yaml:17: schedules.linear-decay.feature_extraction.lr: expected a number > 0, got 'fast'"
variant negative_epochs 's/epochs: 2,/epochs: -2,/'
bad_sweep negative_epochs "negative_epochs.yaml:17: .*feature_extraction.epochs: expected an integer >= 0, got '-2'"
variant unknown_backbone 's/resnet18, vgg11_bn/resnet18, vgg12/'
bad_sweep unknown_backbone "unknown_backbone.yaml:13: grid.backbone: unknown backbone 'vgg12' \(known: resnet18"
variant undefined_schedule 's/linear-decay, exp-decay-3/linear-decay, cosine/'
bad_sweep undefined_schedule "undefined_schedule.yaml:14: grid.schedule: schedule 'cosine' is not defined under schedules"
variant missing_schedule '/^  schedule: /d'
bad_sweep missing_schedule "missing_schedule.yaml:6: grid.schedule: missing \(required\)"
variant empty_axis 's/backbone: \[resnet18, vgg11_bn\]/backbone: []/'
bad_sweep empty_axis "empty_axis.yaml:13: grid.backbone: expected a non-empty list of values, got an empty list"
printf 'name: x\ngrid: {}\n' >"$tmp/empty_grid.yaml"
bad_sweep empty_grid "empty_grid.yaml:[0-9]+: (grid|schedules)[.a-z]*: missing \(required\)"
variant typo_key 's/batch_size: 16/bach_size: 16/'
bad_sweep typo_key "typo_key.yaml:10: train.bach_size: unknown key \(known: batch_size"
: >"$tmp/empty.yaml"
bad_sweep empty "empty.yaml:1: \(top level\): the file is empty"
head -c 300 "$tlsweep" >"$tmp/binary.yaml"
bad_sweep binary "binary.yaml: not a text file \(it contains NUL bytes\)"
printf -- '- a\n- b\n' >"$tmp/list.yaml"
bad_sweep list "list.yaml:1: \(top level\): expected a mapping of sections, got a list"
expect_fail "sweep file missing: exit 2" 2 "$tmp/nothere.yaml: cannot open the sweep file: No such file or directory" \
  run 1 -o "$tmp/ok.h5" "$tmp/nothere.yaml"
dataset nosetid
rm "$tmp/nosetid/setid.mat"
REAL=1 bad_sweep nosetid "nosetid.yaml:7: data.root: dataset '$tmp/nosetid' has no setid.mat"
variant noroot "s#root: $tmp/data#root: $tmp/nothere#"
REAL=1 bad_sweep noroot "noroot.yaml:7: data.root: dataset '$tmp/nothere' does not exist"
variant noweights "s#weights: none#weights: $tmp/nothere.pth#"
REAL=1 bad_sweep noweights "noweights.yaml:6: model.weights: weights file '$tmp/nothere.pth' does not exist"
check "after every bad sweep: ok.h5 still reads in h5py with its 4 done trials" readable

# ---- output places ----------------------------------------------------------------------------
expect_fail "output under a regular file: exit 2" 2 "cannot create directory /etc/passwd/x.h5.d: Not a directory" \
  run 2 --simulate -o /etc/passwd/x.h5 "$tmp/smoke.yaml"
expect_fail "train --out under a regular file: exit 2" 2 "trial resnet18__exp-decay-3: cannot create directory /etc/passwd/t: Not a directory" \
  train /etc/passwd/t --data "$tmp/data" --weights none
mkdir -p "$tmp/ro"
if mount --bind "$tmp/ro" "$tmp/ro" 2>/dev/null && mounts+=("$tmp/ro") &&
  mount -o remount,bind,ro "$tmp/ro" 2>/dev/null; then
  expect_fail "read-only output directory: exit 2" 2 "cannot create directory $tmp/ro/x.h5.d: Read-only file system" \
    run 2 --simulate -o "$tmp/ro/x.h5" "$tmp/smoke.yaml"
  check "read-only output directory: nothing created" test ! -e "$tmp/ro/x.h5"
  expect_fail "train --out on a read-only file system: exit 2" 2 "trial resnet18__exp-decay-3: cannot create directory $tmp/ro/t: Read-only file system" \
    train "$tmp/ro/t" --data "$tmp/data" --weights none
else
  skip 3 "read-only output directory (bind mounts are not allowed here)"
fi

# ---- datasets: refused before anything starts (exit 2, no results file), naming the file ---------
# bad_data NAME PATTERN: run (and run -n) refuse the spoilt dataset with PATTERN
bad_data() {
  expect_fail "data $1: run exits 2 naming the file" 2 "trial resnet18__linear-decay: $2" \
    run 3 -o "$tmp/$1.h5" "$tmp/$1.yaml"
  check "data $1: nothing was written" test ! -e "$tmp/$1.h5" -a ! -e "$tmp/$1.h5.d"
  expect_fail "data $1: run -n refuses it too" 2 "$2" run 1 -n "$tmp/$1.yaml"
}
dataset labels_zero
$py "$make_bad" labels-zero "$tmp/labels_zero/imagelabels.mat" "$tmp/data/imagelabels.mat"
bad_data labels_zero "$tmp/labels_zero/imagelabels.mat: 'labels'\[0\] = 0 is not a positive integer"
dataset labels_matrix
$py "$make_bad" labels-rows "$tmp/labels_matrix/imagelabels.mat" "$tmp/data/imagelabels.mat"
expect_fail "data labels_matrix: train exits 2" 2 "labels_matrix/imagelabels.mat: 'labels' has shape 2x32, expected a 1xN or Nx1 vector" \
  train "$tmp/t_lm" --data "$tmp/labels_matrix" --weights none
dataset setid_range
$py "$make_bad" setid-range "$tmp/setid_range/setid.mat" "$tmp/data/setid.mat"
expect_fail "data setid_range: train exits 2" 2 "setid_range/setid.mat: 'tstid'\[[0-9]+\] = image id 99 is out of range \(imagelabels.mat has 32 images\)" \
  train "$tmp/t_sr" --data "$tmp/setid_range" --weights none
dataset truncated
first=$tmp/truncated/jpg/image_00001.jpg
head -c $(($(stat -c %s "$first") / 2)) "$tmp/data/jpg/image_00001.jpg" >"$first"
bad_data truncated "$first: truncated or corrupt JPEG \((Premature end of JPEG file|Invalid JPEG file structure: missing SOS marker)\)"
# a body cut short after a whole header passes the check; the trials that decode it fail
dataset body_cut
first=$tmp/body_cut/jpg/image_00001.jpg
head -c $(($(stat -c %s "$first") * 9 / 10)) "$tmp/data/jpg/image_00001.jpg" >"$first"
expect_fail "data body_cut: run exits 1 naming the file" 1 \
  "failed: resnet18__linear-decay: rank [12] on .*: $first: truncated or corrupt JPEG \(Premature end of JPEG file\)" \
  run 3 -o "$tmp/body_cut.h5" "$tmp/body_cut.yaml"
check "data body_cut: /trials records every trial failed with the reason" $py -c "
import h5py,sys
t = h5py.File('$tmp/body_cut.h5','r')['trials'][:]
sys.exit(0 if len(t) == 4 and all(s == b'failed' and b'Premature end of JPEG file' in e for s, e in zip(t['status'], t['error'])) else 1)"
dataset html
echo '<html>404 not found</html>' >"$tmp/html/jpg/image_00002.jpg"
bad_data html "$tmp/html/jpg/image_00002.jpg: not a JPEG file \(Not a JPEG file: starts with 0x3c 0x68\)"
dataset graycmyk
$py "$make_bad" gray "$tmp/graycmyk/jpg/image_00001.jpg" "$tmp/data/jpg/image_00001.jpg"
$py "$make_bad" cmyk "$tmp/graycmyk/jpg/image_00002.jpg" "$tmp/data/jpg/image_00002.jpg"
check "data graycmyk: grayscale and CMYK JPEGs train (run exits 0)" run 3 -o "$tmp/graycmyk.h5" "$tmp/graycmyk.yaml"
check "data graycmyk: every trial done" $py tests/integration/check_results.py "$tmp/graycmyk.h5" --trials 4 --epochs 3 --mode real
check "after the dataset cases: ok.h5 and its checkpoints are byte-identical" intact

# ---- weights files ----------------------------------------------------------------------------
# bad_weights FILE PATTERN: train refuses FILE and writes no checkpoint
bad_weights() {
  local name=$(basename "$1")
  expect_fail "weights $name: train exits 2 naming the file" 2 "$2" train "$tmp/w_$name" --data "$tmp/data" --weights "$1"
  check "weights $name: no checkpoint written" test ! -e "$tmp/w_$name/resume.safetensors"
}
: >"$tmp/zero.pth"
bad_weights "$tmp/zero.pth" "tlsweep train: trial resnet18__exp-decay-3: $tmp/zero.pth: file is empty"
$py "$make_bad" pth-foreign "$tmp/foreign.pth"
bad_weights "$tmp/foreign.pth" "$tmp/foreign.pth: pickle refers to global 'posix.system', which is not allowed in a weights file"
check "weights foreign.pth: the pickle's code never ran" test ! -e /tmp/tlsweep-pwned
head -c $(($(stat -c %s "$tmp/foreign.pth") / 2)) "$tmp/foreign.pth" >"$tmp/cut.pth"
bad_weights "$tmp/cut.pth" "$tmp/cut.pth: not a readable zip archive \(truncated or corrupt\)"
$py "$make_bad" pth-wrong-shape "$tmp/shape.pth"
bad_weights "$tmp/shape.pth" "$tmp/shape.pth: [0-9]+ tensor\(s\) do not match the model; wrong shape conv1.weight: file has \(5, 3, 7, 7\), model needs \(8, 3, 7, 7\)"
$py "$make_bad" st-overlap "$tmp/overlap.safetensors"
bad_weights "$tmp/overlap.safetensors" "$tmp/overlap.safetensors: tensors 'fc.bias' and 'conv1.bias' overlap in the data \(data_offsets\)"
$py "$make_bad" st-out-of-range "$tmp/range.safetensors"
bad_weights "$tmp/range.safetensors" "$tmp/range.safetensors: tensor 'fc.bias' data_offsets \[0, 16384\] lie outside the 64 data bytes"
best=$tmp/ok.h5.d/resnet18__exp-decay-3/best.safetensors
cp "$best" "$tmp/good.safetensors"
check "weights: a best.safetensors of the good sweep loads as pretrained weights" \
  quiet train "$tmp/w_good" --data "$tmp/data" --weights "$tmp/good.safetensors"
$py "$make_bad" st-reshape "$tmp/reshaped.safetensors" "$best"
bad_weights "$tmp/reshaped.safetensors" "$tmp/reshaped.safetensors: 1 tensor\(s\) do not match the model; wrong shape layer1.0.conv1.weight: file has \(8, 8, 9, 1\), model needs \(8, 8, 3, 3\)"
variant sweep_foreign "s#weights: none#weights: $tmp/foreign.pth#"
expect_fail "weights foreign.pth in a sweep: run exits 2 before any trial, naming the file" 2 \
  "trial vgg11_bn__linear-decay: $tmp/foreign.pth: pickle refers to global 'posix.system'" \
  run 3 -o "$tmp/sweep_foreign.h5" "$tmp/sweep_foreign.yaml"
check "weights foreign.pth in a sweep: nothing was written" test ! -e "$tmp/sweep_foreign.h5"
check "after the weights cases: ok.h5 and its checkpoints are byte-identical" intact

# ---- a disk that fills up while a checkpoint is written ---------------------------------------
# 3 MiB holds the phase-1 checkpoints (best 0.7 MB, resume 0.7 MB) but not the first phase-2
# resume checkpoint (2.1 MB, with the whole network's Adam state) beside the old one.
mkdir -p "$tmp/small"
if mount -t tmpfs -o size=3M tmpfs "$tmp/small" 2>/dev/null; then
  mounts+=("$tmp/small")
  train "$tmp/full_ref" --data "$tmp/data" --weights none >/dev/null
  expect_fail "disk full: train exits 1 naming the checkpoint and ENOSPC" 1 \
    "$tmp/small/t/resume.safetensors: cannot write $tmp/small/t/resume.safetensors.tmp: No space left on device" \
    train "$tmp/small/t" --data "$tmp/data" --weights none
  check "disk full: the previous checkpoints are still there, no .tmp left" \
    bash -c "test -s '$tmp/small/t/resume.safetensors' && test -s '$tmp/small/t/best.safetensors' && ! ls '$tmp/small/t/'*.tmp 2>/dev/null"
  mount -o remount,size=16M "$tmp/small"
  check "disk full: with space again the trial resumes and finishes" quiet train "$tmp/small/t" --data "$tmp/data" --weights none
  check "disk full: the resumed trial equals an uninterrupted one, byte for byte" \
    bash -c "cmp '$tmp/small/t/best.safetensors' '$tmp/full_ref/best.safetensors' && cmp '$tmp/small/t/resume.safetensors' '$tmp/full_ref/resume.safetensors'"
  # the same under tlsweep run, results file and checkpoints on a 3 MiB disk: the trials
  # fail with the reason, the file stays readable; with space again a rerun retries them and
  # ends as an uninterrupted run does
  mkdir -p "$tmp/small2"
  mount -t tmpfs -o size=3M tmpfs "$tmp/small2" && mounts+=("$tmp/small2")
  variant resnets 's/backbone: \[resnet18, vgg11_bn\]/backbone: [resnet18]/'
  # which write meets the full disk first, a checkpoint (the trial fails, exit 1) or the
  # root's HDF5 append (the sweep stops, exit 4), depends on timing: either must say why
  out=$(run 3 -o "$tmp/small2/r.h5" "$tmp/resnets.yaml" 2>&1 >/dev/null)
  code=$?
  check "disk full under run: exit 1 or 4 (got $code), the message names the file and ENOSPC" bash -c '
    { [ $1 -eq 1 ] && grep -qE "failed: resnet18__[a-z0-9-]+: rank [12] on [^:]+: $2/r.h5.d/resnet18__[a-z0-9-]+/(phase1/)?(best|resume).safetensors: cannot write .*\.tmp: No space left on device" <<<"$3"; } ||
    { [ $1 -eq 4 ] && grep -qE "results $2/r.h5: cannot append epoch [0-9]+ of trial resnet18__[a-z0-9-]+: .*\(No space left on device\)" <<<"$3"; }' _ $code "$tmp/small2" "$out"
  check "disk full under run: the file reads in h5py with its 2 trials" $py -c "
import h5py,sys
t = h5py.File('$tmp/small2/r.h5','r',libver='latest',swmr=True)['trials'][:]
sys.exit(0 if len(t) == 2 else 1)"
  mount -o remount,size=32M "$tmp/small2"
  check "disk full under run: with space again the rerun finishes (exit 0)" run 3 -o "$tmp/small2/r.h5" "$tmp/resnets.yaml"
  check "disk full under run: every epoch once, the numbers of the uninterrupted sweep" $py -c "
import h5py,sys
import numpy as np
a = h5py.File('$tmp/small2/r.h5','r')['curves'][:]
b = h5py.File('$tmp/ok.h5','r')['curves'][:]
b = b[np.char.startswith(b['trial'], b'resnet18__')]
key = lambda c: sorted(zip(c['trial'], c['epoch'], c['train_loss'], c['val_loss'], c['val_acc']))
sys.exit(0 if len(a) == 6 and key(a) == key(b) else 1)"
  # the root's HDF5 append meets a full disk (a simulated sweep writes no checkpoints; the
  # disk fills after the file is made, before the first epoch's rows allocate their chunk)
  umount "$tmp/small2" && mount -t tmpfs -o size=4M tmpfs "$tmp/small2"
  timeout 60 $mpirun -np 3 $tlsweep run --simulate --sim-seconds 8 -q -o "$tmp/small2/f.h5" \
    "$tmp/smoke.yaml" >"$tmp/fill.log" 2>&1 &
  job=$!
  for _ in $(seq 200); do [ -e "$tmp/small2/f.h5" ] && break; sleep 0.05; done
  sleep 0.3
  dd if=/dev/zero of="$tmp/small2/filler" bs=64k 2>/dev/null
  wait $job
  code=$?
  check "HDF5 on a full disk: the sweep stops with exit 4 (got $code)" test $code -eq 4
  check "HDF5 on a full disk: the message names the file, the epoch and ENOSPC" \
    grep -qE "^tlsweep run: results $tmp/small2/f.h5: cannot append epoch 1 of trial [a-z0-9_]+__[a-z0-9-]+: unable to flush dataset \(No space left on device\)" "$tmp/fill.log"
  rm -f "$tmp/small2/filler"
  check "HDF5 on a full disk: the file reads in h5py with its 4 trials" $py -c "
import h5py,sys
f = h5py.File('$tmp/small2/f.h5','r',libver='latest',swmr=True)
sys.exit(0 if f['trials'].shape[0] == 4 else 1)"
  check "HDF5 on a full disk: with space again the rerun finishes" \
    run 3 --simulate --sim-seconds 0.02 -o "$tmp/small2/f.h5" "$tmp/smoke.yaml"
  check "HDF5 on a full disk: every epoch once" \
    $py tests/integration/check_results.py "$tmp/small2/f.h5" --trials 4 --epochs 3
else
  skip 13 "disk full (cannot mount a tmpfs here)"
fi
check "at the end: ok.h5 and its checkpoints are byte-identical" intact
check "at the end: ok.h5 reads in h5py with its 4 done trials" readable
finish
