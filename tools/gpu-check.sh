#!/usr/bin/env bash
# The one device run: everything about the GPU that CI cannot check, in one script that
# finishes inside BUDGET (500 s) on a machine with an NVIDIA GPU, the CUDA toolkit (nvcc),
# PyTorch, and cuDNN/cuBLAS/NCCL as Python packages, but none of our Debian libraries.
#
#   here:   make && tools/gpu-bundle.sh build-bundle     (bin/tlsweep, its libraries, mpirun)
#   there:  the device tool's run, carry ["build-bundle"], timeout_s 560, command:
#           tools/gpu-check.sh /tmp/gc; rc=$?; cp /tmp/gc/summary.txt $OUT/;
#           tar -C /tmp -czf $OUT/gc.tar.gz gc; exit $rc
# (OUTDIR outside $OUT: the tool returns 8 files at most, and this writes one log a step.)
# If the sweep was skipped or partial and the machine is still warm, a second call at once,
# with timeout_s = the device time left - 20, the same but for OUTDIR (gc2) and, in front,
#           SECTIONS=sweep BUDGET=<timeout_s - 60> tools/gpu-check.sh /tmp/gc2; ...
#
# Steps in order of importance (each logs to OUTDIR/NAME.log, a failure does not stop the next
# ones, and each is killed with its process group at its limit or at the budget's end; in
# brackets the seconds expected on an H100/H200 with 16 cores, estimates until a first run:
# they add up to more than BUDGET, so torch.compile and the sweep are the ones left out):
#   1. the machine: nvidia-smi, the nvidia Python packages, PyTorch's versions [10]
#   2. the CUDA op tests against PyTorch (make gpu-standalone: needs only nvcc and the
#      packages; REQUIRE_GPU=1, so a skip is a failure) [build 15, references 10, tests 30]
#   3. with the bundle: one small trial on the GPU and on the CPU (same weights, no
#      augmentation, fp32, deterministic): per-epoch train and val losses within LOSS_TOL
#      relative; the GPU trial's step ran as CUDA graphs and equals, to the printed digits,
#      the same trial run eagerly (TLSWEEP_CUDA_GRAPHS=0); the same trial on the GPU stopped by
#      SIGUSR1 and rerun: every epoch the rerun trains equals the uninterrupted run's to the
#      printed digits; `mpirun -np 3` with two workers sharing the GPU (ranks_per_gpu: 2)
#      writing a results file [90]
#   4. memory: the peak device memory of one seed trial (vgg16_bn, resnet50, resnet152, batch
#      16, 224 px, fp32) and whether ranks_per_gpu: 3 of them fit 80 GB [60]
#   5. the benchmark, on the same GPU in the same run: one ResNet basic block step (ours eager
#      and as a CUDA graph, PyTorch) and a ResNet50 training step, batch 64 and 128, fp32 and
#      TF32, and batch 256 in bf16 (issue 13's, first), that one also with the device data path
#      off (--device-images off) (ours: the fine-tuning epoch of `tlsweep train`, data pipeline
#      included; PyTorch: eager, channels_last, random data; bf16 as AMP autocast, and last
#      under torch.compile when it compiles within COMPILE_TIMEOUT), as images/s and the ratio,
#      beside issue 13's targets [block 25, torch 60, ours 6 x 30, compile up to 150]
#   6. the seed sweep on this GPU: sweeps/flowers102-seed.yaml on a Flowers102-sized synthetic
#      dataset, bf16, random init (unless the torch cache has the weights), ranks_per_gpu: 3,
#      SWEEP_EPOCHS (default "1 1": feature-extraction and fine-tuning epochs per trial, not
#      the seed's 16 and 8) in what is left of the budget (skipped under 90 s); the full
#      sweep's time is extrapolated from the epochs run, and says so
# SECTIONS (default "ops trials memory bench sweep") picks steps 2..6; the machine's step 1
# always runs. DEVICE=cpu dry-runs the whole script here without a GPU (small networks).
# OUTDIR/summary.txt ends with every step's verdict and every figure; exit 1 if any failed (a
# step skipped for want of time or of a GPU is not a failure).
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
BUDGET=${BUDGET:-500}      # seconds for all steps; later steps get what is left (timeout_s 560)
DEVICE=${DEVICE:-cuda}     # the trials' device; DEVICE=cpu dry-runs this script without a GPU
SECTIONS=" ${SECTIONS:-ops trials memory bench sweep} "
COMPILE_TIMEOUT=${COMPILE_TIMEOUT:-120} # seconds torch.compile may take to compile and run
SWEEP_EPOCHS=${SWEEP_EPOCHS:-1 1}       # the seed sweep's epochs here: phase 1, phase 2
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
    verdicts+=("skip $name: not run, the ${BUDGET} s budget is spent")
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
skip() { verdicts+=("skip $1"); note "skip $1"; }
want() { [[ $SECTIONS == *" $1 "* ]]; }
# LOG's first "N unit" figure on lines matching PATTERN (empty when none)
figure() { grep -E "$2" "$OUT/$1.log" 2>/dev/null | grep -oE "[0-9.]+ $3" | head -n 1 | cut -d' ' -f1; }

