#!/usr/bin/env python3
"""Checks what results/plot.py drew against the results file, read here independently with
h5py: every curve point, the bars, the heatmap cells, every layer group's learning rate (and
that linear-decay is linear and exp-decay-F geometric across groups), the throughput and wall
times. What was drawn is read back from the matplotlib figures themselves (each line, bar and
image says what it shows in its gid), not from the data the plotting code says it used; a
DRAWN.json from `tlsweep plot --data-json` is checked the same way. Prints one line per
mismatch; exit 1 if any.

usage: check_plot.py FILE.h5 [DRAWN.json] [--running]   (--running: the file was being written)"""
import json
import os
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from results import plot  # noqa: E402


def decode(a):
    return a.decode() if isinstance(a, bytes) else a


def same(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, rtol=tol, atol=tol)


def close(a, b, tol=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(b))


def artists(fig, kind):
    """(gid, artist) of every artist of that kind in fig that says what it draws."""
    return [(a.get_gid(), a) for a in fig.findobj(kind) if a.get_gid() is not None]


def ticks(axis):
    """The tick labels of an axis (facets sharing it show them only on the first)."""
    label = axis.get_major_formatter()
    return [label(v, i) for i, v in enumerate(axis.get_majorticklocs())]


def drawn_from_figures(path):
    """What plot.py's figures of FILE show, read off their lines, bars and images, in the
    layout of --data-json. A value drawn as nothing (NaN: a bar of height 0, a frozen group's
    lr left out of the log axis) reads back as 0."""
    sweep = plot.load(path)
    drawn = {}
    fig, _ = plot.figure_curves(sweep)
    curves = drawn["curves"] = {}
    for gid, line in artists(fig, Line2D):
        name, column = gid.rsplit("|", 1)
        d = curves.setdefault(name, {})
        d["epoch"] = [int(x) for x in line.get_xdata()]
        d[column] = [float(y) for y in line.get_ydata()]
    for name in ("fe_vs_ft", "throughput"):
        fig, _ = plot.DRAW[name](sweep)
        bars = drawn[name] = {}
        for gid, bar in artists(fig, Rectangle):
            trial, what = gid.rsplit("|", 1)
            bars.setdefault(trial, {})[what] = float(bar.get_height())
    fig, _ = plot.figure_heatmap(sweep)
    drawn["heatmap"] = {}
    for gid, image in artists(fig, AxesImage):
        values = np.ma.filled(image.get_array().astype(float), np.nan)
        drawn["heatmap"][gid] = {
            "backbones": ticks(image.axes.yaxis),
            "schedules": ticks(image.axes.xaxis),
            "best_val_acc": [[None if np.isnan(v) else float(v) for v in row] for row in values]}
    fig, _ = plot.figure_lr(sweep)
    lr = drawn["lr"] = {}
    for gid, line in artists(fig, Line2D):
        cell, trial, group = gid.split("|")
        x, y = line.get_xdata(), np.nan_to_num(np.asarray(line.get_ydata(), dtype=float))
        if trial == "profile":
            lr.setdefault(cell, {"groups": {}})["profile"] = {
                "epoch": int(group), "group_index": [int(v) for v in x], "lr": y.tolist()}
        else:
            c = lr.setdefault(cell, {"groups": {}})
            c["trial"] = trial
            c["groups"][group] = {"epoch": [int(v) for v in x], "lr": y.tolist()}
    matplotlib.pyplot.close("all")
    return drawn


def main():
    path = sys.argv[1]
    running = "--running" in sys.argv
    sources = {"figures": drawn_from_figures(path)}
    for arg in sys.argv[2:]:
        if arg != "--running":
            with open(arg) as f:
                sources[arg] = json.load(f)
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        trials, curves, lrs = f["trials"][:], f["curves"][:], f["lr"][:]
    failed = 0
    for source, drawn in sources.items():
        errors = check(drawn, trials, curves, lrs, running, none_is_zero=source == "figures")
        for e in errors:
            print(f"check_plot {source}: {e}")
        failed += len(errors)
    return 1 if failed else 0


