"""A trial's best.safetensors back into torchvision, without the safetensors package (Debian has
none): the format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw little-endian data.

    tensors, metadata = read_safetensors("runs/smoke.h5.d/resnet18__linear-decay/best.safetensors")
    model = torchvision_model("resnet18", num_classes=8, width=8)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)

strict=False because tlsweep does not keep BatchNorm's num_batches_tracked counters.
"""
import json
import os
import struct

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}


class SafetensorsError(Exception):
    """A malformed file; the message names it."""


def read_safetensors(path):
    """{name: numpy array} and the header's __metadata__ (tlsweep: trial, backbone, epoch, val_acc)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: {len(blob)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise SafetensorsError(f"{path}: header of {n} bytes in a {len(blob)}-byte file")
    try:
        header = json.loads(blob[8:8 + n])
    except ValueError as e:
        raise SafetensorsError(f"{path}: header is not JSON ({e})") from None
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise SafetensorsError(f"{path}: {name}: bytes {begin}..{end} outside the data")
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":  # numpy has no bfloat16: widen to float32
            raw = np.frombuffer(data[begin:end], dtype="<u2").astype(np.uint32) << 16
            array = raw.view(np.float32)
        elif info["dtype"] in DTYPES:
            array = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]])
        else:
            raise SafetensorsError(f"{path}: {name}: dtype {info['dtype']} not supported")
        if array.size != int(np.prod(shape)):
            raise SafetensorsError(f"{path}: {name}: {array.size} values for shape {shape}")
        tensors[name] = array.reshape(shape).copy()  # writable, as torch.from_numpy wants
    return tensors, metadata


def best_weights_path(results_file, trial_name):
    """Where `tlsweep run` keeps a trial's best weights: FILE.h5.d/TRIAL/best.safetensors."""
    return os.path.join(results_file + ".d", trial_name, "best.safetensors")


def _narrow(model, width):
    """Divides every channel count by width as tlsweep's --width does (RGB input and the class
    count stay), replacing the modules of a torchvision network in place."""
    import torch

    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, torch.nn.Conv2d):
                cin = m.in_channels if m.in_channels == 3 else m.in_channels // width
                new = torch.nn.Conv2d(cin, m.out_channels // width, m.kernel_size, m.stride,
                                      m.padding, bias=m.bias is not None)
            elif isinstance(m, torch.nn.BatchNorm2d):
                new = torch.nn.BatchNorm2d(m.num_features // width)
            elif isinstance(m, torch.nn.Linear) and name == "fc":
                new = torch.nn.Linear(m.in_features // width, m.out_features)
            else:
                continue
            setattr(parent, name, new)


def torchvision_model(backbone, num_classes, width=1):
    """torchvision's network with a num_classes head; width > 1 divides the channels as
    tlsweep's `model: {width: W}` does (width 1 is torchvision's network itself)."""
    import torch
    import torchvision
    from torchvision.models.vgg import VGG, cfgs, make_layers

    if backbone.startswith("resnet"):
        model = getattr(torchvision.models, backbone)(num_classes=num_classes)
        if width != 1:
            _narrow(model, width)
        return model
    cfg = {"vgg11_bn": "A", "vgg13_bn": "B", "vgg16_bn": "D", "vgg19_bn": "E"}[backbone]
    scaled = [v if v == "M" else v // width for v in cfgs[cfg]]
    model = VGG(make_layers(scaled, batch_norm=True), num_classes=num_classes)
    hidden = 4096 // width
    model.classifier[0] = torch.nn.Linear(scaled[-2] * 7 * 7, hidden)
    model.classifier[3] = torch.nn.Linear(hidden, hidden)
    model.classifier[6] = torch.nn.Linear(hidden, num_classes)
    return model


def model_from_safetensors(path, backbone):
    """The torchvision model holding a tlsweep checkpoint: class count and width read from the
    tensors' shapes. Returns (model in eval mode, metadata, missing keys)."""
    import torch

    tensors, metadata = read_safetensors(path)
    first = "conv1.weight" if backbone.startswith("resnet") else "features.0.weight"
    head = "fc.weight" if backbone.startswith("resnet") else "classifier.6.weight"
    if first not in tensors or head not in tensors:
        raise SafetensorsError(f"{path}: no {first} / {head}: not a {backbone} checkpoint")
    width = 64 // tensors[first].shape[0]
    model = torchvision_model(backbone, tensors[head].shape[0], width)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise SafetensorsError(f"{path}: unexpected {unexpected}, missing {missing}")
    return model.eval(), metadata, missing
