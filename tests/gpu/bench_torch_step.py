#!/usr/bin/env python3
"""PyTorch's side of the GPU check's measure: the ResNet basic block of
tests/gpu/bench_cuda_step.c (conv3x3-BN-ReLU-conv3x3-BN + identity, ReLU), forward,
backward and Adam, channels_last, in fp32 (TF32 off), TF32 and with bf16 autocast.

Usage: bench_torch_step.py [N [C [HW [ITERS]]]]   (default 64 64 56 20); prints images/s.
"""
import sys
import time

try:
    import torch
except ImportError as e:
    sys.exit("bench_torch_step: no PyTorch here (%s)" % e)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c)
        self.conv2 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


def run(n, c, hw, iters, dtype):
    dev = "cuda"
    block = Block(c).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(block.parameters(), lr=1e-3)
    x = torch.randn(n, c, hw, hw, device=dev).to(memory_format=torch.channels_last)
    for it in range(-5, iters):
        if it == 0:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            y = block(x)
        y.float().sum().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print("torch %s: resnet basic block C=%d %dx%d N=%d %s channels_last: %.1f images/s "
          "(%.2f ms/step)" % (torch.__version__, c, hw, hw, n, dtype, iters * n / secs,
                              1e3 * secs / iters))


def main():
    args = [int(a) for a in sys.argv[1:]] + [64, 64, 56, 20][len(sys.argv) - 1:]
    n, c, hw, iters = args[:4]
    if not torch.cuda.is_available():  # a CPU figure would pass for the GPU's in the check
        sys.exit("bench_torch_step: no CUDA device for PyTorch (torch %s)" % torch.__version__)
    torch.backends.cudnn.benchmark = True  # ours times its algorithms too (cudnnFind)
    for precision in ("fp32", "tf32", "bf16"):
        torch.backends.cudnn.allow_tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = precision != "fp32"
        run(n, c, hw, iters, precision)


if __name__ == "__main__":
    main()
