"""Every torchvision backbone tlsweep builds, as state_dict names and shapes, for
test_architectures.c. Writes OUTDIR/architectures/BACKBONE.txt: "name dim0 dim1 ..." per line,
in state_dict order, with the head replaced for 102 classes as the seed does (docs/experiment.md).

Usage: export_architectures.py OUTDIR
"""
import os
import sys

import torch
import torchvision

BACKBONES = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
             "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def main():
    out = os.path.join(sys.argv[1], "architectures")
    os.makedirs(out, exist_ok=True)
    # Only names and shapes matter: skip the (slow) random initialisation.
    for fn in ("kaiming_normal_", "kaiming_uniform_", "normal_", "constant_", "uniform_"):
        setattr(torch.nn.init, fn, lambda t, *a, **k: t)
    for name in BACKBONES:
        model = getattr(torchvision.models, name)()
        if name.startswith("resnet"):
            model.fc = torch.nn.Linear(model.fc.in_features, 102)
        else:
            model.classifier[6] = torch.nn.Linear(model.classifier[6].in_features, 102)
        params = sum(p.numel() for p in model.parameters())
        with open(os.path.join(out, name + ".txt"), "w") as f:
            f.write(f"# parameters {params}\n")
            for key, t in model.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    continue
                f.write(" ".join([key] + [str(s) for s in t.shape]) + "\n")
        print(name, params)


if __name__ == "__main__":
    main()
