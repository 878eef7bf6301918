"""Before a run writes: continue the store at a path, create it, or replace it; everything
that is refused is refused here, before anything is written."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import StoreError
from .format import ROOT
from .layout import check_tree, enclosing_store, is_sweep_store
from .lifecycle import debris, remove_debris
from .lock import StoreLock
from .root import commit_record, read_root
from .verify import verify_store
from .writer import Recorder


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
        leftovers = debris(real)
        if not os.path.lexists(real):
            if resume and not leftovers:
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
            if resume and not leftovers:
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
        remove_debris(real)
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
    if outer == real.parent and outer.name == "runs" and is_sweep_store(outer.parent):
        return
    raise StoreError(f"refusing to write {given}: it is inside the store {outer}; choose an --out "
                     f"outside any store")


