"""What may be inside a run store, and reading its files without ever blocking.

A run store holds only what Zarr and the recorder write: ``zarr.json`` metadata files,
node folders (arrays and groups), chunk files under an array's ``c/`` (named by chunk
indices) and temporary files of interrupted writes (``NAME.<32 hex>.partial``).
:func:`check_tree` walks a store without following any link and without opening
anything but directories, so a symbolic link (a loop included), a FIFO, a socket or a
device inside a store is found before any file is read — nothing can block or lead
outside the store.  With ``strict`` (before ``--overwrite`` deletes a store) anything
else — a user's file, a folder that is not a Zarr node, a store of its own nested
inside — is refused too, naming it.  :func:`store_sizes` says how much of it is records and
how much checkpoints.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from .errors import StoreError
from .format import ROOT, SLOTS

#: root attr ``kind`` of a sweep store
SWEEP_KIND = "sweep"
#: temporary files of Zarr's and the recorder's atomic writes
TEMP = re.compile(r".+\.[0-9a-f]{32}\.partial")
#: the largest metadata file read (a root zarr.json with every array's metadata)
MAX_JSON = 256 * 2**20
_MAX_DEPTH = 32


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def read_regular(file: Path, limit: int = MAX_JSON) -> bytes:
    """The bytes of a regular file; never follows a symlink, never blocks (a FIFO or device is
    refused on the open descriptor).  OSError (FileNotFoundError, ...) or StoreError."""
    fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{file} is {_kind(st.st_mode)}, not a file neurosim wrote: a store "
                             f"holds only regular files and folders")
        if st.st_size > limit:
            raise StoreError(f"{file} is too large to be store metadata ({st.st_size} bytes)")
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _node(folder: Path) -> dict | None:
    """The metadata of the Zarr node at ``folder`` (None: no zarr.json, or not a JSON object)."""
    try:
        meta = json.loads(read_regular(folder / ROOT))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _own_store(meta: dict) -> bool:
    attrs = meta.get("attributes")
    return isinstance(attrs, dict) and ("neurosim_commit" in attrs or attrs.get("kind") == SWEEP_KIND)


def is_sweep_store(path) -> bool:
    """True for a sweep store (root attr ``kind == "sweep"``); never blocks (a FIFO in place of
    its zarr.json is no sweep store)."""
    try:
        meta = json.loads(read_regular(Path(path) / ROOT))
    except Exception:  # noqa: BLE001 - unreadable (or a FIFO, a link): not a sweep store
        return False
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return isinstance(attrs, dict) and attrs.get("kind") == SWEEP_KIND


def check_tree(store, *, strict: bool = False) -> None:
    """StoreError naming the first entry of ``store`` that neurosim does not write: any
    symlink or special file; with ``strict`` also any other file or folder that is not part
    of a Zarr run store, and a store nested inside.  Nothing is followed or opened but folders
    (and, with ``strict``, the zarr.json of node folders)."""
    store = Path(store)
    stack = [(store, "group", 0)]
    while stack:
        folder, kind, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise StoreError(f"{folder} is nested deeper than a neurosim store ever is; it was not "
                             f"written by neurosim")
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise StoreError(f"cannot read {folder}: {exc.strerror or exc}") from None
        for e in entries:
            path = Path(e.path)
            try:
                mode = e.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue  # removed meanwhile (a temporary file renamed into place)
            except OSError as exc:
                raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise StoreError(f"{path} is {_kind(mode)} inside the store {store}: a store holds "
                                 f"only regular files and folders neurosim writes (remove it)")
            is_dir = stat.S_ISDIR(mode)
            if not strict:
                if is_dir:
                    stack.append((path, "any", depth + 1))
                continue
            if TEMP.fullmatch(e.name) and not is_dir:
                continue
            why = _foreign(path, e.name, is_dir, kind)
            if why is None and is_dir:
                if kind == "chunks":
                    stack.append((path, "chunks", depth + 1))
                elif kind == "array":
                    stack.append((path, "chunks", depth + 1))  # c/
                else:
                    meta = _node(path)
                    if meta is None:
                        if any(not TEMP.fullmatch(n) for n in os.listdir(path)):
                            why = "a folder that is not a Zarr array or group"
                    elif _own_store(meta):
                        why = "a store of its own"
                    else:
                        stack.append((path, "array" if meta.get("node_type") == "array"
                                      else "group", depth + 1))
            if why:
                raise StoreError(f"{path} is {why}, inside {store}; neurosim did not write it")


def _foreign(path: Path, name: str, is_dir: bool, kind: str) -> str | None:
    """Why an entry of a ``kind`` folder is not one neurosim writes (None: it may be)."""
    if kind == "chunks":
        return None if name.isdigit() else "not a chunk of a Zarr array"
    if kind == "array":
        if name == ROOT and not is_dir:
            return None
        if name == "c":
            return None
        return "not part of a Zarr array"
    # a group (the root of the store or a checkpoint slot)
    if name == ROOT:
        return None if not is_dir else "a folder named zarr.json"
    if not is_dir:
        return "a file neurosim did not write"
    if name.startswith("."):
        return "a hidden folder"
    if (path / ".zgroup").exists() or (path / ".zarray").exists():
        return "a Zarr v2 node"
    return None


def enclosing_store(path) -> Path | None:
    """The nearest folder above ``path`` (symlinks resolved) that is a Zarr store or node
    (holds zarr.json, .zgroup or .zarray), or None."""
    p = Path(os.path.realpath(os.fspath(path)))
    for parent in p.parents:
        for name in (ROOT, ".zgroup", ".zarray"):
            try:
                os.lstat(parent / name)
                return parent
            except OSError:
                continue
    return None


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
