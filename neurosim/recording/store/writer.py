"""The :class:`Recorder`: the one object a run writes its store through (create, append
records, root attrs, checkpoints and their commit, finish, repair on resume)."""

from __future__ import annotations

import warnings
from pathlib import Path

import xarray as xr
import zarr
from zarr.storage import LocalStore

from ...core.jsonable import jsonable
from . import commit as _commit
from . import lifecycle
from .adapters import GuardedStore, SafeStore
from .errors import write_error
from .format import ROOT, SLOTS, codecs
from .lock import StoreLock, real_path
from .root import commit_record, node_meta, read_meta, write_meta


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
        lifecycle.create(self.path, attrs, replace)
        self._slots = {}

    def open_group(self, mode="r+"):
        """The store's root group as it is on disk (uncommitted records included)."""
        store = GuardedStore(self.path) if mode != "r" else LocalStore(self.path, read_only=True)
        return zarr.open_group(store, mode=mode, use_consolidated=False)

    # root metadata: read and replaced whole, never edited in place -----
    def _read_root(self) -> dict:
        return read_meta(self.path)

    def _write_root(self, meta: dict) -> None:
        write_meta(self.path, meta)

    @property
    def attrs(self) -> dict:
        return dict(self._read_root().get("attributes", {}))

    @property
    def commit(self) -> dict:
        return commit_record(self.attrs) or {"slot": None, "records": {}}

    # ----------------------------------------------------------------
    def _node_meta(self, name: str) -> dict | None:
        return node_meta(self.path, name)

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
                enc[name] = {"compressors": codecs()}
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
        meta.setdefault("attributes", {}).update(jsonable(attrs))
        self._write_root(meta)

    def finish(self, **attrs) -> None:
        """Update root attrs at the end of a run and drop the checkpoint slot that is not
        committed (the committed one is enough to extend the run with ``--resume``)."""
        meta = self._read_root()
        meta.setdefault("attributes", {}).update(jsonable(attrs))
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
                lifecycle.remove(self.real / free)
            except OSError as exc:
                raise write_error(exc, self.real, "delete") from None

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

    def commit_checkpoint(self, state: dict, info: dict) -> None:
        """Write ``state`` (host arrays) into the free slot, then commit.

        The commit is one atomic replace of the root metadata: the commit
        record (slot, records per append dim, ``info``, a content hash of every
        checkpoint array) and the consolidated metadata together.  ``info``
        (JSON-able: epoch, step, ...) is stored with the record
        (:mod:`~neurosim.recording.store.commit`).
        """
        slot, hashes = _commit.write_slot(self.path, self._slots, state, info)
        records = {d: self.records(d) for d in sorted(self.append_dims())}
        _commit.commit(self.path, slot, records, info, hashes)

    def load_checkpoint(self, verify: bool = True):
        """(state, info) of the committed checkpoint, or (None, None).

        With ``verify`` every array is checked against its content hash in the
        commit record (StoreError naming the array and slot on a mismatch)."""
        return _commit.load_checkpoint(self.path, self.commit, verify)

    def repair(self) -> dict:
        """Bring the arrays back to the last commit; returns what was cut.

        Arrays longer than their committed shape are truncated, root arrays
        created after the commit are removed, leftover temporary files of
        interrupted writes are deleted.
        """
        return _commit.repair(self.path)
