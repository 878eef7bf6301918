"""Compare runs: errors per checkpoint and the explicit-circuit recordings.

Reads one or more run stores (``neurosim run`` output) and summarises

* test / train error per checkpoint (dim ``epoch``),
* update agreement with batched GEVB (``update_cosine``, recorded by the
  grouped/temporal realizations at trajectory steps),
* the neuromodulator's spatial vs temporal variance (``neuromod_spatial_var``
  across channels within a bin, ``neuromod_temporal_var`` across bins within a
  channel) — grouped circuits are spatially heterogeneous and temporally
  uniform, temporal circuits the opposite,
* the spread of the K synapses of a pair over training (``synapse_spread``, largest over the
  layers that have K synapse copies; the first layer's entry is NaN).

Variables a store lacks (e.g. a batched run has no trajectories) are NaN; the table leaves out
circuit columns no run recorded.  The ``--plot`` figure is drawn by
:mod:`neurosim.analysis.compare_plot`.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

import numpy as np

from .reader import open_run, options

#: what ``update_cosine`` is, for the table and the figure caption
AGREEMENT_TEXT = (
    "update agreement = cos(circuit's weight update, batched GEVB update of the same network on "
    "the same batch), mean over weight layers and records. 1.000 = the circuit computes batched "
    "GEVB exactly. Below 1 the circuit is an approximation of it: grouped circuits because the K "
    "synapses of a pair drift apart between relaxations (without dynamics, relaxation every step "
    "at rate 1 gives 1.000), temporal circuits with gating: first_bin because the gate is decided "
    "in the first time bin, not by t·h over all bins (without dynamics, gating: full gives 1.000), "
    "and circuits in time (realization.dynamics) because leak, inhibition, eligibility traces and "
    "a late, filtered neuromodulator change the update (only their ideal limit gives 1.000). The "
    "approximations are different, so their numbers are not a ranking of the circuits; each "
    "run's own reason is under Runs below.")


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
    realization_options: dict = field(default_factory=dict)
    caveat: str = ""  #: the protocol's ``caveat`` (a configuration known not to learn, ...)


def load_run(path) -> RunData:
    """The comparison's view of a run store (read by :func:`neurosim.analysis.reader.open_run`)."""
    run = open_run(path)
    real = run.realization
    rtype = real.pop("type", "?")

    def get(name, n_dims=1):
        v = run.values(name)
        return v if v.size else np.zeros((0,) * n_dims)

    return RunData(
        path=str(path),
        label=run.label,
        realization=str(rtype),
        options=", ".join(f"{k}: {_short(v)}" for k, v in real.items()),
        epoch=get("epoch"),
        train_error=get("train_error"),
        test_error=get("test_error"),
        sim_step=get("sim_step"),
        update_cosine=get("update_cosine", 2),
        spatial_var=get("neuromod_spatial_var"),
        temporal_var=get("neuromod_temporal_var"),
        spread=get("synapse_spread", 2),
        realization_options=real,
        caveat=" ".join(str(options(run).get("caveat") or "").split()),
    )


