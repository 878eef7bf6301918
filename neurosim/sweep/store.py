"""The sweep store: one Zarr root group holding every run of a sweep.

Layout::

    SWEEP.zarr/              root group, attrs: kind = "sweep", name, title, created, versions,
                             protocol_file, sweep_protocol (JSON), seeds, axes, runs, updated,
                             last_invocation
    SWEEP.zarr/runs/         group of the run stores
    SWEEP.zarr/runs/<name>/  a complete run store (``xr.open_zarr(SWEEP/runs/<name>)``)

The root attr ``runs`` maps each run name to its cell, seed, overrides, store path, status
(``queued``, ``finished``, ``failed``, ``interrupted``), error and final errors.  Only the driver
writes the root attrs; each worker writes only its run's store.  The root is not consolidated, so
its children never appear in (or go stale in) root metadata.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import zarr

KIND = "sweep"
RUNS = "runs"


class SweepStore:
    """A Zarr root group (attrs ``kind="sweep"``) holding each run's store as ``runs/<name>``."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        return (self.path / "zarr.json").exists()

    def open(self, mode="r"):
        return zarr.open_group(str(self.path), mode=mode, use_consolidated=False)

    @property
    def attrs(self) -> dict:
        return dict(self.open("r").attrs)

    def create_or_open(self, sweep) -> None:
        """Create the store for ``sweep`` (a :class:`~neurosim.sweep.grammar.Sweep`), or open an
        existing sweep store and record the sweep protocol it now runs; refuses any other path
        (:class:`StoreError`)."""
        from ..recording import StoreError, _jsonable, versions

        if self.exists:
            kind = self.attrs.get("kind")
            if kind != KIND:
                raise StoreError(f"{self.path} exists and is not a sweep store (root attr kind={kind!r}); "
                                 f"choose another --out")
        elif self.path.exists() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} exists and is not a Zarr store; choose another --out")
        g = zarr.open_group(str(self.path), mode="a")
        if "kind" not in g.attrs:
            g.attrs.update(_jsonable({
                "kind": KIND, "title": f"neurosim sweep {sweep.name}", "name": sweep.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), "runs": {},
            }))
        g.attrs.update(_jsonable({"protocol_file": sweep.file, "sweep_protocol": json.dumps(sweep.raw),
                                  "seeds": sweep.seeds,
                                  "axes": [{"key": a.key, "keys": a.keys} for a in sweep.axes]}))
        zarr.open_group(str(self.path / RUNS), mode="a")

    def run_path(self, name: str) -> Path:
        return self.path / RUNS / name

    def runs(self) -> dict:
        return dict(self.attrs.get("runs", {}))

    def update_runs(self, entries: dict) -> None:
        """Merge ``{name: {field: value}}`` into the root attr ``runs`` (driver only)."""
        from ..recording import _jsonable

        g = self.open("r+")
        runs = dict(g.attrs.get("runs", {}))
        for name, info in entries.items():
            runs[name] = {**runs.get(name, {}), **_jsonable(info)}
        g.attrs["runs"] = runs
        g.attrs["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def run_attrs(self, name: str) -> dict | None:
        """Root attrs of a run's store, or None when it has none (yet)."""
        p = self.run_path(name)
        if not (p / "zarr.json").exists():
            return None
        try:
            return dict(zarr.open_group(str(p), mode="r", use_consolidated=False).attrs)
        except Exception:  # unreadable debris from a killed worker
            return None


def is_sweep_store(path) -> bool:
    p = Path(path)
    if not (p / "zarr.json").exists():
        return False
    try:
        return zarr.open_group(str(p), mode="r", use_consolidated=False).attrs.get("kind") == KIND
    except Exception:
        return False


# ----------------------------------------------------------------------
# reading one run's store
def run_is_done(attrs: dict | None, protocol: dict) -> bool:
    """A run is done when its store is finished and either stopped early or trained for at
    least the epochs asked for now (so a shortened sweep can later be extended)."""
    if not attrs or attrs.get("status") != "finished":
        return False
    if str(attrs.get("stopped", "")).startswith("early stop"):
        return True
    try:
        had = json.loads(attrs["protocol"])["training"]["epochs"]
    except (KeyError, TypeError, ValueError):
        return True
    return had >= protocol["training"]["epochs"]


def committed_epoch(path) -> int:
    """The epoch of a run store's committed checkpoint (0 when it has none)."""
    from ..recording import MARKER

    try:
        g = zarr.open_group(str(path), mode="r", use_consolidated=False)
        return int(g.attrs.get(MARKER, {}).get("epoch", 0) or 0)
    except Exception:
        return 0
