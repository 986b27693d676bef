#!/usr/bin/env bash
# The GPU check (README, "One GPU, many GPUs"): on a machine with an NVIDIA GPU, the CUDA
# toolkit, PyTorch and cuDNN as the nvidia-cudnn Python package, but none of our Debian
# libraries. Builds the CUDA backend without oneDNN/MPI (make gpu-standalone), writes the
# PyTorch references, runs the op tests, then times one ResNet basic block step, ours
# against PyTorch's. Everything is logged under OUTDIR; exits nonzero when a step fails, but
# always runs the later steps that do not depend on it and always writes the logs.
#
# Usage: tools/gpu-check.sh OUTDIR     (about 2-4 minutes on an H200)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/gpu-check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
GPU_BUILD=${GPU_BUILD:-build-gpu}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
status=0

note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME LIMIT_SECONDS COMMAND...: runs with a time limit, logs to OUT/NAME.log
step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$SUMMARY"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  note "-- $name: exit $rc in $((SECONDS - t0)) s (log: $OUT/$name.log)"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}

note "gpu-check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
step nvidia-smi 30 nvidia-smi
step nvcc 30 "$CUDA_HOME/bin/nvcc" --version

# cuDNN (and cuBLAS, when the toolkit lacks it) from the Python packages PyTorch uses
pkg_dir() { "$PYTHON" -c "import $1, os; print(os.path.dirname($1.__file__))" 2>/dev/null; }
CUDNN_HOME=$(pkg_dir nvidia.cudnn)
NCCL_HOME=$(pkg_dir nvidia.nccl)
note "python: $(command -v "$PYTHON"), torch $("$PYTHON" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())' 2>&1)"
note "cuDNN package: ${CUDNN_HOME:-not found} ($(ls "${CUDNN_HOME:-/nonexistent}/lib" 2>/dev/null | tr '\n' ' '))"
note "NCCL package: ${NCCL_HOME:-not found} (not used yet)"
LIBDIRS="$CUDA_HOME/lib64"
[ -n "$CUDNN_HOME" ] && LIBDIRS="$LIBDIRS:$CUDNN_HOME/lib"
if ! ls "$CUDA_HOME"/lib64/libcublas.so* >/dev/null 2>&1; then
  CUBLAS_HOME=$(pkg_dir nvidia.cublas)
  note "cuBLAS: not in $CUDA_HOME/lib64; using ${CUBLAS_HOME:-nothing}"
  [ -n "$CUBLAS_HOME" ] && LIBDIRS="$LIBDIRS:$CUBLAS_HOME/lib" && export LIBRARY_PATH="$CUBLAS_HOME/lib"
fi
# cuDNN 9 loads its engine libraries with dlopen, so they must be on the search path
export LD_LIBRARY_PATH="$LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
note "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

CUDNN_ARGS=()
[ -n "$CUDNN_HOME" ] && CUDNN_ARGS=(CUDNN_HOME="$CUDNN_HOME")
# cuBLAS from a Python package has only libcublas.so.N: link it by that name
if [ -n "${CUBLAS_HOME:-}" ]; then
  echo "warning: cuBLAS from $CUBLAS_HOME: if linking fails, add -L$CUBLAS_HOME/lib -l:libcublas.so.13" | tee -a "$SUMMARY"
fi
if step build 400 make -j"$(nproc)" gpu-standalone GPU_BUILD="$GPU_BUILD" CUDA_HOME="$CUDA_HOME" \
  WERROR=1 "${CUDNN_ARGS[@]}"; then
  built=1
else
  built=0
fi
step ldd 30 ldd "$GPU_BUILD/test_cuda_ops"

export TLSWEEP_TESTDATA="$OUT/testdata"
step export 120 "$PYTHON" tests/gpu/export_cuda_ref.py "$TLSWEEP_TESTDATA"
if [ "$built" = 1 ]; then
  step test 180 "$GPU_BUILD/test_cuda_ops"
  grep -E '^(FAIL|skip|ok) |passed, .* failed' "$OUT/test.log" >>"$SUMMARY"
  # a skip on the GPU machine is a failure: the device must be found
  if grep -qE '^skip|skipped: no CUDA device' "$OUT/test.log"; then
    note "FAIL: the op tests skipped on the GPU machine"
    status=1
  fi
  step bench-ours 120 "$GPU_BUILD/bench_cuda_step" 64 64 56 20
  step bench-ours-tf32 120 env TLSWEEP_CUDA_TF32=1 "$GPU_BUILD/bench_cuda_step" 64 64 56 20
fi
step bench-torch 180 "$PYTHON" tests/gpu/bench_torch_step.py 64 64 56 20

ours=$(grep -oE '[0-9.]+ images/s' "$OUT/bench-ours.log" 2>/dev/null | head -1 | cut -d' ' -f1)
torch32=$(grep -E ' fp32 ' "$OUT/bench-torch.log" 2>/dev/null | grep -oE '[0-9.]+ images/s' | cut -d' ' -f1)
torch16=$(grep -E ' bf16 ' "$OUT/bench-torch.log" 2>/dev/null | grep -oE '[0-9.]+ images/s' | cut -d' ' -f1)
if [ -n "$ours" ] && [ -n "$torch32" ]; then
  note "$(awk -v o="$ours" -v t="$torch32" -v b="${torch16:-0}" 'BEGIN {
    printf "block step images/s: ours fp32 %.0f, torch fp32 %.0f (ours/torch %.2f)", o, t, o / t
    if (b > 0) printf ", torch bf16 %.0f (ours/torch-bf16 %.2f)", b, o / b }')"
fi
note "gpu-check: $([ "$status" -eq 0 ] && echo PASSED || echo FAILED); logs in $OUT"
exit "$status"
