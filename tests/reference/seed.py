"""The seed procedure (docs/experiment.md) in PyTorch: the reference the trial runner is checked and benchmarked against.

The same procedure as tlsweep's trial runner (worker/trial.c), written the way the seed's
notebook does it: torchvision model, new head, feature extraction with the backbone frozen
(BatchNorm in train mode, running stats updating), then fine-tuning with one Adam parameter
group per layer group and StepLR on each.

Usage:
  seed.py --data DIR --backbone resnet18 [--width 1] [--schedule exp-decay-3]
          [--fe-epochs 16 --ft-epochs 8] [--resize 256 --crop 224] [--batch-size 16]
          [--init FILE.pth] [--save-init FILE.pth] [--pretrained FILE.pth]
          [--no-augment] [--no-shuffle] [--from-scratch]
          [--dropout 0.5] [--seed 0] [--threads N] [--fe-step 6 --fe-gamma 0.3]
          [--ft-step 2 --ft-gamma 0.7] [--precision fp32|bf16] --out DIR
--precision bf16 runs forward and loss under torch.autocast("cpu", dtype=torch.bfloat16).
Writes OUT/records.txt ("epoch phase train_loss train_acc val_loss val_acc seconds" per
epoch), OUT/lr.txt ("epoch group lr" for every parameter group of the epoch's optimizer, as
StepLR's get_last_lr() gives it while the epoch trains) and OUT/best.pth (the state_dict of
the best validation accuracy).
--init loads a whole state_dict (head included); --pretrained loads all but the head, as
torchvision's ImageNet weights are used (the new head keeps its initialisation);
--from-scratch trains everything with Adam at 1e-3 for --fe-epochs epochs (to make a
"pretrained" backbone for tests), then saves OUT/final.pth.
"""
import argparse
import os
import time

import numpy as np
import scipy.io
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from torchvision.models.vgg import VGG, cfgs, make_layers

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VGG_CFG = {"vgg11_bn": "A", "vgg13_bn": "B", "vgg16_bn": "D", "vgg19_bn": "E"}


def build(backbone, width, num_classes, dropout):
    """torchvision's network with a new head; VGG channels divided by width as tlsweep does."""
    if backbone.startswith("resnet"):
        if width != 1:
            raise SystemExit("seed.py: ResNets only at width 1 (torchvision's network)")
        model = getattr(torchvision.models, backbone)()
        model.fc = torch.nn.Linear(model.fc.in_features, num_classes)
        return model
    scaled = [v if v == "M" else v // width for v in cfgs[VGG_CFG[backbone]]]
    model = VGG(make_layers(scaled, batch_norm=True), num_classes=num_classes, dropout=dropout)
    hidden = 4096 // width
    c = model.classifier
    c[0] = torch.nn.Linear(scaled[-2] * 7 * 7, hidden)
    c[3] = torch.nn.Linear(hidden, hidden)
    for i in (0, 3):
        torch.nn.init.normal_(c[i].weight, 0, 0.01)
        torch.nn.init.constant_(c[i].bias, 0)
    c[6] = torch.nn.Linear(hidden, num_classes)
    return model


def layer_groups(model, backbone):
    """(name, parameters) from the output backwards, as docs/experiment.md defines them."""
    if backbone.startswith("resnet"):
        names = ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
        return [(n, list(getattr(model, n).parameters())) for n in names]
    groups = [("classifier", list(model.classifier.parameters()))]
    for i in reversed(range(len(model.features))):
        groups.append((f"features.{i}", list(model.features[i].parameters())))
    return groups


def fine_tuning_lrs(n, schedule, lr=1e-4, lowest=1e-7, factor=3.0):
    if schedule == "linear-decay":  # the seed's VGG rule, for any number of groups
        return [lr + ((lowest - lr) / (n - 1)) * k for k in range(n)]
    return [lr / factor**k for k in range(n)]  # exp-decay-3: divide by 3 per group


class Flowers(torch.utils.data.Dataset):
    def __init__(self, root, splits, transform):
        labels = scipy.io.loadmat(os.path.join(root, "imagelabels.mat"))["labels"].ravel()
        setid = scipy.io.loadmat(os.path.join(root, "setid.mat"))
        ids = np.concatenate([setid[s].ravel() for s in splits]).astype(np.int64)
        self.items = [(os.path.join(root, "jpg", f"image_{i:05d}.jpg"), int(labels[i - 1]) - 1)
                      for i in ids]
        self.num_classes = int(labels.max())
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, k):
        path, label = self.items[k]
        with Image.open(path) as im:
            return self.transform(im.convert("RGB")), label


