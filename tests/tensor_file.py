"""The reference-tensor file format the C tests read (tests/testlib.h, tl_load_f32): PATH.bin
holds the raw little-endian values (float32, or int32 for labels), PATH.shape the dimensions
on one line. Shared by the PyTorch exporters under tests/*/."""
import torch


def write(path, tensor, dtype=torch.float32):
    t = tensor.detach().to(dtype).contiguous()
    t.numpy().astype("<f4" if dtype == torch.float32 else "<i4").tofile(path + ".bin")
    with open(path + ".shape", "w") as f:
        f.write(" ".join(str(d) for d in t.shape) + "\n")


def nhwc(t):
    """NCHW -> NHWC, the kernels' activation layout."""
    return t.permute(0, 2, 3, 1).contiguous()