note "gpu-check $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo unknown), budget $BUDGET s"

# ---- 1. the machine and its CUDA libraries ----------------------------------------------
step nvidia-smi 20 nvidia-smi
GPU_NAME=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
GPU_NAME=${GPU_NAME:-no GPU}
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
note "torch: $(timeout 60 "$PYTHON" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU for torch")' 2>&1 | tail -n 1)"
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
# WERROR=0: that machine's host compiler is not CI's, and a warning new to it must not cost
# the window its op tests (CI builds these programs with warnings as errors); counted below
make_args=(GPU_BUILD="$GPU_BUILD" CUDA_HOME="$CUDA_HOME" WERROR=0)
[ -n "${CUDNN_HOME:-}" ] && make_args+=(CUDNN_HOME="$CUDNN_HOME")
[ -n "${CUBLAS_HOME:-}" ] && make_args+=(CUBLAS_HOME="$CUBLAS_HOME")
# NCCL (groups' communicators; the op tests run one with a group of one) from its package
if [ ! -e "$CUDA_HOME/include/nccl.h" ] && [ -n "$NCCL_PKG" ] && [ -e "$NCCL_PKG/include/nccl.h" ]; then
  make_args+=(NCCL_HOME="$NCCL_PKG")
fi
built=0
if want ops || want bench; then # (the block benchmark is built with the op tests)
  step build 240 make -j"$(nproc)" gpu-standalone "${make_args[@]}" && built=1
  note "-- build: $(grep -c 'warning:' "$OUT/build.log") compiler warnings (see build.log), $(cc --version 2>/dev/null | head -n 1)"
fi
if want ops; then
  export TLSWEEP_TESTDATA=$WORK/testdata
  step export-refs 90 "$PYTHON" tests/gpu/export_cuda_ref.py "$TLSWEEP_TESTDATA"
  if [ "$built" = 1 ]; then
    step ldd-ops 10 ours ldd "$GPU_BUILD/test_cuda_ops"
    step op-tests 120 ours "$GPU_BUILD/test_cuda_ops"
    # each case's verdict among the summary's last lines (testlib prints them in that form)
    while read -r line; do
      verdicts+=("$line")
    done < <(grep -E '^(FAIL|skip|ok) +cuda_ops/|passed, .* failed' "$OUT/op-tests.log")
  else
    fail "op-tests: not run, the build failed"
  fi
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

