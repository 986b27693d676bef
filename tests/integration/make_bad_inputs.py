#!/usr/bin/env python3
"""Writes the hostile and unusual input files of test_bad_inputs.sh.

usage: make_bad_inputs.py KIND OUT [SOURCE]
  labels-zero OUT            imagelabels.mat whose first label is 0 (labels are 1-based)
  labels-rows OUT            imagelabels.mat whose labels are a 2 x N matrix
  gray OUT SOURCE.jpg        SOURCE re-encoded as a one-channel (grayscale) JPEG
  cmyk OUT SOURCE.jpg        SOURCE re-encoded as a four-channel (CMYK, Adobe) JPEG
  pth-foreign OUT            a torch.save zip whose pickle calls os.system
  pth-wrong-shape OUT        resnet18 (width 8) state_dict with conv1.weight of a wrong shape
  st-overlap OUT             safetensors whose two tensors share bytes
  st-out-of-range OUT        safetensors whose tensor ends past the end of the file
  st-wrong-shape OUT         safetensors with fc.weight of the wrong shape
  st-reshape OUT SOURCE      SOURCE (a safetensors file) with layer1.0.conv1.weight's shape
                             (8, 8, 3, 3) relabelled (8, 8, 9, 1): same bytes, wrong shape
  setid-range OUT SOURCE     SOURCE's setid.mat with image id 99 appended to tstid
"""
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import numpy as np


def labels_mat(out, labels):
    import scipy.io
    scipy.io.savemat(out, {"labels": np.asarray(labels, dtype=np.uint8)})


def safetensors(out, header, payload):
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + payload)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/tlsweep-pwned",))


def main():
    kind, out = sys.argv[1], sys.argv[2]
    if kind in ("labels-zero", "labels-rows"):
        import scipy.io
        n = len(scipy.io.loadmat(sys.argv[3])["labels"].ravel())
        labels = np.asarray(scipy.io.loadmat(sys.argv[3])["labels"]).ravel()
        if kind == "labels-zero":
            labels[0] = 0
            labels_mat(out, labels.reshape(1, n))
        else:
            labels_mat(out, np.concatenate([labels, labels]).reshape(2, n))
    elif kind in ("gray", "cmyk"):
        from PIL import Image
        img = Image.open(sys.argv[3]).convert("RGB")
        img.convert("L" if kind == "gray" else "CMYK").save(out, "JPEG", quality=95)
        assert Image.open(out).mode == ("L" if kind == "gray" else "CMYK")
    elif kind == "pth-foreign":
        import torch
        torch.save({"conv1.weight": Evil()}, out)
    elif kind == "pth-wrong-shape":
        import torch
        torch.save({"conv1.weight": torch.zeros(5, 3, 7, 7)}, out)
    elif kind == "st-overlap":
        safetensors(out, {"fc.bias": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                          "conv1.bias": {"dtype": "F32", "shape": [4],
                                         "data_offsets": [8, 24]}}, bytes(24))
    elif kind == "st-out-of-range":
        safetensors(out, {"fc.bias": {"dtype": "F32", "shape": [4096],
                                      "data_offsets": [0, 16384]}}, bytes(64))
    elif kind == "st-wrong-shape":
        safetensors(out, {"fc.weight": {"dtype": "F32", "shape": [3, 5],
                                        "data_offsets": [0, 60]}}, bytes(60))
    elif kind == "st-reshape":
        with open(sys.argv[3], "rb") as f:
            data = f.read()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        assert header["layer1.0.conv1.weight"]["shape"] == [8, 8, 3, 3]
        header["layer1.0.conv1.weight"]["shape"] = [8, 8, 9, 1]
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (n - len(text))
        assert len(text) == n
        with open(out, "wb") as f:
            f.write(data[:8] + text + data[8 + n:])
    elif kind == "setid-range":
        import scipy.io
        m = scipy.io.loadmat(sys.argv[3])
        sets = {k: np.asarray(m[k]).ravel() for k in ("trnid", "valid", "tstid")}
        sets["tstid"] = np.concatenate([sets["tstid"], [99]])
        scipy.io.savemat(out, {k: v.reshape(1, -1).astype(np.uint16) for k, v in sets.items()})
    else:
        sys.exit(f"unknown kind {kind}")


if __name__ == "__main__":
    main()
