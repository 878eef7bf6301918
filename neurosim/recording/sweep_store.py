"""The sweep store: one Zarr root group holding every run of a sweep.

Layout::

    SWEEP.zarr/              root group, attrs: kind = "sweep", name, title, created, versions,
                             protocol_file, sweep_protocol (JSON), seeds, axes, runs, updated,
                             last_invocation
    SWEEP.zarr/runs/         group of the run stores
    SWEEP.zarr/runs/<name>/  a complete run store (``xr.open_zarr(SWEEP/runs/<name>)``)

The root attr ``runs`` maps each run name to its cell, seed, overrides, store path, status
(``queued``, ``finished``, ``failed``, ``interrupted``), error and final errors.  Only the driver
writes the root attrs; each worker writes only its run's store.  Where the driver did not see a
run end (an interrupted sweep), the run's status is taken from the run's own store
(:meth:`SweepStore.settle`, through :mod:`~neurosim.recording.reader`): a finished run stays
finished.  The root is not consolidated, so its
children never appear in (or go stale in) root metadata.

A run store's writer holds the lock of the run store directory itself and writes nothing beside
it.  Older neurosim versions kept a lock file ``runs/<name>.lock`` and temporary files of root
writes ``runs/.<name>.*.partial`` beside the run store, inside the ``runs`` group, where every
reader that walks the hierarchy would warn about an object that is not a Zarr node; the driver
removes those of killed writers whenever it opens the store and when it ends
(:meth:`SweepStore.remove_stale_writer_files`).  A live writer's files are never touched.

The same class is what readers get from :func:`~neurosim.recording.reader.open_sweep`, with the
runs it lists in ``entries``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import zarr

from .reader import RunStore, decode_attrs, final_errors, open_run, run_attrs
from .session import Status
from .store.layout import SWEEP_KIND as KIND
from .store.layout import is_sweep_store

RUNS = "runs"
LOCK_SUFFIX = ".lock"
PARTIAL_SUFFIX = ".partial"

#: listing statuses the driver sets from a run's result; :meth:`SweepStore.settle` keeps them
FINAL = ("finished", "failed")


class SweepStore:
    """A Zarr root group (attrs ``kind="sweep"``) holding each run's store as ``runs/<name>``;
    ``entries``: the runs it lists, as :func:`~neurosim.recording.reader.open_sweep` read them."""

    def __init__(self, path, entries=None):
        self.path = Path(path)
        self.entries = list(entries or [])

    @property
    def name(self) -> str:
        return str(self.attrs.get("name") or self.path.stem)

    @property
    def exists(self) -> bool:
        return (self.path / "zarr.json").exists()

    def open(self, mode="r"):
        return zarr.open_group(str(self.path), mode=mode, use_consolidated=False)

    @property
    def attrs(self) -> dict:
        """The root attrs, JSON strings decoded."""
        return decode_attrs(self.open("r").attrs)

    def create_or_open(self, sweep) -> None:
        """Create the store for ``sweep`` (a :class:`~neurosim.sweep.grammar.Sweep`), or open an
        existing sweep store and record the sweep protocol it now runs; refuses any other path
        (:class:`StoreError`).  Stale run locks are removed."""
        from ..core.jsonable import jsonable
        from . import StoreError, versions

        if self.exists:
            kind = self.attrs.get("kind")
            if kind != KIND:
                raise StoreError(f"{self.path} exists and is not a sweep store (root attr kind={kind!r}); "
                                 f"choose another --out")
        elif self.path.exists() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} exists and is not a Zarr store; choose another --out")
        g = zarr.open_group(str(self.path), mode="a")
        if "kind" not in g.attrs:
            g.attrs.update(jsonable({
                "kind": KIND, "title": f"neurosim sweep {sweep.name}", "name": sweep.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), "runs": {},
            }))
        g.attrs.update(jsonable({"protocol_file": sweep.file, "sweep_protocol": json.dumps(sweep.raw),
                                  "seeds": sweep.seeds,
                                  "axes": [{"key": a.key, "keys": a.keys} for a in sweep.axes]}))
        zarr.open_group(str(self.path / RUNS), mode="a")
        self.remove_stale_writer_files()

    def run_path(self, name: str) -> Path:
        return self.path / RUNS / name

    def runs(self) -> dict:
        return dict(self.attrs.get("runs", {}))

    def update_runs(self, entries: dict) -> None:
        """Merge ``{name: {field: value}}`` into the root attr ``runs`` (driver only)."""
        from ..core.jsonable import jsonable

        g = self.open("r+")
        runs = dict(g.attrs.get("runs", {}))
        for name, info in entries.items():
            runs[name] = {**runs.get(name, {}), **jsonable(info)}
        g.attrs["runs"] = runs
        g.attrs["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def run_attrs(self, name: str) -> dict | None:
        """Root attrs of a run's store, or None when it has none (yet)."""
        return run_attrs(self.run_path(name))

    # ------------------------------------------------------------------
    def settle(self, names) -> dict:
        """Set the listing of runs whose end the driver did not see from their own stores.

        Entries already :data:`FINAL` (set from a run's result) and runs without a store (never
        started) are left alone; otherwise the run store's status decides: ``finished`` stays
        finished (with its final errors), ``diverged`` is ``failed`` (with the store's failure
        message), anything else (``running``, ``interrupted``) is ``interrupted`` — it resumes
        from its last checkpoint.  Returns the entries written."""
        listing = self.runs()
        out = {}
        for name in names:
            if listing.get(name, {}).get("status") in FINAL:
                continue
            attrs = self.run_attrs(name)
            if attrs is None:
                continue
            status = attrs.get("status")
            if status == Status.FINISHED:
                out[name] = {"status": "finished", "error": None, "stopped": attrs.get("stopped"),
                             **final_errors(self.run_path(name))}
            elif status == Status.DIVERGED:
                out[name] = {"status": "failed", "error": attrs.get("failure") or "diverged"}
            else:
                out[name] = {"status": "interrupted"}
        if out:
            self.update_runs(out)
        return out

    def remove_stale_writer_files(self) -> list[Path]:
        """Remove what killed writers of older neurosim versions left beside their run stores
        in ``runs/``: unlocked lock files ``<name>.lock`` holding a pid line (or nothing) and
        temporary files ``.<name>.<12 hex>.zarr.json.partial``.  Returns the files removed.

        (Writers now lock the run store directory itself and write nothing beside it.)  A lock
        file is removed only while no process holds it, a temporary file only while its run's
        lock can be taken (:class:`~neurosim.recording.StoreLock`, which also honours an older
        writer's lock file), so a live writer's files are never touched.  Only regular files are
        considered; links are never followed."""
        from . import StoreError, StoreLock

        folder = self.path / RUNS
        if not folder.is_dir():
            return []
        entries = [f for f in sorted(folder.iterdir()) if not f.is_symlink()]
        stores = sorted((f.name for f in entries if f.is_dir() and not f.name.startswith(".")),
                        key=len, reverse=True)
        removed = []
        partials: dict = {}
        for f in entries:
            if not f.is_file():
                continue
            if f.name.endswith(LOCK_SUFFIX) and _is_lock_file(f):
                if _unlink_unlocked(f):
                    removed.append(f)
            elif f.name.startswith(".") and f.name.endswith(PARTIAL_SUFFIX):
                name = next((n for n in stores
                             if re.fullmatch(rf"\.{re.escape(n)}\.[0-9a-f]{{12}}\.zarr\.json\.partial",
                                             f.name)), None)
                if name is not None:
                    partials.setdefault(name, []).append(f)
        for name, files in partials.items():
            lock = StoreLock(folder / name)
            if lock.held:
                continue  # this process writes that run
            try:
                lock.acquire()
            except (StoreError, OSError):  # a live writer
                continue
            try:
                for f in files:
                    f.unlink(missing_ok=True)
                    removed.append(f)
            finally:
                lock.release()
        return sorted(removed)


@dataclass
class SweepEntry:
    """A run listed in a sweep store."""

    name: str
    cell: str  # the runs of a cell differ only in seed
    seed: object
    status: str
    error: str | None
    run: RunStore | None = None  # None until the run has written its store


def open_sweep(path) -> SweepStore:
    """Open a sweep store for reading: its ``entries`` list every run, with each run store
    that exists (:func:`~neurosim.recording.reader.open_run`)."""
    from . import StoreError

    root = Path(path)
    if not is_sweep_store(root):
        raise StoreError(f"{root} is not a sweep store (no root attr kind='sweep')")
    store = SweepStore(root)
    for name, info in dict(store.attrs.get("runs") or {}).items():
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
        store.entries.append(e)
    return store


def _unlink_unlocked(f: Path) -> bool:
    """Remove the lock file ``f`` of an older writer if no process holds its ``flock``."""
    import fcntl
    import os

    try:
        fd = os.open(f, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(f)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _is_lock_file(f: Path) -> bool:
    """A run lock file holds its writer's pid (empty when killed before writing it)."""
    try:
        return f.stat().st_size <= 64 and re.fullmatch(rb"\d*\n?", f.read_bytes()) is not None
    except OSError:
        return False
