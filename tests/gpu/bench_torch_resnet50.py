#!/usr/bin/env python3
"""PyTorch's side of the GPU check's ResNet50 measure: one whole training step (forward,
cross-entropy, backward, Adam) of torchvision's ResNet50, eager, channels_last, 224x224, on
random data, as `tlsweep train` trains it; fp32 (TF32 off) and TF32. Prints one line per
(precision, batch) with images/s, in the form tools/gpu-check.sh reads:

  torch resnet50 fp32 batch 64: 812.3 images/s (78.79 ms/step)

Usage: bench_torch_resnet50.py [ITERS [BATCH...]]   (default 20, batches 64 128)
The model is built here (the torchvision layout, 102 classes) so torchvision is not needed.
"""
import sys
import time

import torch
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet50(classes=102):
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
              nn.MaxPool2d(3, 2, 1)]
    c_in = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(c_in, width, stride if i == 0 else 1))
            c_in = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


def run(batch, iters, precision):
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    model = resnet50().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    labels = torch.randint(0, 102, (batch,), device="cuda")
    for it in range(-5, iters):  # 5 warm-up steps (cuDNN benchmark picks algorithms)
        if it == 0:
            torch.cuda.synchronize()
            start = time.perf_counter()
        loss = loss_fn(model(x), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    print("torch resnet50 %s batch %d: %.1f images/s (%.2f ms/step)"
          % (precision, batch, iters * batch / secs, 1e3 * secs / iters), flush=True)
    del model, opt, x
    torch.cuda.empty_cache()


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    batches = [int(b) for b in sys.argv[2:]] or [64, 128]
    if not torch.cuda.is_available():
        sys.exit("bench_torch_resnet50: no CUDA device for PyTorch")
    torch.backends.cudnn.benchmark = True
    print("torch %s, CUDA %s, cuDNN %s, %s" % (torch.__version__, torch.version.cuda,
                                               torch.backends.cudnn.version(),
                                               torch.cuda.get_device_name()))
    for precision in ("fp32", "tf32"):
        for batch in batches:
            run(batch, iters, precision)


if __name__ == "__main__":
    main()
