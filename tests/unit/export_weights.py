#!/usr/bin/python3
"""Writes the weights-I/O test files into OUTDIR/weights/ (run: export_weights.py OUTDIR).

  model_zip.pth, model_legacy.pth   one small torchvision-style state dict, saved by torch.save
                                    in the zip format and in the legacy format; besides real
                                    conv/bn/linear layers it holds f16/bf16/f64/int tensors, a
                                    transposed view, a strided slice, two views of one shared
                                    storage at offsets, a stride-0 expansion, a 0-d and an empty
                                    tensor
  model_proto4.pth                  the zip format with pickle protocol 4
  wrapped_zip.pth, wrapped_legacy.pth  the same dict one level down ("state_dict" / "model")
  model.safetensors                 the same tensors in their own dtypes, written by hand per the
                                    format (there is no safetensors package here)
  refs/NAME.bin, refs/manifest.txt  torch's fp32 conversion of every tensor (raw little-endian)
                                    and "NAME NDIM DIM..." per tensor, in state-dict order
  old_legacy.pth, old_refs/         a legacy file as torch < 0.4 wrote it (hand-built, checked by
                                    torch.load) and torch's values for it
  bad/*.pth                         crafted hostile or broken checkpoints for the error tests
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock


class Tiny(nn.Module):
    """A cut-down ResNet: real torchvision layer names, _metadata and num_batches_tracked."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, stride=2, downsample=down))
        self.fc = nn.Linear(16, 10)


def state_dict():
    torch.manual_seed(0)
    model = Tiny()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(7)
    sd = model.state_dict()  # an OrderedDict with _metadata, as torchvision's files have
    half = torch.randn(5, 7).half()
    half.view(-1)[:6] = torch.tensor([6e-8, -0.0, float("inf"), 65504.0, -1e-5, 2.0 ** -14]).half()
    sd["extra.f16"] = half
    sd["extra.bf16"] = torch.randn(4, 3).bfloat16()
    sd["extra.f64"] = torch.randn(3, 4, dtype=torch.float64) / 3
    sd["extra.i64"] = torch.tensor([-(2 ** 40) - 1, 123456789012345, -5, 0], dtype=torch.int64)
    sd["extra.i32"] = torch.tensor([[-2147483648, 16777217], [3, -4]], dtype=torch.int32)
    sd["extra.i16"] = torch.tensor([-32768, 32767, 0], dtype=torch.int16)
    sd["extra.i8"] = torch.tensor([-128, 127, -1], dtype=torch.int8)
    sd["extra.u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["extra.bool"] = torch.tensor([True, False, True])
    sd["extra.transposed"] = torch.randn(6, 4).t()  # non-contiguous, saved as-is
    sd["extra.strided"] = torch.randn(5, 8)[:, 1::3]  # gaps and an offset
    shared = torch.randn(64)
    sd["extra.shared_a"] = shared[4:24].view(4, 5)  # two views of one storage
    sd["extra.shared_b"] = shared[30:62].view(2, 4, 4)
    sd["extra.expanded"] = torch.randn(3, 1).expand(3, 4)  # stride 0
    sd["extra.scalar"] = torch.tensor(3.25)  # 0-d
    sd["extra.empty"] = torch.zeros(0, 5)
    return sd


def write_refs(sd, refs):
    os.makedirs(refs, exist_ok=True)
    with open(os.path.join(refs, "manifest.txt"), "w") as manifest:
        for name, t in sd.items():
            data = t.to(torch.float32).contiguous().numpy()
            with open(os.path.join(refs, name + ".bin"), "wb") as f:
                f.write(data.astype("<f4").tobytes())
            manifest.write(" ".join([name, str(t.dim())] + [str(d) for d in t.shape]) + "\n")


ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
             torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path, sd, metadata):
    """The format by hand: u64 LE header length, JSON header, data; names sorted, header
    padded with spaces to 8 bytes, as the reference implementation writes it."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(sd):
        blob = raw_bytes(sd[name])
        header[name] = {"dtype": ST_DTYPES[sd[name].dtype], "shape": list(sd[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_zip_pth(path, pickle_bytes, storages, with_pickle=True):
    """A zip container laid out as torch.save lays it out, with chosen contents."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        if with_pickle:
            z.writestr("archive/data.pkl", pickle_bytes)
        for key, blob in storages.items():
            z.writestr("archive/data/" + key, blob)
        z.writestr("archive/version", "3\n")


class FakeStorage:
    def __init__(self, key, storage_type, numel):
        self.key, self.storage_type, self.numel = key, storage_type, numel


class FakeTensor:
    """Pickles exactly like a tensor, but with any storage, offset, size and stride."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, self.size, self.stride, False,
                 collections.OrderedDict()))


class FakePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def fake_pickle(entries):
    buf = io.BytesIO()
    FakePickler(buf, protocol=2).dump(collections.OrderedDict(entries))
    return buf.getvalue()


class OldStorage:
    """A storage reference as torch < 0.4 could write it: a view into a larger storage."""

    def __init__(self, key, storage_type, numel, view=None):
        self.key, self.storage_type, self.numel, self.view = key, storage_type, numel, view


class OldTensor:
    """Pickles as torch < 0.4 pickled a tensor: _rebuild_tensor(storage, offset, size, stride)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor, (self.storage, self.offset, self.size, self.stride))


