#!/usr/bin/env python3
"""The comparison figures of a tlsweep results file (results/SCHEMA.md), also while it is written.

usage: plot.py FILE.h5 [-o DIR] [--format png,svg,pdf] [--data-json PATH]
       python3 -m results.plot ...      (from the repository root)
       tlsweep plot ...                 (the binary runs this script)

Writes five figures into DIR (default: FILE without .h5, plus -figures):
  curves      train/val loss and accuracy against epoch, one panel per backbone x schedule
  fe_vs_ft    validation accuracy at the end of feature extraction beside the best while
              fine-tuning, per trial, grouped by backbone, coloured by schedule
  heatmap     best validation accuracy, backbone x schedule, a facet per other grid value
  lr          every layer group's learning rate against epoch, and across groups
  throughput  training images/s per phase and wall time per trial, with the part of the
              epochs spent waiting for data (an input-bound trial shows at once)
--data-json writes the arrays each figure drew. Every drawn line, bar and image carries a gid
("TRIAL|value", the heatmap its facet) saying what it shows: the tests read the figures back.
In a notebook: `sweep = load(path)`, then `fig, data = figure_curves(sweep)` and so on.
Exit status: 0 written, 2 bad arguments or an unreadable results file, 3 a Python module missing.
"""
import argparse
import json
import os
import sys
import textwrap
import time

try:
    import h5py
    import numpy as np
    import pandas as pd
    import matplotlib

    if __name__ == "__main__":
        matplotlib.use("Agg")  # files only; a notebook keeps its inline backend
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator
except ImportError as e:  # tell which Debian package provides it
    package = {"h5py": "python3-h5py", "numpy": "python3-numpy", "pandas": "python3-pandas"}
    name = (e.name or "").split(".")[0]
    print(
        f"tlsweep plot: {sys.executable} cannot import {name or e}: install "
        f"{package.get(name, 'python3-' + name)} (tools/install-deps.sh)",
        file=sys.stderr,
    )
    sys.exit(3)

FIGURES = ("curves", "fe_vs_ft", "heatmap", "lr", "throughput")
FAILED_STATES = ("failed", "preempted")
STATUS_COLOR = {"failed": "#c0392b", "preempted": "#d35400", "running": "#7f8c8d", "pending": "#7f8c8d"}


class ResultsError(Exception):
    """An unreadable or incomplete results file; the message names the file."""


class Sweep:
    """The three tables of a results file as pandas frames, strings decoded."""

    def __init__(self, path, attrs, trials, curves, lr):
        self.path, self.attrs, self.trials, self.curves, self.lr = path, attrs, trials, curves, lr
        self.name = attrs.get("sweep_name") or os.path.basename(path)
        self.simulated = int(attrs.get("simulated", 0)) == 1
        cols = attrs.get("grid_columns", "")
        self.grid_columns = [c for c in cols.split(",") if c]
        # one colour per schedule, in grid order, the same in every figure
        palette = plt.get_cmap("tab10").colors
        self.schedules = list(dict.fromkeys(trials["schedule"]))
        self.backbones = list(dict.fromkeys(trials["backbone"]))
        self.colors = {s: palette[i % len(palette)] for i, s in enumerate(self.schedules)}

    def title(self, what):
        sim = " (SIMULATED: no training, synthetic numbers)" if self.simulated else ""
        counts = self.trials["status"].value_counts()
        state = ", ".join(f"{n} {s}" for s, n in counts.items())
        return f"{self.name}: {what}{sim}\n{len(self.trials)} trials: {state}"


def _decode(frame):
    for c in frame.columns:
        if frame[c].dtype == object and len(frame) and isinstance(frame[c].iloc[0], bytes):
            frame[c] = frame[c].str.decode("utf-8")
    return frame


def load(path):
    """Reads FILE.h5 (SWMR, so a sweep may be writing it). Raises ResultsError naming the file."""
    if not os.path.exists(path):
        raise ResultsError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r", libver="latest", swmr=True)
    except OSError as e:
        raise ResultsError(f"{path}: not a readable HDF5 file ({e})") from None
    with f:
        for table in ("trials", "curves", "lr"):
            if table not in f:
                raise ResultsError(f"{path}: no /{table} table: not a tlsweep results file?")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        try:
            frames = []
            for table in ("trials", "curves", "lr"):
                f[table].refresh()
                frames.append(_decode(pd.DataFrame(f[table][:])))
        except (OSError, ValueError) as e:
            raise ResultsError(f"{path}: cannot read /{table}: {e}") from None
    trials, curves, lr = frames
    if not len(trials):
        raise ResultsError(f"{path}: /trials is empty")
    return Sweep(path, attrs, trials, curves.sort_values(["trial_id", "epoch"]), lr)


