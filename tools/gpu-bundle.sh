#!/usr/bin/env bash
# Packs bin/tlsweep built with CUDA, every shared library it needs except glibc's and CUDA's,
# and Open MPI's mpirun with its components, PMIx and their help files into
# DIR/tlsweep-bundle.tar.xz: a prefix that runs wherever it is unpacked, for the GPU machine,
# which has the CUDA libraries (as Python packages) but none of our Debian ones. Each binary
# and library finds the others by a relative rpath ($ORIGIN); env.sh in the bundle points
# Open MPI and PMIx at their moved prefix. The CUDA libraries come from LD_LIBRARY_PATH there
# (tools/gpu-check.sh sets it), else from the build's rpath (/usr/local/cuda/lib64).
#
# Usage: tools/gpu-bundle.sh DIR       (here; about a minute after the build)
# There:  tar -xJf DIR/tlsweep-bundle.tar.xz -C /tmp && . /tmp/tlsweep-bundle/env.sh
#         tlsweep --version; mpirun -np 3 tlsweep run SWEEP.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: tools/gpu-bundle.sh DIR}
for tool in patchelf xz ldd ompi_info; do
  command -v "$tool" >/dev/null || {
    echo "gpu-bundle: $tool not found (tools/install-deps.sh installs it)" >&2
    exit 2
  }
done

make -j"${JOBS:-2}" CUDA=1 BUILD="${BUILD:-build}" banner bin/tlsweep >&2
# (grep reads all of ldd's output: with pipefail, grep -q could fail the pipe on SIGPIPE)
if ! ldd bin/tlsweep | grep libcudnn >/dev/null; then
  echo "gpu-bundle: bin/tlsweep is not linked with cuDNN (the build found no CUDA?)" >&2
  exit 1
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
B=$stage/tlsweep-bundle
mkdir -p "$B/bin" "$B/lib" "$B/share" "$B/etc" "$B/pmix/lib"

ompi_path() { ompi_info --parsable --path "$1" | sed -n "s/^path:$1://p" | head -n 1; }
ompi_bindir=$(ompi_path bindir)
ompi_pkglibdir=$(ompi_path pkglibdir)
ompi_pkgdatadir=$(ompi_path pkgdatadir)
ompi_sysconfdir=$(ompi_path sysconfdir)
libpmix=$(ldd "$ompi_pkglibdir"/mca_pmix_ext3x.so 2>/dev/null | awk '$1 ~ /^libpmix/ {print $3}')
pmix_prefix=$(dirname "$(dirname "$(readlink -f "${libpmix:-/nonexistent/lib/x}")")")

cp bin/tlsweep "$B/bin/"
cp "$ompi_bindir/orterun" "$ompi_bindir/orted" "$ompi_bindir/ompi_info" "$B/bin/"
ln -s orterun "$B/bin/mpirun"
cp -r "$ompi_pkglibdir" "$B/lib/openmpi3"
cp -r "$ompi_pkgdatadir" "$B/share/openmpi"
cp -r "$ompi_sysconfdir" "$B/etc/openmpi"
if [ -d "$pmix_prefix/lib/pmix" ]; then
  cp -r "$pmix_prefix/lib/pmix" "$B/pmix/lib/pmix"
  cp -r "$pmix_prefix/share" "$B/pmix/share"
  # its absolute component path would point at the system's PMIx: env.sh sets the moved one
  sed -i '/^mca_base_component_path/d' "$B/pmix/share/pmix-mca-params.conf"
fi

