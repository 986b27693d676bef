#!/usr/bin/python3
"""Reads a .safetensors file written by tlsweep independently of the C code and compares it
with torch's reference values: check_safetensors.py FILE REFDIR.

Checks the container (header length, JSON, 8-byte alignment, names sorted, offsets contiguous
and covering the data), that every tensor is F32 with the reference's name and shape, that its
values are bit-identical to REFDIR/NAME.bin, and the metadata the C test writes. Exits 1 with
one line per problem."""
import json
import os
import struct
import sys

import numpy as np
import torch

# what tests/unit/test_weights.c passes to weights_write_safetensors
EXPECTED_METADATA = {"format": "pt", "note": "tab\there \"quoted\" back\\slash \u00e9"}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check_safetensors.py FILE REFDIR")
    path, refdir = sys.argv[1], sys.argv[2]
    problems = []
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        sys.exit("%s: header length %d past the end" % (path, hlen))
    if (8 + hlen) % 8:
        problems.append("data does not start 8-byte aligned (header %d bytes)" % hlen)
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    data = raw[8 + hlen:]
    metadata = header.pop("__metadata__", None)
    if metadata != EXPECTED_METADATA:
        problems.append("metadata %r, expected %r" % (metadata, EXPECTED_METADATA))
    names = list(header)
    if names != sorted(names):
        problems.append("tensor names are not sorted")
    ends = 0
    for name in sorted(names, key=lambda n: header[n]["data_offsets"][0]):
        begin, end = header[name]["data_offsets"]
        if begin != ends:
            problems.append("%s: data starts at %d, expected %d" % (name, begin, ends))
        ends = end
    if ends != len(data):
        problems.append("tensors cover %d of %d data bytes" % (ends, len(data)))

    manifest = {}
    for line in open(os.path.join(refdir, "manifest.txt")):
        fields = line.split()
        manifest[fields[0]] = [int(d) for d in fields[2:]]
    if set(names) != set(manifest):
        problems.append("names differ from the reference: %s" % sorted(set(names) ^ set(manifest)))
    for name in sorted(set(names) & set(manifest)):
        entry = header[name]
        if entry["dtype"] != "F32" or entry["shape"] != manifest[name]:
            problems.append("%s: %s %s, expected F32 %s" % (name, entry["dtype"], entry["shape"],
                                                             manifest[name]))
            continue
        begin, end = entry["data_offsets"]
        got = torch.from_numpy(np.frombuffer(data[begin:end], dtype="<f4").copy())
        ref = torch.from_numpy(np.fromfile(os.path.join(refdir, name + ".bin"), dtype="<f4"))
        # bit patterns, so -0.0 and inf count too
        if got.numel() != ref.numel() or not torch.equal(got.view(torch.int32),
                                                         ref.view(torch.int32)):
            problems.append("%s: values differ from torch's" % name)
    for p in problems:
        print("check_safetensors: %s: %s" % (path, p))
    print("check_safetensors: %d tensors, %d problems" % (len(names), len(problems)))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
