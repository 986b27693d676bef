#!/usr/bin/env python3
"""Snapshots the committed epochs of a killed results file and checks them after the rerun.

usage: fault_check.py snapshot FILE OUT.json   (FILE may not exist yet: an empty snapshot)
       fault_check.py verify FILE SNAP.json    every epoch in the snapshot is still in /curves,
                                               once, with every column unchanged (its time too)
Exits nonzero with one line per problem."""
import json
import os
import sys

import h5py

def value(v):
    return v.decode() if isinstance(v, bytes) else v.item()


def rows(path):
    f = h5py.File(path, "r", libver="latest", swmr=True)
    c = f["curves"][:]
    out = {}
    for r in c:
        key = f"{r['trial'].decode()}@{int(r['epoch'])}"
        out.setdefault(key, []).append({k: value(r[k]) for k in c.dtype.names})
    return out


def main():
    cmd, path, snap = sys.argv[1:4]
    if cmd == "snapshot":
        # a kill before the root created the file leaves none, or one without tables yet
        try:
            data = rows(path) if os.path.exists(path) else {}
        except (OSError, KeyError):
            data = {}
        with open(snap, "w") as f:
            json.dump(data, f)
        print(sum(len(v) for v in data.values()))
        return 0
    with open(snap) as f:
        before = json.load(f)
    after = rows(path)
    problems = []
    for key, old in before.items():
        if len(old) != 1:
            problems.append(f"{key} was in the killed file {len(old)} times")
        new = after.get(key, [])
        if len(new) != 1:
            problems.append(f"{key}: committed before the kill, {len(new)} times after the rerun")
        elif new[0] != old[0]:
            problems.append(f"{key}: changed by the rerun: {old[0]} -> {new[0]}")
    for p in problems:
        print(f"fault_check {path}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
