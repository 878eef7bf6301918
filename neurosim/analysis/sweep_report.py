"""Report of a sweep store: the paper's table layout, a per-cell summary, learning curves.

``report_sweep(path, out_dir)`` reads a sweep store written by ``neurosim sweep`` (root attr
``kind = "sweep"``; run stores under ``runs/<name>``) and writes

* ``cells.csv`` / ``cells.md``: one row per cell (the runs that differ only in seed): number
  of finished seeds, mean ± std over seeds of the final test error and train error (the last
  checkpoint: epoch 190 or the early stop, as in the paper), final epochs, the published value
  and a flag when the published value lies outside mean ± 2 std;
* ``table_<dataset>.md``: for runs that are cells of the paper's tables 1 (MNIST) and 2
  (CIFAR-10), the table in the paper's layout — rows FC-Vec, FC, Conv-Vec, Conv, LC-Vec, LC;
  columns GEVB-or-DFA nonnegative · BP nonnegative · GEVB-or-DFA mixed · BP mixed — with
  "mean ± std (train mean)" beside the published "test (train)";
* ``runs.csv``: one row per run, finished or not — ``architecture`` (the paper's table row in
  lower case, ``fc_vec``, ``conv``, ...; empty for other circuits), ``rule``, ``sign``,
  ``seed``, ``epochs`` (of its last checkpoint), ``train_error`` and ``test_error`` (%, at
  that checkpoint), ``stop_reason`` (``epochs``: all epochs; ``early_stop``: zero train
  error at a checkpoint; ``max_steps``: cut short by ``training.max_steps``;
  ``unfinished``: a run that has not ended, whose numbers are those of its last checkpoint;
  ``queued``, ``failed``, ``diverged``), then ``status``, ``steps``, ``wall_s`` (seconds of training up to
  that checkpoint), ``cell`` and ``run``;
* ``curves_<dataset>_<row>.png`` (paper cells: one figure per table row, its four columns) or
  ``curves.png`` (other sweeps): test error (solid) and train error (dashed) against epochs,
  mean over seeds with a ±1 std band.

A run that stopped early keeps its final value for later epochs when seeds are averaged.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..recording.session import Stop
from . import paper_tables
from .cells import mean_curve as cells_mean_curve
from .cells import mean_std
from .figures import ErrorAxis, epoch_axis, pyplot, style_legend
from .paper_tables import TABLES

ROWS = ["FC-Vec", "FC", "Conv-Vec", "Conv", "LC-Vec", "LC"]
COLUMNS = ["GEVB/DFA+", "BP+", "GEVB/DFA", "BP"]  # "+" = nonnegative


def published_tables() -> dict:
    """Published test (train) errors in %, Clark, Abbott & Chung (2021) tables 1 and 2.

    ``{"mnist"|"cifar10": {row: [(test, train) per column in COLUMNS order]}}``; train
    errors below 0.005 are not printed in the paper and are 0.0 here.  The one copy of these
    numbers is :data:`neurosim.analysis.paper_tables.TABLES`.
    """
    return {ds: {row: list(vals) for row, vals in table.items()} for ds, table in TABLES.items()}


# ---------------------------------------------------------------------------------- reading
_COLUMN_OF = {("GEVB/DFA", "nonnegative"): 0, ("BP", "nonnegative"): 1,
              ("GEVB/DFA", "mixed"): 2, ("BP", "mixed"): 3}


def paper_cell(protocol: dict):
    """(dataset, row, column index in COLUMNS) of the paper's tables for a run's
    validated protocol, or None — the cell is decided by
    :func:`neurosim.analysis.paper_tables.cell` from the circuit's layer kinds."""
    from ..model.circuit import circuit_schema
    from ..protocol import view

    p = view(protocol)  # typed, the declared defaults where the store lacks a key
    circ = p.get("circuit") or circuit_schema().view({})  # a store without its circuit
    kinds = [str(ls.get("type", "")) for ls in circ.get("layers", [])]
    dataset = str(p.data.get("dataset", ""))
    key = paper_tables.cell(dataset, kinds, bool(circ.vectorized),
                            str(circ.sign), str(p.rule.get("name", "")))
    if key is None:
        return None
    table = "cifar10" if dataset.startswith("cifar10") else "mnist"
    return table, key[1], _COLUMN_OF[key[2], key[3]]


