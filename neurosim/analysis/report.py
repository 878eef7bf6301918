"""``neurosim report``: tables and figures from one or more run stores.

Runs are grouped into *cells* (:mod:`neurosim.analysis.cells`): the runs of a cell are
the same experiment except for the seed, and only they are averaged.  Writes into the
output directory

* ``summary.md`` / ``summary.csv`` — one row per store: its cell, seed, final train/test
  error beside the published numbers of the matching cell of the paper's tables 1-2
  (:mod:`neurosim.analysis.paper_tables`), final alignment angles and, with
  ``cluster=True``, cluster quality before vs after training; ``summary.md`` also has the
  per-cell table;
* ``cells.csv`` — per cell: n (runs), seeds, mean ± std (over seeds, ddof 1) of the final
  errors, the published values;
* ``learning_curves.png`` — per cell, test and train error per checkpoint (mean over its
  seeds, ±1 std band), on a log axis, with the published test error (dotted);
* ``alignment.png`` / ``alignment.csv`` — alignment angle per hidden layer over training,
  like Fig. 2 (only for stores that recorded metrics; the readout is exact and not shown).

A store is matched to a paper cell from its protocol (circuit layer kinds, vectorized,
sign, rule, dataset).  Sweep stores are reported by
:func:`neurosim.analysis.sweep_report.report_sweep`.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..model.circuit import circuit_schema
from . import paper_tables
from .cells import group_cells, mean_curve, mean_std
from .figures import ErrorAxis, epoch_axis, pyplot, style_legend
from .reader import RunStore, is_sweep, open_run, options


@dataclass
class RunData:
    """A run store with what the report adds: its paper cell and extra columns."""

    store: RunStore
    paper_key: tuple | None
    paper: dict | None
    extra: dict = field(default_factory=dict)
    cell: str = ""  # label of its cell (set by :func:`cells_of`)

    @property
    def path(self) -> str:
        return self.store.path

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def protocol(self) -> dict:
        return self.store.protocol

    @property
    def ds(self):
        return self.store.ds

    @property
    def attrs(self) -> dict:
        return self.store.attrs


def load_run(path) -> RunData:
    run = open_run(path)
    # typed, the declared defaults where the stored circuit lacks a key; without one, the attrs
    circ = options(run).get("circuit") or circuit_schema().view(
        {k: run.attrs[k] for k in ("vectorized", "sign") if k in run.attrs})
    kinds = [ls.get("type") for ls in circ.get("layers", [])]
    key = paper_tables.cell(run.dataset, kinds, bool(circ.vectorized), circ.sign, run.rule)
    return RunData(run, key, paper_tables.lookup(key))


def cells_of(runs):
    """The runs' cells (:class:`neurosim.analysis.cells.Cell` of RunData); sets ``run.cell``."""
    cells = group_cells(runs, lambda r: r.protocol, lambda r: r.name)
    for c in cells:
        for r in c.members:
            r.cell = c.label
    return cells


def paper_label(key) -> str:
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
        st = r.store
        ep = st.values("epoch")
        paper = r.paper or {}
        row = {
            "store": r.path,
            "run": r.store.label,
            "name": r.name,
            "cell": r.cell,
            "rule": st.rule,
            "dataset": st.dataset,
            "circuit": r.protocol.get("circuit", {}).get("name") or "",
            "seed": st.seed,
            "paper_cell": paper_label(r.paper_key),
            "epochs": float(ep[-1]) if len(ep) else math.nan,
            "status": st.status,
            "stopped": st.stopped,
            "train_error": st.last("train_error"),
            "test_error": st.last("test_error"),
            "paper_train_error": paper.get("train", math.nan),
            "paper_test_error": paper.get("test", math.nan),
            "caveat": " ".join(str(r.protocol.get("caveat") or "").split()),
        }
        row["test_minus_paper"] = row["test_error"] - row["paper_test_error"]
        ang = final_angles(st.ds)
        row["final_alignment_deg"] = " ".join(f"L{k}:{v:.1f}" for k, v in ang.items())
        row.update(r.extra)
        rows.append(row)
    return rows


