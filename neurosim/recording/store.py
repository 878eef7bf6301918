"""Recording a run into one Zarr store through xarray.

Layout of a store (``xr.open_zarr(path)`` gives the root Dataset):

* root variables appended per checkpoint along ``epoch`` (errors, loss,
  optional weight snapshots) and, for trajectories, along ``step``;
  every variable carries ``long_name``/``units``/``description`` attrs;
* root attrs: the resolved protocol (JSON), seed, versions, backend, status,
  and ``neurosim_commit`` — the commit record (a JSON string, as every attr is a
  netCDF value);
* groups ``checkpoint_a`` / ``checkpoint_b``: the two slots of a
  double-buffered checkpoint (weights, optimizer and rule state).  A finished
  run keeps only the committed slot (enough to extend it with ``--resume``).

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
  commit replaces the commit record *and* the consolidated metadata at once.
  Libraries writing through :class:`SafeStore` (xarray's appends, Zarr
  group creation) cannot touch it.
* A checkpoint is written into the slot that is *not* committed, then the
  root is replaced.  A kill before that replace leaves the previous commit
  (record, slot, visible records) intact; after it, the new one.
* A store is created beside its destination (``.NAME.<id>.creating``, root
  metadata included) and renamed into place, so whatever is found at the
  destination has its root metadata.  A store being replaced is renamed
  aside first (``.NAME.<id>.deleting``) and deleted after.  The next writer
  (holding the lock) removes what a kill leaves of either.
* :meth:`Recorder.repair` (run on resume) cuts arrays back to their
  committed shapes and removes arrays created after the last commit and
  leftover temporary files.
* One writer at a time: :class:`~neurosim.recording.lock.StoreLock` holds an
  exclusive ``flock`` on the store directory itself (nothing beside the store is
  created, written or deleted for it); the kernel releases it when the process
  dies, so a killed run never blocks its resume.

Integrity (stores of format 3; see :mod:`neurosim.recording.seal`).

* Every array is compressed with Zstandard frame checksums, and every chunk is
  written (also one equal to the fill value), so a chunk that is damaged,
  truncated or deleted is found when it is read.
* The commit record holds a content hash (BLAKE2b, 128 bit, over dtype, shape
  and bytes) of every array of the committed checkpoint and a hash chain over the
  rows of every committed record array; the root metadata (every attr, the commit
  record, the consolidated metadata) carries a seal.
* A store holds only what neurosim writes: a link or special file inside it is
  refused before anything is read (:mod:`neurosim.recording.layout`).
* :func:`verify_store` checks a store against its last commit (metadata of
  every committed array, every committed chunk, the checkpoint hashes);
  :func:`prepare_store` runs it before a resume writes anything, and
  ``neurosim inspect`` reports it.  Damage is a :class:`StoreError` naming the
  file (and for a checkpoint the array and slot); an older slot is never used
  in place of a damaged one.

What may be deleted: only a neurosim run store (root metadata with the
commit record) that holds nothing neurosim did not write, or an empty directory
(:func:`prepare_store`).
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec
from zarr.storage import LocalStore

from .layout import TEMP, check_tree, enclosing_store, read_regular
from .lock import StoreError, StoreLock, real_path, try_lock_dir
from .seal import SEAL, chain_rows, chain_start, rows, seal_of, sealed

__all__ = ["StoreLock", "StoreError", "real_path"]  # (re-exported; defined in .lock)

MARKER = "neurosim_commit"
ROOT = "zarr.json"
SLOTS = ("checkpoint_a", "checkpoint_b")
#: store format written by this module: 3 = format 2 and a seal over the root metadata and a
#: hash chain over every committed record array; 2 = Zstandard checksums, every chunk written,
#: checkpoint content hashes in the commit record; 1 = none of these (still read and resumed)
FORMAT = 3
_EMPTY_CONSOLIDATED = {"kind": "inline", "must_understand": False, "metadata": {}}
#: temporary names beside a store: ``.NAME.<id>.<kind>``
_DEBRIS = ("creating", "deleting", "partial")


class StoreWriteError(StoreError):
    """Writing a store failed (disk full, file too large, not writable, ...)."""


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


def _codecs():
    """Compression of every array: Zstandard with a checksum in every frame."""
    return (ZstdCodec(level=0, checksum=True),)


def content_hash(arr) -> str:
    """BLAKE2b (128 bit) of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(arr)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")
    return "blake2b-128:" + h.hexdigest()


def _write_error(exc: OSError, store: Path, doing: str = "write") -> StoreWriteError:
    """One line for a failed write, with what to do next."""
    why = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename or store
    msg = f"cannot {doing} {where}: {why}"
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        fix = ("raise the file size limit (ulimit -f) or write elsewhere" if exc.errno == errno.EFBIG
               else "free some space")
        if (store / ROOT).is_file():
            msg += f"; the store keeps its last checkpoint: {fix}, then continue the run with --resume"
        else:
            msg += f"; nothing was recorded: {fix}, then run again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        msg += " (the store or its directory is not writable; choose another --out)"
    return StoreWriteError(msg)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ----------------------------------------------------------------------
# fault injection (tests): die at the N-th store mutation of this process
# ----------------------------------------------------------------------
_FAULT = {"n": 0}


