#!/usr/bin/env bash
# The one device run: everything about the GPU that CI cannot check, in one script that
# finishes inside 8 minutes on a machine with an NVIDIA GPU, the CUDA toolkit (nvcc),
# PyTorch, and cuDNN/cuBLAS/NCCL as Python packages, but none of our Debian libraries.
#
#   here:   tools/gpu-bundle.sh build-bundle     (bin/tlsweep with its libraries and mpirun)
#   there:  tools/gpu-check.sh OUTDIR            (the device tool: carry ["build-bundle"])
#
# Steps (each logs to OUTDIR/NAME.log, and a failure does not stop the next ones):
#   1. the machine: nvidia-smi, the nvidia Python packages, PyTorch's versions
#   2. the CUDA op tests against PyTorch (make gpu-standalone: needs only nvcc and the
#      packages; REQUIRE_GPU=1, so a skip is a failure)
#   3. with the bundle: one small trial on the GPU and on the CPU (same weights, no
#      augmentation, fp32, deterministic): per-epoch train and val losses within LOSS_TOL
#      relative; the same trial on the GPU stopped by SIGUSR1 and rerun: every epoch the
#      rerun trains equals the uninterrupted run's to the printed digits; `mpirun -np 3`
#      with two workers sharing the GPU (ranks_per_gpu: 2) writing a results file
#   4. the benchmark, on the same GPU in the same run: one ResNet basic block step (ours,
#      PyTorch) and a ResNet50 training step, batch 64 and 128, fp32 and TF32 (ours: the
#      fine-tuning epoch of `tlsweep train`, data pipeline included; PyTorch: eager,
#      channels_last, random data), as images/s and the ratio
# OUTDIR/summary.txt ends with every step's verdict and the figures; exit 1 if any failed.
# shellcheck disable=SC1091 # env.sh is the bundle's, made by tools/gpu-bundle.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${1:?usage: tools/gpu-check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
BUNDLE=${BUNDLE:-build-bundle/tlsweep-bundle.tar.xz}
GPU_BUILD=${GPU_BUILD:-build-gpu}
LOSS_TOL=${LOSS_TOL:-0.02} # GPU vs CPU fp32 losses: |gpu - cpu| <= LOSS_TOL * max(1, |cpu|)
BUDGET=${BUDGET:-470}      # seconds for all steps; later steps get what is left
DEVICE=${DEVICE:-cuda}     # the trials' device; DEVICE=cpu dry-runs this script without a GPU
SUMMARY=$OUT/summary.txt
WORK=$(mktemp -d)          # datasets and checkpoints: not copied back with OUT
trap 'rm -rf "$WORK"' EXIT
: >"$SUMMARY"
verdicts=()
figures=()
export REQUIRE_GPU=1 TERM=dumb
# as root (the device machine), Open MPI wants these to start at all
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# containers often forbid the cross-memory attach of Open MPI's shared-memory transport
export OMPI_MCA_btl_vader_single_copy_mechanism=none

note() { echo "$*" | tee -a "$SUMMARY"; }
# step NAME LIMIT COMMAND...: COMMAND with at most LIMIT seconds (less when the budget is
# nearly spent), its output in OUT/NAME.log; records "ok"/"FAIL" with the time.
step() {
  local name=$1 limit=$2 left=$((BUDGET - SECONDS))
  shift 2
  if [ "$left" -lt 5 ]; then
    verdicts+=("FAIL $name: not run, the ${BUDGET} s budget is spent")
    return 1
  fi
  [ "$limit" -le "$left" ] || limit=$left
  echo "== $name (limit $limit s): $*" | tee -a "$SUMMARY"
  local t0=$SECONDS rc
  # (through bash: COMMAND may be one of the exported functions ours and bundled)
  timeout -k 5 "$limit" bash -c '"$@"' "$name" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  if [ "$rc" -eq 0 ]; then
    verdicts+=("ok   $name ($((SECONDS - t0)) s)")
  else
    verdicts+=("FAIL $name: exit $rc after $((SECONDS - t0)) s$([ "$rc" -eq 124 ] && echo ' (time limit)'), see $name.log")
  fi
  return "$rc"
}
fail() { verdicts+=("FAIL $1"); note "FAIL $1"; }

