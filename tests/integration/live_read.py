#!/usr/bin/env python3
"""Reads a results file while `tlsweep run` writes it, as a notebook would:
h5py.File(p, "r", libver="latest", swmr=True) and refresh(). Succeeds when it saw the sweep in
progress (some but not all epochs in /curves) and then all of them. Every row it saw is saved
to SEEN.json; once the writer has closed the file, --compare checks that each of them is in the
final file, once, with every column as it was seen live (a row read half-written, or changed
after it was committed, differs).

usage: live_read.py FILE TOTAL_EPOCHS SEEN.json [TIMEOUT_SECONDS]
       live_read.py --compare FILE SEEN.json"""
import json
import sys
import time

import h5py


def keyed(rows):
    """{"trial@epoch": [row as a dict, ...]} of /curves rows."""
    out = {}
    for r in rows:
        row = {k: r[k].decode() if isinstance(r[k], bytes) else r[k].item() for k in rows.dtype.names}
        out.setdefault(f"{row['trial']}@{row['epoch']}", []).append(row)
    return out


def compare(path, seen_path):
    with open(seen_path) as f:
        seen = json.load(f)
    final = keyed(h5py.File(path, "r", libver="latest", swmr=True)["curves"][:])
    problems = []
    for key, versions in seen.items():
        if len(final.get(key, [])) != 1:
            problems.append(f"{key}: seen live, {len(final.get(key, []))} times in the final file")
            continue
        for row in versions:
            if row != final[key][0]:
                problems.append(f"{key}: seen live as {row}, final {final[key][0]}")
    for p in problems:
        print(f"live_read {path}: {p}")
    print(f"live_read: {len(seen)} rows seen live, {len(problems)} differ from the final file")
    return 1 if problems or not seen else 0


def main():
    if sys.argv[1] == "--compare":
        return compare(sys.argv[2], sys.argv[3])
    path, total, seen_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    deadline = time.time() + (float(sys.argv[4]) if len(sys.argv) > 4 else 60)
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
    partial, seen, n = [], {}, 0
    while time.time() < deadline:
        curves.refresh()
        n = curves.shape[0]
        # every distinct version of a row that was read goes to the comparison
        for key, rows in keyed(curves[:n]).items():
            versions = seen.setdefault(key, [])
            versions += [r for r in rows if r not in versions]
        if 0 < n < total:
            partial.append(n)
        if n >= total:
            break
        time.sleep(0.02)
    with open(seen_path, "w") as out:
        json.dump(seen, out)
    print(f"live_read: saw {sorted(set(partial))} of {total} epochs while running, then {n}")
    return 0 if partial and n == total else 1


if __name__ == "__main__":
    sys.exit(main())
