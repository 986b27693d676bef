"""PyTorch's side of bench_train: the same step on the same shapes.
Usage: bench_train_torch.py BACKBONE IMAGE_SIZE BATCH STEPS THREADS full|frozen [fp32|bf16]
(bf16: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16)).
Prints "torch BACKBONE SIZE BATCH MODE images/s seconds/step"."""
import sys
import time

import torch
import torchvision


def main():
    backbone, size, batch, steps, threads, mode = sys.argv[1:7]
    bf16 = len(sys.argv) > 7 and sys.argv[7] == "bf16"
    size, batch, steps, threads = int(size), int(batch), int(steps), int(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, backbone)(num_classes=102)
    model.train()
    head = "fc." if backbone.startswith("resnet") else "classifier.6."
    if mode == "frozen":
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith(head))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    images = torch.rand(batch, 3, size, size) * 2 - 1
    labels = torch.randint(0, 102, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()

    step()  # warm-up, as ours
    start = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    print(f"torch {backbone} {size} {batch} {mode} {batch / per_step:.2f} {per_step:.4f}")


if __name__ == "__main__":
    main()