def cell_rows(cells) -> list[dict]:
    """Per cell: n, seeds, mean ± std (ddof 1; NaN for one run) of the final errors."""
    out = []
    for c in cells:
        rs = c.members
        te_m, te_s = mean_std([r.store.last("test_error") for r in rs])
        tr_m, tr_s = mean_std([r.store.last("train_error") for r in rs])
        ep = sorted({float(r.store.values("epoch")[-1]) for r in rs if r.store.values("epoch").size})
        paper = rs[0].paper or {}
        out.append({"cell": c.label, "n": c.n,
                    "seeds": " ".join(str(r.store.seed) for r in rs),
                    "epochs": " ".join(_epoch_text(e) for e in ep),
                    "test_error_mean": te_m, "test_error_std": te_s,
                    "train_error_mean": tr_m, "train_error_std": tr_s,
                    "paper_cell": paper_label(rs[0].paper_key),
                    "paper_test_error": paper.get("test", math.nan),
                    "paper_train_error": paper.get("train", math.nan),
                    "stores": " ".join(r.path for r in rs)})
    return out


def _epoch_text(e: float) -> str:
    return str(int(e)) if e == int(e) else f"{e:.2f}"


def _fmt(v, key=""):
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return _epoch_text(v) if key == "epochs" else f"{v:.2f}"
    return "" if v is None else str(v)


def _pm(m, s) -> str:
    if not math.isfinite(m):
        return "—"
    return f"{m:.2f} ± {s:.2f}" if math.isfinite(s) else f"{m:.2f}"


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


MD_COLUMNS = [("run", "run"), ("cell", "cell"), ("seed", "seed"), ("epochs", "epochs"),
              ("train_error", "train err %"), ("test_error", "test err %"),
              ("paper_cell", "paper cell"), ("paper_train_error", "paper train %"),
              ("paper_test_error", "paper test %"), ("test_minus_paper", "Δ test"),
              ("final_alignment_deg", "final angles (deg)")]