def check(drawn, trials, curves, lrs, running, none_is_zero):
    """The problems of one account of what was drawn; none_is_zero: a missing value was drawn
    as 0 (a figure), not given as None (the JSON)."""
    def close_drawn(a, b):
        return close(a, 0.0 if b is None and none_is_zero else b)

    errors = []
    err = errors.append
    names = [decode(n) for n in trials["name"]]
    for kind in ("curves", "fe_vs_ft", "heatmap", "lr", "throughput"):
        if kind not in drawn:
            err(f"{kind}: nothing drawn")
    if errors:
        return errors

    # 1. curves: every epoch of every trial, in order (a running file may have grown since)
    if set(drawn["curves"]) != set(names):
        err(f"curves: trials drawn {sorted(drawn['curves'])} != file {sorted(names)}")
    for t in trials:
        name = decode(t["name"])
        d = drawn["curves"].get(name)
        if d is None:
            continue
        rows = np.sort(curves[curves["trial_id"] == t["id"]], order="epoch")
        n = len(d["epoch"])
        if d["epoch"] != list(range(1, n + 1)):
            err(f"curves {name}: epochs drawn {d['epoch']} are not 1..{n}")
        if running:
            rows = rows[:n]
            if len(rows) < n:
                err(f"curves {name}: {n} epochs drawn, file has {len(rows)}")
                continue
        elif len(rows) != n:
            err(f"curves {name}: {n} epochs drawn, file has {len(rows)}")
            continue
        for col in ("train_loss", "val_loss", "train_acc", "val_acc"):
            if not same(d[col], rows[col]):
                err(f"curves {name} {col}: drawn {d[col]} != file {rows[col].tolist()}")
        if not running and "status" in d and d["status"] != decode(t["status"]):
            err(f"curves {name}: status {d['status']} != {decode(t['status'])}")

    for t in trials:
        name, status = decode(t["name"]), decode(t["status"])
        rows = np.sort(curves[curves["trial_id"] == t["id"]], order="epoch")
        p1, p2 = rows[rows["phase"] == 1], rows[rows["phase"] == 2]
        # 2. bars: end of feature extraction (= the trial row's column once done) and best FT
        d = drawn["fe_vs_ft"].get(name)
        if d is None:
            err(f"fe_vs_ft: {name} not drawn")
        elif not running:
            fe = float(p1["val_acc"][-1]) if len(p1) and len(p2) else None
            ft = float(p2["val_acc"].max()) if len(p2) else None
            if not close_drawn(d["fe"], fe) or not close_drawn(d["ft"], ft):
                err(f"fe_vs_ft {name}: drawn {d['fe']}, {d['ft']} != file {fe}, {ft}")
            if status == "done" and not close(d["fe"], float(t["val_acc_end_of_feature_extraction"])):
                err(f"fe_vs_ft {name}: {d['fe']} != trials.val_acc_end_of_feature_extraction "
                    f"{t['val_acc_end_of_feature_extraction']}")
            if status == "done" and not close(float(t["best_val_acc"]), float(rows["val_acc"].max())):
                err(f"{name}: trials.best_val_acc {t['best_val_acc']} != max val_acc in /curves")
        # 5. throughput and wall time
        d = drawn["throughput"].get(name)
        if d is None:
            err(f"throughput: {name} not drawn")
        elif not running:
            for p, rows_p in ((1, p1), (2, p2)):
                want = float(rows_p["images_per_second"].mean()) if len(rows_p) else None
                if not close_drawn(d[f"images_per_second_phase{p}"], want):
                    err(f"throughput {name} phase {p}: {d[f'images_per_second_phase{p}']} != {want}")
            if status == "done" and not close(d["wall_seconds"], float(t["end_time"] - t["start_time"])):
                err(f"throughput {name}: wall {d['wall_seconds']} != end - start")
            # the epochs it computed: a shared phase 1 counts for its computer
            own = rows[rows["computed_by"] == t["id"]] if "computed_by" in rows.dtype.names else rows
            if not close(d["epoch_seconds"], float(own["seconds"].sum())):
                err(f"throughput {name}: epoch seconds {d['epoch_seconds']} != sum of /curves seconds")
            if "data_wait_s" not in rows.dtype.names:  # a schema-1 file: nothing to draw
                if d.get("data_wait_seconds") is not None:  # NaN (null in the JSON), or no bar
                    err(f"throughput {name}: data wait {d['data_wait_seconds']} drawn, file has none")
            elif not close(d["data_wait_seconds"], float(own["data_wait_s"].sum())):
                err(f"throughput {name}: data wait {d['data_wait_seconds']} != sum of /curves data_wait_s")

    # 3. heatmap: each cell is its trial's best_val_acc
    for facet, cell in drawn["heatmap"].items():
        for t in trials:
            if decode(t["grid"]) != facet or running:
                continue
            i = cell["backbones"].index(decode(t["backbone"]))
            j = cell["schedules"].index(decode(t["schedule"]))
            v = cell["best_val_acc"][i][j]
            rows = curves[curves["trial_id"] == t["id"]]
            want = float(rows["val_acc"].max()) if len(rows) else None  # = best_val_acc once done
            if not close(v, want):
                err(f"heatmap [{facet}] {decode(t['name'])}: {v} != {want}")
    cells = sum(len(c["backbones"]) * len(c["schedules"]) for c in drawn["heatmap"].values())
    if not running and cells < len(trials):
        err(f"heatmap: {cells} cells for {len(trials)} trials")

    # 4. learning rates: every group of the trial drawn, epoch by epoch
    for key, cell in drawn["lr"].items():
        trial = cell["trial"]
        rows = lrs[np.array([decode(n) for n in lrs["trial"]]) == trial]
        groups = {decode(g) for g in rows["group"]}
        if set(cell["groups"]) != groups:
            err(f"lr {key}: groups drawn {sorted(cell['groups'])} != file {sorted(groups)}")
            continue
        for g, d in cell["groups"].items():
            r = np.sort(rows[np.array([decode(x) for x in rows["group"]]) == g], order="epoch")
            n = len(d["epoch"]) if running else len(r)
            if d["epoch"] != r["epoch"][:n].tolist() or not same(d["lr"], r["lr"][:n]):
                err(f"lr {key} {g}: drawn {d['lr']} != file {r['lr'].tolist()}")
        prof = cell.get("profile")
        if prof is None:
            if not running:
                err(f"lr {key}: no fine-tuning profile drawn")
            continue
        y = np.array(prof["lr"])
        if "linear" in key:  # equal steps from the head's lr down to the lowest
            steps = np.diff(y)
            if not np.allclose(steps, steps[0], rtol=1e-6) or steps[0] >= 0:
                err(f"lr {key}: linear-decay profile is not linear: {y.tolist()}")
        elif "exp-decay-" in key:  # each group 1/F of the one above it
            factor = float(key.split("exp-decay-")[1].split("/")[0])
            if not np.allclose(y[1:] / y[:-1], 1 / factor, rtol=1e-6):
                err(f"lr {key}: not divided by {factor} per group: {y.tolist()}")
    with_lr = {(decode(t["backbone"]), decode(t["schedule"])) for t in trials if (lrs["trial_id"] == t["id"]).any()}
    if not running and len(drawn["lr"]) != len(with_lr):
        err(f"lr: {len(drawn['lr'])} panels drawn")

    return errors


if __name__ == "__main__":
    sys.exit(main())
