#!/usr/bin/env bash
# Results are never silently wrong: a rerun of `tlsweep train` with other settings refuses to
# continue the old trial (exit 2, every difference listed, the checkpoint untouched) until
# --restart, while one that changes only where the batches are made resumes it; a checkpoint that did not record its settings is refused; a refused run leaves the
# disk as it was (a non-HDF5 output file, the folders it would have made); impossible values
# (a width of 100000, a stray label that widens the head, validation images in the training
# split) are refused before anything trains.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
[ -n "$KEEP" ] || trap 'rm -rf "$tmp"' EXIT
$tlsweep synth-flowers "$tmp/data" --classes 4 --per-class 8 --width 40 --height 36 >/dev/null

train() { # train [options]: a tiny flag-built trial in $tmp/t (a rerun resumes it)
  $tlsweep train --backbone resnet18 --width 16 --resize 36 --crop 32 --fe-epochs 1 \
    --ft-epochs 1 --weights none --threads 2 --data "$tmp/data" --out "$tmp/t" "$@"
}
sums() { sha256sum "$tmp"/t/*.safetensors; }
says() { # says PATTERN [options]: train exits 0 and prints a line matching PATTERN
  local pattern=$1 out
  shift
  out=$(train "$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"
}
already_done() { # already_done [options]: train exits 0 without training an epoch
  local out
  out=$(train "$@" 2>&1) && ! grep -q '^epoch' <<<"$out"
}

check "a first run trains" says "best weights in $tmp/t/best.safetensors"
before=$(sums)
expect_fail "rerun with another seed: exit 2 naming the setting" 2 \
  "resume.safetensors holds a trial with other settings \(1 differ\):" train --seed 5
expect_fail "  the difference reads checkpoint 0, now 5" 2 "^  train.seed: checkpoint 0, now 5$" \
  train --seed 5
expect_fail "rerun with other phases: every difference listed" 2 \
  "feature_extraction.lr: checkpoint 0.001, now 0.5" train --fe-epochs 3 --fe-lr 0.5
expect_fail "  and the way out is named" 2 "rerun with --restart to start this trial over in $tmp/t" \
  train --ft-epochs 2
check "refused reruns left the checkpoints as they were" test "$(sums)" = "$before"
check "the same command resumes the finished trial" already_done
check "  and with --device-images on too (where batches are made is no setting)" \
  already_done --device-images on
check "--restart trains the new settings from scratch" says "^epoch  1 " --seed 5 --restart
check "  and the checkpoint now holds them" already_done --seed 5
expect_fail "--restart with a grid point is refused" 2 "--restart is for a flag-built trial" \
  $tlsweep train --sweep sweeps/smoke.yaml --trial 0 --restart

# a checkpoint of the previous format (no settings): rewrite the header's metadata in place
$py - "$tmp/t/resume.safetensors" <<'EOF'
import json, struct, sys
path = sys.argv[1]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
meta = header["__metadata__"]
meta["format"] = "tlsweep-resume-1"
for key in [k for k in meta if k.startswith("setting.")]:
    del meta[key]
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
EOF
expect_fail "a checkpoint without settings is refused" 2 \
  "a tlsweep-resume-1 checkpoint, written by an older tlsweep that did not record" train --seed 5

# run: a file that is not HDF5 is never written over, and a refusal leaves no folders
sed "s#root: data/smoke#root: $tmp/data#" sweeps/smoke.yaml >"$tmp/s.yaml"

# a grid point never continues a checkpoint of other settings either: the trial fails at once,
# not retried (it would fail the same way), and train exits 2 as for a flag-built trial
check "a grid point trains into its directory" \
  bash -c '"$@" >/dev/null' _ $tlsweep train --sweep "$tmp/s.yaml" --trial 0 --out "$tmp/gp" --threads 1
sed 's/seed: 0/seed: 5/' "$tmp/s.yaml" >"$tmp/s5.yaml"
expect_fail "the same directory with another seed: exit 2, not retried" 2 \
  "train.seed: checkpoint 0, now 5.*\(not retried: its resume checkpoint is unusable\)" \
  $tlsweep train --sweep "$tmp/s5.yaml" --trial 0 --out "$tmp/gp" --threads 1
mkdir "$tmp/out" && : >"$tmp/out/r.h5"
expect_fail "run refuses an empty output file" 2 "out/r.h5: not an HDF5 file; refusing to write over it" \
  $tlsweep run --simulate -q -o "$tmp/out/r.h5" "$tmp/s.yaml"
check "  which stays empty" test ! -s "$tmp/out/r.h5"
check "  and no r.h5.d folder appears" test ! -e "$tmp/out/r.h5.d"
expect_fail "train --output refuses it too" 2 "not an HDF5 file" \
  $tlsweep train --sweep "$tmp/s.yaml" --trial 0 --output "$tmp/out/r.h5"
check "  still no r.h5.d folder" test ! -e "$tmp/out/r.h5.d"

# impossible values, refused before anything trains
sed 's/width: 8}/width: 100000}/' "$tmp/s.yaml" >"$tmp/wide.yaml"
expect_fail "a width of 100000 in a sweep" 2 "wide.yaml:[0-9]+: model.width: expected at most 4096, got 100000" \
  $tlsweep run -n "$tmp/wide.yaml"
$py -c "print('name: deep\ngrid: ' + '[' * 100000)" >"$tmp/deep.yaml"
expect_fail "100,000 nested lists stop at the nesting cap" 2 "deep.yaml:2: nested more than 32 levels deep" \
  $tlsweep run -n "$tmp/deep.yaml"
cp -r "$tmp/data" "$tmp/stray"
$py -c "
import scipy.io as sio
m = sio.loadmat('$tmp/stray/imagelabels.mat'); labels = m['labels']; labels[0, 5] = 999
sio.savemat('$tmp/stray/imagelabels.mat', {'labels': labels})"
expect_fail "a stray label 999 does not widen the head" 2 \
  "stray/imagelabels.mat: label 999 \(image 6\) is larger than the number of images" \
  train --data "$tmp/stray" --out "$tmp/t_stray"
$py -c "
import scipy.io as sio
m = sio.loadmat('$tmp/stray/imagelabels.mat'); labels = m['labels']; labels[0, 5] = 30
sio.savemat('$tmp/stray/imagelabels.mat', {'labels': labels})"
expect_fail "labels that skip classes" 2 "stray/imagelabels.mat: no image has label 5, but image 6 has label 30" \
  train --data "$tmp/stray" --out "$tmp/t_stray"
expect_fail "validation images in the training split" 2 \
  "image [0-9]+ is in validation split 'tstid' and in training split 'tstid'" \
  train --train-splits tstid --val-splits tstid,valid --out "$tmp/t_same"
check "refused trials made no directories" test ! -e "$tmp/t_stray" -a ! -e "$tmp/t_same"
expect_fail "a batch that cannot fit in memory is refused before anything is allocated" 2 \
  "resnet50 at batch 65536 and 224 px needs about [0-9.]+ GiB .* more than the [0-9.]+ GiB available here" \
  $tlsweep train --backbone resnet50 --data "$tmp/data" --weights none --batch-size 65536 --out "$tmp/t_big"
# a relative path that is not there: the message also says where it was looked for
expect_fail "a missing relative dataset names the absolute path tried" 2 \
  "nodata/imagelabels.mat: missing or unreadable \(tried $tmp/nodata/imagelabels.mat\)" \
  bash -c "cd '$tmp' && $PWD/$tlsweep train --backbone resnet18 --data nodata --weights none"
finish
