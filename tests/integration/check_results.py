#!/usr/bin/env python3
"""Checks a tlsweep results file against results/SCHEMA.md with h5py and pandas.

usage: check_results.py FILE --trials N --epochs E [--done N] [--failed N] [--mode M]
                        [--compare OTHER.h5 [--ignore COLUMN,...]]
--compare: every column of /trials, /curves and /lr present in either file must be in both and
equal, row by row (matched by trial, epoch and group), except those that say when, how fast or
where a trial ran (WALL_CLOCK), the attempt counts, which a kill and rerun raise, and --ignore's.
A shared phase 1 (phase1_trial, computed_by) must be consistent: a trial's phase-1 rows are its
computer's, phase-2 rows its own. Exits nonzero with one line per problem."""
import argparse
import re
import sys

import h5py
import pandas as pd

ATTRS = ["tool", "tool_version", "schema", "git_revision", "compiler", "mpi_version",
         "hdf5_version", "onednn_version", "cuda_version", "sweep_name", "sweep_file",
         "sweep_text", "created", "hosts", "ranks", "mode", "simulated", "grid_columns"]


# Wall-clock and placement columns: "seconds", "time", *_time, *_s (data_wait_s),
# *_per_second, and which rank on which host ran the trial (the scheduler's choice).
WALL_CLOCK = re.compile(r"^(seconds|time|.*_time|.*_s|.*_per_second|host|rank)$")
# a killed and rerun trial has more attempts than an uninterrupted one
RERUN = {"attempts", "attempt"}
KEYS = {"trials": ["name"], "curves": ["trial", "epoch"], "lr": ["trial", "epoch", "group_index"]}


def compare(table, here, there, other_path, ignore=()):
    """Every shared column of one table equal row by row; returns the problems."""
    problems = []
    columns = set(here.columns) | set(there.columns)
    missing = sorted(c for c in columns if c not in here.columns or c not in there.columns)
    if missing:
        problems.append(f"/{table} columns {missing} are not in both files")
    keys = KEYS[table]
    merged = here.merge(there, on=keys, how="outer", suffixes=("", "_other"), indicator=True)
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        problems.append(f"/{table}: {len(unmatched)} rows in only one of the files, e.g. "
                        f"{unmatched[keys].iloc[0].tolist()}")
    merged = merged[merged["_merge"] == "both"]
    compared = sorted(c for c in columns - set(keys) - set(missing)
                      if not WALL_CLOCK.match(c) and c not in RERUN and c not in ignore)
    for column in compared:
        a, b = merged[column], merged[column + "_other"]
        differ = (a != b) & ~(a.isna() & b.isna())
        if differ.any():
            row = merged[differ].iloc[0]
            problems.append(f"/{table} {column} differs from {other_path}, e.g. at "
                            f"{[row[k] for k in keys]}: {row[column]!r} vs {row[column + '_other']!r}")
    return problems


def lineage(trials, curves):
    """A shared phase 1: computed_by is the trial's phase1_trial in phase 1 and the trial in
    phase 2, and a sharing trial's phase-1 rows hold its computer's numbers (timings aside: a
    file finished elsewhere may have computed the node again)."""
    if "phase1_trial" not in trials.columns or "computed_by" not in curves.columns:
        return ["/trials phase1_trial or /curves computed_by missing"]
    problems = []
    computer = dict(zip(trials["id"], trials["phase1_trial"]))
    want = curves["trial_id"].map(computer).where(curves["phase"] == 1, curves["trial_id"])
    if (curves["computed_by"] != want).any():
        row = curves[curves["computed_by"] != want].iloc[0]
        problems.append(f"{row['trial']} epoch {row['epoch']}: computed_by {row['computed_by']}, "
                        f"want {want[row.name]}")
    values = [c for c in curves.columns if c not in ("trial_id", "trial", "attempt", "epoch")
              and not WALL_CLOCK.match(c)]
    shared = curves[(curves["trial_id"].map(computer) != curves["trial_id"]) & (curves["phase"] == 1)]
    shared = shared.assign(source=shared["trial_id"].map(computer))
    pairs = shared.merge(curves, left_on=["source", "epoch"], right_on=["trial_id", "epoch"],
                         suffixes=("", "_computer"))
    done = set(trials.loc[trials["status"] == "done", "id"])
    orphans = shared[~shared.set_index(["source", "epoch"]).index.isin(
        pairs.set_index(["source", "epoch"]).index) & shared["source"].isin(done)]
    if len(orphans):
        problems.append(f"{len(orphans)} shared phase-1 rows whose done computer lacks the epoch")
    for column in values:
        differ = pairs[column] != pairs[column + "_computer"]
        if differ.any():
            row = pairs[differ].iloc[0]
            problems.append(f"{row['trial']} epoch {row['epoch']}: shared phase-1 {column} "
                            f"{row[column]!r}, its computer's {row[column + '_computer']!r}")
    return problems


