"""``neurosim report``: tables and figures from one or more run stores.

Writes into the output directory

* ``learning_curves.png`` — train (dashed) and test (solid) error per
  checkpoint, like the paper's appendix A figures (dotted: the published
  test error of the matching cell);
* ``alignment.png`` — alignment angle per hidden layer over training, like
  Fig. 2 (only for stores that recorded metrics; the readout is exact and
  not shown);
* ``summary.md`` / ``summary.csv`` — one row per store: final train/test
  error beside the published numbers of the matching cell of tables 1-2
  (:mod:`neurosim.analysis.paper_tables`), final alignment angles and, with
  ``cluster=True``, cluster quality before vs after training;
* ``cells.csv`` — per table cell, mean ± std over the stores in it (seeds).

A store is matched to a cell from its protocol attrs (circuit layer kinds,
vectorized, sign, rule, dataset).  Sweep stores (root attr ``kind ==
"sweep"``) are handed to :func:`neurosim.analysis.sweep_report.report_sweep`
when that module exists.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import paper_tables


@dataclass
class RunData:
    path: str
    name: str
    protocol: dict
    ds: object
    attrs: dict
    cell: tuple | None
    paper: dict | None
    extra: dict = field(default_factory=dict)


def load_run(path) -> RunData:
    from ..recording import open_store

    ds = open_store(path)
    attrs = dict(ds.attrs)
    proto = attrs.get("protocol_dict") or json.loads(attrs.get("protocol", "{}"))
    circ = proto.get("circuit", {})
    kinds = [ls.get("type") for ls in circ.get("layers", [])]
    key = paper_tables.cell(proto.get("data", {}).get("dataset", attrs.get("dataset", "")), kinds,
                            bool(circ.get("vectorized", attrs.get("vectorized", True))),
                            circ.get("sign", attrs.get("sign", "")),
                            proto.get("rule", {}).get("name", attrs.get("rule", "")))
    name = proto.get("name") or Path(path).stem
    return RunData(str(path), name, proto, ds, attrs, key, paper_tables.lookup(key))


def is_sweep(path) -> bool:
    import zarr

    try:
        g = zarr.open_group(str(path), mode="r")
    except Exception:  # not a zarr group: let open_store report it
        return False
    return g.attrs.get("kind") == "sweep"


def _values(ds, name):
    return np.asarray(ds[name].values, dtype=np.float64) if name in ds else np.array([])


def cell_label(key) -> str:
    if key is None:
        return ""
    ds, row, rule, sign = key
    return f"{ds} {row} {rule}{'+' if sign == 'nonnegative' else ''}"


def final_angles(ds) -> dict:
    """{layer: last alignment angle} of the hidden layers, if recorded."""
    if "alignment_angle" not in ds or ds.sizes.get("step", 0) == 0:
        return {}
    last = ds["alignment_angle"].isel(step=-1)
    readout = ds["readout"].values if "readout" in ds.coords else np.zeros(last.sizes["layer"], bool)
    return {int(layer): float(v) for layer, v, ro in zip(ds["layer"].values, last.values, readout)
            if not ro}


def summary_rows(runs) -> list[dict]:
    rows = []
    for r in runs:
        ds = r.ds
        tr, te = _values(ds, "train_error"), _values(ds, "test_error")
        ep = _values(ds, "epoch")
        paper = r.paper or {}
        row = {
            "store": r.path,
            "name": r.name,
            "rule": r.protocol.get("rule", {}).get("name", r.attrs.get("rule")),
            "dataset": r.protocol.get("data", {}).get("dataset", r.attrs.get("dataset")),
            "circuit": r.protocol.get("circuit", {}).get("name") or "",
            "seed": r.attrs.get("seed"),
            "cell": cell_label(r.cell),
            "epochs": float(ep[-1]) if len(ep) else math.nan,
            "status": r.attrs.get("status", ""),
            "train_error": float(tr[-1]) if len(tr) else math.nan,
            "test_error": float(te[-1]) if len(te) else math.nan,
            "paper_train_error": paper.get("train", math.nan),
            "paper_test_error": paper.get("test", math.nan),
        }
        row["test_minus_paper"] = row["test_error"] - row["paper_test_error"]
        ang = final_angles(ds)
        row["final_alignment_deg"] = " ".join(f"L{k}:{v:.1f}" for k, v in ang.items())
        row.update(r.extra)
        rows.append(row)
    return rows


def cell_rows(rows) -> list[dict]:
    """Mean ± std of final errors over the stores of each matched cell."""
    groups: dict = {}
    for row in rows:
        if row["cell"]:
            groups.setdefault(row["cell"], []).append(row)
    out = []
    for label, rs in sorted(groups.items()):
        te = np.array([r["test_error"] for r in rs])
        tr = np.array([r["train_error"] for r in rs])
        out.append({"cell": label, "runs": len(rs), "test_error_mean": float(te.mean()),
                    "test_error_std": float(te.std()), "train_error_mean": float(tr.mean()),
                    "train_error_std": float(tr.std()),
                    "paper_test_error": rs[0]["paper_test_error"],
                    "paper_train_error": rs[0]["paper_train_error"]})
    return out


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.2f}"
    return "" if v is None else str(v)


def write_csv(rows, path: Path) -> Path:
    keys = list(rows[0]) if rows else ["store"]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r.get(k, "") for k in keys})
    return path


MD_COLUMNS = [("name", "run"), ("cell", "paper cell"), ("seed", "seed"), ("epochs", "epochs"),
              ("train_error", "train err %"), ("test_error", "test err %"),
              ("paper_train_error", "paper train %"), ("paper_test_error", "paper test %"),
              ("test_minus_paper", "Δ test"), ("final_alignment_deg", "final angles (deg)")]


def write_markdown(rows, cells, path: Path, extra_cols=()) -> Path:
    cols = MD_COLUMNS + [(c, c.replace("_", " ")) for c in extra_cols]
    lines = ["# neurosim report", "",
             f"Paper numbers: {paper_tables.SOURCE}. A run is matched to a cell by its circuit's "
             "layer kinds, vectorization, sign constraint, rule and dataset (not by its width or "
             "training length: compare `epochs` with the paper's 190 / early stop).", "",
             "| " + " | ".join(h for _, h in cols) + " |",
             "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |")
    if cells:
        lines += ["", "## Per cell (mean ± std over runs)", "",
                  "| cell | runs | test err % | train err % | paper test % | paper train % |",
                  "|---|---|---|---|---|---|"]
        for c in cells:
            lines.append(f"| {c['cell']} | {c['runs']} | {c['test_error_mean']:.2f} ± "
                         f"{c['test_error_std']:.2f} | {c['train_error_mean']:.2f} ± "
                         f"{c['train_error_std']:.2f} | {_fmt(c['paper_test_error'])} | "
                         f"{_fmt(c['paper_train_error'])} |")
    path.write_text("\n".join(lines) + "\n")
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(runs, path: Path) -> Path:
    """Train (dashed) and test (solid) error vs epoch, one colour per store."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, r in enumerate(runs):
        c = colors[k % len(colors)]
        ep = _values(r.ds, "epoch")
        ax.plot(ep, _values(r.ds, "test_error"), "-", color=c, label=f"{r.name} test")
        ax.plot(ep, _values(r.ds, "train_error"), "--", color=c, label=f"{r.name} train")
        if r.paper:
            ax.axhline(r.paper["test"], color=c, ls=":", lw=1,
                       label=f"paper {cell_label(r.cell)} test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_title("Learning curves (solid: test, dashed: train, dotted: paper)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_alignment(runs, path: Path) -> Path | None:
    """Alignment angle of each hidden layer over training (Fig. 2); None if
    no store recorded it."""
    rec = [r for r in runs if "alignment_angle" in r.ds and r.ds.sizes.get("step", 0) > 0]
    if not rec:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(rec), figsize=(5 * len(rec), 4), squeeze=False)
    for ax, r in zip(axes[0], rec):
        ds = r.ds
        x = _values(ds, "epoch_at_step") if "epoch_at_step" in ds else _values(ds, "step")
        readout = ds["readout"].values if "readout" in ds.coords else np.zeros(ds.sizes["layer"], bool)
        kinds = str(ds["layer"].attrs.get("layer_kinds", "")).split()
        ang = np.asarray(ds["alignment_angle"].values, dtype=np.float64)
        for j, layer in enumerate(ds["layer"].values):
            if readout[j]:
                continue
            kind = kinds[j] if j < len(kinds) else ""
            ax.plot(x, ang[:, j], "-o", ms=2, label=f"layer {int(layer)} {kind}")
        ax.set_xlabel("epoch" if "epoch_at_step" in ds else "step")
        ax.set_ylabel("alignment angle (deg)")
        ax.set_ylim(0, 95)
        ax.set_title(f"{r.name} ({r.protocol.get('rule', {}).get('name', '')})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def alignment_rows(runs) -> list[dict]:
    out = []
    for r in runs:
        for layer, v in final_angles(r.ds).items():
            out.append({"name": r.name, "store": r.path, "layer": layer, "final_alignment_deg": v})
    return out


def cluster_before_after(run: RunData, layer=None, examples: int = 500, method: str = "tsne",
                         seed: int = 0) -> dict:
    """Cluster quality (paper §6) of a layer's representation of test
    examples at initialisation (the network rebuilt from the store's protocol
    and seed) and with the store's last committed weights."""
    from .. import experiment
    from ..metrics.cluster import default_layer, layer_representation, representation_quality
    from ..model.network import load_state_dict
    from ..recording import Recorder

    exp = experiment.build(run.protocol, data=False)  # the network at initialisation
    net = exp.net
    xt, yt = experiment.examples(run.protocol, "test", examples)
    L = default_layer(net) if layer is None else int(layer)
    x, y = exp.backend.asarray(xt), np.asarray(yt)
    before = representation_quality(layer_representation(net, x, L), y, method=method, seed=seed)
    state, _ = Recorder(run.path).load_checkpoint()
    if state is None:
        raise ValueError(f"{run.path} has no committed checkpoint")
    load_state_dict(net, {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    after = representation_quality(layer_representation(net, x, L), y, method=method, seed=seed)
    return {"cluster_layer": L, "cluster_quality_init": before, "cluster_quality_final": after}


def report(paths, out_dir, cluster: bool = False, cluster_layer=None, cluster_examples: int = 500,
           cluster_method: str = "tsne") -> list[Path]:
    """Write the report files for run stores ``paths``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    run_paths = []
    sweeps = [p for p in paths if is_sweep(p)]
    for p in paths:
        if p not in sweeps:
            run_paths.append(p)
    if sweeps:
        try:
            from .sweep_report import report_sweep
        except ImportError:
            report_sweep = None
        for p in sweeps:
            if report_sweep is None:
                raise ValueError(f"{p} is a sweep store but neurosim.analysis.sweep_report is not "
                                 f"available")
            sub = out if len(sweeps) == 1 and not run_paths else out / Path(p).stem
            res = report_sweep(str(p), str(sub))
            files.extend(Path(f) for f in (res or []))
    if not run_paths:
        return files
    runs = [load_run(p) for p in run_paths]
    extra_cols = []
    if cluster:
        for r in runs:
            r.extra.update(cluster_before_after(r, cluster_layer, cluster_examples, cluster_method))
        extra_cols = ["cluster_layer", "cluster_quality_init", "cluster_quality_final"]
    rows = summary_rows(runs)
    cells = cell_rows(rows)
    files.append(write_csv(rows, out / "summary.csv"))
    files.append(write_markdown(rows, cells, out / "summary.md", extra_cols))
    if cells:
        files.append(write_csv(cells, out / "cells.csv"))
    files.append(plot_learning_curves(runs, out / "learning_curves.png"))
    al = plot_alignment(runs, out / "alignment.png")
    if al is not None:
        files.append(al)
        files.append(write_csv(alignment_rows(runs), out / "alignment.csv"))
    return files