# The ldd closure of every binary and plugin, minus glibc (the other machine's is at least as
# new) and the CUDA libraries (theirs match their driver). Plugins whose libraries are
# missing here are left out: Open MPI skips a component it cannot load.
is_glibc() { [[ $1 =~ ^(libc|libm|libdl|librt|libpthread|libresolv|libutil|libanl|libmvec|libnsl|libBrokenLocale|libthread_db|libnss_[a-z]+|ld-linux-x86-64)\.so ]]; }
is_cuda() { [[ $1 =~ ^lib(cuda|cudart|cudnn[a-z_]*|cublas|cublasLt|nvrtc|nvJitLink|nccl|nvidia-ml)\.so ]]; }
mapfile -t elves < <(find "$B/bin" "$B/lib" "$B/pmix" -type f -name '*' -exec sh -c 'head -c 4 "$1" | grep -q ELF' _ {} \; -print)
declare -A copied=()
for elf in "${elves[@]}"; do
  deps=$(ldd "$elf")
  missing=$(awk '/not found/ {print $1}' <<<"$deps" | tr '\n' ' ')
  if [ -n "$missing" ]; then
    case "$elf" in
      "$B"/lib/openmpi3/* | "$B"/pmix/lib/pmix/*)
        echo "gpu-bundle: leaving out $(basename "$elf"): $missing" >&2
        rm -f "$elf"
        continue
        ;;
      *)
        echo "gpu-bundle: $elf: libraries not found here: $missing" >&2
        exit 1
        ;;
    esac
  fi
  while read -r name path; do
    is_glibc "$name" || is_cuda "$name" || [ -n "${copied[$name]:-}" ] && continue
    cp -L "$path" "$B/lib/$name"
    copied[$name]=1
  done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$deps")
done

# Relative rpaths; tlsweep keeps the build's CUDA folders after its own.
for elf in "$B"/bin/* "$B"/lib/*.so* "$B"/lib/openmpi3/*.so "$B"/pmix/lib/pmix/*.so; do
  [ -f "$elf" ] && [ ! -L "$elf" ] || continue
  case "$elf" in
    "$B"/bin/tlsweep) rpath="\$ORIGIN/../lib:$(patchelf --print-rpath "$elf")" ;;
    "$B"/bin/*) rpath='$ORIGIN/../lib' ;;
    "$B"/lib/openmpi3/*) rpath='$ORIGIN/..' ;;
    "$B"/pmix/lib/pmix/*) rpath='$ORIGIN/../../../lib' ;;
    *) rpath='$ORIGIN' ;;
  esac
  patchelf --set-rpath "$rpath" "$elf"
done

cat >"$B/env.sh" <<'EOF'
# Source this (bash): the bundle's tlsweep and mpirun first on PATH, Open MPI and PMIx told
# where their moved prefix is. LD_LIBRARY_PATH is not needed for the bundle's own libraries.
TLSWEEP_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export TLSWEEP_BUNDLE PATH="$TLSWEEP_BUNDLE/bin:$PATH"
export OPAL_PREFIX="$TLSWEEP_BUNDLE" OPAL_EXEC_PREFIX="$TLSWEEP_BUNDLE"
export OPAL_BINDIR="$TLSWEEP_BUNDLE/bin" OPAL_LIBDIR="$TLSWEEP_BUNDLE/lib"
export OPAL_PKGLIBDIR="$TLSWEEP_BUNDLE/lib/openmpi3" OPAL_DATAROOTDIR="$TLSWEEP_BUNDLE/share"
export OPAL_DATADIR="$TLSWEEP_BUNDLE/share" OPAL_PKGDATADIR="$TLSWEEP_BUNDLE/share/openmpi"
export OPAL_SYSCONFDIR="$TLSWEEP_BUNDLE/etc/openmpi"
export PMIX_PREFIX="$TLSWEEP_BUNDLE/pmix" PMIX_LIBDIR="$TLSWEEP_BUNDLE/pmix/lib"
export PMIX_PKGLIBDIR="$TLSWEEP_BUNDLE/pmix/lib/pmix" PMIX_DATADIR="$TLSWEEP_BUNDLE/pmix/share"
export PMIX_PKGDATADIR="$TLSWEEP_BUNDLE/pmix/share/pmix" PMIX_SYSCONFDIR="$TLSWEEP_BUNDLE/pmix/share"
# the components of this prefix only, and no warning for those left out (see MANIFEST)
export OMPI_MCA_mca_base_component_path="$OPAL_PKGLIBDIR"
export PMIX_MCA_mca_base_component_path="$PMIX_PKGLIBDIR"
export OMPI_MCA_mca_base_component_show_load_errors=0
EOF
{
  echo "tlsweep bundle: $(bin/tlsweep --version 2>&1 | head -n 1), git $(git rev-parse --short HEAD 2>/dev/null || echo unknown), built $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "left to the machine: glibc; CUDA libraries: $(ldd bin/tlsweep | awk '{print $1}' | grep -E 'cud|cublas' | tr '\n' ' ')"
  (cd "$B" && find . -type f -o -type l | sort)
} >"$B/MANIFEST"

rm -f "$OUT/tlsweep-bundle.tar.xz"
# xz -2: 22 MiB in seconds (-6 saves 2 MiB and takes a minute)
tar -C "$stage" -cf - tlsweep-bundle | xz -T"${JOBS:-2}" -2 >"$OUT/tlsweep-bundle.tar.xz"
echo "gpu-bundle: $OUT/tlsweep-bundle.tar.xz: $(du -m "$OUT/tlsweep-bundle.tar.xz" | cut -f1) MiB" \
  "($(du -sm "$B" | cut -f1) MiB unpacked, $(find "$B/lib" -maxdepth 1 -name '*.so*' | wc -l) libraries)"