if [ -n "$tlsweep" ] && want trials; then
  step data 60 bundled tlsweep synth-flowers "$WORK/data" --classes 8 --per-class 40 \
    --trnid 4 --valid 4 --width 160 --height 144
  trial=(tlsweep train --backbone resnet18 --width 2 --resize 136 --crop 128 --batch-size 16
    --weights none --seed 0 --no-augment --data "$WORK/data" --precision fp32)
  # GPU against CPU: the same trial, same initial weights (drawn on the host from the seed)
  step trial-gpu 90 bundled "${trial[@]}" --fe-epochs 2 --ft-epochs 2 --device "$DEVICE" \
    --deterministic --out "$WORK/t-gpu"
  step trial-cpu 150 bundled "${trial[@]}" --fe-epochs 2 --ft-epochs 2 --device cpu \
    --out "$WORK/t-cpu"
  # the GPU trial's step ran as CUDA graphs; run eagerly it must give the same numbers
  TLSWEEP_CUDA_GRAPHS=0 step trial-gpu-eager 90 bundled "${trial[@]}" --fe-epochs 2 \
    --ft-epochs 2 --device "$DEVICE" --deterministic --out "$WORK/t-gpu-eager"
  epoch_values "$OUT/trial-gpu.log" >"$OUT/graph-epochs.txt"
  epoch_values "$OUT/trial-gpu-eager.log" >"$OUT/eager-epochs.txt"
  if [ "$DEVICE" = cpu ]; then
    note "-- graphs: not checked on the CPU"
  elif grep -q 'runs as a CUDA graph' "$OUT/trial-gpu.log" &&
    ! grep -q 'CUDA graphs off' "$OUT/trial-gpu.log" && [ -s "$OUT/graph-epochs.txt" ] &&
    cmp -s "$OUT/graph-epochs.txt" "$OUT/eager-epochs.txt"; then
    verdicts+=("ok   graphs: the trial's step ran as CUDA graphs, its epochs equal the eager run's")
  else
    fail "graphs: $(grep -hE 'CUDA graph' "$OUT/trial-gpu.log" | head -n 1), epochs equal to eager: $(cmp -s "$OUT/graph-epochs.txt" "$OUT/eager-epochs.txt" && echo yes || echo no) (see graph-epochs.txt, eager-epochs.txt)"
  fi
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
  # (not through step: the signal goes to tlsweep itself, the subshell that execs it; its
  # waits, up to 120 s, are not the budget's: it runs only where the budget has room for them)
  if [ $((BUDGET - SECONDS)) -lt 150 ]; then
    skip "stop-resume: not run, $((BUDGET - SECONDS)) s of the budget left (150 needed)"
  else
    echo "== stop: the same trial, SIGUSR1 after epoch 1" | tee -a "$SUMMARY"
    : >"$OUT/stop.log" # (before the background job opens it: the loop below reads it at once)
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

