#!/usr/bin/env bash
# Installs every Debian package tlsweep needs to build, test and demo, when missing.
# As root it runs apt-get; otherwise it prints exactly what is missing and fails.
# The CUDA toolkit (nvcc, cuDNN 9, NCCL 2) is not a Debian package here: the Makefile uses it
# when /usr/local/cuda has it and builds CPU-only otherwise.
set -euo pipefail

packages=(
  build-essential pkg-config
  libdnnl-dev                        # oneDNN: CPU conv / batchnorm / pooling / inner product
  openmpi-bin libopenmpi-dev         # Open MPI: the orchestrator
  libhdf5-dev                        # HDF5 (serial, SWMR): results
  libyaml-dev                        # sweep files
  libmatio-dev                       # Flowers102 .mat files
  libturbojpeg0-dev libjpeg62-turbo-dev  # JPEG decode
  libzip-dev                         # .pth archives
  python3 python3-numpy python3-torch python3-torchvision  # the PyTorch reference in tests
  python3-h5py python3-pandas python3-matplotlib python3-pil
  python3-scipy python3-yaml         # the notebook reads the dataset's .mat files and the sweep
  jupyter-nbconvert python3-nbconvert python3-nbformat python3-ipykernel  # the notebook in CI
  clang libclang-rt-14-dev libomp-dev  # make fuzz: libFuzzer + ASan/UBSan runtimes, clang's OpenMP
  slurm-wlm munge                    # tests/integration/test_slurm.sh: a real one-node Slurm
  patchelf xz-utils                  # tools/gpu-bundle.sh: relative rpaths, the compressed bundle
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: not root; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${#missing[@]} packages"
