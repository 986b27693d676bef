#!/usr/bin/env bash
# The image cache file end to end (worker/data/cache_file.h): the smoke sweep decoding into
# private memory (data.cache_dir: none), building the cache, mapping it, resuming after a crash
# from it and rebuilding a damaged one all give the same numbers; the results file names the
# cache files; tlsweep cache info and clear; train --cache-dir and the default folder beside
# the dataset; train --device-images on (the device data path, run by the CPU backend) gives
# the numbers of the loader's own transform.
cd "$(dirname "$0")/../.."
. tests/integration/lib.sh
setup_run_env
trap 'rm -rf "$tmp"' EXIT

check "synth-flowers makes a small dataset" \
  $tlsweep synth-flowers "$tmp/data" --per-class 4 --width 64 --height 64
sweep() { sed -e "s|root: data/smoke|root: $tmp/data, cache_dir: $1|" sweeps/smoke.yaml >"$2"; }
sweep none "$tmp/private.yaml"
sweep "$tmp/cache" "$tmp/cached.yaml"
# one thread per worker in every run, so the arithmetic is the same
run() { timeout 300 $mpirun -np 3 $tlsweep run --threads 1 -q -o "$2" "$1"; }
same() {
  $py tests/integration/check_results.py "$tmp/$1.h5" --trials 4 --epochs 3 --mode real \
    --compare "$tmp/private.h5"
}

check "private decode: smoke sweep (exit 0)" run "$tmp/private.yaml" "$tmp/private.h5"
check "private decode: no cache file anywhere" test ! -e "$tmp/cache" -a ! -e "$tmp/data/tlsweep-cache"
check "cache build: smoke sweep (exit 0)" run "$tmp/cached.yaml" "$tmp/build.h5"
check "cache build: the numbers of private decoding" same build
info=$($tlsweep cache info "$tmp/cache")
check "cache info: the train and val caches, both ok" test "$(grep -c ': ok$' <<<"$info")" -eq 2
check "cache info: 2 caches, nothing left over" test "$(ls "$tmp/cache" | wc -l)" -eq 2
caches=$(cd "$tmp/cache" && ls *.tlsimg | sort | tr '\n' ' ')
recorded=$($py -c "import h5py, sys; v = h5py.File(sys.argv[1], 'r').attrs['image_caches']
print(' '.join(sorted((v.decode() if isinstance(v, bytes) else v).split())))" "$tmp/build.h5")
check "provenance: image_caches names the cache files ($recorded)" test "$recorded " = "$caches"
inodes=$(stat -c %i "$tmp"/cache/*.tlsimg)
check "cache map: smoke sweep (exit 0)" run "$tmp/cached.yaml" "$tmp/map.h5"
check "cache map: the files were mapped, not rebuilt" test "$(stat -c %i "$tmp"/cache/*.tlsimg)" = "$inodes"
check "cache map: the numbers of private decoding" same map

TLSWEEP_TEST_KILL_AFTER_LR=5 run "$tmp/cached.yaml" "$tmp/crash.h5" >/dev/null 2>&1
check "crash inside an HDF5 append: the job died" test $? -ne 0
check "crash: the rerun resumes from the cache (exit 0)" run "$tmp/cached.yaml" "$tmp/crash.h5"
check "crash: the numbers of private decoding" same crash

# damage a pixel of one cache: info says so; the next run rebuilds it, says so, same numbers
damaged=$(ls "$tmp"/cache/*.tlsimg | head -n 1)
printf 'xx' | dd of="$damaged" bs=1 seek=6000 conv=notrunc status=none
check "damaged: cache info calls it unusable" \
  bash -c "$tlsweep cache info '$tmp/cache' | grep -q 'unusable, the next trial rebuilds it: .*checksum mismatch'"
out=$(run "$tmp/cached.yaml" "$tmp/damaged.h5" 2>&1)
check "damaged: smoke sweep (exit 0)" test $? -eq 0
check "damaged: the rebuild is announced" grep -q "checksum mismatch (corrupt); rebuilding it" <<<"$out"
check "damaged: the numbers of private decoding" same damaged
check "damaged: both caches ok again" test "$($tlsweep cache info "$tmp/cache" | grep -c ': ok$')" -eq 2

# train: --cache-dir, none, and the default folder beside the dataset; the best weights of
# each are the same bytes
train() {
  timeout 300 $tlsweep train --backbone resnet18 --width 8 --weights none --data "$tmp/data" \
    --resize 40 --crop 32 --fe-epochs 1 --ft-epochs 1 --threads 1 --out "$tmp/$1" "${@:2}" >"$tmp/$1.out"
}
# a train run's epoch lines without their timings: losses, accuracies, lr
epochs() { grep '^epoch' "$tmp/$1.out" | sed -E 's/  [0-9.]+ s  [0-9]+ img\/s$//'; }
check "train --cache-dir none (exit 0)" train none --cache-dir none
check "train --cache-dir none: no cache file" test ! -e "$tmp/data/tlsweep-cache"
check "train --cache-dir DIR (exit 0)" train dir --cache-dir "$tmp/train-cache"
check "train --cache-dir DIR: its 2 caches there" test "$(ls "$tmp"/train-cache/*.tlsimg | wc -l)" -eq 2
check "train --cache-dir DIR: the weights of private decoding" cmp "$tmp/dir/best.safetensors" "$tmp/none/best.safetensors"
check "train, default cache folder (exit 0)" train default
check "train: the default folder is beside the dataset" ls "$tmp"/data/tlsweep-cache/*.tlsimg
check "train, default cache: the weights of private decoding" cmp "$tmp/default/best.safetensors" "$tmp/none/best.safetensors"
check "train --device-images on (exit 0)" train device --cache-dir none --device-images on
check "train --device-images on: 2 epochs, each loss and accuracy as the loader's" \
  test "$(epochs device | wc -l)" -eq 2 -a "$(epochs device)" = "$(epochs none)"
check "train --device-images on: the weights of the loader's transform" \
  cmp "$tmp/device/best.safetensors" "$tmp/none/best.safetensors"
expect_fail "train --device-images maybe: exit 2" 2 "--device-images is auto, on or off, got 'maybe'" \
  $tlsweep train --backbone resnet18 --data "$tmp/data" --device-images maybe

out=$($tlsweep cache clear "$tmp/cache")
check "cache clear: removes both" test "$(grep -c '^removed ' <<<"$out")" -eq 2
check "cache clear: the folder is empty" test -z "$(ls "$tmp/cache")"
check "cache info: no caches" bash -c "$tlsweep cache info '$tmp/cache' | grep -q '^no image caches$'"
expect_fail "cache without a folder: usage, exit 2" 2 "usage: tlsweep cache" $tlsweep cache info
expect_fail "cache info of a missing folder: exit 2" 2 "nope: No such file" $tlsweep cache info "$tmp/nope"
finish
