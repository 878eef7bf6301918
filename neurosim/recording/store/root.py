"""A store's root metadata (its ``zarr.json``): read, checked to be a neurosim run store,
and replaced whole, sealed, in one atomic write; the commit record it holds."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

import xarray as xr

from ...core.jsonable import jsonable
from . import faults
from .errors import StoreError, why, write_error
from .format import MARKER, ROOT
from .layout import SWEEP_KIND, read_regular
from .lock import real_path
from .seal import sealed


def load_json(file: Path, what: str) -> dict:
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


def node_meta(path: Path, name: str) -> dict | None:
    """The metadata of the node ``name`` of the store at ``path``, or None (none, or unreadable)."""
    try:
        meta = json.loads(read_regular(path / name / ROOT))
    except (OSError, StoreError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


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
    meta = load_json(p / ROOT, "the root metadata of the store")
    attrs = meta.get("attributes")
    if not isinstance(attrs, dict) or commit_record(attrs) is None:
        kind = (attrs or {}).get("kind") if isinstance(attrs, dict) else None
        if not commit and meta.get("node_type") == "group" and kind != SWEEP_KIND:
            return meta
        if kind == SWEEP_KIND:
            raise StoreError(f"{p} is a sweep store, not a run store (open its runs/<name>, or "
                             f"use neurosim report)")
        raise StoreError(f"{p} is a Zarr store but not a neurosim run store (its zarr.json has no "
                         f"{MARKER} record)")
    return meta


def is_run_store(path) -> bool:
    try:
        read_root(path)
        return True
    except StoreError:
        return False


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


def with_record(meta: dict, record: dict) -> dict:
    """``meta`` with its commit record replaced (written as a JSON string)."""
    meta.setdefault("attributes", {})[MARKER] = json.dumps(jsonable(record))
    return meta


def read_meta(path: Path) -> dict:
    """The root metadata of the store being written at ``path`` (read whole)."""
    if not (path / ROOT).exists():
        raise StoreError(f"{path} is not a neurosim store (no zarr.json)")
    return load_json(path / ROOT, "the root metadata of the store")


def write_meta(path: Path, meta: dict) -> None:
    """Replace the root metadata, sealed (a temporary file inside the store, then one
    ``os.replace``): the only way the root metadata is ever written."""
    real = real_path(path)
    tmp = real / f"zarr.{uuid.uuid4().hex}.partial"
    try:
        faults.fault_point(tmp)
        tmp.write_text(json.dumps(sealed(meta), indent=1))
        os.replace(tmp, real / ROOT)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise write_error(exc, real) from None


def open_store(path) -> xr.Dataset:
    """Open a run store as an xarray Dataset (the committed state)."""
    p = Path(path)
    read_root(p, commit=False)
    try:
        ds = xr.open_zarr(str(p))
    except Exception as exc:  # noqa: BLE001 - a damaged store: say so in one line
        raise StoreError(f"{p} does not open ({why(exc)}); neurosim inspect {p} checks it") from None
    return ds
