"""PyTorch reference runs for test_trial.c: a small synthetic Flowers102-format dataset made by
`bin/tlsweep synth-flowers`, and tests/reference/seed.py trained on it with augmentation off
and a fixed batch order, from initial weights it saves (init.pth) for the C side to start from.

Usage: export_trial.py OUTDIR    (writes OUTDIR/trial/)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# name, backbone, width, schedule, fine-tuning epochs, StepLR (step, gamma) of the two phases;
# the sizes are shared with test_trial.c. The first two never reach a StepLR step (the seed's
# 6 and 2); vgg11_bn_steps steps after every epoch in both phases, so that the trial's
# epoch -> learning-rate mapping is compared with StepLR's.
SEED_STEPS = ((6, 0.3), (2, 0.7))
CASES = [("resnet18", "resnet18", 1, "exp-decay-3", 1, SEED_STEPS),
         ("vgg11_bn", "vgg11_bn", 8, "linear-decay", 1, SEED_STEPS),
         ("vgg11_bn_steps", "vgg11_bn", 8, "linear-decay", 2, ((1, 0.5), (1, 0.6)))]


def main():
    out = os.path.join(sys.argv[1], "trial")
    data = os.path.join(out, "data")
    os.makedirs(out, exist_ok=True)
    # 64 px short side = the resize: no resampling, so both sides see identical pixels.
    subprocess.run([os.path.join(ROOT, "bin", "tlsweep"), "synth-flowers", data, "--classes", "5",
                    "--per-class", "24", "--width", "64", "--height", "72", "--seed", "3"],
                   check=True, stdout=subprocess.DEVNULL)
    for name, backbone, width, schedule, ft_epochs, ((fe_step, fe_gamma), (ft_step, ft_gamma)) in CASES:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "reference", "seed.py"),
                        "--data", data, "--backbone", backbone, "--width", str(width),
                        "--schedule", schedule, "--fe-epochs", "2", "--ft-epochs", str(ft_epochs),
                        "--resize", "64", "--crop", "56", "--batch-size", "16",
                        "--no-augment", "--no-shuffle", "--dropout", "0", "--seed", "5",
                        "--fe-step", str(fe_step), "--fe-gamma", str(fe_gamma),
                        "--ft-step", str(ft_step), "--ft-gamma", str(ft_gamma),
                        "--save-init", os.path.join(d, "init.pth"), "--out", d],
                       check=True)


if __name__ == "__main__":
    main()
