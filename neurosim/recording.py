"""Recording a run into one Zarr store through xarray.

Layout of a store (``xr.open_zarr(path)`` gives the root Dataset):

* root variables appended per checkpoint along ``epoch`` (errors, loss,
  optional weight snapshots) and, for trajectories, along ``step``;
  every variable carries ``long_name``/``units``/``description`` attrs;
* root attrs: the resolved protocol (JSON), seed, versions, backend, status,
  and ``neurosim_commit`` — the commit marker;
* groups ``checkpoint_a`` / ``checkpoint_b``: the two slots of a
  double-buffered checkpoint (weights, optimizer and rule state).

Crash safety.  Zarr writes each key atomically (write + rename).  A
checkpoint is *committed* by rewriting the root metadata (attrs and
consolidated metadata) after its data and slot are on disk: the marker names
the slot and the number of records per append dimension.  A reader using the
consolidated metadata therefore sees the last committed state; a resume
truncates anything appended after it (:meth:`Recorder.repair`).  Appended
dimensions use chunks of length 1 so that an append never rewrites a chunk
that belongs to a committed record.
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

MARKER = "neurosim_commit"


class StoreError(RuntimeError):
    pass


def versions() -> dict:
    from . import __version__

    out = {"neurosim": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "xarray": xr.__version__, "zarr": zarr.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


class Recorder:
    """Append-only writer of one run's store."""

    def __init__(self, path):
        self.path = Path(path)

    # ----------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.path / "zarr.json").exists()

    def create(self, attrs: dict) -> None:
        """Create an empty store with root ``attrs`` (refuses to overwrite)."""
        if self.path.exists() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} already exists; use --resume to continue it or "
                             f"--overwrite to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        g = zarr.open_group(str(self.path), mode="w")
        g.attrs.update(_jsonable(attrs) | {MARKER: {"slot": None, "records": {}}})
        consolidate(self.path)

    def open_group(self, mode="r+"):
        return zarr.open_group(str(self.path), mode=mode, use_consolidated=False)

    @property
    def attrs(self) -> dict:
        return dict(self.open_group("r").attrs)

    @property
    def commit(self) -> dict:
        return self.attrs.get(MARKER, {"slot": None, "records": {}})

    # ----------------------------------------------------------------
    def append(self, ds: xr.Dataset, dim: str) -> None:
        """Append ``ds`` along ``dim`` (create the variables on first use).

        Not visible to readers of consolidated metadata until :meth:`commit_checkpoint`.
        """
        if not hasattr(self, "_dims"):
            self._dims = set()
        self._dims.add(dim)
        g = self.open_group("r")
        ds = ds.copy()
        ds.attrs = dict(g.attrs)  # xarray rewrites the root attrs on write: keep them
        exists = dim in g.array_keys()
        enc = {}
        if not exists:
            for name, var in ds.variables.items():
                if dim in var.dims:
                    chunks = tuple(1 if d == dim else s for d, s in zip(var.dims, var.shape))
                    enc[name] = {"chunks": chunks}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            if exists:
                ds.to_zarr(str(self.path), append_dim=dim, consolidated=False, mode="a")
            else:
                ds.to_zarr(str(self.path), mode="a", consolidated=False, encoding=enc)

    def set_attrs(self, **attrs) -> None:
        g = self.open_group()
        g.attrs.update(_jsonable(attrs))
        consolidate(self.path)

    def records(self, dim: str) -> int:
        g = self.open_group("r")
        return int(g[dim].shape[0]) if dim in g.array_keys() else 0

    # ----------------------------------------------------------------
    def append_dims(self) -> set:
        """Dimensions that records are appended along (from the marker and this session)."""
        return set(self.commit.get("records", {})) | getattr(self, "_dims", set())

    def commit_checkpoint(self, state: dict, info: dict) -> None:
        """Write ``state`` (host arrays) into the free slot, then commit.

        ``info`` (JSON-able: epoch, step, ...) is stored with the marker.
        """
        cur = self.commit.get("slot")
        slot = "checkpoint_b" if cur == "checkpoint_a" else "checkpoint_a"
        root = self.open_group()
        if slot in root.group_keys():
            del root[slot]
        grp = root.create_group(slot)
        for name, arr in state.items():
            arr = np.ascontiguousarray(arr).reshape(np.shape(arr))  # keep 0-d arrays 0-d
            a = grp.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                 chunks=arr.shape if arr.ndim else ())
            a[...] = arr
        grp.attrs.update(_jsonable(info))
        records = {d: self.records(d) for d in sorted(self.append_dims())}
        self.set_attrs(**{MARKER: {"slot": slot, "records": records, **_jsonable(info)}})

    def load_checkpoint(self):
        """(state, info) of the committed checkpoint, or (None, None)."""
        c = self.commit
        slot = c.get("slot")
        if not slot:
            return None, None
        grp = self.open_group("r")[slot]
        state = {k: np.asarray(grp[k][...]) for k in grp.array_keys()}
        return state, dict(grp.attrs)

    def repair(self) -> dict:
        """Truncate records appended after the last commit; returns what was cut."""
        c = self.commit
        cut = {}
        g = self.open_group()
        for dim, n in c.get("records", {}).items():
            if dim not in g.array_keys():
                continue
            for name in list(g.array_keys()):
                arr = g[name]
                dims = arr.metadata.dimension_names or arr.attrs.get("_ARRAY_DIMENSIONS", [])
                if dims and dims[0] == dim and arr.shape[0] > n:
                    cut[name] = arr.shape[0] - n
                    arr.resize((n,) + arr.shape[1:])
        if cut:
            consolidate(self.path)
        return cut


def consolidate(path) -> None:
    """Rewrite the root metadata with consolidated metadata (one atomic write)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # "not part of the v3 spec"
        zarr.consolidate_metadata(str(path))


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=_default))


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, os.PathLike)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def open_store(path) -> xr.Dataset:
    """Open a run store as an xarray Dataset (the committed state)."""
    p = Path(path)
    if not (p / "zarr.json").exists():
        raise StoreError(f"{p} is not a neurosim store (no zarr.json)")
    ds = xr.open_zarr(str(p))
    for k in ("protocol",):
        if isinstance(ds.attrs.get(k), str):
            try:
                ds.attrs[k + "_dict"] = json.loads(ds.attrs[k])
            except ValueError:
                pass
    return ds
