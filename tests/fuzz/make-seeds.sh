#!/usr/bin/env bash
# Writes the fuzz targets' seed corpora: small valid inputs of every kind, one folder per
# target, under OUT (default build-fuzz/seeds). Nothing here is committed; the regression
# inputs in tests/fuzz/regressions/ are.
#   tests/fuzz/make-seeds.sh OUT TLSWEEP_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-fuzz/seeds}
tlsweep=${2:-bin/tlsweep}
python=${PYTHON:-/usr/bin/python3}
rm -rf "$out"
mkdir -p "$out"/{fuzz_sweep,fuzz_pth,fuzz_safetensors,fuzz_mat,fuzz_jpeg}

# sweep files: the repository's own
cp sweeps/*.yaml "$out/fuzz_sweep/"

# a synthetic Flowers102: its .mat files (prefixed with the byte that picks which file the
# fuzz_mat input replaces) and its JPEGs
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$tlsweep" synth-flowers "$data/flowers" --classes 3 --per-class 4 --width 24 --height 20 >/dev/null
{ printf '\0'; cat "$data/flowers/imagelabels.mat"; } >"$out/fuzz_mat/imagelabels"
{ printf '\1'; cat "$data/flowers/setid.mat"; } >"$out/fuzz_mat/setid"
cp "$data/flowers/jpg/image_00001.jpg" "$data/flowers/jpg/image_00002.jpg" "$out/fuzz_jpeg/"

"$python" - "$out" <<'PY'
import collections, io, json, struct, sys
import numpy as np
import torch
from PIL import Image

out = sys.argv[1]

# JPEGs PIL makes in the other colour models and codings the decoder handles
rgb = Image.fromarray((np.arange(40 * 48 * 3) % 251).astype(np.uint8).reshape(40, 48, 3))
rgb.save(f"{out}/fuzz_jpeg/progressive.jpg", quality=80, progressive=True)
rgb.convert("L").save(f"{out}/fuzz_jpeg/gray.jpg", quality=80)
rgb.convert("CMYK").save(f"{out}/fuzz_jpeg/cmyk.jpg", quality=80)
rgb.save(f"{out}/fuzz_jpeg/subsample444.jpg", quality=95, subsampling=0)
rgb.resize((9, 70)).save(f"{out}/fuzz_jpeg/tall.jpg", quality=70)

# .pth: torch.save's zip and legacy formats, several dtypes, a shared storage and a view
g = torch.Generator().manual_seed(0)
w = torch.randn(4, 3, 3, 3, generator=g)
state = collections.OrderedDict()
state["conv1.weight"] = w
state["bn1.running_mean"] = torch.randn(4, generator=g).double()
state["bn1.num_batches_tracked"] = torch.tensor(7)
state["fc.weight"] = torch.randn(5, 6, generator=g).half()
state["fc.bias"] = torch.randn(5, generator=g).bfloat16()
state["fc.view"] = w.view(4, 27)[1:3]
state["fc.t"] = torch.randn(3, 2, generator=g).t()
torch.save(state, f"{out}/fuzz_pth/zip.pth")
torch.save(state, f"{out}/fuzz_pth/legacy.pth", _use_new_zipfile_serialization=False)
small = collections.OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3))
torch.save(small, f"{out}/fuzz_pth/small_zip.pth")
torch.save(small, f"{out}/fuzz_pth/small_legacy.pth", _use_new_zipfile_serialization=False)

# .safetensors by hand: 8-byte header length, JSON header, data
def safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))

f32 = np.arange(6, dtype="<f4").tobytes()
safetensors(f"{out}/fuzz_safetensors/f32.safetensors",
            {"a.weight": ("F32", [2, 3], f32), "a.bias": ("F32", [], np.float32(1.5).tobytes())},
            {"format": "pt", "epoch": "3"})
safetensors(f"{out}/fuzz_safetensors/mixed.safetensors",
            {"h": ("F16", [4], np.arange(4, dtype="<f2").tobytes()),
             "d": ("F64", [2, 1], np.arange(2, dtype="<f8").tobytes()),
             "i": ("I64", [3], np.arange(3, dtype="<i8").tobytes()),
             "b": ("BF16", [2], b"\x80\x3f\x00\x40"),
             "u": ("U8", [2], b"\x01\x02"),
             "e": ("F32", [0, 3], b"")})
safetensors(f"{out}/fuzz_safetensors/empty.safetensors", {})
PY
echo "make-seeds: $(find "$out" -type f | wc -l) seed files under $out"
