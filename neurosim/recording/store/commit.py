"""The commit: a checkpoint written into the slot that is not committed, then the commit
record (slot, records per append dimension, loop position, content hashes of the checkpoint,
hash chains of the records) and the consolidated metadata replaced in one atomic root write.
Also its two readers: the committed checkpoint loaded back, and the arrays cut back to the
last commit (what a resume does first)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from ...core.jsonable import jsonable
from .adapters import SafeStore
from .arrays import chain_array, load_slot
from .errors import StoreError, write_error
from .format import EMPTY_CONSOLIDATED, FORMAT, ROOT, SLOTS, codecs, content_hash
from .layout import TEMP
from .lifecycle import debris, remove
from .lock import real_path
from .root import commit_record, node_meta, read_meta, with_record, write_meta
from .seal import chain_start, rows


def consolidated(path: Path) -> dict:
    """Metadata of every node below the root, read from disk (flat keys, as Zarr writes them)."""
    out = {}

    def walk(folder: Path, prefix: str):
        for child in sorted(folder.iterdir()):
            if not child.is_dir() or child.is_symlink():
                continue
            meta = node_meta(path, child.relative_to(path).as_posix())
            if meta is None:
                continue
            key = prefix + child.name
            if meta.get("node_type") == "group":
                meta["consolidated_metadata"] = dict(EMPTY_CONSOLIDATED)
                out[key] = meta
                walk(child, key + "/")
            else:
                out[key] = meta

    walk(path, "")
    return {"kind": "inline", "must_understand": False, "metadata": out}


def write_slot(path: Path, cache: dict, state: dict, info: dict) -> tuple:
    """Write ``state`` (host arrays) and ``info`` into the slot that is not committed; returns
    (slot, content hashes).  ``cache`` holds the slot groups and arrays this writer opened.

    The free slot is overwritten in place (arrays of the same shape and dtype are reused, and
    kept open between checkpoints: this process is the only writer).  It is not committed, so a
    kill half way through is harmless.  A slot is written fresh on its first use by this
    process (what a killed writer left there is thrown away)."""
    cur = (commit_record(read_meta(path).get("attributes", {})) or {}).get("slot")
    slot = "checkpoint_b" if cur == "checkpoint_a" else "checkpoint_a"
    entry = cache.get(slot)
    if entry is None:
        if (path / slot).exists():
            try:
                remove(path / slot)
            except OSError as exc:
                raise write_error(exc, real_path(path), "delete") from None
        root = zarr.open_group(SafeStore(path), mode="r+", use_consolidated=False)
        entry = cache[slot] = {"group": root.create_group(slot), "arrays": {}}
    grp, arrays = entry["group"], entry["arrays"]
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
                                                chunks=arr.shape, compressors=codecs(),
                                                config={"write_empty_chunks": True})
        a[...] = arr
        hashes[name] = content_hash(arr)
    grp.attrs.put(jsonable(info) | {"hashes": hashes})
    return slot, hashes


def commit(path: Path, slot: str, records: dict, info: dict, hashes: dict) -> None:
    """Commit ``slot`` (written) and the records (``{dim: length}``): one atomic replace of
    the root metadata holding the new commit record and consolidated metadata."""
    root_meta = read_meta(path)
    old = commit_record(root_meta["attributes"]) or {}
    cons = consolidated(path)
    fmt = int(old.get("format", 1))
    with_record(root_meta, {"slot": slot, "records": records, **jsonable(info),
                            "format": FORMAT if fmt >= 2 else fmt, "hashes": hashes,
                            "record_hashes": record_chains(path, cons["metadata"],
                                                           old.get("record_hashes") or {})})
    root_meta["consolidated_metadata"] = cons
    write_meta(path, root_meta)


def record_chains(path: Path, committed: dict, before: dict) -> dict:
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
            h = chain_array(path, key, shape, start, h)
        out[key] = [n, h]
    return out


def load_checkpoint(path: Path, record: dict, verify: bool = True):
    """(state, info) of the checkpoint committed in ``record``, or (None, None); with
    ``verify`` every array checked against its content hash."""
    slot = record.get("slot")
    if not slot:
        return None, None
    hashes = record.get("hashes") if verify else None
    if verify and hashes is None and int(record.get("format", 1)) >= 2:
        raise StoreError(f"{path / ROOT} is damaged: its commit record has no checkpoint "
                         f"hashes")
    return load_slot(path, slot, hashes)


def repair(path: Path) -> dict:
    """Bring the arrays back to the last commit; returns what was cut.

    Arrays longer than their committed shape are truncated, root arrays
    created after the commit are removed, leftover temporary files of
    interrupted writes are deleted.
    """
    try:
        return _repair(path)
    except OSError as exc:
        raise write_error(exc, real_path(path)) from None


def _repair(path: Path) -> dict:
    committed = read_meta(path).get("consolidated_metadata") or {}
    committed = committed.get("metadata") or {}
    cut = {}
    real = real_path(path)
    for tmp in debris(real):
        if tmp.name.endswith(".partial") and tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
    for folder, _, files in os.walk(real):  # (links never followed; none are inside)
        for f in files:
            if TEMP.fullmatch(f) and os.path.isfile(os.path.join(folder, f)):
                os.unlink(os.path.join(folder, f))
    for child in sorted(path.iterdir()):
        if not child.is_dir() or child.is_symlink() or child.name in SLOTS:
            continue
        meta = node_meta(path, child.name)
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
            arr = zarr.open_array(SafeStore(path), path=child.name, mode="r+")
            cut[child.name] = int(meta["shape"][0]) - int(want[0])
            arr.resize(tuple(want))
    return cut
