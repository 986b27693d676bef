"""torchvision (PIL backend) reference for tests/unit/test_data.c.

usage: ref_data.py JOBS OUTDIR
JOBS has one job per line, "NAME KIND ARGS...":
  NAME decode PATH                         PIL Image.open(PATH).convert("RGB")
  NAME resized PATH R                      ... then transforms.Resize(R)
  NAME eval PATH R C                       the seed's eval transform, as (C, C, 3)
  NAME aug PATH R HFLIP CFIRST B C ANGLE SHEAR
                                           Resize(R), then F.hflip, F.adjust_brightness /
                                           F.adjust_contrast (contrast first when CFIRST, a
                                           factor of 0 means the op is off) and F.affine
                                           (nearest, fill 0), uint8 image before the crop
Each result goes to OUTDIR/NAME.bin as raw little-endian float32 (HWC) with NAME.shape.
"""
import os
import sys

import numpy as np
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as F

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def load(path):
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def run(kind, args):
    if kind == "decode":
        return np.asarray(load(args[0]))
    if kind == "resized":
        return np.asarray(T.Resize(int(args[1]))(load(args[0])))
    if kind == "eval":
        r, c = int(args[1]), int(args[2])
        t = T.Compose([T.Resize(r), T.CenterCrop(c), T.ToTensor(), T.Normalize(MEAN, STD)])
        return t(load(args[0])).permute(1, 2, 0).numpy()
    if kind == "aug":
        img = T.Resize(int(args[1]))(load(args[0]))
        hflip, cfirst = int(args[2]), int(args[3])
        b, c, angle, shear = (float(x) for x in args[4:8])
        if hflip:
            img = F.hflip(img)
        ops = [lambda i: F.adjust_brightness(i, b) if b > 0 else i,
               lambda i: F.adjust_contrast(i, c) if c > 0 else i]
        for op in (ops[::-1] if cfirst else ops):
            img = op(img)
        if angle != 0 or shear != 0:
            img = F.affine(img, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0],
                           interpolation=T.InterpolationMode.NEAREST, fill=0)
        return np.asarray(img)
    raise SystemExit(f"ref_data.py: unknown job kind '{kind}'")


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    jobs, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with open(jobs) as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            a = np.ascontiguousarray(run(words[1], words[2:]), dtype="<f4")
            a.tofile(os.path.join(out, words[0] + ".bin"))
            with open(os.path.join(out, words[0] + ".shape"), "w") as s:
                s.write(" ".join(str(d) for d in a.shape) + "\n")


if __name__ == "__main__":
    main()