def _status_tag(status):
    return "" if status == "done" else f" [{status.upper()}]"


def _phase_switch(sweep, trial_id=None):
    """Epoch after which fine-tuning starts (last phase-1 epoch), from the curves."""
    c = sweep.curves if trial_id is None else sweep.curves[sweep.curves.trial_id == trial_id]
    p1 = c[c.phase == 1]
    return float(p1.epoch.max()) if len(p1) else None


def _no_epochs(rows):
    """The text of a panel without any epoch: why (the trials' states, and a failure's reason)."""
    states = ", ".join(dict.fromkeys(rows.status)) or "no trial"
    reason = next((e for e in rows.error if e), "") if "error" in rows else ""
    reason = reason.split(": ", 1)[-1]  # drop "rank R on HOST", keep "trial ...: why"
    lines = textwrap.wrap(reason, 44, max_lines=3, placeholder=" ...")
    return "\n".join([f"no epochs recorded ({states})"] + lines)


def _cells(sweep):
    """(backbone, schedule, trials frame) for each panel, grid order."""
    for b in sweep.backbones:
        for s in sweep.schedules:
            yield b, s, sweep.trials[(sweep.trials.backbone == b) & (sweep.trials.schedule == s)]


def figure_curves(sweep):
    """Figure 1: loss (top row of each backbone) and accuracy against epoch, per backbone x
    schedule; solid validation, dashed training; a dotted line where fine-tuning starts."""
    nb, ns = len(sweep.backbones), len(sweep.schedules)
    fig, axes = plt.subplots(
        2 * nb, ns, figsize=(4.2 * ns + 1, 2.6 * 2 * nb + 1.2), sharex=True, squeeze=False
    )
    data = {}
    styles = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "v")]
    max_epoch = max(1, int(sweep.curves.epoch.max()) if len(sweep.curves) else 1)
    for i, (b, s, rows) in enumerate(_cells(sweep)):
        r, col = divmod(i, ns)
        ax_loss, ax_acc = axes[2 * r, col], axes[2 * r + 1, col]
        tags = []
        for k, t in enumerate(rows.itertuples()):
            c = sweep.curves[sweep.curves.trial_id == t.id]
            ls, _ = styles[k % len(styles)]
            for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
                for split, style in (("train", "--"), ("val", "-")):
                    y = c[f"{split}_{metric}"].to_numpy()
                    ax.plot(
                        c.epoch, y, linestyle=style, marker="o" if split == "val" else None,
                        markersize=3, color=sweep.colors[s], alpha=1.0 - 0.25 * (k % 3),
                        label=t.grid if split == "val" and ax is ax_acc and t.grid else None,
                        gid=f"{t.name}|{split}_{metric}",
                    )
            data[t.name] = {
                "epoch": c.epoch.tolist(), "train_loss": c.train_loss.tolist(),
                "val_loss": c.val_loss.tolist(), "train_acc": c.train_acc.tolist(),
                "val_acc": c.val_acc.tolist(), "status": t.status,
            }
            if t.status != "done":
                tags.append(f"{t.status} ({len(c)} epochs)")
            switch = _phase_switch(sweep, t.id)
            if switch is not None and (c.phase == 2).any():
                for ax in (ax_loss, ax_acc):
                    ax.axvline(switch + 0.5, color="0.35", linestyle=":", linewidth=1)
        title = f"{b} / {s}"
        ax_loss.set_title(title + ("\n" + ", ".join(tags) if tags else ""), fontsize=10,
                          color=STATUS_COLOR["failed"] if any(
                              st in FAILED_STATES for st in rows.status) else "black")
        if not len(rows) or not any(len(sweep.curves[sweep.curves.trial_id == t]) for t in rows.id):
            ax_loss.text(0.5, 0.5, _no_epochs(rows), ha="center", va="center", fontsize=8,
                         transform=ax_loss.transAxes, color=STATUS_COLOR["failed"] if any(
                             st in FAILED_STATES for st in rows.status) else "0.4")
        if len(rows) > 1:  # several trials per panel: which line is which grid value
            ax_acc.legend(fontsize=7, title="validation", title_fontsize=7, loc="upper left")
        ax_loss.set_ylabel("cross-entropy loss")
        ax_acc.set_ylabel("accuracy")
        ax_acc.set_ylim(0, 1)
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
    # the same loss axis in every panel, from the data with a margin
    losses = sweep.curves[["train_loss", "val_loss"]].to_numpy(dtype=float)
    losses = losses[np.isfinite(losses)]
    if losses.size:
        lo, hi = float(losses.min()), float(losses.max())
        pad = 0.06 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1.0)
        for a in axes[0::2].flat:
            a.set_ylim(lo - pad, hi + pad)
    for a in axes[-1]:
        a.set_xlabel("epoch")
        a.set_xlim(0.5, max_epoch + 0.5)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Line2D([], [], color="0.2", linestyle="-", marker="o", markersize=3, label="validation"),
               Line2D([], [], color="0.2", linestyle="--", label="training"),
               Line2D([], [], color="0.35", linestyle=":", label="fine-tuning starts")]
    handles += [Patch(color=sweep.colors[s], label=s) for s in sweep.schedules]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    fig.suptitle(sweep.title("loss and accuracy per epoch"), fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig, data


def _fe_and_ft(sweep, t):
    """(val acc at the end of feature extraction, best val acc while fine-tuning) from /curves;
    NaN where that phase has not finished / started."""
    c = sweep.curves[sweep.curves.trial_id == t.id]
    p1, p2 = c[c.phase == 1], c[c.phase == 2]
    fe = float(p1.val_acc.iloc[-1]) if len(p1) and len(p2) else float("nan")
    ft = float(p2.val_acc.max()) if len(p2) else float("nan")
    return fe, ft


def figure_fe_vs_ft(sweep):
    """Figure 2: per trial, a light bar (end of feature extraction) beside a solid one (best
    while fine-tuning), grouped by backbone, coloured by schedule."""
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sweep.trials) + 2), 5))
    data, x, ticks, labels = {}, 0.0, [], []
    for b in sweep.backbones:
        group = sweep.trials[sweep.trials.backbone == b]
        start = x
        for t in group.itertuples():
            fe, ft = _fe_and_ft(sweep, t)
            data[t.name] = {"fe": fe, "ft": ft, "status": t.status}
            color = sweep.colors[t.schedule]
            bad = t.status in FAILED_STATES
            for dx, v, alpha, hatch, what in ((-0.2, fe, 0.45, "//", "fe"), (0.2, ft, 1.0, None, "ft")):
                h = 0 if np.isnan(v) else v
                ax.bar(x + dx, h, width=0.4, color=color, alpha=alpha, hatch=hatch,
                       edgecolor=STATUS_COLOR["failed"] if bad else "white", linewidth=1.5 if bad else 0.5,
                       gid=f"{t.name}|{what}")
                ax.text(x + dx, h + 0.01, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center",
                        va="bottom", fontsize=7)
            if t.status != "done":
                ax.text(x, 0.3, t.status.upper(), ha="center", va="bottom", rotation=90, fontsize=9,
                        color=STATUS_COLOR.get(t.status, "black"), fontweight="bold")
            ticks.append(x)
            labels.append(t.schedule + (f"\n{t.grid}" if t.grid else ""))
            x += 1.0
        ax.text((start + x - 1) / 2, -0.16, b, ha="center", va="top", fontweight="bold",
                transform=ax.get_xaxis_transform())
        x += 0.6
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor="0.6", alpha=0.45, hatch="//", label="end of feature extraction"),
               Patch(facecolor="0.3", label="best while fine-tuning")]
    handles += [Patch(color=sweep.colors[s], label=s) for s in sweep.schedules]
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=2)
    ax.set_title(sweep.title("feature extraction vs fine-tuning"), fontsize=11)
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.22)
    return fig, data


