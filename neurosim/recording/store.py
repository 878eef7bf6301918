"""Recording a run into one Zarr store through xarray.

Layout of a store (``xr.open_zarr(path)`` gives the root Dataset):

* root variables appended per checkpoint along ``epoch`` (errors, loss,
  optional weight snapshots) and, for trajectories, along ``step``;
  every variable carries ``long_name``/``units``/``description`` attrs;
* root attrs: the resolved protocol (JSON), seed, versions, backend, status,
  and ``neurosim_commit`` — the commit marker;
* groups ``checkpoint_a`` / ``checkpoint_b``: the two slots of a
  double-buffered checkpoint (weights, optimizer and rule state).

Crash safety (a SIGKILL at any moment leaves a store that opens and resumes).

* Every key (chunk, array metadata) is written atomically by Zarr (temporary
  file + rename), so a file is either the old or the new version.
* Readers see the *consolidated* metadata in the root ``zarr.json``: the
  shapes and names of every array as of the last commit.  Records appended
  since (longer arrays, new arrays) are on disk but invisible.  Appended
  dimensions use chunks of length 1, so an append never rewrites a chunk
  of a committed record.
* The root ``zarr.json`` is written only by this module, always in one
  atomic write (temporary file next to the store + ``os.replace``): a
  commit replaces the commit marker *and* the consolidated metadata at once.
  Libraries writing through :class:`SafeStore` (xarray's appends, Zarr
  group creation) cannot touch it.
* A checkpoint is written into the slot that is *not* committed, then the
  root is replaced.  A kill before that replace leaves the previous commit
  (marker, slot, visible records) intact; after it, the new one.
* :meth:`Recorder.repair` (run on resume) cuts arrays back to their
  committed shapes and removes arrays created after the last commit and
  leftover temporary files.
* One writer at a time: :class:`StoreLock` holds an exclusive ``flock`` on
  ``STORE.lock`` next to the store; the kernel releases it when the process
  dies, so a killed run never blocks its resume.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import threading
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.storage import LocalStore

MARKER = "neurosim_commit"
ROOT = "zarr.json"
_EMPTY_CONSOLIDATED = {"kind": "inline", "must_understand": False, "metadata": {}}


class StoreError(RuntimeError):
    pass


def versions() -> dict:
    from ..core.version import VERSION as __version__

    out = {"neurosim": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "xarray": xr.__version__, "zarr": zarr.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


# ----------------------------------------------------------------------
# fault injection (tests): die at the N-th store mutation of this process
# ----------------------------------------------------------------------
_FAULT = {"n": 0}


def _fault_point(path: Path | None = None) -> None:
    """Count one store mutation; SIGKILL this process at ``$NEUROSIM_FAULT_KILL_AT``.

    Used by the crash tests to stop a run between any two writes, leaving a
    half-written temporary file as a kill inside a write would.  A value that
    is not a number is a file that receives the count when the process exits.
    """
    at = os.environ.get("NEUROSIM_FAULT_KILL_AT")
    if not at:
        return
    _FAULT["n"] += 1
    if not at.isdigit():
        if _FAULT["n"] == 1:
            import atexit

            atexit.register(lambda: Path(at).write_text(str(_FAULT["n"])))
        return
    if _FAULT["n"] == int(at):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_name(path.name + f".{uuid.uuid4().hex}.partial").write_bytes(b"\x00" * 7)
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)


class SafeStore(LocalStore):
    """A Zarr ``LocalStore`` through which nothing but :class:`Recorder` may
    rewrite the root metadata (the commit point): writes of the root
    ``zarr.json`` by libraries (xarray stores the root attrs on every append,
    Zarr rewrites parent groups) are dropped."""

    def _root_write(self) -> bool:
        """True: drop the write silently."""
        return True

    async def set(self, key: str, value) -> None:
        if key == ROOT and self._root_write():
            return
        _fault_point(self.root / key)
        await super().set(key, value)

    async def set_if_not_exists(self, key: str, value) -> None:
        if key == ROOT and self._root_write():
            return
        _fault_point(self.root / key)
        await super().set_if_not_exists(key, value)

    async def delete(self, key: str) -> None:
        if key == ROOT:
            raise StoreError("refusing to delete the root metadata of a run store")
        _fault_point()
        await super().delete(key)

    async def delete_dir(self, prefix: str) -> None:
        _fault_point()
        await super().delete_dir(prefix)


class GuardedStore(SafeStore):
    """What :meth:`Recorder.open_group` hands out: root writes raise instead
    (they would bypass the commit protocol); use :meth:`Recorder.set_attrs`."""

    def _root_write(self) -> bool:
        raise StoreError("the root metadata of a run store is written only by Recorder "
                         "(use Recorder.set_attrs for attrs; records become visible at a commit)")


# ----------------------------------------------------------------------
# one writer per store
# ----------------------------------------------------------------------
_HELD: dict = {}
_HELD_LOCK = threading.Lock()


class StoreLock:
    """Exclusive writer lock of a store: ``flock`` on the sibling file ``STORE.lock``.

    Re-entrant within a process.  The lock file holds the writer's pid (for
    the message); it is removed on release and, if a process is killed, left
    behind *unlocked* (the kernel drops ``flock`` locks of dead processes), so
    it never blocks a resume.
    """

    def __init__(self, store):
        self.store = Path(store)
        self.file = self.store.with_name(self.store.name + ".lock")

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()

    def _key(self):
        return str(self.file.resolve())

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        with _HELD_LOCK:
            key = self._key()
            if key in _HELD:
                _HELD[key][1] += 1
                return
            self.file.parent.mkdir(parents=True, exist_ok=True)
            while True:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    try:
                        pid = os.read(fd, 64).decode(errors="replace").strip() or "?"
                    finally:
                        os.close(fd)
                    raise StoreError(
                        f"{self.store} is being written by another process (pid {pid}; lock file "
                        f"{self.file}). A store has one writer at a time: wait for that run to "
                        f"finish or stop it, then resume with --resume.") from None
                try:  # the previous holder may have removed the file between open and flock
                    same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD[key] = [fd, 1]

    def release(self) -> None:
        with _HELD_LOCK:
            key = self._key()
            entry = _HELD.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] == 0:
                try:
                    os.unlink(self.file)
                except OSError:
                    pass
                os.close(entry[0])
                del _HELD[key]

    @property
    def held(self) -> bool:
        return self._key() in _HELD


# ----------------------------------------------------------------------
class Recorder:
    """Append-only writer of one run's store."""

    def __init__(self, path):
        self.path = Path(path)
        self._dims: set = set()
        self._slots: dict = {}  # open checkpoint slot groups/arrays of this writer

    # ----------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.path / ROOT).exists()

    def lock(self) -> StoreLock:
        return StoreLock(self.path)

    def store(self) -> SafeStore:
        return SafeStore(self.path)

    def create(self, attrs: dict) -> None:
        """Create an empty store with root ``attrs`` (refuses to overwrite)."""
        if self.path.exists() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} already exists; use --resume to continue it or "
                             f"--overwrite to replace it")
        self.path.mkdir(parents=True, exist_ok=True)
        self._slots = {}
        self._write_root({"attributes": _jsonable(attrs) | {MARKER: {"slot": None, "records": {}}},
                          "zarr_format": 3, "consolidated_metadata": dict(_EMPTY_CONSOLIDATED),
                          "node_type": "group"})

    def open_group(self, mode="r+"):
        """The store's root group as it is on disk (uncommitted records included)."""
        store = GuardedStore(self.path) if mode != "r" else LocalStore(self.path, read_only=True)
        return zarr.open_group(store, mode=mode, use_consolidated=False)

    # root metadata: read and replaced whole, never edited in place -----
    def _read_root(self) -> dict:
        try:
            return json.loads((self.path / ROOT).read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.path} is not a neurosim store (no zarr.json)") from None
        except ValueError as exc:  # pragma: no cover - cannot happen with atomic writes
            raise StoreError(f"{self.path / ROOT} is unreadable ({exc})") from None

    def _write_root(self, meta: dict) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}.zarr.json.partial")
        _fault_point(tmp)
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.path / ROOT)

    @property
    def attrs(self) -> dict:
        return dict(self._read_root().get("attributes", {}))

    @property
    def commit(self) -> dict:
        return self.attrs.get(MARKER, {"slot": None, "records": {}})

    # ----------------------------------------------------------------
    def _node_meta(self, name: str) -> dict | None:
        try:
            return json.loads((self.path / name / ROOT).read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def append(self, ds: xr.Dataset, dim: str) -> None:
        """Append ``ds`` along ``dim`` (create the variables on first use).

        Not visible to readers (consolidated metadata) until :meth:`commit_checkpoint`.
        """
        self._dims.add(dim)
        ds = ds.copy()
        ds.attrs = {}  # root attrs are ours (SafeStore drops xarray's root write anyway)
        exists = self._dim_length(dim) is not None
        enc = {}
        if not exists:
            for name, var in ds.variables.items():
                if dim in var.dims:
                    chunks = tuple(1 if d == dim else s for d, s in zip(var.dims, var.shape))
                    enc[name] = {"chunks": chunks}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            if exists:
                ds.to_zarr(self.store(), append_dim=dim, consolidated=False, mode="a")
            else:
                ds.to_zarr(self.store(), mode="a", consolidated=False, encoding=enc)

    def set_attrs(self, **attrs) -> None:
        """Update root attrs; what readers see of the data does not change."""
        meta = self._read_root()
        meta.setdefault("attributes", {}).update(_jsonable(attrs))
        self._write_root(meta)

    def _dim_length(self, dim: str):
        """Length of ``dim`` on disk (its coordinate, else any root array using it), or None."""
        meta = self._node_meta(dim)
        if meta is not None and meta.get("node_type") == "array":
            return int(meta["shape"][0])
        for child in sorted(self.path.iterdir()) if self.path.is_dir() else ():
            meta = self._node_meta(child.name) if child.is_dir() else None
            if meta and meta.get("node_type") == "array" and dim in (meta.get("dimension_names") or ()):
                return int(meta["shape"][list(meta["dimension_names"]).index(dim)])
        return None

    def records(self, dim: str) -> int:
        return self._dim_length(dim) or 0

    # ----------------------------------------------------------------
    def append_dims(self) -> set:
        """Dimensions that records are appended along (from the marker and this session)."""
        return set(self.commit.get("records", {})) | self._dims

    def _consolidated(self) -> dict:
        """Metadata of every node below the root, read from disk (flat keys, as Zarr writes them)."""
        out = {}

        def walk(folder: Path, prefix: str):
            for child in sorted(folder.iterdir()):
                if not child.is_dir():
                    continue
                meta = self._node_meta(child.relative_to(self.path).as_posix())
                if meta is None:
                    continue
                key = prefix + child.name
                if meta.get("node_type") == "group":
                    meta["consolidated_metadata"] = dict(_EMPTY_CONSOLIDATED)
                    out[key] = meta
                    walk(child, key + "/")
                else:
                    out[key] = meta

        walk(self.path, "")
        return {"kind": "inline", "must_understand": False, "metadata": out}

    def commit_checkpoint(self, state: dict, info: dict) -> None:
        """Write ``state`` (host arrays) into the free slot, then commit.

        The commit is one atomic replace of the root metadata: marker (slot,
        records per append dim, ``info``) and consolidated metadata together.
        ``info`` (JSON-able: epoch, step, ...) is stored with the marker.
        """
        root_meta = self._read_root()
        cur = root_meta.get("attributes", {}).get(MARKER, {}).get("slot")
        slot = "checkpoint_b" if cur == "checkpoint_a" else "checkpoint_a"
        # The free slot is overwritten in place (arrays of the same shape and dtype are
        # reused, and kept open between checkpoints: this process is the only writer).
        # It is not committed, so a kill half way through is harmless.
        # A slot is written fresh on its first use by this process (what a killed writer
        # left there is thrown away).
        cache = self._slots.get(slot)
        if cache is None:
            if (self.path / slot).exists():
                _fault_point()
                shutil.rmtree(self.path / slot)
            root = zarr.open_group(self.store(), mode="r+", use_consolidated=False)
            cache = self._slots[slot] = {"group": root.create_group(slot), "arrays": {}}
        grp, arrays = cache["group"], cache["arrays"]
        for name in set(arrays) - set(state):
            del grp[name], arrays[name]
        for name, arr in state.items():
            arr = np.array(arr, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
            a = arrays.get(name)
            if a is None or a.shape != arr.shape or a.dtype != arr.dtype:
                if a is not None:
                    del grp[name]
                a = arrays[name] = grp.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                                    chunks=arr.shape)
            a[...] = arr
        grp.attrs.put(_jsonable(info))
        records = {d: self.records(d) for d in sorted(self.append_dims())}
        root_meta = self._read_root()
        root_meta["attributes"][MARKER] = {"slot": slot, "records": records, **_jsonable(info)}
        root_meta["consolidated_metadata"] = self._consolidated()
        self._write_root(root_meta)

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
        """Bring the arrays back to the last commit; returns what was cut.

        Arrays longer than their committed shape are truncated, root arrays
        created after the commit are removed, leftover temporary files of
        interrupted writes are deleted.
        """
        committed = self._read_root().get("consolidated_metadata") or {}
        committed = committed.get("metadata") or {}
        slots = {"checkpoint_a", "checkpoint_b"}
        cut = {}
        for tmp in self.path.parent.glob(f".{self.path.name}.*.partial"):
            tmp.unlink(missing_ok=True)
        for tmp in self.path.rglob("*.partial"):
            tmp.unlink(missing_ok=True)
        for child in sorted(self.path.iterdir()):
            if not child.is_dir() or child.name in slots:
                continue
            meta = self._node_meta(child.name)
            if child.name not in committed:
                empty = not any(f.is_file() for f in child.rglob("*"))
                if empty or (meta or {}).get("node_type") == "array":
                    shutil.rmtree(child)
                    cut[child.name] = "removed"
                continue
            want = committed[child.name].get("shape")
            if meta is None or meta.get("node_type") != "array" or want is None:
                continue
            if list(meta["shape"]) != list(want):
                if len(want) != len(meta["shape"]) or any(
                        w > h for w, h in zip(want, meta["shape"])):
                    raise StoreError(f"{child}: shape {meta['shape']} is shorter than the committed "
                                     f"{want}; the store was modified outside neurosim")
                arr = zarr.open_array(self.store(), path=child.name, mode="r+")
                cut[child.name] = int(meta["shape"][0]) - int(want[0])
                arr.resize(tuple(want))
        return cut


def consolidate(path) -> None:
    """Make everything now on disk visible to readers (rewrites the consolidated metadata)."""
    r = Recorder(path)
    meta = r._read_root()
    meta["consolidated_metadata"] = r._consolidated()
    r._write_root(meta)


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
