"""PyTorch reference for the model conformance test (tests/conformance/test_models.c).

The CASE_bf16 cases run the same step in float32 under torch.autocast("cpu", bfloat16),
PyTorch's mixed precision that ours follows (fp32 weights and Adam, bf16 conv/linear), and
write the same files.

For each case it builds the torchvision architecture with random weights, torch.saves them,
runs one training step (forward, cross-entropy, backward, Adam) in float64, so that the
reference carries no rounding of its own that the fp32 engine would be blamed for, and writes into
OUTDIR/models/CASE/: weights.pth, input (NHWC), labels, logits, loss, grad.NAME for every
parameter with a gradient, after.NAME for every parameter and buffer after the step, and
update.NAME (after - before, in float64) for every parameter.

Usage: export_models.py OUTDIR
"""
import copy
import os
import sys

import torch
import torchvision
from torchvision.models.vgg import VGG, cfgs, make_layers

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tensor_file import write  # noqa: E402

# The Adam of every case. eps is 1e-3 rather than 1e-8 so that the update is a smooth function
# of the gradient: with 1e-8, an element whose gradient is within rounding of zero moves by
# +-lr depending on the sign of that rounding, which no implementation can reproduce.
# The default eps is checked on exact gradients by the kernel tests.
ADAM = dict(betas=(0.9, 0.999), eps=1e-3, weight_decay=0.0)
BASE_LR = 1e-2


def vgg_bn(cfg, width, num_classes):
    """torchvision's VGG with batch norm, channels divided by width (names unchanged)."""
    scaled = [v if v == "M" else v // width for v in cfgs[cfg]]
    model = VGG(make_layers(scaled, batch_norm=True), num_classes=num_classes, init_weights=True)
    hidden = 4096 // width
    c = model.classifier
    c[0] = torch.nn.Linear(scaled[-2] * 7 * 7, hidden)
    c[3] = torch.nn.Linear(hidden, hidden)
    c[6] = torch.nn.Linear(hidden, num_classes)
    for i in (0, 3):  # VGG's own init for the replaced hidden layers
        torch.nn.init.normal_(c[i].weight, 0, 0.01)
        torch.nn.init.constant_(c[i].bias, 0)
    return model


def randomize_bn(model, gen):
    """Non-trivial BN parameters and running stats, so that every term of BN is exercised.

    The last BN of each residual branch gets a small scale, as in trained ResNets (and as
    zero_init_residual aims for): with unit scales a randomly initialised deep ResNet is so
    ill-conditioned that PyTorch's own fp32 gradients differ from its fp64 ones by 10-30%
    (resnet50 at 64 px), and no fp32 engine could be held to 1e-4; with them fp32 agrees with
    fp64 to about 5e-6."""
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            last_of_branch = name.endswith(".bn3") or (
                name.endswith(".bn2") and isinstance(model, torchvision.models.ResNet)
                and isinstance(model.layer1[0], torchvision.models.resnet.BasicBlock))
            with torch.no_grad():
                if last_of_branch:
                    m.weight.uniform_(0.05, 0.2, generator=gen)
                else:
                    m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.2, 0.2, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


def groups_of(name, backbone):
    """The layer group of a parameter (the C model's groups, output first)."""
    if backbone.startswith("resnet"):
        order = ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
        return order.index(name.split(".")[0])
    if name.startswith("classifier"):
        return 0
    return None  # VGG features: lr by index, below


def group_lr(name, backbone, n_features):
    g = groups_of(name, backbone)
    if g is None:  # features.i -> group 1 + (n_features - 1 - i)
        g = 1 + (n_features - 1 - int(name.split(".")[1]))
    return BASE_LR / (g + 1)


def run_case(out, name, model, backbone, batch, size, classes, mode, seed, bf16=False):
    d = os.path.join(out, "models", name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(model.state_dict(), os.path.join(d, "weights.pth"))

    images = torch.rand(batch, 3, size, size, dtype=torch.float64) * 2 - 1
    if bf16:
        model.float()
        images = images.float()
    else:
        model.double()
    labels = torch.randint(0, classes, (batch,), dtype=torch.int64)
    write(os.path.join(d, "input"), images.permute(0, 2, 3, 1))
    write(os.path.join(d, "labels"), labels, torch.int32)

    n_features = len(model.features) if hasattr(model, "features") else 0
    if mode == "frozen":  # feature extraction: only the new head trains, BN stays in train mode
        head = "fc." if backbone.startswith("resnet") else "classifier.6."
        for pname, p in model.named_parameters():
            p.requires_grad_(pname.startswith(head))
    if mode == "eval":
        model.eval()
    else:
        model.train()
        for m in model.modules():  # dropout off: the C test runs with p = 0
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.Adam(
        [{"params": [p], "lr": group_lr(n, backbone, n_features)} for n, p in params], **ADAM
    )
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = model(images)
        loss = torch.nn.functional.cross_entropy(logits, labels)
    assert logits.dtype == (torch.bfloat16 if bf16 else torch.float64)
    write(os.path.join(d, "logits"), logits.float())
    write(os.path.join(d, "loss"), loss.reshape(1))
    if mode == "eval":
        return
    opt.zero_grad()
    loss.backward()
    for n, p in params:
        write(os.path.join(d, "grad." + n), p.grad)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        write(os.path.join(d, "update." + n), p.detach().double() - before[n].double())
    for n, t in model.state_dict().items():
        if not n.endswith("num_batches_tracked"):
            write(os.path.join(d, "after." + n), t)


# Sizes are chosen so that no ReLU input of the reference lies within fp32 rounding of zero
# where a flipped mask would matter: a gradient through ReLU and small-batch BN is
# discontinuous there (resnet50 at batch 4, 64 px has such an element: a 1e-6 relative nudge of
# the input changes some gradients by 4%). With these fixed seeds none does.
def main():
    out = sys.argv[1]
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(1234)
    cases = [
        # name, builder, backbone, batch, image size, classes, mode
        ("resnet18_train", lambda: torchvision.models.resnet18(num_classes=10), "resnet18", 3, 48, 10, "train"),
        ("resnet18_eval", lambda: torchvision.models.resnet18(num_classes=10), "resnet18", 3, 48, 10, "eval"),
        ("resnet18_frozen", lambda: torchvision.models.resnet18(num_classes=10), "resnet18", 3, 48, 10, "frozen"),
        ("resnet50_train", lambda: torchvision.models.resnet50(num_classes=7), "resnet50", 2, 64, 7, "train"),
        ("vgg11_bn_train", lambda: vgg_bn("A", 8, 5), "vgg11_bn", 3, 32, 5, "train"),
        ("vgg11_bn_frozen", lambda: vgg_bn("A", 8, 5), "vgg11_bn", 3, 32, 5, "frozen"),
    ]
    for i, (name, build, backbone, batch, size, classes, mode) in enumerate(cases):
        torch.manual_seed(100 + i)
        model = build()
        randomize_bn(model, gen)
        if mode == "train":  # the same weights and images in mixed precision
            run_case(out, name + "_bf16", copy.deepcopy(model), backbone, batch, size, classes,
                     mode, 200 + i, bf16=True)
        run_case(out, name, model, backbone, batch, size, classes, mode, 200 + i)
        print("wrote", name)
    # A 1000-class checkpoint for loading with a replaced head.
    d = os.path.join(out, "models")
    torch.manual_seed(7)
    torch.save(torchvision.models.resnet18().state_dict(), os.path.join(d, "resnet18_1000.pth"))


if __name__ == "__main__":
    main()