def figure_heatmap(sweep):
    """Figure 3: best validation accuracy, backbone (rows) x schedule (columns), one facet per
    combination of the other grid axes."""
    t = sweep.trials
    facets = list(dict.fromkeys(t.grid)) if "grid" in t else [""]
    nf = len(facets)
    fig, axes = plt.subplots(1, nf, figsize=(2 + 2.2 * len(sweep.schedules) * nf, 1.8 + 0.9 * len(sweep.backbones)),
                             squeeze=False, sharey=True)
    data = {}
    im = None
    for ax, facet in zip(axes[0], facets):
        sub = t[t.grid == facet]
        grid = np.full((len(sweep.backbones), len(sweep.schedules)), np.nan)
        for r in sub.itertuples():
            i, j = sweep.backbones.index(r.backbone), sweep.schedules.index(r.schedule)
            # best so far from /curves: also for a running trial (its row is written at the end)
            c = sweep.curves[sweep.curves.trial_id == r.id]
            has = len(c) > 0
            best = float(c.val_acc.max()) if has else np.nan
            grid[i, j] = best
            text = "-" if not has else f"{best:.3f}"
            if r.status != "done":
                text += f"\n{r.status}" + (f", {len(c)} epochs" if has else "")
            light = has and best > 0.6  # viridis is light at the top
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color=STATUS_COLOR["failed"] if r.status in FAILED_STATES else ("black" if light else "white"),
                    fontweight="bold" if r.status != "done" else "normal")
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto", gid=facet)
        ax.set_xticks(range(len(sweep.schedules)))
        ax.set_xticklabels(sweep.schedules)
        ax.set_yticks(range(len(sweep.backbones)))
        ax.set_yticklabels(sweep.backbones)
        ax.set_xlabel("schedule")
        ax.set_title(facet.replace(";", ", ") if facet else "all trials", fontsize=10)
        data[facet] = {"backbones": sweep.backbones, "schedules": sweep.schedules,
                       "best_val_acc": [[None if np.isnan(v) else float(v) for v in row] for row in grid]}
    axes[0, 0].set_ylabel("backbone")
    fig.colorbar(im, ax=axes[0].tolist(), label="best validation accuracy")
    fig.suptitle(sweep.title("best validation accuracy"), fontsize=11, y=1.08)
    return fig, data