# ---- 4. memory: do three seed trials fit one GPU? -----------------------------------------
if want memory && [ -n "$tlsweep" ]; then
  mem_size=(--resize 256 --crop 224)
  [ "$DEVICE" = cpu ] && mem_size=(--resize 72 --crop 64 --width 8) # a dry run's narrow nets
  # 24 training and 24 validation images: a batch of 16 and a remainder of 8 in each, as the
  # seed's 6149 and 2040 images have, so the trial makes every plan set a seed trial makes
  step mem-data 30 bundled tlsweep synth-flowers "$WORK/mem-data" --classes 4 --per-class 12 \
    --trnid 3 --valid 3 --width 320 --height 256
  peaks=()
  for bb in vgg16_bn resnet50 resnet152; do
    step "mem-$bb" 90 bundled tlsweep train --backbone "$bb" --weights none \
      --data "$WORK/mem-data" --batch-size 16 "${mem_size[@]}" --precision fp32 \
      --device "$DEVICE" --fe-epochs 1 --ft-epochs 1 --out "$WORK/mem-$bb"
    peak=$(figure "mem-$bb" 'peak device memory' 'MiB')
    [ -n "$peak" ] && peaks+=("$bb $peak")
  done
  if [ "${#peaks[@]}" -eq 3 ]; then
    # kn_memory_peak leaves out each process's CUDA context, cuDNN and cuBLAS handles and
    # kernel images: RANK_OVERHEAD_MIB per rank stands for them (the sweep step measures all)
    fit=$(printf '%s\n' "${peaks[@]}" | awk -v extra="${RANK_OVERHEAD_MIB:-1024}" '
      { printf "%s %.0f MiB, ", $1, $2; if ($2 > worst) { worst = $2; who = $1 } }
      END { need = 3 * (worst + extra); cap = 80e9 / 2^20
            printf "ranks_per_gpu: 3 at worst 3 x (%s %.0f + %d MiB per rank) = %.0f MiB of 80 GB (%.0f MiB): %s", who, worst, extra, need, cap, (need <= cap ? "fits" : "does NOT fit")
            exit need > cap }')
    fit_rc=$?
    figures+=("seed trials' peak device memory (batch 16, 224 px, fp32): $fit")
    if [ "$fit_rc" -eq 0 ]; then verdicts+=("ok   memory-fit: ranks_per_gpu: 3 fits 80 GB"); else fail "memory-fit: $fit"; fi
  else
    skip "memory-fit: peak device memory of ${#peaks[@]} of 3 trials (only CUDA trials print one)"
  fi
fi

# ---- 5. the benchmark ---------------------------------------------------------------------
if want bench; then
  if [ "$built" = 1 ]; then
    step bench-block-ours-fp32 60 ours "$GPU_BUILD/bench_cuda_step" 64 64 56 20 fp32
    step bench-block-ours-tf32 60 ours "$GPU_BUILD/bench_cuda_step" 64 64 56 20 tf32
  fi
  step bench-block-torch 120 "$PYTHON" tests/gpu/bench_torch_step.py 64 64 56 20
  for p in fp32 tf32; do
    ours_block=$(figure "bench-block-ours-$p" . 'images/s')
    torch_block=$(figure bench-block-torch "^torch .* $p channels_last" 'images/s')
    [ -n "$ours_block" ] && [ -n "$torch_block" ] &&
      figures+=("$(awk -v o="$ours_block" -v t="$torch_block" -v p="$p" 'BEGIN { printf "basic block N=64 C=64 56x56 %s: ours %.0f, torch %.0f images/s, ours/torch %.2f", p, o, t, o / t }')")
    # the same step replayed as a CUDA graph (the line after the eager one)
    graph_block=$(figure "bench-block-ours-$p" '^ours, the step as a CUDA graph' 'images/s')
    [ -n "$ours_block" ] && [ -n "$graph_block" ] &&
      figures+=("$(awk -v o="$ours_block" -v g="$graph_block" -v p="$p" 'BEGIN { printf "basic block %s as a CUDA graph: %.0f images/s, graph/eager %.3f", p, g, g / o }')")
  done

  # issue 13's measure first: bf16 at batch 256, AMP eager (torch.compile after ours: it may
  # take long)
  step bench-resnet50-torch-bf16 90 "$PYTHON" tests/gpu/bench_torch_resnet50.py --iters 20 \
    --precisions bf16 256
  step bench-resnet50-torch 150 "$PYTHON" tests/gpu/bench_torch_resnet50.py --iters 20 64 128
  if [ -n "$tlsweep" ]; then
    # 2048 training images (16 val): 8 steps of batch 256 in an epoch, 32 of batch 64
    bench_synth=(--per-class 258) bench_size=()
    if [ "$DEVICE" = cpu ]; then # a dry run of the plumbing: 256 small images, narrow nets
      bench_synth=(--per-class 34) bench_size=(--resize 72 --crop 64 --width 8)
    fi
    step bench-data 60 bundled tlsweep synth-flowers "$WORK/bench-data" --classes 8 \
      "${bench_synth[@]}" --trnid 1 --valid 1 --width 256 --height 256
    # issue 13's bf16 batch 256 first, then again with the device data path off (the host
    # makes the batches), then fp32 and TF32
    for run in bf16:256:on bf16:256:off fp32:64:on fp32:128:on tf32:64:on tf32:128:on; do
      IFS=: read -r p b images <<<"$run"
      name=bench-resnet50-ours-$p-$b
      [ "$images" = off ] && name=$name-images-off
      # epoch 2 fine-tunes: forward and backward through the whole network (epoch 1, feature
      # extraction, has warmed up every plan)
      step "$name" 90 bundled tlsweep train --backbone resnet50 --weights none \
        --data "$WORK/bench-data" --batch-size "$b" --precision "$p" --device "$DEVICE" \
        --device-images "$images" "${bench_size[@]}" --fe-epochs 1 --ft-epochs 1 \
        --out "$WORK/$name"
      ours_r50=$(figure "$name" '^epoch +2 ' 'img/s')
      ours_peak=$(figure "$name" 'peak device memory' 'MiB')
      if [ "$images" = off ]; then
        figures+=("$(awk -v on="${r50_on:-0}" -v off="${ours_r50:-0}" -v mon="${peak_on:-?}" \
          -v moff="${ours_peak:-?}" 'BEGIN {
          printf "resnet50 bf16 batch 256, ours with the device data path on %.0f img/s, off %.0f img/s", on, off
          if (on > 0 && off > 0) printf ", on/off %.2f", on / off; else printf ", ratio n/a"
          printf "; peak memory on %s MiB, off %s MiB", mon, moff }')")
        continue
      fi
      torch_log=bench-resnet50-torch
      [ "$p" = bf16 ] && torch_log=bench-resnet50-torch-bf16
      torch_r50=$(figure "$torch_log" "^torch resnet50 $p batch $b:" 'images/s')
      torch_peak=$(figure "$torch_log" "^torch resnet50 $p batch $b:" 'MiB')
      [ "$p" = bf16 ] && r50_on=$ours_r50 peak_on=$ours_peak torch_bf16=$torch_r50
      figures+=("$(awk -v o="${ours_r50:-0}" -v t="${torch_r50:-0}" -v p="$p" -v b="$b" \
        -v om="${ours_peak:-?}" -v tm="${torch_peak:-?}" 'BEGIN {
        printf "resnet50 training step %s batch %d: ours %.0f img/s (fine-tuning epoch, data included), torch %.0f img/s (eager%s, channels_last)", p, b, o, t, (p == "bf16" ? " AMP" : "")
        if (o > 0 && t > 0) printf ", ours/torch %.2f", o / t; else printf ", ratio n/a"
        printf "; peak memory ours %s MiB, torch %s MiB", om, tm }')")
    done
    # bf16 batch 256 (device data path on) against torch.compile and issue 13's targets
    # (figures, not verdicts: the targets are for an H200). torch.compile comes last: it may
    # take minutes, so it gets what is left of the budget; its child's own timeout ends 30 s
    # before the step's, so the bench prints why it skipped instead of being killed.
    compile_timeout=$((BUDGET - SECONDS - 35))
    [ "$compile_timeout" -le "$COMPILE_TIMEOUT" ] || compile_timeout=$COMPILE_TIMEOUT
    if [ "$compile_timeout" -ge 30 ]; then
      step bench-resnet50-torch-compile $((compile_timeout + 30)) "$PYTHON" \
        tests/gpu/bench_torch_resnet50.py --iters 20 --precisions '' \
        --compile-timeout "$compile_timeout" 256
    else
      skip "bench-resnet50-torch-compile: not run, $((BUDGET - SECONDS)) s of the budget left (65 needed)"
    fi
    compiled=$(figure bench-resnet50-torch-compile '^torch resnet50 bf16-compiled batch 256:' 'images/s')
    compile_skip=$(sed -n 's/^torch resnet50 bf16-compiled batch 256: skipped: //p' "$OUT/bench-resnet50-torch-compile.log" 2>/dev/null)
    figures+=("$(awk -v o="${r50_on:-0}" -v t="${torch_bf16:-0}" -v c="${compiled:-0}" \
      -v why="${compile_skip:-not run}" -v gpu="$GPU_NAME" 'BEGIN {
      met = "met"; no = "NOT met"
      printf "issue 13, resnet50 bf16 batch 256 on %s: ours %.0f img/s (target >= 8000 on an H200: %s)", gpu, o, (o >= 8000 ? met : no)
      if (o > 0 && t > 0) printf ", ours/torch eager AMP %.2f (target >= 2: %s)", o / t, (o >= 2 * t ? met : no)
      else printf ", ours/torch eager AMP n/a"
      if (c > 0) printf ", torch.compile %.0f img/s, ours/compiled %.2f", c, o / c
      else printf ", torch.compile skipped: %s", why }')")
  fi
fi

# ---- 6. the seed sweep on this GPU -------------------------------------------------------
# sweep_run LIMIT YAML: the sweep under mpirun, the root and three workers on the one GPU,
# stopping cleanly after LIMIT seconds (exit 3: then the epochs done so far are the measure)
sweep_run() {
  bundled mpirun --oversubscribe -np 4 tlsweep run --time-limit "$1" "$2"
  local rc=$?
  [ "$rc" -eq 3 ] && echo "seed-sweep: PARTIAL, stopped at its time limit of $1 s" && return 0
  return "$rc"
}
export -f sweep_run
if want sweep && [ -n "$tlsweep" ]; then
  read -r sweep_fe sweep_ft <<<"$SWEEP_EPOCHS"
  if [ $((BUDGET - SECONDS)) -lt 90 ]; then
    skip "seed-sweep: not run, $((BUDGET - SECONDS)) s of the ${BUDGET} s budget left (90 needed)"
  else
    # Flowers102's 102 classes at its usual image size (500x600): 80 a class, 10 each in trnid
    # and valid, give its 2040 validation images and 6120 training images of its 6149 (the
    # flags make the same count in every class)
    synth=(--per-class 80 --trnid 10 --valid 10)
    shrink=()
    if [ "$DEVICE" = cpu ]; then # a dry run of the plumbing: tiny images, narrow networks
      synth=(--per-class 3 --trnid 1 --valid 1 --width 48 --height 48)
      shrink=(-e 's/resize: 256, crop: 224/resize: 40, crop: 32/' -e 's/width: 1,/width: 16,/')
    fi
    data_t0=$SECONDS
    step sweep-data 90 bundled tlsweep synth-flowers "$WORK/flowers" "${synth[@]}"
    note "-- sweep-data: $(grep -E '^synth-flowers:' "$OUT/sweep-data.log") in $((SECONDS - data_t0)) s"
    # pretrained weights where the torch cache has all three, else random init
    weights=torchvision
    for f in vgg16_bn-6c64b313.pth resnet50-11ad3fa6.pth resnet152-f82ba261.pth; do
      [ -f "${TORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/torch}/hub/checkpoints/$f" ] || weights=none
    done
    sed -e "s#root: data/flowers-102#root: $WORK/flowers#" -e "s#^output: .*#output: $WORK/seed.h5#" \
      -e "s#precision: fp32#precision: bf16#" -e "s#train: {#train: {device: $DEVICE, #" \
      -e "s#weights: torchvision#weights: $weights#g" \
      -e "s#feature_extraction: {epochs: 16,#feature_extraction: {epochs: $sweep_fe,#" \
      -e "s#fine_tuning: {epochs: 8,#fine_tuning: {epochs: $sweep_ft,#" "${shrink[@]}" \
      sweeps/flowers102-seed.yaml >"$WORK/seed.yaml"
    echo "ranks_per_gpu: 3" >>"$WORK/seed.yaml"
    cp "$WORK/seed.yaml" "$OUT/seed-sweep.yaml"
    note "-- seed-sweep: sweeps/flowers102-seed.yaml as run here (seed-sweep.yaml):"
    diff sweeps/flowers102-seed.yaml "$WORK/seed.yaml" | grep '^>' | tee -a "$SUMMARY"
    step seed-sweep-check 60 bundled tlsweep run -n "$WORK/seed.yaml"
    # the GPU's memory in use every half second while the three workers share it
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 \
      >"$OUT/seed-sweep-gpu-memory.txt" 2>/dev/null &
    sampler=$!
    sweep_limit=$((BUDGET - SECONDS - 20))
    sweep_t0=$SECONDS
    if [ "$sweep_limit" -ge 45 ]; then # (25 s of it to stop cleanly and close the results)
      step seed-sweep "$sweep_limit" sweep_run $((sweep_limit - 25)) "$WORK/seed.yaml"
    else
      skip "seed-sweep: not run, $sweep_limit s left after its dataset (45 needed)"
    fi
    sweep_wall=$((SECONDS - sweep_t0))
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    step seed-sweep-curves 20 bundled tlsweep status --curves "$WORK/seed.h5"
    partial=$(grep -c '^seed-sweep: PARTIAL' "$OUT/seed-sweep.log")
    gpu_mem=$(sort -n "$OUT/seed-sweep-gpu-memory.txt" 2>/dev/null | tail -n 1)
    # The full sweep's time from the epochs run: each backbone's phase 1 once (its two
    # schedules share it) at 16 x its mean phase-1 epoch, each trial's phase 2 at 8 x its
    # mean phase-2 epoch, over 3 workers, and no less than the longest backbone's chain.
    figures+=("$(awk -v fe_full=16 -v ft_full=8 -v ranks=3 -v wall="$sweep_wall" \
      -v run="$sweep_fe+$sweep_ft" -v partial="$partial" -v mem="${gpu_mem:-n/a}" '
      /^[^ ].* \(.*\):$/ { name = $1; split(name, part, "__"); bb = part[1]
                           shared = /phase 1 computed by/; next }
      $1 == "epoch" { for (i = 1; i <= NF; i++) { if ($i == "seconds") sc = i; if ($i == "data_wait_s") wc = i }; next }
      $1 ~ /^[0-9]+$/ && sc {
        if ($2 == 1 && !shared) { fe[bb] += $sc; fen[bb]++ }
        if ($2 == 2) { ft[name] += $sc; ftn[name]++; tb[name] = bb }
        if ($2 == 1 && shared) next
        epochs++; secs += $sc; if (wc && $wc != "-") wait += $wc }
      END {
        for (b in fe) work += fe_full * fe[b] / fen[b]
        for (t in ft) { n++; chain = fe_full * fe[tb[t]] / fen[tb[t]] + ft_full * ft[t] / ftn[t]
                        work += ft_full * ft[t] / ftn[t]; if (chain > longest) longest = chain }
        est = work / ranks > longest ? work / ranks : longest
        printf "seed sweep on this GPU (bf16, ranks_per_gpu 3): ran %s epochs a trial%s in %d s wall, %d epochs measured (%.0f s of epochs, %.0f s of it waiting for data); GPU memory in use at most %s MiB", run, (partial ? " (PARTIAL: stopped at its time limit)" : ""), wall, epochs, secs, wait, mem
        if (n == 6) printf "; EXTRAPOLATED to 16+8 epochs: about %.0f s (epochs only, at the measured per-epoch seconds; first epochs include warm-up; setup and checkpoints not counted) against the target of < 120 s on one H200", est
        else printf "; no extrapolation: %d of 6 trials reached fine-tuning", n }' "$OUT/seed-sweep-curves.log")")
  fi
fi

# peak device memory of every CUDA trial this run trained (worker/trial.c prints it), one
# figure a trial: "peak device memory LOG: TRIAL N MiB"
grep -H 'peak device memory' "$OUT"/*.log 2>/dev/null | sed "s#^$OUT/##" >"$OUT/peak-memory.txt"
while read -r line; do
  figures+=("$line")
done < <(sed -nE 's/^(.*)\.log:.*trial (.*): peak device memory ([0-9.]+) MiB.*/peak device memory \1: \2 \3 MiB/p' "$OUT/peak-memory.txt")

# ---- summary ------------------------------------------------------------------------------
note ""
note "== verdicts"
for v in "${verdicts[@]}"; do note "$v"; done
note "== figures ($GPU_NAME)"
for f in "${figures[@]}"; do note "$f"; done
printf '%s\n' "${figures[@]}" >"$OUT/figures.txt"
failed=$(printf '%s\n' "${verdicts[@]}" | grep -c '^FAIL')
note "gpu-check: $([ "$failed" -eq 0 ] && echo PASSED || echo "FAILED ($failed)") in $SECONDS s; logs in $OUT"
[ "$failed" -eq 0 ]
