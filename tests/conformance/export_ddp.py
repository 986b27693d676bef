"""PyTorch reference for the data-parallel conformance test (tests/conformance/test_ddp.c).

One training step of a resnet18 (channels divided by WIDTH, as worker/models/resnet.c builds
it, with torchvision's state_dict names) under DistributedDataParallel on the CPU: gloo, two
processes, rank r training on images [4r, 4r + 4) of a batch of 8, each shard's BatchNorm with
its own statistics and rank 0's running statistics broadcast before the forward (DDP's
defaults: broadcast_buffers=True, no SyncBatchNorm), CrossEntropyLoss (the shard's mean),
gradients averaged over the ranks, Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-3) on every
parameter. float32 throughout, one thread per process.

eps is 1e-3, as in export_models.py, and not the trainer's 1e-8: Adam's first step moves an
element by lr * g / (|g| + eps), so with 1e-8 every gradient element within rounding of zero
moves by up to +-lr on the sign of its rounding. Here some are zero in exact arithmetic (a
ReLU channel dead at one corner of layer4's 2x2 maps for all 8 images, so a corner tap of the
next conv has no gradient), which our Winograd kernels give as ~5e-9 and PyTorch as 0; with
1e-8 they alone put layer4's weights 2e-3 off. The update stays a smooth function of the
gradient with 1e-3, and the default eps is checked on exact gradients by the kernel tests.

Rank 1 starts the step with running statistics of its own (perturb_running_stats) after DDP
has made the ranks' states equal, so that the broadcast before the forward shows in its
running statistics after the step.

Writes into OUTDIR/ddp/resnet18/: weights.pth (the state before the step), input (8, H, W, 3)
NHWC, labels (8), logits (8, CLASSES: each rank's shard in rank order), loss (2: each shard's
mean), grad.NAME (the averaged gradient, as rank 0 holds it before Adam), after.NAME (rank 0's
state_dict after the step, num_batches_tracked left out: it does not enter the numbers with
BN's default momentum), update.NAME (after - before, in float64, for every parameter) and
after1.NAME (rank 1's running statistics after the step).

Usage: export_ddp.py OUTDIR
"""
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from export_models import randomize_bn  # noqa: E402
from tensor_file import write  # noqa: E402

# Keep in step with test_ddp.c.
WIDTH, IMAGE_SIZE, CLASSES = 4, 64, 10
RANKS, SHARD = 2, 4
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-3, weight_decay=0.0)


class NarrowResNet18(torchvision.models.ResNet):
    """torchvision's resnet18 with every channel count divided by width (ResNet itself fixes
    them at 64 << stage); modules, names and initialisation are torchvision's."""

    def __init__(self, width, num_classes):
        torch.nn.Module.__init__(self)
        planes = [(64 << stage) // width for stage in range(4)]
        self._norm_layer = torch.nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = planes[0]
        self.conv1 = torch.nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes[0])
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, planes[0], 2)
        self.layer2 = self._make_layer(BasicBlock, planes[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, planes[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, planes[3], 2, stride=2)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(planes[3], num_classes)
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def make_batch():
    """The whole batch, the same in the parent and in every rank: NCHW images in [-1, 1)."""
    gen = torch.Generator().manual_seed(301)
    images = torch.rand(RANKS * SHARD, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen) * 2 - 1
    labels = torch.randint(0, CLASSES, (RANKS * SHARD,), generator=gen)
    return images, labels


def perturb_running_stats(model):
    """Rank 1's own running statistics (test_ddp.c does the same to its copy)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.5)
                m.running_var.mul_(2.0)


def ddp_rank(rank, port, d):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    dist.init_process_group("gloo", rank=rank, world_size=RANKS)
    model = NarrowResNet18(WIDTH, CLASSES)
    model.load_state_dict(torch.load(os.path.join(d, "weights.pth")))
    ddp = torch.nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's state
    if rank == 1:
        perturb_running_stats(model)
    ddp.train()
    opt = torch.optim.Adam(ddp.parameters(), **ADAM)
    images, labels = make_batch()
    shard = slice(rank * SHARD, (rank + 1) * SHARD)
    logits = ddp(images[shard])
    loss = torch.nn.functional.cross_entropy(logits, labels[shard])
    opt.zero_grad()
    loss.backward()  # DDP averages the gradients over the ranks here

    all_logits = [torch.empty_like(logits) for _ in range(RANKS)]
    all_losses = [torch.empty(1) for _ in range(RANKS)]
    dist.all_gather(all_logits, logits.detach())
    dist.all_gather(all_losses, loss.detach().reshape(1))
    if rank == 0:
        write(os.path.join(d, "logits"), torch.cat(all_logits))
        write(os.path.join(d, "loss"), torch.cat(all_losses))
        for n, p in model.named_parameters():
            write(os.path.join(d, "grad." + n), p.grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    if rank == 0:
        for n, p in model.named_parameters():
            write(os.path.join(d, "update." + n), p.detach().double() - before[n].double())
    for n, t in model.state_dict().items():
        if n.endswith("num_batches_tracked"):
            continue
        if rank == 0:
            write(os.path.join(d, "after." + n), t)
        elif n.endswith("running_mean") or n.endswith("running_var"):
            write(os.path.join(d, "after1." + n), t)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    d = os.path.join(sys.argv[1], "ddp", "resnet18")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(300)
    model = NarrowResNet18(WIDTH, CLASSES)
    randomize_bn(model, torch.Generator().manual_seed(302))
    torch.save(model.state_dict(), os.path.join(d, "weights.pth"))
    images, labels = make_batch()
    write(os.path.join(d, "input"), images.permute(0, 2, 3, 1))
    write(os.path.join(d, "labels"), labels, torch.int32)
    mp.spawn(ddp_rank, args=(free_port(), d), nprocs=RANKS)
    print("wrote ddp/resnet18")


if __name__ == "__main__":
    main()