note "gpu-check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo unknown), budget $BUDGET s"

# ---- 1. the machine and its CUDA libraries ----------------------------------------------
step nvidia-smi 20 nvidia-smi
# cuDNN, cuBLAS and cudart from the Python packages PyTorch uses: namespace packages, so
# __path__ (their __file__ is None); the CUDA 13 wheels keep cuBLAS and cudart in nvidia/cu13
# with versioned sonames only. A CUDNN_HOME, CUBLAS_HOME or CUDA_HOME exported by the user wins.
pkg_dir() { "$PYTHON" -c "import $1; print(list($1.__path__)[0])" 2>/dev/null; }
CUDNN_PKG=$(pkg_dir nvidia.cudnn)
CU13_PKG=$(pkg_dir nvidia.cu13)
[ -n "$CU13_PKG" ] || CU13_PKG=$(pkg_dir nvidia.cublas) # the CUDA 12 wheels' layout
NCCL_PKG=$(pkg_dir nvidia.nccl)
NVIDIA_DIR=$(dirname "${CUDNN_PKG:-${CU13_PKG:-/none/x}}")
note "python: $(command -v "$PYTHON"); cuDNN ${CUDNN_PKG:-none}, cuBLAS/cudart ${CU13_PKG:-none}, NCCL ${NCCL_PKG:-none}"
[ -d "$NVIDIA_DIR" ] && (cd "$NVIDIA_DIR" && find . -maxdepth 3 \( -name '*.so*' -o -type d \) | sort) >"$OUT/nvidia-packages.txt"
note "torch: $("$PYTHON" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU for torch")' 2>&1 | tail -n 1)"
if [ -z "${CUDA_HOME:-}" ]; then
  nvcc_path=$(command -v nvcc || true)
  if [ -n "$nvcc_path" ]; then
    CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")
  else
    CUDA_HOME=/usr/local/cuda
  fi
fi
if [ -z "${CUDNN_HOME:-}" ] && [ ! -e "$CUDA_HOME/include/cudnn.h" ] && [ -n "$CUDNN_PKG" ]; then
  CUDNN_HOME=$CUDNN_PKG
fi
if [ -z "${CUBLAS_HOME:-}" ] && [ -n "$CU13_PKG" ] && ! ls "$CUDA_HOME"/lib64/libcublas.so* >/dev/null 2>&1 &&
  [ -d "$CU13_PKG/lib" ]; then
  CUBLAS_HOME=$CU13_PKG
fi
# our binaries' library path; PyTorch's own steps keep the environment they came with
OURS_LD=$CUDA_HOME/lib64
for d in "${CUDNN_HOME:-}" "${CUBLAS_HOME:-}" "$CU13_PKG" "$NCCL_PKG"; do
  [ -n "$d" ] && [ -d "$d/lib" ] && OURS_LD=$OURS_LD:$d/lib
done
OURS_LD=$OURS_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
note "CUDA_HOME=$CUDA_HOME CUDNN_HOME=${CUDNN_HOME:-} CUBLAS_HOME=${CUBLAS_HOME:-}"
note "our LD_LIBRARY_PATH=$OURS_LD"
step nvcc 20 "$CUDA_HOME/bin/nvcc" --version
ours() { env LD_LIBRARY_PATH="$OURS_LD" "$@"; }
export OURS_LD
export -f ours

# ---- 2. the op tests ----------------------------------------------------------------------
make_args=(GPU_BUILD="$GPU_BUILD" CUDA_HOME="$CUDA_HOME" WERROR=1)
[ -n "${CUDNN_HOME:-}" ] && make_args+=(CUDNN_HOME="$CUDNN_HOME")
[ -n "${CUBLAS_HOME:-}" ] && make_args+=(CUBLAS_HOME="$CUBLAS_HOME")
# NCCL (groups' communicators; the op tests run one with a group of one) from its package
if [ ! -e "$CUDA_HOME/include/nccl.h" ] && [ -n "$NCCL_PKG" ] && [ -e "$NCCL_PKG/include/nccl.h" ]; then
  make_args+=(NCCL_HOME="$NCCL_PKG")
