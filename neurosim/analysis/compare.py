"""Compare runs: errors per checkpoint and the explicit-circuit recordings.

Reads one or more run stores (``neurosim run`` output) and summarises

* test / train error per checkpoint (dim ``epoch``),
* update agreement with batched GEVB (``update_cosine``, recorded by the
  grouped/temporal realizations at trajectory steps),
* the neuromodulator's spatial vs temporal variance (``neuromod_spatial_var``
  across channels within a bin, ``neuromod_temporal_var`` across bins within a
  channel) — grouped circuits are spatially heterogeneous and temporally
  uniform, temporal circuits the opposite,
* the spread of the K synapses of a pair over training (``synapse_spread``).

Variables a store lacks (e.g. a batched run has no trajectories) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..recording import open_store


@dataclass
class RunData:
    path: str
    label: str
    realization: str
    options: str
    epoch: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    sim_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    update_cosine: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    spatial_var: np.ndarray = field(default_factory=lambda: np.zeros(0))
    temporal_var: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spread: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def load_run(path) -> RunData:
    ds = open_store(path)
    proto = ds.attrs.get("protocol_dict", {})
    real = dict(proto.get("realization", {}))
    rtype = real.pop("type", ds.attrs.get("realization", "?"))
    opts = ", ".join(f"{k}={_short(v)}" for k, v in real.items())

    def get(name, n_dims=1):
        if name in ds:
            return np.asarray(ds[name].values, dtype=float)
        return np.zeros((0,) * n_dims)

    return RunData(
        path=str(path),
        label=Path(str(path).rstrip("/")).name,
        realization=str(rtype),
        options=opts,
        epoch=get("epoch"),
        train_error=get("train_error"),
        test_error=get("test_error"),
        sim_step=get("sim_step"),
        update_cosine=get("update_cosine", 2),
        spatial_var=get("neuromod_spatial_var"),
        temporal_var=get("neuromod_temporal_var"),
        spread=get("synapse_spread", 2),
    )


def _short(v):
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{x}" for k, x in v.items()) + "}"
    return str(v)


def _mean(a) -> float:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def summary(run: RunData) -> dict:
    """One row of the comparison table."""
    sv, tv = _mean(run.spatial_var), _mean(run.temporal_var)
    spread_t = run.spread.max(axis=1) if run.spread.size else np.zeros(0)
    return {
        "run": run.label,
        "realization": run.realization,
        "checkpoints": int(run.epoch.size),
        "final_epoch": float(run.epoch[-1]) if run.epoch.size else math.nan,
        "train_error": float(run.train_error[-1]) if run.train_error.size else math.nan,
        "test_error": float(run.test_error[-1]) if run.test_error.size else math.nan,
        "update_cosine": _mean(run.update_cosine),
        "update_cosine_min": float(np.nanmin(run.update_cosine)) if np.isfinite(run.update_cosine).any()
        else math.nan,
        "neuromod_spatial_var": sv,
        "neuromod_temporal_var": tv,
        "spatial_fraction": sv / (sv + tv) if (sv + tv) > 0 else math.nan,
        "synapse_spread_last": float(spread_t[-1]) if spread_t.size else math.nan,
        "synapse_spread_max": float(spread_t.max()) if spread_t.size else math.nan,
    }


def checkpoint_rows(runs) -> list[dict]:
    rows = []
    for r in runs:
        for k in range(r.epoch.size):
            rows.append({"run": r.label, "realization": r.realization, "epoch": float(r.epoch[k]),
                         "train_error": float(r.train_error[k]), "test_error": float(r.test_error[k])})
    return rows


def format_table(rows: list[dict], columns=None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
                return f"{v:.3e}"
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def report(runs) -> str:
    """The text ``neurosim compare`` prints."""
    out = ["Test/train error per checkpoint (%):", format_table(checkpoint_rows(runs)), ""]
    out.append("Circuit recordings (update_cosine: agreement with batched GEVB on the same batch; "
               "neuromodulator variance across channels (spatial) vs across time bins (temporal); "
               "synapse_spread: std of the K synapses of a pair / rms weight):")
    out.append(format_table([summary(r) for r in runs]))
    for r in runs:
        if r.options:
            out.append(f"  {r.label}: {r.realization} ({r.options})")
    return "\n".join(out)


def plot(runs, path) -> None:
    """2×2 figure: errors, update agreement, neuromodulator variance, synapse spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for r in runs:
        lab = f"{r.label} ({r.realization})"
        if r.epoch.size:
            line, = ax[0, 0].plot(r.epoch, r.test_error, "o-", label=f"{lab} test")
            ax[0, 0].plot(r.epoch, r.train_error, "s--", color=line.get_color(), alpha=0.6,
                          label=f"{lab} train")
        if r.update_cosine.size:
            ax[0, 1].plot(r.sim_step, np.nanmean(r.update_cosine, axis=1), label=lab)
        if r.spread.size:
            ax[1, 1].plot(r.sim_step, r.spread.max(axis=1), label=lab)
    ax[0, 0].set(xlabel="epoch", ylabel="error (%)", title="error per checkpoint")
    ax[0, 1].set(xlabel="optimizer step", ylabel="cos(update, batched GEVB)",
                 title="update agreement with batched GEVB")
    ax[1, 1].set(xlabel="optimizer step", ylabel="relative spread",
                 title="spread of the K synapses of a pair")
    labels = [r.label for r in runs]
    x = np.arange(len(runs))
    sv = [_mean(r.spatial_var) for r in runs]
    tv = [_mean(r.temporal_var) for r in runs]
    ax[1, 0].bar(x - 0.2, sv, 0.4, label="across channels (spatial)")
    ax[1, 0].bar(x + 0.2, tv, 0.4, label="across time bins (temporal)")
    ax[1, 0].set_xticks(x, labels, rotation=15)
    ax[1, 0].set(ylabel="variance of the neuromodulator", title="neuromodulator structure")
    for a in ax.ravel():
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