def collect(path) -> list[dict]:
    """One dict per run listed in the sweep store (finished or not), read by
    :func:`neurosim.analysis.reader.open_sweep`."""
    from .reader import open_sweep, options

    sweep = open_sweep(path)
    out = []
    for e in sweep.entries:
        rec = {"name": e.name, "cell": e.cell, "seed": e.seed, "status": e.status, "error": e.error,
               "protocol": None, "epoch": None, "test_error": None, "train_error": None,
               "stopped": None, "steps": None, "wall_s": None}
        run = e.run
        if run is not None:
            rec["protocol"] = options(run) if run.protocol else None  # typed, with its defaults
            rec["stopped"] = run.stopped or None
            if run.values("epoch").size:
                rec["epoch"] = run.values("epoch")
                rec["test_error"] = run.values("test_error")
                rec["train_error"] = run.values("train_error")
                for key, var in (("steps", "n_steps"), ("wall_s", "wall_time")):
                    v = run.values(var)
                    rec[key] = float(v[-1]) if v.size else None
        out.append(rec)
    return out


def summarize(runs: list[dict]) -> list[dict]:
    """Per cell: finished seeds, mean/std of final test and train error, published value, flag."""
    pub = published_tables()
    cells: dict = {}
    for r in runs:
        cells.setdefault(r["cell"], []).append(r)
    rows = []
    for cell, rs in cells.items():
        done = [r for r in rs if r["status"] == "finished" and r["test_error"] is not None]
        te_m, te_s = mean_std([float(r["test_error"][-1]) for r in done])
        tr_m, tr_s = mean_std([float(r["train_error"][-1]) for r in done])
        proto = next((r["protocol"] for r in rs if r["protocol"]), None)
        pc = paper_cell(proto) if proto else None
        published = pub[pc[0]][pc[1]][pc[2]] if pc else None
        flag = bool(published is not None and len(done) > 1 and math.isfinite(te_s)
                    and abs(te_m - published[0]) > 2 * te_s)
        rows.append({
            "cell": cell, "runs": len(rs), "finished": len(done),
            "failed": sum(r["status"] in ("failed", "diverged") for r in rs),
            "test_error_mean": te_m, "test_error_std": te_s,
            "train_error_mean": tr_m, "train_error_std": tr_s,
            "final_epoch_mean": mean_std([float(r["epoch"][-1]) for r in done])[0],
            "epochs_asked": proto.training.epochs if proto else None,
            "dataset": proto.data.get("dataset") if proto else None,
            "train_subset": proto.data.train_subset if proto else None,
            "table": pc[0] if pc else None, "row": pc[1] if pc else None,
            "column": COLUMNS[pc[2]] if pc else None,
            "published_test": published[0] if published else None,
            "published_train": published[1] if published else None,
            "outside_2std": flag,
            "_runs": done,
        })
    return rows


def run_rows(runs: list[dict]) -> list[dict]:
    """One row per run for ``runs.csv`` (see the module docstring)."""
    rows = []
    # a run not started yet is described by a started run of its cell (they differ in seed only)
    cell_protocol = {r["cell"]: r["protocol"] for r in runs if r["protocol"]}
    for r in runs:
        proto = r["protocol"] or cell_protocol.get(r["cell"]) or {}
        pc = paper_cell(proto) if proto else None
        has = r["epoch"] is not None
        finished = r["status"] == "finished"
        if finished:
            stop = Stop.parse(r["stopped"])
            reason = ("early_stop" if stop is Stop.EARLY_STOP else "max_steps" if stop is Stop.MAX_STEPS
                      else str(r["stopped"] or "epochs"))
        elif r["status"] in ("failed", "diverged", "queued"):
            reason = r["status"]
        else:  # its store says running or interrupted: the numbers are its last checkpoint's
            reason = "unfinished"
        rows.append({
            "architecture": pc[1].lower().replace("-", "_") if pc else "",
            "rule": proto.get("rule", {}).get("name", ""),
            "sign": (proto.get("circuit") or {}).get("sign", ""),  # typed: "" only without a circuit
            "seed": r["seed"],
            "epochs": float(r["epoch"][-1]) if has else None,
            "train_error": float(r["train_error"][-1]) if has else None,
            "test_error": float(r["test_error"][-1]) if has else None,
            "stop_reason": reason,
            "status": r["status"], "steps": r["steps"], "wall_s": r["wall_s"],
            "cell": r["cell"], "run": r["name"],
        })
    return rows


