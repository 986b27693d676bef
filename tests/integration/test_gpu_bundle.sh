#!/usr/bin/env bash
# tools/gpu-bundle.sh: the bundle carried to the GPU machine runs from wherever it is
# unpacked, with a cleared environment, without the Debian libraries beside it: every
# library it loads resolves inside it (glibc and CUDA aside), and it trains a tiny trial
# alone and under its own mpirun. Where `unshare -m` is allowed, Debian's Open MPI and PMIx
# folders are hidden meanwhile, as they are absent on the GPU machine.
cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/integration/lib.sh
. tests/integration/lib.sh
py=${PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then
  echo "skipped: no CUDA toolkit (the bundle is of the CUDA build)"
  echo "0 passed, 0 failed, 1 skipped"
  exit 0
fi

check "gpu-bundle.sh builds the bundle" bash -c "tools/gpu-bundle.sh '$tmp/out' >'$tmp/bundle.log' 2>&1 || { cat '$tmp/bundle.log'; false; }"
tail -n 1 "$tmp/bundle.log"
tarball=$tmp/out/tlsweep-bundle.tar.xz
size=$(stat -c %s "$tarball" 2>/dev/null || echo 0)
check "the bundle is well under the 64 MiB carry limit ($((size >> 20)) MiB < 40 MiB)" \
  test "$size" -gt 0 -a "$size" -lt $((40 << 20))
mkdir -p "$tmp/moved"
tar -xJf "$tarball" -C "$tmp/moved"
B=$tmp/moved/tlsweep-bundle

# bundled CMD...: CMD with the bundle's env.sh and nothing else of ours in the environment,
# Debian's Open MPI and PMIx folders hidden when a mount namespace is allowed.
mkdir -p "$tmp/empty"
cat >"$tmp/bundled.sh" <<'EOF'
# bundled.sh HIDE TMP BUNDLE CMD...
hide=$1 tmp=$2 bundle=$3
shift 3
if [ "$hide" = 1 ]; then
  for d in /usr/lib/x86_64-linux-gnu/openmpi /usr/share/openmpi /etc/openmpi /usr/lib/x86_64-linux-gnu/pmix2; do
    [ ! -d "$d" ] || mount --bind "$tmp/empty" "$d" || exit 9
  done
fi
exec env -i HOME="$tmp" PATH=/usr/bin:/bin TERM=dumb bash -c '. "$0/env.sh" && exec "$@"' "$bundle" "$@"
EOF
if unshare -m true 2>/dev/null; then
  echo "(Debian's Open MPI and PMIx folders hidden with unshare -m)"
  bundled() { unshare -m bash "$tmp/bundled.sh" 1 "$tmp" "$B" "$@"; }
else
  echo "(unshare -m not allowed here: Debian's Open MPI stays visible; ldd checks the libraries)"
  bundled() { bash "$tmp/bundled.sh" 0 "$tmp" "$B" "$@"; }
fi

# every library a bundled binary or plugin loads: inside the bundle, else glibc or CUDA
# shellcheck disable=SC2016 # expanded by the bundled shell
resolved=$(bundled bash -c 'for f in "$0"/bin/* "$0"/lib/*.so* "$0"/lib/openmpi3/*.so "$0"/pmix/lib/pmix/*.so; do ldd "$f" 2>/dev/null | sed "s|^|$f: |"; done' "$B" |
  grep -F '=>')
outside=$(grep -vF "=> $B/" <<<"$resolved" |
  grep -vE '=> /usr/local/cuda/|:[[:space:]]+(libc|libm|libdl|librt|libpthread|libresolv|libutil|libmvec)\.so[.0-9]* =>')
check "every library resolves inside the bundle (glibc and CUDA aside; $(grep -cF "=> $B/" <<<"$resolved") inside)" \
  test -z "$outside" -a "$(grep -cF "=> $B/" <<<"$resolved")" -gt 100
[ -z "$outside" ] || echo "$outside" | head -n 20

version=$(bundled tlsweep --version 2>&1)
check "bundled tlsweep --version prints its version ($version)" grep -qE '^tlsweep [0-9]+\.[0-9]+' <<<"$version"

# logged NAME CMD...: CMD's output into $tmp/NAME.log, shown when it fails
logged() {
  local name=$1
  shift
  "$@" >"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; return 1; }
}
check "bundled synth-flowers writes a dataset" logged synth \
  bundled tlsweep synth-flowers "$tmp/data" --classes 4 --per-class 8 --width 48 --height 44
check "bundled tiny CPU train runs" logged train \
  bundled tlsweep train --backbone resnet18 --width 8 --resize 40 --crop 32 --fe-epochs 1 \
  --ft-epochs 1 --weights none --threads 1 --out "$tmp/t" --data "$tmp/data"
check "bundled tiny CPU train wrote its best weights" test -s "$tmp/t/best.safetensors"

sed -e "s#root: data/smoke#root: $tmp/data#" -e 's#backbone: \[resnet18, vgg11_bn\]#backbone: [resnet18]#' \
  -e 's#schedule: \[linear-decay, exp-decay-3\]#schedule: [linear-decay]#' sweeps/smoke.yaml >"$tmp/one.yaml"
check "bundled mpirun -np 2 tlsweep run exits 0" logged run \
  bundled timeout 180 mpirun --allow-run-as-root --oversubscribe -np 2 tlsweep run -q -o "$tmp/one.h5" "$tmp/one.yaml"
check "the results file holds a finished trial and the CUDA versions found at run time" "$py" - "$tmp/one.h5" <<'EOF'
import sys
import h5py

with h5py.File(sys.argv[1], "r") as f:
    trials = f["trials"][:]
    attrs = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in f.attrs.items()}
cuda = attrs.get("cuda_version", "")
print("  cuda_version: %s; cudnn_version: %s" % (cuda, attrs.get("cudnn_version")))
assert len(trials) == 1 and trials["status"][0] == b"done", trials
assert cuda.startswith("driver ") and ", runtime " in cuda and ", cuBLAS " in cuda, cuda
assert attrs.get("cudnn_version", "").count(".") == 2, attrs.get("cudnn_version")
EOF
finish