def figure_lr(sweep):
    """Figure 4: each layer group's learning rate against epoch (log scale), one panel per
    backbone x schedule, and a last column with the lr across groups at the first fine-tuning
    epoch (the linear or exponential layer decay)."""
    lr = sweep.lr
    nb, ns = len(sweep.backbones), len(sweep.schedules)
    fig, axes = plt.subplots(nb, ns + 1, figsize=(3.8 * (ns + 1) + 1, 3.2 * nb + 1.3), squeeze=False)
    data = {}
    cmap = plt.get_cmap("viridis")
    for i, (b, s, rows) in enumerate(_cells(sweep)):
        r, col = divmod(i, ns)
        ax = axes[r, col]
        ax.set_title(f"{b} / {s}", fontsize=10)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        # the schedule is the same for every trial of the cell: draw the first with lr rows
        shown = [tid for tid in rows.id if (lr.trial_id == tid).any()]
        if not shown:
            ax.text(0.5, 0.5, _no_epochs(rows), ha="center", va="center", transform=ax.transAxes, fontsize=8,
                    color=STATUS_COLOR["failed"] if any(st in FAILED_STATES for st in rows.status) else "0.4")
            continue
        tl = lr[lr.trial_id == shown[0]]
        groups = tl.drop_duplicates("group_index").sort_values("group_index")
        n = len(groups)
        cell = {}
        for g in groups.itertuples():
            rows_g = tl[tl.group_index == g.group_index].sort_values("epoch")
            y = rows_g.lr.to_numpy(dtype=float)
            y_drawn = np.where(y > 0, y, np.nan)  # frozen (0) has no log
            ax.plot(rows_g.epoch, y_drawn, color=cmap(g.group_index / max(1, n - 1)), marker=".",
                    linewidth=1, label=g.group if g.group_index in (0, n - 1) else None,
                    gid=f"{b}/{s}|{tl.trial.iloc[0]}|{g.group}")
            cell[g.group] = {"epoch": rows_g.epoch.tolist(), "lr": y.tolist()}
        data[f"{b}/{s}"] = {"trial": str(tl.trial.iloc[0]), "groups": cell}
        switch = _phase_switch(sweep, shown[0])
        if switch is not None and (tl.phase == 2).any():
            ax.axvline(switch + 0.5, color="0.35", linestyle=":", linewidth=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title=f"{n} groups, output first", fontsize=7, title_fontsize=7, loc="lower left")
        # the profile across groups at the first fine-tuning epoch, per schedule
        prof = axes[r, ns]
        ft = tl[tl.phase == 2]
        if len(ft):
            e = ft.epoch.min()
            p = ft[ft.epoch == e].sort_values("group_index")
            prof.plot(p.group_index, p.lr, marker="o", markersize=3, color=sweep.colors[s], label=s,
                      gid=f"{b}/{s}|profile|{e}")
            data[f"{b}/{s}"]["profile"] = {"epoch": int(e), "group_index": p.group_index.tolist(),
                                           "lr": p.lr.tolist()}
    for r, b in enumerate(sweep.backbones):
        prof = axes[r, ns]
        prof.set_yscale("log")
        prof.set_title(f"{b}: lr per layer group,\nfirst fine-tuning epoch", fontsize=10)
        prof.set_xlabel("layer group (0 = output)")
        prof.set_ylabel("learning rate")
        prof.grid(alpha=0.3)
        if prof.lines:
            prof.legend(fontsize=8)
        else:
            prof.text(0.5, 0.5, "no fine-tuning epoch yet", ha="center", va="center", fontsize=8,
                      transform=prof.transAxes, color="0.4")
    for ax in axes.flat:  # minor ticks over 10+ decades cost seconds and say nothing
        ax.minorticks_off()
    fig.suptitle(sweep.title("learning rate of every layer group (log scale, frozen = 0 not drawn;"
                             " colour: output purple ... input yellow)"), fontsize=11)
    fig.tight_layout()
    return fig, data


