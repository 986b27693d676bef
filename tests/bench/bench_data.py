"""torchvision + PIL on one core, the same work as bench_data.c on the same JPEGs.

usage: bench_data.py DIR [SECONDS_PER_KIND]; prints "torchvision KIND IMAGES_PER_S" lines.
  decode_resize   Image.open(...).convert("RGB") + Resize(256)
  train_uncached  decode + the seed's training transform as a torchvision user writes it
                  (flip, ColorJitter, RandomAffine at full size, then Resize, CenterCrop,
                  ToTensor, Normalize): what every epoch costs without a cache
  train_cached    the same transform on an already decoded and resized PIL image
  eval_cached     Resize is a no-op there; CenterCrop + ToTensor + Normalize
"""
import glob
import os
import sys
import time

import torch
from PIL import Image
import torchvision.transforms as T

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def load(path):
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def measure(items, one, seconds):
    start, done = time.process_time(), 0
    while True:
        for item in items:
            one(item)
            done += 1
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return done / elapsed


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    paths = sorted(glob.glob(os.path.join(root, "jpg", "*.jpg")))
    resize = T.Resize(256)
    augment = [T.RandomHorizontalFlip(0.5), T.ColorJitter(brightness=0.3, contrast=0.3),
               T.RandomAffine(degrees=30, shear=20)]
    finish = [T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)]
    train = T.Compose(augment + [resize] + finish)
    train_resized = T.Compose(augment + finish)
    evaluate = T.Compose(finish)
    cached = [resize(load(p)) for p in paths]
    print(f"torchvision images {len(paths)}")
    kinds = [("decode_resize", paths, lambda p: resize(load(p))),
             ("train_uncached", paths, lambda p: train(load(p))),
             ("train_cached", cached, train_resized),
             ("eval_cached", cached, evaluate)]
    for name, items, one in kinds:
        print(f"torchvision {name} {measure(items, one, seconds):.1f}", flush=True)


if __name__ == "__main__":
    main()
