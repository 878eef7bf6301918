"""Cells: the runs that are the same experiment except for the seed.

Averaging over runs is meaningful only within a cell.  Two runs are in the same cell when
their resolved protocols are equal after removing the keys in :data:`NOT_IDENTITY` (the
seed, and what names, files or records a run without changing what it learns).  A cell
is labelled by its protocol name; cells that share a name are told apart by the protocol
keys in which they differ (``temporal_mnist (realization.gating=full)``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

#: protocol keys (dotted; a key removes its whole subtree) that do not make runs different
#: experiments: the seed, labels and paths, what is recorded, and where it ran
NOT_IDENTITY = ("seed", "name", "description", "recording", "metrics", "device",
                "circuit.file", "circuit.description", "data.root")


def flatten(d, prefix="") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def _dropped(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in NOT_IDENTITY)


def identity(protocol: dict) -> str:
    """The protocol's experiment identity: canonical JSON of every key but
    :data:`NOT_IDENTITY`."""
    flat = {k: v for k, v in flatten(protocol or {}).items() if not _dropped(k)}
    return json.dumps(flat, sort_keys=True, default=str)


@dataclass
class Cell:
    """Runs with one identity; ``label`` names it for a reader."""

    key: str
    label: str
    members: list = field(default_factory=list)  # whatever the caller grouped (runs, rows)

    @property
    def n(self) -> int:
        return len(self.members)


def _value_text(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v == int(v) and abs(v) < 1e6:
        return f"{v:g}"
    return json.dumps(v) if isinstance(v, list | dict) else str(v)


def group_cells(items, protocol_of, name_of) -> list[Cell]:
    """Group ``items`` into cells by ``identity(protocol_of(item))``, in first-seen order.

    Labels: the members' common name (``name_of``); where two cells would get one label,
    each gets the keys in which those cells differ appended, ``name (key=value, ...)``."""
    cells: dict[str, Cell] = {}
    for it in items:
        key = identity(protocol_of(it))
        if key not in cells:
            cells[key] = Cell(key, str(name_of(it)))
        cells[key].members.append(it)
    by_label: dict[str, list[Cell]] = {}
    for c in cells.values():
        by_label.setdefault(c.label, []).append(c)
    for label, same in by_label.items():
        if len(same) < 2:
            continue
        flats = [json.loads(c.key) for c in same]
        keys = sorted({k for f in flats for k in f})
        differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str)
                                          for f in flats}) > 1]
        for c, f in zip(same, flats):
            parts = [f"{k}={_value_text(f[k]) if k in f else '(absent)'}" for k in differ[:4]]
            more = f", +{len(differ) - 4} more" if len(differ) > 4 else ""
            c.label = f"{label} ({', '.join(parts)}{more})"
    return list(cells.values())


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1) of the finite values; the std is NaN
    for fewer than two values (one run says nothing about the spread over seeds)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def mean_curve(curves):
    """Mean and std over runs of a per-checkpoint quantity.

    ``curves``: ``(epoch, value)`` array pairs.  The grid is the union of the runs'
    epochs; a run that stopped early keeps its final value for later epochs.  Returns
    ``(grid, mean, std)`` (std 0 for a single run)."""
    curves = [(np.asarray(e, float), np.asarray(v, float)) for e, v in curves]
    grid = np.unique(np.concatenate([e for e, _ in curves]))
    vals = []
    for e, v in curves:
        idx = np.searchsorted(e, grid, side="right") - 1
        x = v[np.clip(idx, 0, None)]
        x[idx < 0] = np.nan
        vals.append(x)
    vals = np.asarray(vals)
    with np.errstate(invalid="ignore"):
        return grid, np.nanmean(vals, axis=0), (np.nanstd(vals, axis=0) if len(curves) > 1 else
                                               np.zeros(len(grid)))