class Py2OrderedDict:
    """Pickles as Python 2 pickled an OrderedDict: OrderedDict([[key, value], ...])."""

    def __init__(self, items):
        self.items = items

    def __reduce__(self):
        return (collections.OrderedDict, ([[k, v] for k, v in self.items],))


class OldPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, OldStorage):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel, obj.view)
        return None


def write_old_legacy(path):
    """The legacy container around what a 2017-era torch wrote: _rebuild_tensor, an
    OrderedDict rebuilt from an item list, and a storage view (view_metadata). torch.load
    reads it; the exporter checks that and returns torch's tensors as the reference."""
    root = OldStorage("100", torch.FloatStorage, 20, ("101", 5, 10))
    plain = OldStorage("200", torch.DoubleStorage, 4)
    sd = Py2OrderedDict([("old.view", OldTensor(root, 2, (2, 3), (3, 1))),
                         ("old.double", OldTensor(plain, 0, (2, 2), (1, 2)))])
    buf = io.BytesIO()
    pickle.dump(0x1950a86a20f9469cfc6c, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 8}}, buf, protocol=2)
    OldPickler(buf, protocol=2).dump(sd)
    pickle.dump(["100", "200"], buf, protocol=2)
    buf.write(struct.pack("<q", 20) + struct.pack("<20f", *range(20)))
    buf.write(struct.pack("<q", 4) + struct.pack("<4d", 1 / 3, -2.5, 1e300, 7))
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    back = torch.load(path)
    return back


def write_bad(bad):
    os.makedirs(bad, exist_ok=True)
    floats = struct.pack("<6f", *range(6))
    s0 = FakeStorage("0", torch.FloatStorage, 6)
    good = fake_pickle([("w", FakeTensor(s0, 0, (2, 3), (3, 1)))])
    # a well-formed crafted file, so the bad ones below fail for their one stated reason
    write_zip_pth(os.path.join(bad, "crafted_ok.pth"), good, {"0": floats})
    write_zip_pth(os.path.join(bad, "no_data_pkl.pth"), good, {"0": floats}, with_pickle=False)
    s1 = FakeStorage("1", torch.FloatStorage, 6)
    missing = fake_pickle([("w", FakeTensor(s0, 0, (2, 3), (3, 1))),
                           ("v", FakeTensor(s1, 0, (6,), (1,)))])
    write_zip_pth(os.path.join(bad, "missing_storage.pth"), missing, {"0": floats})
    past_end = fake_pickle([("w", FakeTensor(s0, 2, (2, 3), (3, 1)))])
    write_zip_pth(os.path.join(bad, "view_past_end.pth"), past_end, {"0": floats})
    # what a malicious checkpoint does: call os.system on load (never run here)
    system = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    write_zip_pth(os.path.join(bad, "os_system.pth"), system, {})
    # the same with STACK_GLOBAL (protocol 4) naming builtins.eval
    stack_global = (b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94"
                    b"\x85\x94R\x94.")
    write_zip_pth(os.path.join(bad, "builtins_eval.pth"), stack_global, {})
    short = FakeStorage("0", torch.FloatStorage, 12)  # claims 48 bytes, the entry has 24
    write_zip_pth(os.path.join(bad, "storage_too_small.pth"),
                  fake_pickle([("w", FakeTensor(short, 0, (12,), (1,)))]), {"0": floats})


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: export_weights.py OUTDIR")
    out = os.path.join(sys.argv[1], "weights")
    os.makedirs(out, exist_ok=True)
    sd = state_dict()
    torch.save(sd, os.path.join(out, "model_zip.pth"))
    torch.save(sd, os.path.join(out, "model_legacy.pth"), _use_new_zipfile_serialization=False)
    # protocol 4 brings FRAME, MEMOIZE, SHORT_BINUNICODE and STACK_GLOBAL
    torch.save(sd, os.path.join(out, "model_proto4.pth"), pickle_protocol=4)
    torch.save({"epoch": 3, "state_dict": sd}, os.path.join(out, "wrapped_zip.pth"))
    torch.save({"model": sd, "arch": "tiny"}, os.path.join(out, "wrapped_legacy.pth"),
               _use_new_zipfile_serialization=False)
    write_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})
    write_refs(sd, os.path.join(out, "refs"))
    write_refs(write_old_legacy(os.path.join(out, "old_legacy.pth")), os.path.join(out, "old_refs"))
    write_bad(os.path.join(out, "bad"))
    # the files must load in torch itself, or the test would check against nonsense
    for name in ("model_zip.pth", "model_legacy.pth", "model_proto4.pth"):
        back = torch.load(os.path.join(out, name))
        assert all(torch.equal(back[k], sd[k]) for k in sd), name
    print("export_weights: %d tensors -> %s" % (len(sd), out))


if __name__ == "__main__":
    main()
