"""PyTorch side of test_trial.c's statistical case: transfer learning with augmentation and
shuffling on, where the two implementations draw different random numbers and can only agree
statistically.

A "pretrained" resnet18 is made first (tests/reference/seed.py --from-scratch on one synthetic
10-class dataset, standing in for ImageNet), then the seed's two phases transfer it to another
synthetic 8-class dataset (new head, 4 + 3 epochs). Writes OUTDIR/trial_stats/: the two
datasets, pretrained.pth, and records.txt of the transfer; bf16/records.txt of the same
transfer under torch.autocast (bf16 mixed precision).

Usage: export_trial_stats.py OUTDIR
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEED_PY = os.path.join(ROOT, "tests", "reference", "seed.py")
TLSWEEP = os.path.join(ROOT, "bin", "tlsweep")


def main():
    out = os.path.join(sys.argv[1], "trial_stats")
    os.makedirs(out, exist_ok=True)
    source, target = os.path.join(out, "source"), os.path.join(out, "target")
    subprocess.run([TLSWEEP, "synth-flowers", source, "--classes", "10", "--per-class", "40",
                    "--width", "64", "--height", "56", "--seed", "21"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([TLSWEEP, "synth-flowers", target, "--classes", "8", "--per-class", "40",
                    "--trnid", "5", "--valid", "5", "--width", "64", "--height", "56",
                    "--seed", "22"], check=True, stdout=subprocess.DEVNULL)
    sizes = ["--resize", "48", "--crop", "40", "--batch-size", "16"]
    subprocess.run([sys.executable, SEED_PY, "--data", source, "--backbone", "resnet18",
                    "--from-scratch", "--fe-epochs", "4", "--seed", "1", "--out", out] + sizes,
                   check=True)
    os.replace(os.path.join(out, "final.pth"), os.path.join(out, "pretrained.pth"))
    subprocess.run([sys.executable, SEED_PY, "--data", target, "--backbone", "resnet18",
                    "--pretrained", os.path.join(out, "pretrained.pth"), "--fe-epochs", "4",
                    "--ft-epochs", "3", "--seed", "2", "--out", out] + sizes, check=True)
    subprocess.run([sys.executable, SEED_PY, "--data", target, "--backbone", "resnet18",
                    "--pretrained", os.path.join(out, "pretrained.pth"), "--fe-epochs", "4",
                    "--ft-epochs", "3", "--seed", "2", "--precision", "bf16",
                    "--out", os.path.join(out, "bf16")] + sizes, check=True)


if __name__ == "__main__":
    main()