def _short(v):
    """A value as YAML flow style, nested mappings and lists included (as a protocol file
    writes it)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def _mean(a) -> float:
    a = np.asarray(a, dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def _layer_max(spread) -> np.ndarray:
    """Largest ``synapse_spread`` over the layers (sim_step, circuit_layer) -> (sim_step,);
    layers without K synapse copies are NaN and left out."""
    a = np.asarray(spread, dtype=float)
    if not a.size:
        return np.zeros(0)
    a = np.where(np.isfinite(a), a, -np.inf).max(axis=1)
    return np.where(np.isfinite(a), a, np.nan)


def agreement_note(run: RunData) -> str:
    """Why this run's update agreement is (or is not) 1: the realization's own account
    (:meth:`~neurosim.realizations.base.Realization.agreement`) of its stored options."""
    from ..core.options import ConfigError
    from ..realizations import REALIZATIONS

    cls = REALIZATIONS.get(run.realization)
    if cls is None:
        return "no circuit recordings"
    try:
        return cls.agreement(run.realization_options)
    except ConfigError as exc:
        return f"unknown: the stored realization options do not validate ({exc})"


def summary(run: RunData) -> dict:
    """One row of the comparison table."""
    sv, tv = _mean(run.spatial_var), _mean(run.temporal_var)
    spread_t = _layer_max(run.spread)
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
    """One row per checkpoint of every run, the run (and its realization) named on its first
    row only, so that a long run reads as one block."""
    rows = []
    for r in runs:
        for k in range(r.epoch.size):
            rows.append({"run": "" if k else r.label, "realization": "" if k else r.realization,
                         "epoch": float(r.epoch[k]), "train_error": float(r.train_error[k]),
                         "test_error": float(r.test_error[k])})
    return rows


#: relative size below which a variance is float round-off of an exact zero
ROUNDOFF = 1e-9


def _fixed(digits):
    return lambda v: f"{v:.{digits}f}"


def _epoch(v):
    return str(int(v)) if v == int(v) else f"{v:.2f}"


def _sig(v):
    return "0" if v == 0 else (f"{v:.3e}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.4g}")


#: column formats: errors with two decimals, whole epochs as integers, cosines with three
FORMATS = {"epoch": _epoch, "final_epoch": _epoch, "train_error": _fixed(2), "test_error": _fixed(2),
           "update_cosine": _fixed(3), "update_cosine_min": _fixed(3), "spatial_fraction": _fixed(3),
           "neuromod_spatial_var": _sig, "neuromod_temporal_var": _sig,
           "synapse_spread_last": _sig, "synapse_spread_max": _sig}


def _clean_roundoff(row: dict) -> dict:
    """Variances that are round-off of an exact zero (relative to the run's other variance)
    shown as 0, not as 3.9e-17."""
    row = dict(row)
    sv, tv = row.get("neuromod_spatial_var"), row.get("neuromod_temporal_var")
    if sv is not None and tv is not None and math.isfinite(sv) and math.isfinite(tv):
        scale = max(abs(sv), abs(tv))
        for k in ("neuromod_spatial_var", "neuromod_temporal_var"):
            if abs(row[k]) <= ROUNDOFF * scale:
                row[k] = 0.0
        if (sv + tv) > 0:
            row["spatial_fraction"] = row["neuromod_spatial_var"] / (row["neuromod_spatial_var"]
                                                                     + row["neuromod_temporal_var"])
    return row


def format_table(rows: list[dict], columns=None, formats=None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    formats = FORMATS if formats is None else formats

    def fmt(c, v):
        if isinstance(v, float):
            if math.isnan(v):
                return "-"
            return formats.get(c, _sig)(v)
        return str(v)

    cells = [[fmt(c, r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), int | float) for r in rows) for c in columns]
    lines = ["  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(columns, widths, numeric)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric))
              for row in cells]
    return "\n".join(line.rstrip() for line in lines)


#: the circuit columns of the summary table, by the recording they come from, each with its
#: explanation; a group is shown only when some run recorded it
CIRCUIT_COLUMNS = {
    "agreement": (("update_cosine", "update_cosine_min"),
                  "update_cosine (mean), update_cosine_min: " + AGREEMENT_TEXT),
    "neuromod": (("neuromod_spatial_var", "neuromod_temporal_var", "spatial_fraction"),
                 "neuromod_spatial_var, neuromod_temporal_var: variance of the neuromodulator across "
                 "channels within a time bin (spatial) and across time bins within a channel "
                 "(temporal); spatial_fraction = spatial / (spatial + temporal): 1 for grouped "
                 "circuits, 0 for temporal ones."),
    "spread": (("synapse_spread_last", "synapse_spread_max"),
               "synapse_spread: std of the K synapses of a pair / rms weight (0 = exact weight "
               "sharing)."),
}


def _finite(rows, column) -> bool:
    return any(isinstance(r.get(column), float) and math.isfinite(r[column]) for r in rows)


def recorded(rows) -> list[str]:
    """The groups of :data:`CIRCUIT_COLUMNS` that some run of the summary ``rows`` recorded
    (a batched run records none)."""
    return [g for g, (cols, _) in CIRCUIT_COLUMNS.items() if any(_finite(rows, c) for c in cols)]


def report(runs) -> str:
    """The text ``neurosim compare`` prints: the circuit columns and their explanation only
    when some run recorded them."""
    out = ["Test/train error per checkpoint (%):", format_table(checkpoint_rows(runs)), ""]
    rows = [_clean_roundoff(summary(r)) for r in runs]
    groups = recorded(rows)
    circuit = {c for g, (cols, _) in CIRCUIT_COLUMNS.items() if g not in groups for c in cols}
    columns = [c for c in rows[0] if c not in circuit] if rows else None
    out.append("Last checkpoint and circuit recordings:" if groups else "Last checkpoint:")
    out.append(format_table(rows, columns))
    if groups:
        out += ["", "Columns:"]
        for g in groups:
            out.append(textwrap.fill(CIRCUIT_COLUMNS[g][1], 100, initial_indent="  ",
                                     subsequent_indent="    "))
    out += ["", "Runs:"]
    for r in runs:
        opts = f" ({r.options})" if r.options else ""
        out.append(f"  {r.label}: {r.realization}{opts}")
        if r.caveat:
            out.append(textwrap.fill(f"CAVEAT: {r.caveat}", 100, initial_indent="    ",
                                     subsequent_indent="      "))
        if np.isfinite(r.update_cosine).any():
            out.append(textwrap.fill(f"update agreement: {agreement_note(r)}", 100,
                                     initial_indent="    ", subsequent_indent="      "))
    return "\n".join(out)
