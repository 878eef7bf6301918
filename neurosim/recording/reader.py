"""The one reader of neurosim stores for analysis: run stores and sweep stores.

``open_run(path)`` gives a :class:`RunStore`: the store as an xarray Dataset (lazy, the
committed state), its root attrs with JSON strings decoded, and the run's resolved
protocol.  :func:`~neurosim.recording.sweep_store.open_sweep` reads a sweep store with it.
``neurosim compare``, ``neurosim report``, the sweep report and the sweep driver
(:func:`run_attrs`, :func:`committed_epoch`, :func:`final_errors`) read run stores only through
this module.

Errors: a path that is not a store raises :class:`neurosim.recording.StoreError`; a
sweep path given to :func:`open_run` (or a run path to :func:`open_sweep`) too.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .store.layout import SWEEP_KIND  # noqa: F401 - re-exported
from .store.layout import is_sweep_store as is_sweep


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
        from . import Recorder

        return Recorder(self.path).load_checkpoint()


def open_run(path) -> RunStore:
    """Open a run store (:class:`neurosim.recording.StoreError` if it is none)."""
    from . import MARKER, StoreError, commit_record, open_store, read_root, verify_store

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


# ----------------------------------------------------------------------
# what a sweep reads of its runs' stores (without verifying them: best effort, never raises)
def run_attrs(path) -> dict | None:
    """Root attrs of a run store, or None when it has none (yet) or they cannot be read."""
    p = Path(path)
    if not (p / "zarr.json").exists():
        return None
    try:
        return dict(_open_group(p).attrs)
    except Exception:  # noqa: BLE001 - unreadable debris from a killed worker
        return None


def committed_epoch(path) -> int:
    """The epoch of a run store's committed checkpoint (0 when it has none)."""
    from . import commit_record

    try:
        return int((commit_record(dict(_open_group(path).attrs)) or {}).get("epoch", 0) or 0)
    except Exception:  # noqa: BLE001
        return 0


def final_errors(path) -> dict:
    """``epochs``, ``train_error`` and ``test_error`` (%) of a run store's last committed
    evaluation; empty when it has none or cannot be read."""
    import xarray as xr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = xr.open_zarr(str(path))
        if "epoch" not in ds.dims or not ds.sizes["epoch"]:
            return {}
        return {"epochs": int(ds["epoch"].values[-1]),
                "train_error": float(ds["train_error"].values[-1]),
                "test_error": float(ds["test_error"].values[-1])}
    except Exception:  # noqa: BLE001 - a summary is best effort; the status is what counts
        return {}