def figure_throughput(sweep):
    """Figure 5: mean training images/s per phase, and wall time, per trial, with the seconds
    its epochs waited for data (/curves data_wait_s; files of schema 1 lack it: not drawn).
    A trial's epoch seconds are those it computed: a shared phase 1 counts for its computer."""
    t = sweep.trials
    has_wait = "data_wait_s" in sweep.curves.columns
    fig, (ax_ips, ax_time) = plt.subplots(1, 2, figsize=(max(10, 1.3 * len(t) + 4), 5))
    data, names = {}, []
    now = time.time()
    for k, r in enumerate(t.itertuples()):
        c = sweep.curves[sweep.curves.trial_id == r.id]
        ips = [float(c[c.phase == p].images_per_second.mean()) if (c.phase == p).any() else float("nan")
               for p in (1, 2)]
        if r.start_time > 0:
            wall = (r.end_time if r.end_time > 0 else now) - r.start_time
        else:
            wall = float("nan")
        own = c[c.computed_by == r.id] if "computed_by" in c.columns else c
        train_seconds = float(own.seconds.sum())
        wait = float(own.data_wait_s.sum()) if has_wait else float("nan")
        data[r.name] = {"images_per_second_phase1": ips[0], "images_per_second_phase2": ips[1],
                        "wall_seconds": wall, "epoch_seconds": train_seconds,
                        "data_wait_seconds": wait, "status": r.status}
        color = sweep.colors[r.schedule]
        bad = r.status in FAILED_STATES
        edge = STATUS_COLOR["failed"] if bad else "white"
        for dx, v, alpha, hatch, p in ((-0.2, ips[0], 0.45, "//", 1), (0.2, ips[1], 1.0, None, 2)):
            ax_ips.bar(k + dx, 0 if np.isnan(v) else v, width=0.4, color=color, alpha=alpha,
                       hatch=hatch, edgecolor=edge, gid=f"{r.name}|images_per_second_phase{p}")
        ax_time.bar(k - 0.2, 0 if np.isnan(wall) else wall, width=0.4, color=color, edgecolor=edge,
                    gid=f"{r.name}|wall_seconds")
        ax_time.bar(k + 0.2, train_seconds, width=0.4, color=color, alpha=0.45, hatch="//", edgecolor=edge,
                    gid=f"{r.name}|epoch_seconds")
        if not np.isnan(wait):
            ax_time.bar(k + 0.2, wait, width=0.4, color="0.15", alpha=0.75, edgecolor=edge,
                        gid=f"{r.name}|data_wait_seconds")
        label = r.name.replace("__", "\n", 1).replace("__", " ")
        if r.status != "done":
            for ax in (ax_ips, ax_time):
                ax.text(k, 0.5, r.status.upper(), rotation=90, ha="center", va="center", fontsize=9,
                        fontweight="bold", color=STATUS_COLOR.get(r.status, "black"),
                        transform=ax.get_xaxis_transform())
        names.append(label)
    for ax in (ax_ips, ax_time):
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, fontsize=7)
        ax.grid(axis="y", alpha=0.3)
    ax_ips.set_ylabel("training throughput (images/s)")
    ax_ips.set_title("mean training throughput per phase", fontsize=10)
    ax_time.set_ylabel("seconds")
    ax_time.set_title("wall time of the last attempt, and the sum of its epochs"
                      + (" (dark: waiting for data)" if has_wait else ""), fontsize=10)
    sched = [Patch(color=sweep.colors[s], label=s) for s in sweep.schedules]
    ax_ips.legend(handles=[Patch(facecolor="0.6", alpha=0.45, hatch="//", label="feature extraction"),
                           Patch(facecolor="0.3", label="fine-tuning")] + sched, fontsize=8)
    ax_time.legend(handles=[Patch(facecolor="0.3", label="wall (start to end)"),
                            Patch(facecolor="0.6", alpha=0.45, hatch="//", label="sum of epoch times")]
                   + ([Patch(facecolor="0.15", alpha=0.75, label="of which waiting for data")] if has_wait else [])
                   + sched,
                   fontsize=8)
    fig.suptitle(sweep.title("throughput and time per trial"), fontsize=11)
    fig.tight_layout()
    return fig, data


