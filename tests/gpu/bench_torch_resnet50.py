#!/usr/bin/env python3
"""PyTorch's side of the GPU check's ResNet50 measure: one whole training step (forward,
cross-entropy, backward, Adam) of torchvision's ResNet50, eager, channels_last, 224x224, on
random data, as `tlsweep train` trains it; fp32 (TF32 off), TF32, and bf16 (autocast, AMP's
bf16: fp32 weights and Adam, no loss scaling), and bf16 under torch.compile. Prints one line
per (precision, batch) with images/s and the peak memory PyTorch allocated, in the form
tools/gpu-check.sh reads:

  torch resnet50 fp32 batch 64: 812.3 images/s (78.79 ms/step), peak 9876 MiB
  torch resnet50 bf16-compiled batch 256: skipped: did not compile and run within 150 s

Usage: bench_torch_resnet50.py [--iters N] [--precisions fp32,tf32,bf16]
                               [--compile-timeout S] [BATCH...]   (default 20, fp32,tf32, 64 128)
--compile-timeout S > 0 also measures bf16 under torch.compile for each batch, in a child
process given S seconds to compile and run (its Inductor workers die with it); a timeout or
a compile error prints a skipped line with the reason, and the exit status stays 0.
--precisions '' with it measures only the compiled run.
The model is built here (the torchvision layout, 102 classes) so torchvision is not needed.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

try:
    import torch
    from torch import nn
except ImportError as e:
    sys.exit("bench_torch_resnet50: no PyTorch here (%s)" % e)


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


def run(batch, iters, precision, compiled=False):
    """precision: fp32, tf32 or bf16 (autocast; TF32 on for what stays fp32, as AMP runs)."""
    tf32 = precision != "fp32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    model = resnet50().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    forward = torch.compile(model) if compiled else model
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    labels = torch.randint(0, 102, (batch,), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    warm_start = time.perf_counter()
    for it in range(-5, iters):  # 5 warm-up steps (cuDNN picks algorithms, compile compiles)
        if it == 0:
            torch.cuda.synchronize()
            start = time.perf_counter()
            warm_secs = start - warm_start
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = loss_fn(forward(x), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    secs = time.perf_counter() - start
    name = precision + ("-compiled" if compiled else "")
    print("torch resnet50 %s batch %d: %.1f images/s (%.2f ms/step), peak %.0f MiB%s"
          % (name, batch, iters * batch / secs, 1e3 * secs / iters,
             torch.cuda.max_memory_allocated() / 2**20,
             ", warm-up and compile %.1f s" % warm_secs if compiled else ""), flush=True)
    del model, opt, x, forward
    torch.cuda.empty_cache()


def run_compiled_child(batch, iters, timeout):
    """bf16 under torch.compile in a child process with `timeout` seconds: a compile that
    hangs or takes too long cannot be stopped inside this process."""
    name = "torch resnet50 bf16-compiled batch %d" % batch
    cmd = [sys.executable, os.path.abspath(__file__), "--compiled-child", "--iters", str(iters),
           str(batch)]
    # its own session, so that a timeout kills Inductor's compile workers too
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)

    def stop(signum, frame):  # a kill from outside (gpu-check's step limit) ends it too
        os.killpg(child.pid, signal.SIGKILL)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        print("%s: skipped: did not compile and run within %d s" % (name, timeout), flush=True)
        return
    if child.returncode == 0 and out.strip():
        print(out.strip(), flush=True)
        return
    lines = [l for l in err.strip().splitlines() if l.strip()]
    reason = lines[-1] if lines else "exit %d" % child.returncode
    print("%s: skipped: torch.compile failed: %s" % (name, reason[:300]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("batches", nargs="*", type=int, default=[64, 128])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--precisions", default="fp32,tf32")
    ap.add_argument("--compile-timeout", type=int, default=0)
    ap.add_argument("--compiled-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]  # "": only the compiled run
    for p in precisions:
        if p not in ("fp32", "tf32", "bf16"):
            ap.error("precision must be fp32, tf32 or bf16, got '%s'" % p)
    if not torch.cuda.is_available():
        sys.exit("bench_torch_resnet50: no CUDA device for PyTorch (torch %s, CUDA %s)"
                 % (torch.__version__, torch.version.cuda))
    torch.backends.cudnn.benchmark = True
    if args.compiled_child:
        for batch in args.batches:
            run(batch, args.iters, "bf16", compiled=True)
        return
    print("torch %s, CUDA %s, cuDNN %s, %s" % (torch.__version__, torch.version.cuda,
                                               torch.backends.cudnn.version(),
                                               torch.cuda.get_device_name()), flush=True)
    for precision in precisions:
        for batch in args.batches:
            run(batch, args.iters, precision)
    if args.compile_timeout > 0:
        for batch in args.batches:
            run_compiled_child(batch, args.iters, args.compile_timeout)


if __name__ == "__main__":
    main()
