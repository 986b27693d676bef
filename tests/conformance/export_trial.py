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

# name, backbone, width, schedule; the sizes are shared with test_trial.c
CASES = [("resnet18", "resnet18", 1, "exp-decay-3"), ("vgg11_bn", "vgg11_bn", 8, "linear-decay")]


def main():
    out = os.path.join(sys.argv[1], "trial")
    data = os.path.join(out, "data")
    os.makedirs(out, exist_ok=True)
    # 64 px short side = the resize: no resampling, so both sides see identical pixels.
    subprocess.run([os.path.join(ROOT, "bin", "tlsweep"), "synth-flowers", data, "--classes", "5",
                    "--per-class", "24", "--width", "64", "--height", "72", "--seed", "3"],
                   check=True, stdout=subprocess.DEVNULL)
    for name, backbone, width, schedule in CASES:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "reference", "seed.py"),
                        "--data", data, "--backbone", backbone, "--width", str(width),
                        "--schedule", schedule, "--fe-epochs", "2", "--ft-epochs", "1",
                        "--resize", "64", "--crop", "56", "--batch-size", "16",
                        "--no-augment", "--no-shuffle", "--dropout", "0", "--seed", "5",
                        "--save-init", os.path.join(d, "init.pth"), "--out", d],
                       check=True)


if __name__ == "__main__":
    main()
