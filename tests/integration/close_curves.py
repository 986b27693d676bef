#!/usr/bin/env python3
"""Compares the /curves of two results files of the same sweep within tolerances: the numbers
of a trial trained another way (over several ranks, or resumed elsewhere) that should agree up
to fp32 summation order.

usage: close_curves.py A.h5 B.h5 [--loss-rel X] [--acc-abs Y] [--trial NAME] [--differ]
Rows are matched by (trial, epoch); every row of B must be in A. Losses agree to --loss-rel
relative error, accuracies to --acc-abs (a fraction of the images). Prints the largest
differences; exits 1 when one is out of tolerance (with --differ: when none is, i.e. the
runs should NOT agree)."""
import argparse
import sys

import h5py
import pandas as pd


def curves(path, trial):
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        df = pd.DataFrame(f["curves"][:])
    df["trial"] = df["trial"].str.decode("utf-8")
    df = df[df["train_loss"] == df["train_loss"]]  # written rows only
    return df[df["trial"] == trial] if trial else df


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--loss-rel", type=float, default=1e-3)
    ap.add_argument("--acc-abs", type=float, default=0.0)
    ap.add_argument("--trial")
    ap.add_argument("--differ", action="store_true")
    args = ap.parse_args()
    a, b = curves(args.a, args.trial), curves(args.b, args.trial)
    merged = b.merge(a, on=["trial", "epoch"], how="left", suffixes=("", "_a"), indicator=True)
    if (merged["_merge"] != "both").any() or b.empty:
        print(f"{args.b}: {len(b)} rows, {(merged['_merge'] != 'both').sum()} not in {args.a}")
        return 1
    worst_loss = max(((merged[c] - merged[c + "_a"]).abs() / merged[c + "_a"].abs()).max()
                     for c in ("train_loss", "val_loss"))
    worst_acc = max((merged[c] - merged[c + "_a"]).abs().max() for c in ("train_acc", "val_acc"))
    print(f"{len(merged)} rows: largest loss difference {worst_loss:.3g} relative, "
          f"accuracy {worst_acc:.3g}")
    close = worst_loss <= args.loss_rel and worst_acc <= args.acc_abs
    return 0 if close != args.differ else 1


if __name__ == "__main__":
    sys.exit(main())