fi
built=0
step build 240 make -j"$(nproc)" gpu-standalone "${make_args[@]}" && built=1
export TLSWEEP_TESTDATA=$WORK/testdata
step export-refs 90 "$PYTHON" tests/gpu/export_cuda_ref.py "$TLSWEEP_TESTDATA"
if [ "$built" = 1 ]; then
  step ldd-ops 10 ours ldd "$GPU_BUILD/test_cuda_ops"
  step op-tests 120 ours "$GPU_BUILD/test_cuda_ops"
  grep -E '^(FAIL|skip|ok) |passed, .* failed' "$OUT/op-tests.log" >>"$SUMMARY"
else
  fail "op-tests: not run, the build failed"
fi

# ---- 3. whole trials from the bundle ------------------------------------------------------
tlsweep=""
# (Python's tarfile where tar has no xz)
if [ -f "$BUNDLE" ] && { tar -xJf "$BUNDLE" -C "$WORK" ||
  "$PYTHON" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE" "$WORK"; }; then
  B=$WORK/tlsweep-bundle
  tlsweep=$B/bin/tlsweep
  head -n 2 "$B/MANIFEST" | tee -a "$SUMMARY"
  # bundled COMMAND...: with the bundle's env.sh (its mpirun, Open MPI and PMIx prefix)
  bundled() { (. "$B/env.sh" && exec env LD_LIBRARY_PATH="$OURS_LD" "$@"); }
  export B
  export -f bundled
  step bundle-ldd 10 bundled ldd "$tlsweep"
  step bundle-version 20 bundled tlsweep --version
else
  fail "trials: no bundle at $BUNDLE (run tools/gpu-bundle.sh build-bundle before, carry build-bundle)"
fi

# losses LOG: "epoch train_loss val_loss" per epoch line of `tlsweep train`
losses() { sed -nE 's/^epoch +([0-9]+) .*train loss ([0-9.]+) .*val loss ([0-9.]+) .*/\1 \2 \3/p' "$1"; }
# the part of each epoch line that must repeat exactly: losses and accuracies
epoch_values() { sed -nE 's/^(epoch +[0-9]+) .*(train loss .*acc +[0-9.]+%).*/\1 \2/p' "$1"; }

if [ -n "$tlsweep" ]; then
  step data 60 bundled tlsweep synth-flowers "$WORK/data" --classes 8 --per-class 40 \
    --trnid 4 --valid 4 --width 160 --height 144
  trial=(tlsweep train --backbone resnet18 --width 2 --resize 136 --crop 128 --batch-size 16
    --weights none --seed 0 --no-augment --data "$WORK/data" --precision fp32)
  # GPU against CPU: the same trial, same initial weights (drawn on the host from the seed)
  step trial-gpu 90 bundled "${trial[@]}" --fe-epochs 2 --ft-epochs 2 --device "$DEVICE" \
    --deterministic --out "$WORK/t-gpu"
  step trial-cpu 150 bundled "${trial[@]}" --fe-epochs 2 --ft-epochs 2 --device cpu \
    --out "$WORK/t-cpu"
  losses "$OUT/trial-gpu.log" >"$OUT/losses-gpu.txt"
  losses "$OUT/trial-cpu.log" >"$OUT/losses-cpu.txt"
  if [ -s "$OUT/losses-gpu.txt" ] && [ -s "$OUT/losses-cpu.txt" ]; then
    cmp_out=$(join "$OUT/losses-gpu.txt" "$OUT/losses-cpu.txt" | awk -v tol="$LOSS_TOL" '
      function abs(v) { return v < 0 ? -v : v }
      function rel(a, b) { return abs(a - b) / (abs(b) > 1 ? abs(b) : 1) }
      { n++; printf "epoch %d: train loss gpu %s cpu %s, val loss gpu %s cpu %s\n", $1, $2, $4, $3, $5
        d = rel($2, $4); if (d > worst) worst = d; d = rel($3, $5); if (d > worst) worst = d }
      END { printf "%d epochs, largest relative loss difference %.2e (tolerance %s)\n", n, worst, tol
            exit !(n == 4 && worst <= tol) }')
    cmp_rc=$?
    echo "$cmp_out" >"$OUT/gpu-vs-cpu.txt"
    figures+=("GPU vs CPU fp32 trial: $(tail -n 1 <<<"$cmp_out")")
    if [ "$cmp_rc" -eq 0 ]; then verdicts+=("ok   gpu-vs-cpu losses"); else fail "gpu-vs-cpu losses: $(tail -n 1 <<<"$cmp_out")"; fi
  else
    fail "gpu-vs-cpu losses: a trial printed no epochs"
  fi

  # SIGUSR1 after the first epoch, then a rerun: it resumes, and every epoch it trains
  # repeats the uninterrupted run's (deterministic algorithms) to the printed digits
  long=("${trial[@]}" --fe-epochs 2 --ft-epochs 6 --device "$DEVICE" --deterministic)
  step stop-reference 120 bundled "${long[@]}" --out "$WORK/t-ref"
  # (not through step: the signal goes to tlsweep itself, the subshell that execs it)
  echo "== stop: the same trial, SIGUSR1 after epoch 1" | tee -a "$SUMMARY"
  (. "$B/env.sh" && exec env LD_LIBRARY_PATH="$OURS_LD" "${long[@]}" --out "$WORK/t-stop") \
    >"$OUT/stop.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 1200; i++)); do # up to 60 s for the first epoch
    grep -q '^epoch  1 ' "$OUT/stop.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -USR1 "$pid" 2>/dev/null
  for ((i = 0; i < 600; i++)); do # up to 60 s to stop at the next batch
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid"
  note "-- stop: exit $? (3: stopped, rerun to resume): $(grep -E 'stopped by a signal' "$OUT/stop.log")"
  stop_rc=$(grep -c 'stopped by a signal' "$OUT/stop.log")
  step resume 120 bundled "${long[@]}" --out "$WORK/t-stop"
  epoch_values "$OUT/resume.log" >"$OUT/resume-epochs.txt"
  epoch_values "$OUT/stop-reference.log" >"$OUT/reference-epochs.txt"
  resumed=$(wc -l <"$OUT/resume-epochs.txt")
  if [ "$stop_rc" -ge 1 ] && [ "$resumed" -ge 1 ] && [ "$resumed" -lt 8 ] &&
    grep -qxFf "$OUT/resume-epochs.txt" "$OUT/reference-epochs.txt" &&
    [ "$(grep -cxFf "$OUT/resume-epochs.txt" "$OUT/reference-epochs.txt")" -eq "$resumed" ]; then
    verdicts+=("ok   stop-resume: stopped, resumed $resumed epochs, each equal to the uninterrupted run")
  else
    fail "stop-resume: stopped $stop_rc, resumed epochs $resumed (want 1..7), equal to the reference: $(grep -cxFf "$OUT/resume-epochs.txt" "$OUT/reference-epochs.txt" 2>/dev/null) (see stop.log, resume.log, *-epochs.txt)"
  fi

  # mpirun -np 3: the root and two workers sharing the one GPU
  sed -e "s#root: data/smoke#root: $WORK/data#" -e "s#^output: .*#output: $WORK/mpi.h5#" \
    -e "s#train: {#train: {device: $DEVICE, deterministic: true, #" sweeps/smoke.yaml >"$WORK/gpu.yaml"
  echo "ranks_per_gpu: 2" >>"$WORK/gpu.yaml"
  cp "$WORK/gpu.yaml" "$OUT/mpirun-sweep.yaml"
  step mpirun-3 150 bundled mpirun --oversubscribe -np 3 tlsweep run "$WORK/gpu.yaml"
  step mpirun-status 20 bundled tlsweep status "$WORK/mpi.h5"
  grep -E '^rank [0-9]+ on ' "$OUT/mpirun-3.log" | tee -a "$SUMMARY"
  if grep -q '4 trials: 4 done' "$OUT/mpirun-status.log"; then
    verdicts+=("ok   mpirun-3 results: 4 trials done")
  else
    fail "mpirun-3 results: not 4 trials done ($(head -n 1 "$OUT/mpirun-status.log"))"
  fi
fi

# ---- 4. the benchmark ---------------------------------------------------------------------
if [ "$built" = 1 ]; then
  step bench-block-ours-fp32 60 ours "$GPU_BUILD/bench_cuda_step" 64 64 56 20 fp32
  step bench-block-ours-tf32 60 ours "$GPU_BUILD/bench_cuda_step" 64 64 56 20 tf32
fi
step bench-block-torch 120 "$PYTHON" tests/gpu/bench_torch_step.py 64 64 56 20
for p in fp32 tf32; do
  ours_block=$(grep -oE '[0-9.]+ images/s' "$OUT/bench-block-ours-$p.log" 2>/dev/null | head -n 1 | cut -d' ' -f1)
  torch_block=$(grep -E "^torch .* $p channels_last" "$OUT/bench-block-torch.log" 2>/dev/null | grep -oE '[0-9.]+ images/s' | cut -d' ' -f1)
  [ -n "$ours_block" ] && [ -n "$torch_block" ] &&
    figures+=("$(awk -v o="$ours_block" -v t="$torch_block" -v p="$p" 'BEGIN { printf "basic block N=64 C=64 56x56 %s: ours %.0f, torch %.0f images/s, ours/torch %.2f", p, o, t, o / t }')")
done

step bench-resnet50-torch 150 "$PYTHON" tests/gpu/bench_torch_resnet50.py --iters 20 64 128
if [ -n "$tlsweep" ]; then
  step bench-data 60 bundled tlsweep synth-flowers "$WORK/bench-data" --classes 8 \
    --per-class 130 --trnid 1 --valid 1 --width 256 --height 256
  for p in fp32 tf32; do
    for b in 64 128; do
      # 1024 training images (16 val); epoch 2 fine-tunes: forward and backward through the
      # whole network (epoch 1, feature extraction, has warmed up every plan)
      step "bench-resnet50-ours-$p-$b" 90 bundled tlsweep train --backbone resnet50 \
        --weights none --data "$WORK/bench-data" --batch-size "$b" --precision "$p" \
        --device "$DEVICE" --fe-epochs 1 --ft-epochs 1 --out "$WORK/bench-$p-$b"
      ours_r50=$(grep -E '^epoch +2 ' "$OUT/bench-resnet50-ours-$p-$b.log" 2>/dev/null | grep -oE '[0-9]+ img/s' | cut -d' ' -f1)
      torch_r50=$(grep -E "^torch resnet50 $p batch $b:" "$OUT/bench-resnet50-torch.log" 2>/dev/null | grep -oE '[0-9.]+ images/s' | cut -d' ' -f1)
      figures+=("$(awk -v o="${ours_r50:-0}" -v t="${torch_r50:-0}" -v p="$p" -v b="$b" 'BEGIN {
        printf "resnet50 training step %s batch %d: ours %.0f img/s (fine-tuning epoch, data included), torch %.0f img/s (eager, channels_last)", p, b, o, t
        if (o > 0 && t > 0) printf ", ours/torch %.2f", o / t; else printf ", ratio n/a" }')")
    done
  done
fi

# ---- summary ------------------------------------------------------------------------------
note ""
note "== verdicts"
for v in "${verdicts[@]}"; do note "$v"; done
note "== figures ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1))"
for f in "${figures[@]}"; do note "$f"; done
printf '%s\n' "${figures[@]}" >"$OUT/figures.txt"
failed=$(printf '%s\n' "${verdicts[@]}" | grep -c '^FAIL')
note "gpu-check: $([ "$failed" -eq 0 ] && echo PASSED || echo "FAILED ($failed)") in $SECONDS s; logs in $OUT"
[ "$failed" -eq 0 ]
