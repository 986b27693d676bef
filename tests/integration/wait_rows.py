#!/usr/bin/env python3
"""Waits until a results file being written has at least N rows in /curves (read in SWMR
mode), so a test can kill the run right after an epoch was committed.

usage: wait_rows.py FILE N [TIMEOUT_SECONDS]"""
import sys
import time

import h5py


def main():
    path, want = sys.argv[1], int(sys.argv[2])
    deadline = time.time() + (float(sys.argv[3]) if len(sys.argv) > 3 else 30)
    while time.time() < deadline:
        try:
            with h5py.File(path, "r", libver="latest", swmr=True) as f:
                while time.time() < deadline:
                    f["curves"].refresh()
                    if f["curves"].shape[0] >= want:
                        return 0
                    time.sleep(0.01)
        except (OSError, KeyError):
            time.sleep(0.02)
    print(f"wait_rows: {path} did not reach {want} rows")
    return 1


if __name__ == "__main__":
    sys.exit(main())