def run_epoch(model, loader, optimizer=None, bf16=False):
    loss_sum, correct, images = 0.0, 0, 0
    for x, y in loader:
        with torch.set_grad_enabled(optimizer is not None), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        images += len(y)
    return loss_sum / images, correct / images


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--backbone", required=True)
    p.add_argument("--width", type=int, default=1)
    p.add_argument("--schedule", default="exp-decay-3")
    p.add_argument("--fe-epochs", type=int, default=16)
    p.add_argument("--ft-epochs", type=int, default=8)
    p.add_argument("--resize", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--init")
    p.add_argument("--save-init")
    p.add_argument("--pretrained")
    p.add_argument("--from-scratch", action="store_true")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-shuffle", action="store_true")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--fe-step", type=int, default=6)
    p.add_argument("--fe-gamma", type=float, default=0.3)
    p.add_argument("--ft-step", type=int, default=2)
    p.add_argument("--ft-gamma", type=float, default=0.7)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    bf16 = a.precision == "bf16"
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)

    preprocess = [T.Resize(a.resize), T.CenterCrop(a.crop), T.ToTensor(), T.Normalize(MEAN, STD)]
    augment = [] if a.no_augment else [
        T.RandomHorizontalFlip(0.5),
        T.ColorJitter(brightness=0.3, contrast=0.3),
        T.RandomAffine(degrees=30, shear=20),
    ]
    train_set = Flowers(a.data, ["tstid"], T.Compose(augment + preprocess))
    val_set = Flowers(a.data, ["trnid", "valid"], T.Compose(preprocess))
    train = torch.utils.data.DataLoader(train_set, a.batch_size, shuffle=not a.no_shuffle)
    val = torch.utils.data.DataLoader(val_set, a.batch_size)

    model = build(a.backbone, a.width, train_set.num_classes, a.dropout)
    if a.init:
        model.load_state_dict(torch.load(a.init))
    head = model.fc if a.backbone.startswith("resnet") else model.classifier[6]
    head_prefix = "fc." if a.backbone.startswith("resnet") else "classifier.6."
    if a.pretrained:
        state = {k: v for k, v in torch.load(a.pretrained).items() if not k.startswith(head_prefix)}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(head_prefix) for k in missing), missing
    if a.save_init:
        torch.save(model.state_dict(), a.save_init)
    if a.from_scratch:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(1, a.fe_epochs + 1):
            model.train()
            train_loss, train_acc = run_epoch(model, train, opt, bf16)
            model.eval()
            val_loss, val_acc = run_epoch(model, val, bf16=bf16)
            print(f"scratch epoch {epoch} train {train_loss:.4f} {train_acc:.4f} "
                  f"val {val_loss:.4f} {val_acc:.4f}", flush=True)
        torch.save(model.state_dict(), os.path.join(a.out, "final.pth"))
        return

    records, lrs_used, best_acc, best_state = [], [], -1.0, None
    total = a.fe_epochs + a.ft_epochs
    for epoch in range(1, total + 1):
        if epoch == 1 and a.fe_epochs:  # feature extraction: only the new head trains
            for q in model.parameters():
                q.requires_grad_(False)
            for q in head.parameters():
                q.requires_grad_(True)
            head_group = "fc" if a.backbone.startswith("resnet") else "classifier"
            opt = torch.optim.Adam([{"params": head.parameters(), "name": head_group}], lr=1e-3)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=a.fe_step, gamma=a.fe_gamma)
        if epoch == a.fe_epochs + 1:  # fine-tuning: everything, one group per layer group
            for q in model.parameters():
                q.requires_grad_(True)
            groups = layer_groups(model, a.backbone)
            lrs = fine_tuning_lrs(len(groups), a.schedule)
            opt = torch.optim.Adam([{"params": ps, "lr": lr, "name": name}
                                    for (name, ps), lr in zip(groups, lrs) if ps], lr=1e-8)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=a.ft_step, gamma=a.ft_gamma)
        lrs_used += [(epoch, g["name"], lr) for g, lr in zip(opt.param_groups, sched.get_last_lr())]
        start = time.perf_counter()
        model.train()
        train_loss, train_acc = run_epoch(model, train, opt, bf16)
        model.eval()
        val_loss, val_acc = run_epoch(model, val, bf16=bf16)
        sched.step()
        phase = 1 if epoch <= a.fe_epochs else 2
        seconds = time.perf_counter() - start
        records.append((epoch, phase, train_loss, train_acc, val_loss, val_acc, seconds))
        print(f"epoch {epoch} phase {phase} train {train_loss:.4f} {train_acc:.4f} "
              f"val {val_loss:.4f} {val_acc:.4f} {seconds:.1f}s", flush=True)
        if val_acc > best_acc:
            best_acc = val_acc
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    with open(os.path.join(a.out, "records.txt"), "w") as f:
        for r in records:
            f.write("%d %d %.9g %.9g %.9g %.9g %.6g\n" % r)
    with open(os.path.join(a.out, "lr.txt"), "w") as f:
        for epoch, name, lr in lrs_used:
            f.write("%d %s %.17g\n" % (epoch, name, lr))
    torch.save(best_state, os.path.join(a.out, "best.pth"))


if __name__ == "__main__":
    main()