def write_markdown(rows, cells, path: Path, extra_cols=()) -> Path:
    cols = MD_COLUMNS + [(c, c.replace("_", " ")) for c in extra_cols]
    caveats = [r for r in rows if r.get("caveat")]
    lines = ["# neurosim report", ""]
    if caveats:
        lines += ["## Caveats", ""] + [f"- **{r['run']}**: {r['caveat']}" for r in caveats] + [""]
    lines += ["A *cell* is the runs that are the same experiment except for the seed (equal "
             "protocols apart from seed, names, paths, recording and device); only a cell's runs "
             "are averaged.", "",
             "## Per cell (mean ± std over its n runs)", "",
             "| cell | n | seeds | epochs | test err % | train err % | paper cell | paper test % | "
             "paper train % |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['cell']} | {c['n']} | {c['seeds']} | {c['epochs']} | "
                     f"{_pm(c['test_error_mean'], c['test_error_std'])} | "
                     f"{_pm(c['train_error_mean'], c['train_error_std'])} | {c['paper_cell']} | "
                     f"{_fmt(c['paper_test_error'])} | {_fmt(c['paper_train_error'])} |")
    lines += ["", "## Per run", "",
              f"Paper numbers: {paper_tables.SOURCE}. A run is matched to a paper cell by its "
              "circuit's layer kinds, vectorization, sign constraint, rule and dataset (not by its "
              "width or training length: compare `epochs` with the paper's 190 / early stop).", "",
              "| " + " | ".join(h for _, h in cols) + " |",
              "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k), k) for k, _ in cols) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


def plot_learning_curves(cells, path: Path) -> Path:
    """Per cell (one colour): test (solid, ●) and train (dashed, ■) error, mean over its
    runs with a ±1 std band; the published test error of its paper cell dotted (once per
    paper cell)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ea = ErrorAxis(ax)
    drawn_paper = set()
    epochs = []
    for k, c in enumerate(cells):
        color = f"C{k % 10}"
        for which in ("test", "train"):
            curves = [(r.store.values("epoch"), r.store.values(f"{which}_error")) for r in c.members
                      if r.store.values("epoch").size]
            if not curves:
                continue
            x, m, s = mean_curve(curves)
            epochs.append(x)
            label = f"{c.label} (n={c.n})" if which == "test" else None
            ea.plot(x, m, color, which, label=label)
            if c.n > 1:
                lo = np.where(m - s > 0, m - s, np.nan)
                ax.fill_between(x, lo, m + s, color=color, alpha=0.15, lw=0)
        r0 = c.members[0]
        if r0.paper and r0.paper_key not in drawn_paper:
            drawn_paper.add(r0.paper_key)
            shared = sum(d.members[0].paper_key == r0.paper_key for d in cells) > 1
            pcolor = "0.25" if shared else color  # a paper cell several cells match: grey
            ea.hline(r0.paper["test"], pcolor)
            ax.annotate(f"paper {paper_label(r0.paper_key)}: {r0.paper['test']:.2f}",
                        (1.0, r0.paper["test"]),
                        xycoords=("axes fraction", "data"), xytext=(-3, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7,
                        color=pcolor)
    ea.finish()
    epoch_axis(ax, epochs)
    style_legend(ax, ("test", "train", "paper") if drawn_paper else ("test", "train"),
                 loc="lower left")
    ax.legend(fontsize=7, loc="upper right", title="cell (runs)", title_fontsize=7)
    ax.set_title("Learning curves (mean over the seeds of each cell, band ±1 std)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_alignment(cells, path: Path) -> Path | None:
    """Alignment angle of each hidden layer over training (Fig. 2), one panel per cell
    (mean over its runs); None if no store recorded it."""
    rec = []
    for c in cells:
        ms = [r for r in c.members if "alignment_angle" in r.ds and r.ds.sizes.get("step", 0) > 0]
        if ms:
            rec.append((c, ms))
    if not rec:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rec), figsize=(5 * len(rec), 4), squeeze=False)
    for ax, (c, ms) in zip(axes[0], rec):
        ds = ms[0].ds
        at_epoch = "epoch_at_step" in ds
        readout = ds["readout"].values if "readout" in ds.coords else np.zeros(ds.sizes["layer"], bool)
        kinds = str(ds["layer"].attrs.get("layer_kinds", "")).split()
        xs = []
        for j, layer in enumerate(ds["layer"].values):
            if readout[j]:
                continue
            curves = []
            for r in ms:
                st = r.store
                x = st.values("epoch_at_step") if at_epoch else st.values("step")
                curves.append((x, st.values("alignment_angle")[:, j]))
            x, m, s = mean_curve(curves)
            xs.append(x)
            kind = kinds[j] if j < len(kinds) else ""
            ax.plot(x, m, "-o", ms=3, label=f"layer {int(layer)} {kind}")
            if len(ms) > 1:
                ax.fill_between(x, m - s, m + s, alpha=0.15, lw=0)
        epoch_axis(ax, xs, "epoch" if at_epoch else "optimizer step")
        ax.set_ylabel("alignment angle (deg)")
        ax.set_ylim(0, 90)
        ax.set_yticks([0, 15, 30, 45, 60, 75, 90])
        ax.grid(alpha=0.3)
        ax.set_title(f"{c.label} ({ms[0].store.rule}, n={len(ms)})", fontsize=9)
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

    exp = experiment.build(run.protocol, data=False)  # the network at initialisation
    net = exp.net
    xt, yt = experiment.examples(run.protocol, "test", examples)
    L = default_layer(net) if layer is None else int(layer)
    x, y = exp.backend.asarray(xt), np.asarray(yt)
    before = representation_quality(layer_representation(net, x, L), y, method=method, seed=seed)
    state, _ = run.store.checkpoint()
    if state is None:
        raise ValueError(f"{run.path} has no committed checkpoint")
    load_state_dict(net, {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
    after = representation_quality(layer_representation(net, x, L), y, method=method, seed=seed)
    return {"cluster_layer": L, "cluster_quality_init": before, "cluster_quality_final": after}


def report(paths, out_dir, cluster: bool = False, cluster_layer=None, cluster_examples: int = 500,
           cluster_method: str = "tsne") -> list[Path]:
    """Write the report files for run stores ``paths`` (sweep stores: their own report in
    a subdirectory, or in ``out_dir`` when it is the only store); returns their paths."""
    from .sweep_report import report_sweep

    out = Path(out_dir)
    files: list[Path] = []
    sweeps = [p for p in paths if is_sweep(p)]
    run_paths = [p for p in paths if p not in sweeps]
    runs = [load_run(p) for p in run_paths]  # (a store that cannot be read: nothing written)
    out.mkdir(parents=True, exist_ok=True)
    for p in sweeps:
        sub = out if len(sweeps) == 1 and not run_paths else out / Path(p).stem
        files.extend(Path(f) for f in (report_sweep(str(p), str(sub)) or []))
    if not run_paths:
        return files
    cells = cells_of(runs)
    extra_cols = []
    if cluster:
        for r in runs:
            r.extra.update(cluster_before_after(r, cluster_layer, cluster_examples, cluster_method))
        extra_cols = ["cluster_layer", "cluster_quality_init", "cluster_quality_final"]
    rows = summary_rows(runs)
    crow = cell_rows(cells)
    files.append(write_csv(rows, out / "summary.csv"))
    files.append(write_markdown(rows, crow, out / "summary.md", extra_cols))
    files.append(write_csv(crow, out / "cells.csv"))
    files.append(plot_learning_curves(cells, out / "learning_curves.png"))
    al = plot_alignment(cells, out / "alignment.png")
    if al is not None:
        files.append(al)
        files.append(write_csv(alignment_rows(runs), out / "alignment.csv"))
    return files