def _fault_point(path: Path | None = None) -> None:
    """Count one store mutation; SIGKILL this process at ``$NEUROSIM_FAULT_KILL_AT``.

    Used by the crash tests to stop a run between any two writes, leaving a
    half-written temporary file as a kill inside a write would.  A value that
    is not a number is a file that receives the count when the process exits.
    (Tests of write failures replace this function with one that raises
    ``OSError``: every call site turns that into a :class:`StoreWriteError`.)
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
    Zarr rewrites parent groups) are dropped.  A failed write raises
    :class:`StoreWriteError`."""

    def _root_write(self) -> bool:
        """True: drop the write silently."""
        return True

    async def set(self, key: str, value) -> None:
        if key == ROOT and self._root_write():
            return
        try:
            _fault_point(self.root / key)
            await super().set(key, value)
        except OSError as exc:
            raise _write_error(exc, self.root) from None

    async def set_if_not_exists(self, key: str, value) -> None:
        if key == ROOT and self._root_write():
            return
        try:
            _fault_point(self.root / key)
            await super().set_if_not_exists(key, value)
        except OSError as exc:
            raise _write_error(exc, self.root) from None

    async def delete(self, key: str) -> None:
        if key == ROOT:
            raise StoreError("refusing to delete the root metadata of a run store")
        try:
            _fault_point()
            await super().delete(key)
        except OSError as exc:
            raise _write_error(exc, self.root, "delete") from None

    async def delete_dir(self, prefix: str) -> None:
        try:
            _fault_point()
            await super().delete_dir(prefix)
        except OSError as exc:
            raise _write_error(exc, self.root, "delete") from None


class GuardedStore(SafeStore):
    """What :meth:`Recorder.open_group` hands out: root writes raise instead
    (they would bypass the commit protocol); use :meth:`Recorder.set_attrs`."""

    def _root_write(self) -> bool:
        raise StoreError("the root metadata of a run store is written only by Recorder "
                         "(use Recorder.set_attrs for attrs; records become visible at a commit)")


# ----------------------------------------------------------------------
# what a path holds
# ----------------------------------------------------------------------
def _occupied(path: Path) -> bool:
    """Something is at ``path`` (a file, a link, or a directory that is not empty)."""
    if not os.path.lexists(path):
        return False
    return not path.is_dir() or path.is_symlink() or any(path.iterdir())


def _load_json(file: Path, what: str) -> dict:
    """A metadata file as a dict; StoreError naming the file if it is missing or damaged."""
    try:
        meta = json.loads(read_regular(file))
    except (FileNotFoundError, NotADirectoryError):
        raise StoreError(f"{file} is missing ({what})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StoreError(f"{file} is damaged: not valid JSON ({exc}) ({what})") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"{file} is a symbolic link ({what}); a store holds only regular "
                             f"files and folders neurosim writes") from None
        raise StoreError(f"cannot read {file}: {exc.strerror or exc} ({what})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{file} is damaged: not a JSON object ({what})")
    return meta


def read_root(path, commit: bool = True) -> dict:
    """The root metadata of a neurosim run store; StoreError if ``path`` is not one (or its
    root metadata is damaged), naming the file.  ``commit=False`` also accepts a Zarr group
    without the commit record (readers of records written by other tools)."""
    p = Path(path)
    if not p.is_dir():
        what = "does not exist" if not os.path.lexists(p) else "is a file"
        raise StoreError(f"{p} is not a neurosim store (it {what})")
    if not (p / ROOT).exists():
        raise StoreError(f"{p} is not a neurosim store (no zarr.json)")
    meta = _load_json(p / ROOT, "the root metadata of the store")
    attrs = meta.get("attributes")
    if not isinstance(attrs, dict) or commit_record(attrs) is None:
        kind = (attrs or {}).get("kind") if isinstance(attrs, dict) else None
        if not commit and meta.get("node_type") == "group" and kind != "sweep":
            return meta
        if kind == "sweep":
            raise StoreError(f"{p} is a sweep store, not a run store (open its runs/<name>, or "
                             f"use neurosim report)")
        raise StoreError(f"{p} is a Zarr store but not a neurosim run store (its zarr.json has no "
                         f"{MARKER} record)")
    return meta


def commit_record(attrs: dict) -> dict | None:
    """The commit record in a store's root attrs (a JSON string, so that every attr is a
    netCDF value; a mapping in stores written before), or None."""
    m = attrs.get(MARKER) if isinstance(attrs, dict) else None
    if isinstance(m, str):
        try:
            m = json.loads(m)
        except ValueError:
            return None
    return m if isinstance(m, dict) else None


def _with_record(meta: dict, record: dict) -> dict:
    """``meta`` with its commit record replaced (written as a JSON string)."""
    meta.setdefault("attributes", {})[MARKER] = json.dumps(_jsonable(record))
    return meta


def is_run_store(path) -> bool:
    try:
        read_root(path)
        return True
    except StoreError:
        return False


def _debris(real: Path) -> list:
    """What interrupted writers left beside the store at ``real``: its temporary names
    ``.NAME.<12 hex>.creating|deleting`` (folders) and, from older versions, root writes
    ``.NAME.<12 hex>.zarr.json.partial`` (files).  Nothing else is ever taken for debris."""
    pat = re.compile(rf"\.{re.escape(real.name)}\.[0-9a-f]{{12}}\.(creating|deleting|zarr\.json\.partial)")
    try:
        with os.scandir(real.parent) as it:
            return sorted(Path(e.path) for e in it if pat.fullmatch(e.name))
    except OSError:
        return []


