"""The one reader of neurosim stores for analysis: run stores and sweep stores.

``open_run(path)`` gives a :class:`RunStore`: the store as an xarray Dataset (lazy, the
committed state), its root attrs with JSON strings decoded, and the run's resolved
protocol.  ``open_sweep(path)`` gives a :class:`SweepStore`: the sweep's attrs and one
:class:`SweepEntry` per run it lists (name, cell, seed, status, error and the run's
:class:`RunStore` when the run has written one).  ``neurosim compare``, ``neurosim report``
and the sweep report read stores only through this module.

Errors: a path that is not a store raises :class:`neurosim.recording.StoreError`; a
sweep path given to :func:`open_run` (or a run path to :func:`open_sweep`) too.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: root attr ``kind`` of a sweep store
SWEEP_KIND = "sweep"


def decode_attrs(attrs) -> dict:
    """A copy of store attrs with every JSON-encoded object or list decoded (stores keep
    nested attrs as JSON strings so that netCDF accepts them)."""
    out = {}
    for k, v in dict(attrs).items():
        if isinstance(v, str) and v[:1] in "{[":
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[k] = v
    return out


def _open_group(path):
    import zarr

    return zarr.open_group(str(path), mode="r", use_consolidated=False)


def is_sweep(path) -> bool:
    """True for a sweep store (root attr ``kind == "sweep"``)."""
    from ..recording.layout import read_regular

    try:  # (a regular file only: a FIFO in its place must not block)
        meta = json.loads(read_regular(Path(path) / "zarr.json"))
    except Exception:  # noqa: BLE001 - unreadable: the caller's open_* reports it
        return False
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return isinstance(attrs, dict) and attrs.get("kind") == SWEEP_KIND


@dataclass
class RunStore:
    """One run store, read-only."""

    path: str
    ds: object  # xarray.Dataset
    attrs: dict  # root attrs, JSON strings decoded
    protocol: dict  # the resolved protocol the run was made with ({} when absent)

    @property
    def label(self) -> str:
        """The store's file name without ``.zarr`` (unique among stores one compares)."""
        name = Path(self.path.rstrip("/")).name
        return name[:-5] if name.endswith(".zarr") else name

    @property
    def name(self) -> str:
        """The protocol's name (else the label)."""
        return str(self.protocol.get("name") or self.attrs.get("protocol_name") or self.label)

    @property
    def seed(self):
        return self.protocol.get("seed", self.attrs.get("seed"))

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", ""))

    @property
    def stopped(self) -> str:
        return str(self.attrs.get("stopped", ""))

    @property
    def realization(self) -> dict:
        """The protocol's realization section (``type`` and options)."""
        real = self.protocol.get("realization") or {}
        return dict(real) if real else {"type": self.attrs.get("realization", "?")}

    @property
    def rule(self) -> str:
        return str((self.protocol.get("rule") or {}).get("name", self.attrs.get("rule", "")))

    @property
    def dataset(self) -> str:
        return str((self.protocol.get("data") or {}).get("dataset", self.attrs.get("dataset", "")))

    def has(self, name: str) -> bool:
        return name in self.ds.variables

    def values(self, name: str) -> np.ndarray:
        """A variable's values as float64 (an empty array when the store lacks it)."""
        if name not in self.ds.variables:
            return np.zeros(0)
        return np.asarray(self.ds[name].values, dtype=np.float64)

    def last(self, name: str) -> float:
        """The last value along the first dimension (NaN when absent or empty)."""
        v = self.values(name)
        return float(v[-1]) if v.ndim == 1 and v.size else math.nan

    def checkpoint(self):
        """``(state, info)`` of the last committed checkpoint (``(None, None)`` when it has
        none): the network, optimizer, rule and realization arrays by name."""
        from ..recording import Recorder

        return Recorder(self.path).load_checkpoint()


def open_run(path) -> RunStore:
    """Open a run store (:class:`neurosim.recording.StoreError` if it is none)."""
    from ..recording import MARKER, StoreError, commit_record, open_store, read_root, verify_store

    if is_sweep(path):
        raise StoreError(f"{path} is a sweep store, not a run store (read it with neurosim report)")
    attrs = read_root(path, commit=False).get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    if commit_record(attrs) is not None or MARKER in attrs:
        verify_store(path)  # damage: the message neurosim inspect gives
    elif "protocol" not in attrs:
        raise StoreError(f"{path} is a Zarr store but not a neurosim run store (no commit record, "
                         f"no protocol attr)")
    with warnings.catch_warnings():  # zarr/xarray notes on consolidated metadata
        warnings.simplefilter("ignore")
        ds = open_store(path)
    attrs = decode_attrs({k: v for k, v in ds.attrs.items() if k != "protocol_dict"})
    proto = attrs.get("protocol")
    if proto is not None and not isinstance(proto, dict):
        raise StoreError(f"{path}: the root attr 'protocol' is damaged (not a JSON object); the run "
                         f"cannot be reported")
    return RunStore(str(path), ds, attrs, proto if isinstance(proto, dict) else {})


@dataclass
class SweepEntry:
    """A run listed in a sweep store."""

    name: str
    cell: str  # the runs of a cell differ only in seed
    seed: object
    status: str
    error: str | None
    run: RunStore | None = None  # None until the run has written its store


@dataclass
class SweepStore:
    path: str
    attrs: dict  # decoded root attrs
    entries: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.attrs.get("name") or Path(self.path).stem)


def open_sweep(path) -> SweepStore:
    """Open a sweep store and every run store it lists that exists."""
    from ..recording import StoreError

    root = Path(path)
    if not is_sweep(root):
        raise StoreError(f"{root} is not a sweep store (no root attr kind='sweep')")
    attrs = decode_attrs(_open_group(root).attrs)
    entries = []
    for name, info in dict(attrs.get("runs") or {}).items():
        e = SweepEntry(name, info.get("cell", name), info.get("seed"), str(info.get("status")),
                       info.get("error"))
        rpath = root / info.get("store", f"runs/{name}")
        if (rpath / "zarr.json").exists():
            try:
                e.run = open_run(rpath)
            except StoreError:
                e.run = None  # debris of a killed worker: listed, not readable
            if e.run is not None and e.run.status:
                e.status = e.run.status
        entries.append(e)
    return SweepStore(str(root), attrs, entries)
