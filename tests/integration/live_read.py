#!/usr/bin/env python3
"""Reads a results file while `tlsweep run` writes it, as a notebook would:
h5py.File(p, "r", libver="latest", swmr=True) and refresh(). Succeeds when it saw the sweep in
progress (some but not all epochs in /curves, each row complete) and then all of them.

usage: live_read.py FILE TOTAL_EPOCHS [TIMEOUT_SECONDS]"""
import sys
import time

import h5py


def main():
    path, total = sys.argv[1], int(sys.argv[2])
    deadline = time.time() + (float(sys.argv[3]) if len(sys.argv) > 3 else 60)
    f = None
    while f is None and time.time() < deadline:
        try:
            f = h5py.File(path, "r", libver="latest", swmr=True)
        except OSError:  # not created yet, or not yet in SWMR mode
            time.sleep(0.02)
    if f is None:
        print(f"live_read: {path} never opened")
        return 1
    curves = f["curves"]
    partial, seen = [], 0
    while time.time() < deadline:
        curves.refresh()
        n = curves.shape[0]
        if n:
            rows = curves[:n]
            if (rows["epoch"] < 1).any():
                print(f"live_read: an incomplete row among {n}")
                return 1
        if 0 < n < total:
            partial.append(n)
        seen = n
        if n >= total:
            break
        time.sleep(0.02)
    print(f"live_read: saw {sorted(set(partial))} of {total} epochs while running, then {seen}")
    return 0 if partial and seen == total else 1


if __name__ == "__main__":
    sys.exit(main())