def _remove_debris(real: Path) -> None:
    """Remove what interrupted writers left beside the store at ``real`` (hold its lock).

    A folder is removed only when no live writer holds its lock and it is provably neurosim's:
    empty, or a run store (its root metadata with the commit record) holding nothing else
    (:func:`~neurosim.recording.layout.check_tree`).  Anything else is left alone."""
    for p in _debris(real):
        try:
            if p.name.endswith(".partial"):
                if p.is_file() and not p.is_symlink():
                    _fault_point()
                    p.unlink()
                continue
            if p.is_symlink() or not p.is_dir():
                continue
            fd = try_lock_dir(p)
            if fd is None:
                continue  # a live writer's
            try:
                if any(p.iterdir()):
                    try:
                        check_tree(p, strict=True)
                        read_root(p)
                    except StoreError:
                        if not (p.name.endswith(".creating") and _only_root(p)):
                            continue  # not provably ours: left alone
                _remove(p)
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _write_error(exc, real, "remove the leftover") from None


def _only_root(p: Path) -> bool:
    """A folder holding nothing but a (possibly half-written) root metadata file: what a
    creation killed while writing it leaves."""
    names = os.listdir(p)
    return all((n == ROOT or TEMP.fullmatch(n)) and (p / n).is_file() and not (p / n).is_symlink()
               for n in names)


def _lock_new(folder: Path) -> int:
    from .lock import lock_new_dir

    return lock_new_dir(folder)


def _remove(path: Path) -> None:
    _fault_point()
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# ----------------------------------------------------------------------
# before a run writes: continue, create, or replace
# ----------------------------------------------------------------------
def prepare_store(path, *, resume: bool = False, overwrite: bool = False, check=None) -> str:
    """Decide what a run does with the store at ``path``; refuse (StoreError) before writing.

    Returns ``"resume"`` (a run store with a committed checkpoint, verified with
    :func:`verify_store` and accepted by ``check(recorder)``), ``"create"``
    (nothing there, or an empty directory) or ``"replace"`` (a run store to be
    replaced by :meth:`Recorder.create` with ``replace=True``: with
    ``overwrite``, or on resume of a store that has no commit yet).

    * ``resume`` and ``overwrite`` exclude each other.
    * Only a neurosim run store or an empty directory is ever replaced;
      anything else at ``path`` is refused, naming it.
    * ``resume`` of a store that does not exist is refused, unless what is
      left beside it shows that its creation was interrupted (then it starts
      afresh: nothing had been committed).
    * Nothing is written (the store's lock is taken, re-entrantly), so a
      caller may ask again and get the same answer; what interrupted writers
      left beside the store is removed by :meth:`Recorder.create`, or here
      when the answer is ``"resume"``.
    """
    if resume and overwrite:
        raise StoreError("--resume continues a store and --overwrite replaces it: give only one")
    given = Path(path)
    with StoreLock(given) as lock:
        lock.ensure()  # (a store that appeared since the lock was first taken)
        real = lock.store
        _refuse_below_file(given, real)
        _refuse_inside_store(given, real)
        debris = _debris(real)
        if not os.path.lexists(real):
            if resume and not debris:
                raise StoreError(f"cannot resume {given}: it does not exist; run without --resume "
                                 f"to start it")
            return "create"
        if not real.is_dir():
            what = ("a file" if real.is_file() else "a link that leads nowhere" if real.is_symlink()
                    else "a special file")
            if resume:
                raise StoreError(f"cannot resume {given}: it is {what}, not a neurosim store; "
                                 f"choose another --out")
            if overwrite:
                raise StoreError(f"refusing to overwrite {given}: it is {what}, not a neurosim store "
                                 f"(--overwrite replaces only neurosim stores and empty directories); "
                                 f"choose another --out")
            raise StoreError(f"{given} already exists and is {what}, not a neurosim store; choose "
                             f"another --out")
        if not any(real.iterdir()):
            if resume and not debris:
                raise StoreError(f"cannot resume {given}: it is an empty directory, not a store; run "
                                 f"without --resume to start it")
            return "create"
        if not (real / ROOT).exists():
            if resume:
                raise StoreError(
                    f"cannot resume {given}: it is not a neurosim store (no zarr.json). If it is "
                    f"what an older neurosim left of a run killed before its first checkpoint, "
                    f"delete it and run without --resume; otherwise choose another --out")
            if overwrite:
                raise StoreError(f"refusing to overwrite {given}: it is a directory that is not a "
                                 f"neurosim store (no zarr.json); --overwrite replaces only neurosim "
                                 f"stores and empty directories: choose another --out")
            raise StoreError(f"{given} already exists and is not a neurosim store (no zarr.json); "
                             f"choose another --out")
        try:
            check_tree(real, strict=overwrite)
            meta = read_root(real)
        except StoreError as exc:
            if overwrite:
                raise StoreError(f"refusing to overwrite {given}: {exc}; --overwrite replaces only "
                                 f"neurosim stores holding nothing else (move it away, or delete "
                                 f"it yourself if it is one)") from None
            raise
        if overwrite:
            return "replace"
        if not resume:
            raise StoreError(f"{given} already exists; use --resume to continue it or --overwrite "
                             f"to replace it")
        rec = Recorder(given)
        if check is not None:
            check(rec)
        if not commit_record(meta["attributes"]).get("slot"):
            return "replace"  # killed before its first checkpoint: nothing to keep
        verify_store(given)
        _remove_debris(real)
        return "resume"