def write_runs(runs: list[dict], path: Path) -> Path:
    rows = run_rows(runs)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["run"])
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v)
                        for k, v in row.items()})
    return path


# ---------------------------------------------------------------------------------- writing
def _pm(m, s, digits=2):
    if not math.isfinite(m):
        return "—"
    return f"{m:.{digits}f} ± {s:.{digits}f}" if math.isfinite(s) else f"{m:.{digits}f}"


def _cell_text(c) -> str:
    if c is None or not c["finished"]:
        return "—"
    txt = f"{_pm(c['test_error_mean'], c['test_error_std'])} ({c['train_error_mean']:.2f})"
    if c["finished"] < 5:
        txt += f" n={c['finished']}"
    if c["outside_2std"]:
        txt += " **!**"
    return txt


def _cells_text(cs) -> str:
    """One table cell; several sweep cells in one paper cell each named (``lr=0.001: ...``)."""
    if not cs:
        return "—"
    if len(cs) == 1:
        return _cell_text(cs[0])
    return "<br>".join(f"{c['cell']}: {_cell_text(c)}" for c in cs)


def _pub_text(p) -> str:
    return f"{p[0]:.2f}" + (f" ({p[1]:.2f})" if p[1] else "")


def write_paper_table(cells, table: str, path: Path, sweep_name: str) -> Path:
    pub = published_tables()[table]
    by: dict = {}  # (row, column) -> the sweep's cells there (several when another key varies)
    for c in cells:
        if c["table"] == table:
            by.setdefault((c["row"], c["column"]), []).append(c)
    datasets = sorted({c["dataset"] for c in cells if c["table"] == table})
    asked = sorted({c["epochs_asked"] for c in cells if c["table"] == table and c["epochs_asked"]})
    subsets = sorted({c["train_subset"] for c in cells if c["table"] == table and c["train_subset"]})
    title = {"mnist": "Table 1 (MNIST)", "cifar10": "Table 2 (CIFAR-10)"}[table]
    lines = [f"# {title}: sweep {sweep_name}", "",
             "Test error % over seeds as mean ± std (mean train error %), at the last checkpoint; "
             "paper values as test (train). **!** = published value outside mean ± 2 std; "
             "n = finished seeds when fewer than 5.", "",
             f"Datasets: {', '.join(datasets)}"
             + (f" (first {', '.join(map(str, subsets))} training examples only)" if subsets else "")
             + f"; epochs asked: {', '.join(map(str, asked))}"
             + (" (SHORTENED: the paper trains up to 190 epochs)" if asked and max(asked) < 190 else ""),
             "", "| | " + " | ".join(f"{c} (ours) | {c} (paper)" for c in COLUMNS) + " |",
             "|---|" + "---|---|" * len(COLUMNS)]
    for row in ROWS:
        if not any((row, col) in by for col in COLUMNS) and not any(r == row for r, _ in by):
            cells_txt = ["—"] * len(COLUMNS)
        else:
            cells_txt = [_cells_text(by.get((row, col))) for col in COLUMNS]
        pubs = [_pub_text(p) for p in pub[row]]
        lines.append(f"| {row} | " + " | ".join(f"{a} | {b}" for a, b in zip(cells_txt, pubs)) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_cells(cells, out: Path) -> list[Path]:
    keys = ["cell", "runs", "finished", "failed", "test_error_mean", "test_error_std", "train_error_mean",
            "train_error_std", "final_epoch_mean", "epochs_asked", "dataset", "table", "row", "column",
            "published_test", "published_train", "outside_2std"]
    csv_path = out / "cells.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for c in cells:
            w.writerow(c)
    md = ["| cell | finished | test error % | train error % | final epoch | paper | outside 2 std |",
          "|---|---|---|---|---|---|---|"]
    for c in cells:
        pub = _pub_text((c["published_test"], c["published_train"])) if c["published_test"] is not None \
            else ""
        ep = f"{c['final_epoch_mean']:.1f}" if math.isfinite(c["final_epoch_mean"]) else "—"
        te = _pm(c["test_error_mean"], c["test_error_std"])
        md.append(f"| {c['cell']} | {c['finished']}/{c['runs']} | {te}"
                  f" | {_pm(c['train_error_mean'], c['train_error_std'])} | {ep} | {pub} | "
                  f"{'yes' if c['outside_2std'] else ''} |")
    md_path = out / "cells.md"
    md_path.write_text("\n".join(md) + "\n")
    return [csv_path, md_path]


def mean_curve(runs: list[dict], key: str):
    """Epoch grid (union) and mean/std over runs; a run's last value carries forward
    (:func:`neurosim.analysis.cells.mean_curve`)."""
    return cells_mean_curve([(r["epoch"], r[key]) for r in runs])


def _plot(ax, cells_labels):
    """Per cell (one colour, one legend entry): mean test (solid, ●) and train (dashed, ■)
    error over its seeds with a ±1 std band, and its published test error (dotted)."""
    ea = ErrorAxis(ax)
    epochs, paper = [], False
    labels = [label for label, _ in cells_labels]
    cells_labels = [(f"{label}: {c['cell']}" if labels.count(label) > 1 else label, c)
                    for label, c in cells_labels]  # two cells in one table column: both named
    pubs = [c.get("published_test") for _, c in cells_labels if c["_runs"]]
    drawn = set()
    for i, (label, c) in enumerate(cells_labels):
        runs = c["_runs"]
        if not runs:
            continue
        color = f"C{i % 10}"
        for key in ("test_error", "train_error"):
            x, m, s = mean_curve(runs, key)
            epochs.append(x)
            which = key.split("_")[0]
            ea.plot(x, m, color, which, label=f"{label} (n={len(runs)})" if which == "test" else None)
            if len(runs) > 1:
                ax.fill_between(x, np.where(m - s > 0, m - s, np.nan), m + s, color=color,
                                alpha=0.15, lw=0)
        pub = c.get("published_test")
        if pub is not None and pub not in drawn:  # once per published value, grey when shared
            drawn.add(pub)
            ea.hline(pub, "0.25" if pubs.count(pub) > 1 else color)
            paper = True
    ea.finish()
    epoch_axis(ax, epochs)
    style_legend(ax, ("test", "train", "paper") if paper else ("test", "train"), loc="lower left")
    ax.legend(fontsize=6, loc="upper right", title="cell (finished seeds)", title_fontsize=6)


def write_curves(cells, out: Path) -> list[Path]:
    plt = pyplot()
    files = []
    paper = [c for c in cells if c["table"] and c["_runs"]]
    other = [c for c in cells if not c["table"] and c["_runs"]]
    groups = {}
    for c in paper:
        groups.setdefault((c["table"], c["row"]), []).append(c)
    for (table, row), cs in groups.items():
        cs.sort(key=lambda c: COLUMNS.index(c["column"]))
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        _plot(ax, [(c["column"], c) for c in cs])
        ax.set_title(f"{table} {row}: mean over seeds (band ±1 std)", fontsize=9)
        p = out / f"curves_{table}_{row}.png"
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        plt.close(fig)
        files.append(p)
    if other:
        fig, ax = plt.subplots(figsize=(7.5, 5))
        _plot(ax, [(c["cell"], c) for c in other[:20]])
        ax.set_title("mean over seeds (band ±1 std)" +
                     (f"; first 20 of {len(other)} cells" if len(other) > 20 else ""), fontsize=9)
        p = out / "curves.png"
        fig.tight_layout()
        fig.savefig(p, dpi=120)
        plt.close(fig)
        files.append(p)
    return files


def report_sweep(path, out_dir) -> list[Path]:
    """Write the sweep's tables and learning-curve figures into ``out_dir``; returns the files."""
    from .reader import open_sweep

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect(path)
    cells = summarize(runs)
    name = open_sweep(path).name
    files = write_cells(cells, out)
    files.append(write_runs(runs, out / "runs.csv"))
    for table in ("mnist", "cifar10"):
        if any(c["table"] == table for c in cells):
            files.append(write_paper_table(cells, table, out / f"table_{table}.md", name))
    failed = [r for r in runs if r["status"] in ("failed", "diverged")]
    if failed:
        p = out / "failed.md"
        p.write_text("\n".join(f"- {r['name']}: {r['status']}: {r['error']}" for r in failed) + "\n")
        files.append(p)
    files += write_curves(cells, out)
    return files