def frame(dataset):
    df = pd.DataFrame(dataset[:])
    for column in df.columns:
        if df[column].dtype == object:
            df[column] = df[column].str.decode("utf-8")
    return df


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--trials", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--done", type=int)
    ap.add_argument("--failed", type=int, default=0)
    ap.add_argument("--mode", default="simulated")
    ap.add_argument("--compare")
    ap.add_argument("--ignore", default="")
    args = ap.parse_args()
    problems = []
    f = h5py.File(args.file, "r", libver="latest", swmr=True)
    for name in ATTRS:
        if name not in f.attrs:
            problems.append(f"root attribute {name} missing")
    if f.attrs.get("mode", b"").decode() != args.mode:
        problems.append(f"mode is {f.attrs.get('mode')}, want {args.mode}")
    trials, curves, lr = frame(f["trials"]), frame(f["curves"]), frame(f["lr"])
    done = args.trials - args.failed if args.done is None else args.done
    if len(trials) != args.trials or not trials["name"].is_unique:
        problems.append(f"/trials has {len(trials)} rows ({trials['name'].nunique()} names), "
                        f"want {args.trials}")
    if list(trials["id"]) != list(range(len(trials))):
        problems.append("/trials ids are not their row numbers")
    counts = trials["status"].value_counts().to_dict()
    if counts.get("done", 0) != done or counts.get("failed", 0) != args.failed:
        problems.append(f"states {counts}, want {done} done and {args.failed} failed")
    if curves.duplicated(["trial", "epoch"]).any():
        problems.append("a (trial, epoch) appears twice in /curves")
    for _, t in trials.iterrows():
        epochs = sorted(curves.loc[curves["trial"] == t["name"], "epoch"])
        if t["status"] == "done" and epochs != list(range(1, args.epochs + 1)):
            problems.append(f"{t['name']}: epochs {epochs} in /curves")
        if t["status"] == "done" and not (0 < t["best_val_acc"] <= 1 and t["best_epoch"] >= 1):
            problems.append(f"{t['name']}: best_val_acc {t['best_val_acc']}")
        if t["status"] == "failed" and not t["error"]:
            problems.append(f"{t['name']}: failed without a reason")
    if "data_wait_s" not in curves.columns:
        problems.append("/curves has no data_wait_s column")
    elif not ((curves["data_wait_s"] >= 0) & (curves["data_wait_s"] <= curves["seconds"])).all():
        problems.append("/curves data_wait_s outside [0, seconds]")
    ids = dict(zip(trials["id"], trials["name"]))
    if (curves["trial_id"].map(ids) != curves["trial"]).any():
        problems.append("/curves trial_id and trial disagree")
    # /lr: every committed epoch has its groups once, output first, and nothing else
    keys = set(zip(curves["trial"], curves["epoch"]))
    if not set(zip(lr["trial"], lr["epoch"])) <= keys:
        problems.append("/lr has rows for epochs that are not in /curves")
    if lr.duplicated(["trial", "epoch", "group_index"]).any():
        problems.append("/lr has a group twice")
    for (trial, epoch), rows in lr.groupby(["trial", "epoch"]):
        if sorted(rows["group_index"]) != list(range(len(rows))):
            problems.append(f"{trial} epoch {epoch}: group indices {sorted(rows['group_index'])}")
            break
        head = rows.loc[rows["group_index"] == 0]
        want = "fc" if trial.startswith("resnet") else "classifier"
        if head["group"].iloc[0] != want:
            problems.append(f"{trial}: first group {head['group'].iloc[0]}, want {want}")
            break
        c = curves.loc[(curves["trial"] == trial) & (curves["epoch"] == epoch), "head_lr"]
        if abs(c.iloc[0] - head["lr"].iloc[0]) > 1e-15:
            problems.append(f"{trial} epoch {epoch}: head_lr differs from the head group's lr")
            break
    if len(set(zip(lr["trial"], lr["epoch"]))) != len(curves):
        problems.append(f"{len(curves)} epochs in /curves but {len(set(zip(lr['trial'], lr['epoch'])))} in /lr")
    problems += lineage(trials, curves)
    if args.compare:
        other = h5py.File(args.compare, "r", libver="latest", swmr=True)
        ignore = set(filter(None, args.ignore.split(",")))
        for table, here in (("trials", trials), ("curves", curves), ("lr", lr)):
            problems += compare(table, here, frame(other[table]), args.compare, ignore)
    for p in problems:
        print(f"check_results {args.file}: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