DRAW = {"curves": figure_curves, "fe_vs_ft": figure_fe_vs_ft, "heatmap": figure_heatmap,
        "lr": figure_lr, "throughput": figure_throughput}


def write_all(sweep, out_dir, formats):
    """Draws every figure into out_dir; returns (paths written, the data each drew)."""
    os.makedirs(out_dir, exist_ok=True)
    paths, drawn = [], {}
    for name in FIGURES:
        fig, data = DRAW[name](sweep)
        drawn[name] = data
        for fmt in formats:
            p = os.path.join(out_dir, f"{name}.{fmt}")
            fig.savefig(p, dpi=110, bbox_inches="tight")
            paths.append(p)
        plt.close(fig)
    return paths, drawn


def _nan_to_none(x):
    if isinstance(x, float) and np.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="tlsweep plot", description="Draw the comparison figures of a tlsweep results file "
        "(also while the sweep writes it).")
    p.add_argument("file", help="the results file (FILE.h5)")
    p.add_argument("-o", "--out", help="folder for the figures (default: FILE without .h5 + -figures)")
    p.add_argument("--format", default="png", help="comma-separated: png, svg, pdf (default png)")
    p.add_argument("--data-json", help="also write the arrays each figure drew to this JSON file")
    a = p.parse_args(argv)
    formats = [f.strip().lower() for f in a.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        p.error(f"--format: {','.join(bad) or 'empty'}: use png, svg or pdf")
    out = a.out or (a.file[:-3] if a.file.endswith(".h5") else a.file) + "-figures"
    try:
        sweep = load(a.file)
    except ResultsError as e:
        print(f"tlsweep plot: {e}", file=sys.stderr)
        return 2
    if os.path.exists(out) and not os.path.isdir(out):
        print(f"tlsweep plot: {out}: a file, not a folder for the figures", file=sys.stderr)
        return 2
    try:
        paths, drawn = write_all(sweep, out, formats)
        if a.data_json:
            with open(a.data_json, "w") as f:
                json.dump(_nan_to_none(drawn), f, indent=1)
    except OSError as e:  # an output place that cannot be written: one line, exit 2
        print(f"tlsweep plot: {e.filename or out}: cannot write: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"{a.file}: {len(sweep.trials)} trials, {len(sweep.curves)} epochs; "
          f"{len(paths)} figures in {out}/")
    for path in paths:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