def _refuse_below_file(given: Path, real: Path) -> None:
    """A store cannot be made below something that is not a directory."""
    d = real.parent
    while not os.path.lexists(d) and d != d.parent:
        d = d.parent
    if not d.is_dir():
        raise StoreError(f"cannot create {given}: {d} is not a directory")


def _refuse_inside_store(given: Path, real: Path) -> None:
    """A store is never written inside another Zarr store (overwriting the outer one would
    delete it), except a run of a sweep at ``SWEEP/runs/<name>``."""
    outer = enclosing_store(real)
    if outer is None:
        return
    if outer == real.parent and outer.name == "runs" and _is_sweep(outer.parent):
        return
    raise StoreError(f"refusing to write {given}: it is inside the store {outer}; choose an --out "
                     f"outside any store")


def _is_sweep(p: Path) -> bool:
    try:
        attrs = _load_json(p / ROOT, "").get("attributes")
    except StoreError:
        return False
    return isinstance(attrs, dict) and attrs.get("kind") == "sweep"


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

    @property
    def real(self) -> Path:
        return real_path(self.path)

    def lock(self) -> StoreLock:
        return StoreLock(self.path)

    def store(self) -> SafeStore:
        return SafeStore(self.path)

    def create(self, attrs: dict, replace: bool = False) -> None:
        """Create an empty store with root ``attrs``: built beside the destination and renamed
        into place.  An existing store is refused, or with ``replace`` (only a neurosim run
        store or an empty directory) renamed aside and deleted once the new one is in place."""
        real = self.real
        if _occupied(real):
            if not replace:
                raise StoreError(f"{self.path} already exists; use --resume to continue it or "
                                 f"--overwrite to replace it")
            if not real.is_dir() or real.is_symlink() or not is_run_store(real):
                raise StoreError(f"refusing to replace {self.path}: it is not a neurosim store")
        meta = _with_record({"attributes": _jsonable(attrs), "zarr_format": 3,
                             "consolidated_metadata": dict(_EMPTY_CONSOLIDATED),
                             "node_type": "group"},
                            {"slot": None, "records": {}, "format": FORMAT, "record_hashes": {}})
        _remove_debris(real)
        tag = uuid.uuid4().hex[:12]
        tmp = real.with_name(f".{real.name}.{tag}.creating")
        trash = None
        fd = None
        lock = StoreLock(real)
        made = []  # folders made for the store, removed again if it cannot be created
        d = real.parent
        while not os.path.lexists(d) and d != d.parent:
            made.append(d)
            d = d.parent
        try:
            real.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            fd = _lock_new(tmp)  # the new store is locked before anyone can see it
            _fault_point(tmp / ROOT)
            (tmp / ROOT).write_text(json.dumps(sealed(meta), indent=1))
            if _occupied(real):  # the store being replaced goes aside first, then away
                trash = real.with_name(f".{real.name}.{tag}.deleting")
                _fault_point()
                os.rename(real, trash)  # (still locked by this process until it is gone)
            _fault_point()
            os.rename(tmp, real)  # (replaces an empty directory, never a store)
        except OSError as exc:
            taken = exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
            shutil.rmtree(tmp, ignore_errors=True)
            for folder in made:  # deepest first, only while empty
                try:
                    folder.rmdir()
                except OSError:
                    break
            if fd is not None:
                os.close(fd)
            if trash is not None and trash.exists() and not os.path.lexists(real):
                os.rename(trash, real)
            if taken and _occupied(real):
                raise StoreError(f"{self.path} was created by another process meanwhile; a store "
                                 f"has one writer at a time (use --resume to continue it once "
                                 f"that run ends)") from None
            raise _write_error(exc, real, "create") from None
        old = lock.adopt(fd)  # this process's lock now holds the new store
        self._slots = {}
        if trash is not None:
            try:
                _remove(trash)
            except OSError:
                pass  # removed by the next writer
        if old is not None:
            os.close(old)

    def open_group(self, mode="r+"):
        """The store's root group as it is on disk (uncommitted records included)."""
        store = GuardedStore(self.path) if mode != "r" else LocalStore(self.path, read_only=True)
        return zarr.open_group(store, mode=mode, use_consolidated=False)

    # root metadata: read and replaced whole, never edited in place -----
    def _read_root(self) -> dict:
        if not (self.path / ROOT).exists():
            raise StoreError(f"{self.path} is not a neurosim store (no zarr.json)")
        return _load_json(self.path / ROOT, "the root metadata of the store")

    def _write_root(self, meta: dict) -> None:
        """Replace the root metadata, sealed (a temporary file inside the store, then one
        ``os.replace``)."""
        real = self.real
        tmp = real / f"zarr.{uuid.uuid4().hex}.partial"
        try:
            _fault_point(tmp)
            tmp.write_text(json.dumps(sealed(meta), indent=1))
            os.replace(tmp, real / ROOT)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise _write_error(exc, real) from None

    @property
    def attrs(self) -> dict:
        return dict(self._read_root().get("attributes", {}))

    @property
    def commit(self) -> dict:
        return commit_record(self.attrs) or {"slot": None, "records": {}}

    # ----------------------------------------------------------------
    def _node_meta(self, name: str) -> dict | None:
        try:
            meta = json.loads(read_regular(self.path / name / ROOT))
        except (OSError, StoreError, ValueError, UnicodeDecodeError):
            return None
        return meta if isinstance(meta, dict) else None

    def has(self, name: str) -> bool:
        """Whether the store holds a variable ``name`` (written, committed or not)."""
        return self._node_meta(name) is not None

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
                if self._node_meta(str(name)) is not None:
                    continue  # (a coordinate shared with records along another dimension)
                enc[name] = {"compressors": _codecs()}
                if dim in var.dims:
                    chunks = tuple(1 if d == dim else s for d, s in zip(var.dims, var.shape))
                    enc[name]["chunks"] = chunks
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            if exists:
                ds.to_zarr(self.store(), append_dim=dim, consolidated=False, mode="a",
                           write_empty_chunks=True)
            else:
                ds.to_zarr(self.store(), mode="a", consolidated=False, encoding=enc,
                           write_empty_chunks=True)

    def set_attrs(self, **attrs) -> None:
        """Update root attrs; what readers see of the data does not change."""
        meta = self._read_root()
        meta.setdefault("attributes", {}).update(_jsonable(attrs))
        self._write_root(meta)

    def finish(self, **attrs) -> None:
        """Update root attrs at the end of a run and drop the checkpoint slot that is not
        committed (the committed one is enough to extend the run with ``--resume``)."""
        meta = self._read_root()
        meta.setdefault("attributes", {}).update(_jsonable(attrs))
        slot = (commit_record(meta["attributes"]) or {}).get("slot")
        free = [s for s in SLOTS if s != slot][0] if slot in SLOTS else None
        cm = (meta.get("consolidated_metadata") or {}).get("metadata")
        if free and isinstance(cm, dict):  # readers first stop seeing it, then it goes
            for key in [k for k in cm if k == free or k.startswith(free + "/")]:
                del cm[key]
        self._write_root(meta)
        if free and (self.real / free).exists():
            self._slots.pop(free, None)
            try:
                _remove(self.real / free)
            except OSError as exc:
                raise _write_error(exc, self.real, "delete") from None

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
        """Dimensions that records are appended along (from the commit record and this session)."""
        return set(self.commit.get("records", {})) | self._dims

    def _consolidated(self) -> dict:
        """Metadata of every node below the root, read from disk (flat keys, as Zarr writes them)."""
        out = {}

        def walk(folder: Path, prefix: str):
            for child in sorted(folder.iterdir()):
                if not child.is_dir() or child.is_symlink():
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

        The commit is one atomic replace of the root metadata: the commit
        record (slot, records per append dim, ``info``, a content hash of every
        checkpoint array) and the consolidated metadata together.  ``info``
        (JSON-able: epoch, step, ...) is stored with the record.
        """
        root_meta = self._read_root()
        cur = (commit_record(root_meta.get("attributes", {})) or {}).get("slot")
        slot = "checkpoint_b" if cur == "checkpoint_a" else "checkpoint_a"
        # The free slot is overwritten in place (arrays of the same shape and dtype are
        # reused, and kept open between checkpoints: this process is the only writer).
        # It is not committed, so a kill half way through is harmless.
        # A slot is written fresh on its first use by this process (what a killed writer
        # left there is thrown away).
        cache = self._slots.get(slot)
        if cache is None:
            if (self.path / slot).exists():
                try:
                    _remove(self.path / slot)
                except OSError as exc:
                    raise _write_error(exc, self.real, "delete") from None
            root = zarr.open_group(self.store(), mode="r+", use_consolidated=False)
            cache = self._slots[slot] = {"group": root.create_group(slot), "arrays": {}}
        grp, arrays = cache["group"], cache["arrays"]
        for name in set(arrays) - set(state):
            del grp[name], arrays[name]
        hashes = {}
        for name, arr in state.items():
            arr = np.array(arr, order="C")  # (not ascontiguousarray: it makes 0-d arrays 1-d)
            a = arrays.get(name)
            if a is None or a.shape != arr.shape or a.dtype != arr.dtype:
                if a is not None:
                    del grp[name]
                a = arrays[name] = grp.create_array(name, shape=arr.shape, dtype=arr.dtype,
                                                    chunks=arr.shape, compressors=_codecs(),
                                                    config={"write_empty_chunks": True})
            a[...] = arr
            hashes[name] = content_hash(arr)
        grp.attrs.put(_jsonable(info) | {"hashes": hashes})
        records = {d: self.records(d) for d in sorted(self.append_dims())}
        root_meta = self._read_root()
        old = commit_record(root_meta["attributes"]) or {}
        consolidated = self._consolidated()
        fmt = int(old.get("format", 1))
        _with_record(root_meta, {"slot": slot, "records": records, **_jsonable(info),
                                 "format": FORMAT if fmt >= 2 else fmt, "hashes": hashes,
                                 "record_hashes": self._record_chains(
                                     consolidated["metadata"], old.get("record_hashes") or {})})
        root_meta["consolidated_metadata"] = consolidated
        self._write_root(root_meta)

    def _record_chains(self, committed: dict, before: dict) -> dict:
        """The hash chain of every root array about to be committed, extended from ``before``
        (the last commit's) by the rows added since."""
        out = {}
        for key, node in committed.items():
            if key.split("/")[0] in SLOTS or node.get("node_type") != "array":
                continue
            shape = list(node.get("shape") or [])
            n = rows(shape)
            have = before.get(key)
            if isinstance(have, list) and len(have) == 2 and 0 <= int(have[0]) <= n:
                start, h = int(have[0]), str(have[1])
            else:
                start, h = 0, chain_start(node.get("data_type"), shape[1:])
            if start < n:
                h = _chain_array(self.path, key, shape, start, h)
            out[key] = [n, h]
        return out

    def load_checkpoint(self, verify: bool = True):
        """(state, info) of the committed checkpoint, or (None, None).

        With ``verify`` every array is checked against its content hash in the
        commit record (StoreError naming the array and slot on a mismatch)."""
        c = self.commit
        slot = c.get("slot")
        if not slot:
            return None, None
        hashes = c.get("hashes") if verify else None
        if verify and hashes is None and int(c.get("format", 1)) >= 2:
            raise StoreError(f"{self.path / ROOT} is damaged: its commit record has no checkpoint "
                             f"hashes")
        state, info = _load_slot(self.path, slot, hashes)
        return state, info

    def repair(self) -> dict:
        """Bring the arrays back to the last commit; returns what was cut.

        Arrays longer than their committed shape are truncated, root arrays
        created after the commit are removed, leftover temporary files of
        interrupted writes are deleted.
        """
        try:
            return self._repair()
        except OSError as exc:
            raise _write_error(exc, self.real) from None

    def _repair(self) -> dict:
        committed = self._read_root().get("consolidated_metadata") or {}
        committed = committed.get("metadata") or {}
        cut = {}
        real = self.real
        for tmp in _debris(real):
            if tmp.name.endswith(".partial") and tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
        for folder, _, files in os.walk(real):  # (links never followed; none are inside)
            for f in files:
                if TEMP.fullmatch(f) and os.path.isfile(os.path.join(folder, f)):
                    os.unlink(os.path.join(folder, f))
        for child in sorted(self.path.iterdir()):
            if not child.is_dir() or child.is_symlink() or child.name in SLOTS:
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


# ----------------------------------------------------------------------
# integrity
# ----------------------------------------------------------------------
#: bytes decoded at a time when a store is verified
_VERIFY_BLOCK = 64 * 2**20


def _open_ro(path: Path, key: str):
    return zarr.open_array(LocalStore(path, read_only=True), path=key, mode="r")


def _row_blocks(shape, itemsize: int, chunk0: int = 1):
    """Slices along the first axis of at most ``_VERIFY_BLOCK`` bytes (whole chunks)."""
    if not shape:
        return [()]
    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    step = max(1, _VERIFY_BLOCK // row // max(1, chunk0)) * max(1, chunk0)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def _chain_array(path: Path, key: str, shape: list, start: int, h: str) -> str:
    """Extend the record chain ``h`` of root array ``key`` by its rows ``start`` to the end
    of ``shape`` (read back from disk: what is hashed is what was written)."""
    arr = _open_ro(path, key)
    if not shape:
        return chain_rows(h, np.asarray(arr[...]).reshape(1))
    for b in _row_blocks([shape[0] - start] + list(shape[1:]), arr.dtype.itemsize, arr.chunks[0]):
        sl = (slice(start + b.start, start + b.stop),) + tuple(slice(0, s) for s in shape[1:])
        h = chain_rows(h, np.asarray(arr[sl]))
    return h


def _chunk_coords(shape, chunks):
    return itertools.product(*(range(math.ceil(s / c)) if c else range(0)
                               for s, c in zip(shape, chunks)))


def _check_array_data(path: Path, key: str, shape: list, all_chunks: bool,
                      chain: str | None = None) -> str | None:
    """Every chunk of the committed region of array ``key`` is there (``all_chunks``) and
    decodes; StoreError naming the first chunk file that does not.  With ``chain`` (the
    start of a record chain) returns the chain over the committed rows."""
    try:
        arr = _open_ro(path, key)
    except Exception as exc:  # noqa: BLE001 - any failure is damage; say which file
        raise StoreError(f"{path / key / ROOT} is damaged ({_why(exc)})") from None
    chunks = arr.chunks
    region = tuple(slice(0, s) for s in shape)
    enc = arr.metadata.chunk_key_encoding
    if all_chunks:
        for c in _chunk_coords(shape, chunks):
            f = path / key / enc.encode_chunk_key(c)
            if not f.is_file():
                raise StoreError(f"{f} is missing (chunk {c} of array {key} of the last commit)")
    # read in blocks along the first axis (bounded memory), chunk by chunk only to name a failure
    if not shape:
        blocks = [region]
    else:
        blocks = [(b,) + region[1:] for b in _row_blocks(shape, arr.dtype.itemsize, chunks[0])]
    try:
        for b in blocks:
            data = np.asarray(arr[b])
            if chain is not None:
                chain = chain_rows(chain, data.reshape(1) if not shape else data)
        return chain
    except Exception:  # noqa: BLE001 - find the chunk and name it
        pass
    for c in _chunk_coords(shape, chunks):
        sl = tuple(slice(i * n, min((i + 1) * n, s)) for i, n, s in zip(c, chunks, shape))
        try:
            arr[sl]
        except Exception as exc:  # noqa: BLE001
            f = path / key / enc.encode_chunk_key(c)
            raise StoreError(f"{f} is damaged (chunk {c} of array {key}: {_why(exc)})") from None
    raise StoreError(f"{path / key} cannot be read")  # pragma: no cover


def _load_slot(path, slot: str, hashes: dict | None, offer: bool = True):
    """(state, info) of checkpoint slot ``slot``; each array checked against ``hashes``
    (with ``offer``, the error for a damaged slot names the other slot if that is intact)."""
    path = Path(path)
    meta = _load_json(path / slot / ROOT, f"the checkpoint slot {slot} of the last commit")
    info = {k: v for k, v in (meta.get("attributes") or {}).items() if k != "hashes"}
    if hashes is not None:
        names = sorted(hashes)
    else:
        names = sorted(c.name for c in (path / slot).iterdir() if (c / ROOT).is_file())
    state = {}
    for name in names:
        where = f"checkpoint array {name} in slot {slot}"
        try:
            data = np.asarray(_open_ro(path, f"{slot}/{name}")[...])
        except Exception as exc:  # noqa: BLE001 - any failure is damage; say which
            raise _corrupt(path, slot, offer, f"{where} cannot be read ({path / slot / name}: "
                                       f"{_why(exc)})") from None
        if hashes is not None and content_hash(data) != hashes[name]:
            raise _corrupt(path, slot, offer, f"{where} is corrupt: its content does not match the hash "
                                       f"in the commit record (a chunk was changed, truncated or "
                                       f"deleted: {path / slot / name})")
        state[name] = data
    return state, info


def _corrupt(path: Path, slot: str, offer: bool, what: str) -> StoreError:
    """The error for a damaged committed checkpoint; names the other slot if it is intact."""
    msg = f"{path}: {what}; the run cannot continue from this store"
    if not offer:
        return StoreError(msg)
    other = [s for s in SLOTS if s != slot][0]
    try:
        meta = _load_json(path / other / ROOT, "")
        hashes = (meta.get("attributes") or {}).get("hashes")
        if hashes:
            _load_slot(path, other, hashes, offer=False)
            info = meta["attributes"]
            msg += (f". The other slot, {other} (epoch {info.get('epoch')}, step "
                    f"{info.get('step')}), is intact but older than the committed records; "
                    f"neurosim does not fall back to it by itself")
    except (StoreError, OSError, KeyError, TypeError):
        pass
    return StoreError(msg)


def verify_store(path) -> dict:
    """Check a run store against its last commit; StoreError naming the first damaged file.

    Checked: nothing inside the store is a link or a special file (found without opening
    anything, so nothing blocks); the root metadata's seal (every root attr, the commit
    record, the consolidated metadata); the format the store claims against what it holds
    (a format set back does not switch checks off); for every array of the commit (root
    records and the committed checkpoint slot) its metadata as committed (everything but a
    longer shape); the committed slot's loop position and hashes as in the commit record;
    every committed chunk of the root records is there (format 2) and decodes (Zstandard
    checksums) and every record array matches its hash chain (format 3); every array of the
    committed checkpoint matches its content hash; the store opens with xarray.  Returns
    ``{"slot", "epoch", "step", "checkpoint", "records", "sealed", "arrays", "format"}`` with
    ``checkpoint`` one of ``"verified"`` (content hashes), ``"unverified"`` (a format-1 store:
    no hashes; it decodes) or ``None`` (no commit) and ``records`` ``"verified"`` (hash chains)
    or ``"decoded"`` (older formats: every chunk decodes).

    A store that a running writer commits to while it is checked is checked again
    (what changed under the check is not damage).
    """
    path = Path(path)
    for attempt in range(3):
        check_tree(path)
        meta = read_root(path)
        try:
            return _verify(path, meta)
        except StoreError:
            if attempt == 2 or read_root(path) == meta:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


#: loop position kept both in the commit record and in the committed slot's attrs
_POSITION = ("epoch", "batch", "step", "loss_sum", "loss_n", "stopped", "elapsed")


def _same_meta(disk: dict, node: dict) -> bool:
    """An array's or group's metadata on disk as committed (an array may have grown since)."""
    skip = ("shape", "consolidated_metadata")
    return ({k: v for k, v in disk.items() if k not in skip}
            == {k: v for k, v in node.items() if k not in skip})


def _verify(path: Path, meta: dict) -> dict:
    root = path / ROOT
    attrs = meta["attributes"]
    marker = commit_record(attrs)
    seal = attrs.get(SEAL)
    if seal is not None and seal != seal_of(meta):
        raise StoreError(f"{root} is damaged: the root metadata (attrs, commit record or "
                         f"consolidated metadata) was changed outside neurosim (its seal does not "
                         f"match)")
    try:
        fmt = int(marker.get("format", 1))
    except (TypeError, ValueError):
        raise StoreError(f"{root} is damaged: its commit record has format "
                         f"{marker.get('format')!r}") from None
    chains = marker.get("record_hashes")
    if fmt >= 3 and seal is None:
        raise StoreError(f"{root} is damaged: a format-{fmt} store without its seal")
    if seal is None and chains is not None:
        raise StoreError(f"{root} is damaged: its seal was removed (its commit record holds "
                         f"record hashes, which only sealed stores have)")
    if fmt > FORMAT:
        raise StoreError(f"{root}: store format {fmt} is newer than this neurosim reads ({FORMAT}); "
                         f"update neurosim")
    slot = marker.get("slot")
    if slot is not None and slot not in SLOTS:
        raise StoreError(f"{root} is damaged: its commit record names slot {slot!r}")
    committed = (meta.get("consolidated_metadata") or {}).get("metadata")
    if not isinstance(committed, dict):
        raise StoreError(f"{root} is damaged: it has no consolidated metadata")
    if slot and slot not in committed:
        raise StoreError(f"{root} is damaged: the committed slot {slot} is not in its metadata")
    if seal is None and fmt < 2 and _all_checksummed(committed):
        raise StoreError(f"{root} is damaged: its commit record says format {fmt}, but its "
                         f"arrays were written in format 2 or later (the format was changed "
                         f"outside neurosim)")
    if fmt >= 3 and slot and not isinstance(chains, dict):
        raise StoreError(f"{root} is damaged: its commit record has no record hashes")
    n = 0
    for key in sorted(committed):
        node = committed[key]
        top = key.split("/")[0]
        if top in SLOTS and top != slot:
            continue  # the free slot: not part of the commit
        disk = _load_json(path / key / ROOT, f"metadata of {key} in the last commit")
        if disk.get("node_type") != node.get("node_type"):
            raise StoreError(f"{path / key / ROOT} is damaged: it is a {disk.get('node_type')}, "
                             f"the commit has a {node.get('node_type')}")
        if not _same_meta(disk, node):
            what = ("its loop position or content hashes" if top in SLOTS and key == top
                    else "its attrs, codecs or data type")
            raise StoreError(f"{path / key / ROOT} does not match the last commit ({what} were "
                             f"changed outside neurosim)")
        if node.get("node_type") != "array":
            continue
        want = list(node.get("shape") or [])
        have = disk.get("shape")
        if (not isinstance(have, list) or len(have) != len(want)
                or any(h < w for h, w in zip(have, want))):
            raise StoreError(f"{path / key / ROOT} does not match the last commit (shape {have}, "
                             f"data type {disk.get('data_type')}; committed {want}, "
                             f"{node.get('data_type')}): the store was changed outside neurosim")
        n += 1
        if top in SLOTS:
            continue
        start = None
        if isinstance(chains, dict):
            if key not in chains:
                raise StoreError(f"{root} is damaged: its commit record has no record hash of "
                                 f"array {key}")
            start = chain_start(node.get("data_type"), want[1:])
        got = _check_array_data(path, key, want, all_chunks=fmt >= 2, chain=start)
        if start is not None and [rows(want), got] != list(chains[key]):
            raise StoreError(f"{path / key} does not match its record hash in the commit record "
                             f"(a chunk was changed, swapped, truncated or deleted outside "
                             f"neurosim)")
    if isinstance(chains, dict):
        extra = sorted(set(chains) - set(committed))
        if extra:
            raise StoreError(f"{root} is damaged: its commit record has a record hash of {extra[0]}, "
                             f"which is not in the commit")
    checkpoint = None
    if slot:
        hashes = marker.get("hashes")
        if hashes is None and fmt >= 2:
            raise StoreError(f"{root} is damaged: its commit record has no checkpoint hashes")
        if hashes is not None:
            arrays = {k.split("/", 1)[1] for k, v in committed.items()
                      if k.startswith(slot + "/") and v.get("node_type") == "array"}
            if not isinstance(hashes, dict) or set(hashes) != arrays:
                missing = sorted(arrays - set(hashes or {})) or sorted(set(hashes or {}) - arrays)
                raise StoreError(f"{root} is damaged: its commit record's checkpoint hashes do not "
                                 f"list the arrays of slot {slot} (differs at {missing[:1]})")
        _, info = _load_slot(path, slot, hashes)
        differ = [k for k in _POSITION if k in marker and info.get(k) != marker.get(k)]
        if differ:
            raise StoreError(f"{path / slot / ROOT} is damaged: its loop position ({differ[0]} = "
                             f"{info.get(differ[0])!r}) differs from the commit record's "
                             f"({marker.get(differ[0])!r})")
        checkpoint = "verified" if hashes is not None else "unverified"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            xr.open_zarr(str(path)).close()
    except Exception as exc:  # noqa: BLE001 - any failure to open is damage
        raise StoreError(f"{path} does not open with xarray ({_why(exc)})") from None
    return {"slot": slot, "epoch": marker.get("epoch"), "step": marker.get("step"),
            "checkpoint": checkpoint, "records": "verified" if isinstance(chains, dict) else "decoded",
            "sealed": seal is not None, "arrays": n, "format": fmt}


def _all_checksummed(committed: dict) -> bool:
    """Every committed root array is compressed with Zstandard checksums (format 2 and later)."""
    arrays = [v for k, v in committed.items()
              if k.split("/")[0] not in SLOTS and v.get("node_type") == "array"]

    def checksummed(node):
        return any(isinstance(c, dict) and c.get("name") == "zstd"
                   and (c.get("configuration") or {}).get("checksum") for c in node.get("codecs") or ())

    return bool(arrays) and all(checksummed(v) for v in arrays)


def store_sizes(path) -> dict:
    """Bytes on disk: ``recordings`` (root metadata and records), ``checkpoints`` (all slots)
    and ``slots`` (the slot folders present)."""
    path = Path(path)
    out = {"recordings": 0, "checkpoints": 0, "slots": []}
    for root, _, files in os.walk(path):
        rel = Path(root).relative_to(path).parts
        kind = "checkpoints" if rel and rel[0] in SLOTS else "recordings"
        if len(rel) == 1 and rel[0] in SLOTS:
            out["slots"].append(rel[0])
        for f in files:
            try:
                out[kind] += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    out["slots"].sort()
    return out


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
    read_root(p, commit=False)
    try:
        ds = xr.open_zarr(str(p))
    except Exception as exc:  # noqa: BLE001 - a damaged store: say so in one line
        raise StoreError(f"{p} does not open ({_why(exc)}); neurosim inspect {p} checks it") from None
    return ds
