"""A store's life on disk: created beside its destination and renamed into place, a store
being replaced renamed aside and deleted, and what interrupted writers left beside a store
(``.NAME.<id>.creating|deleting``) recognised and removed.

Only a neurosim run store (root metadata with the commit record) that holds nothing neurosim
did not write, or an empty directory, is ever deleted."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
from pathlib import Path

from ...core.jsonable import jsonable
from . import faults
from .errors import StoreError, write_error
from .format import EMPTY_CONSOLIDATED, FORMAT, ROOT
from .layout import TEMP, check_tree
from .lock import StoreLock, lock_new_dir, real_path, try_lock_dir
from .root import is_run_store, read_root, with_record
from .seal import sealed


def occupied(path: Path) -> bool:
    """Something is at ``path`` (a file, a link, or a directory that is not empty)."""
    if not os.path.lexists(path):
        return False
    return not path.is_dir() or path.is_symlink() or any(path.iterdir())


def debris(real: Path) -> list:
    """What interrupted writers left beside the store at ``real``: its temporary names
    ``.NAME.<12 hex>.creating|deleting`` (folders) and, from older versions, root writes
    ``.NAME.<12 hex>.zarr.json.partial`` (files).  Nothing else is ever taken for debris."""
    pat = re.compile(rf"\.{re.escape(real.name)}\.[0-9a-f]{{12}}\.(creating|deleting|zarr\.json\.partial)")
    try:
        with os.scandir(real.parent) as it:
            return sorted(Path(e.path) for e in it if pat.fullmatch(e.name))
    except OSError:
        return []


def remove_debris(real: Path) -> None:
    """Remove what interrupted writers left beside the store at ``real`` (hold its lock).

    A folder is removed only when no live writer holds its lock and it is provably neurosim's:
    empty, or a run store (its root metadata with the commit record) holding nothing else
    (:func:`~neurosim.recording.store.layout.check_tree`).  Anything else is left alone."""
    for p in debris(real):
        try:
            if p.name.endswith(".partial"):
                if p.is_file() and not p.is_symlink():
                    faults.fault_point()
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
                remove(p)
            finally:
                os.close(fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise write_error(exc, real, "remove the leftover") from None


def _only_root(p: Path) -> bool:
    """A folder holding nothing but a (possibly half-written) root metadata file: what a
    creation killed while writing it leaves."""
    names = os.listdir(p)
    return all((n == ROOT or TEMP.fullmatch(n)) and (p / n).is_file() and not (p / n).is_symlink()
               for n in names)


def remove(path: Path) -> None:
    """Delete a folder of a store (or a file), counted as one store mutation."""
    faults.fault_point()
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def create(given: Path, attrs: dict, replace: bool = False) -> None:
    """Create an empty store at ``given`` with root ``attrs``: built beside the destination and
    renamed into place.  An existing store is refused, or with ``replace`` (only a neurosim run
    store or an empty directory) renamed aside and deleted once the new one is in place."""
    real = real_path(given)
    if occupied(real):
        if not replace:
            raise StoreError(f"{given} already exists; use --resume to continue it or "
                             f"--overwrite to replace it")
        if not real.is_dir() or real.is_symlink() or not is_run_store(real):
            raise StoreError(f"refusing to replace {given}: it is not a neurosim store")
    meta = with_record({"attributes": jsonable(attrs), "zarr_format": 3,
                        "consolidated_metadata": dict(EMPTY_CONSOLIDATED),
                        "node_type": "group"},
                       {"slot": None, "records": {}, "format": FORMAT, "record_hashes": {}})
    remove_debris(real)
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
        fd = lock_new_dir(tmp)  # the new store is locked before anyone can see it
        faults.fault_point(tmp / ROOT)
        (tmp / ROOT).write_text(json.dumps(sealed(meta), indent=1))
        if occupied(real):  # the store being replaced goes aside first, then away
            trash = real.with_name(f".{real.name}.{tag}.deleting")
            faults.fault_point()
            os.rename(real, trash)  # (still locked by this process until it is gone)
        faults.fault_point()
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
        if taken and occupied(real):
            raise StoreError(f"{given} was created by another process meanwhile; a store "
                             f"has one writer at a time (use --resume to continue it once "
                             f"that run ends)") from None
        raise write_error(exc, real, "create") from None
    old = lock.adopt(fd)  # this process's lock now holds the new store
    if trash is not None:
        try:
            remove(trash)
        except OSError:
            pass  # removed by the next writer
    if old is not None:
        os.close(old)
