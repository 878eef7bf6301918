"""Reading a store's committed arrays back, checked: every chunk there and decoding, the
record chain over their rows, a checkpoint slot against its content hashes.  A failure is a
:class:`~neurosim.recording.store.errors.StoreError` naming the file (and for a checkpoint
the array and slot)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import LocalStore

from .errors import StoreError, why
from .format import ROOT, SLOTS, content_hash
from .root import load_json
from .seal import chain_rows

#: bytes decoded at a time when a store is verified
VERIFY_BLOCK = 64 * 2**20


def open_ro(path: Path, key: str):
    return zarr.open_array(LocalStore(path, read_only=True), path=key, mode="r")


def row_blocks(shape, itemsize: int, chunk0: int = 1):
    """Slices along the first axis of at most ``VERIFY_BLOCK`` bytes (whole chunks)."""
    if not shape:
        return [()]
    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize)
    step = max(1, VERIFY_BLOCK // row // max(1, chunk0)) * max(1, chunk0)
    return [slice(i, min(i + step, shape[0])) for i in range(0, shape[0], step)]


def chain_array(path: Path, key: str, shape: list, start: int, h: str) -> str:
    """Extend the record chain ``h`` of root array ``key`` by its rows ``start`` to the end
    of ``shape`` (read back from disk: what is hashed is what was written)."""
    arr = open_ro(path, key)
    if not shape:
        return chain_rows(h, np.asarray(arr[...]).reshape(1))
    for b in row_blocks([shape[0] - start] + list(shape[1:]), arr.dtype.itemsize, arr.chunks[0]):
        sl = (slice(start + b.start, start + b.stop),) + tuple(slice(0, s) for s in shape[1:])
        h = chain_rows(h, np.asarray(arr[sl]))
    return h


def _chunk_coords(shape, chunks):
    return itertools.product(*(range(math.ceil(s / c)) if c else range(0)
                               for s, c in zip(shape, chunks)))


def check_array_data(path: Path, key: str, shape: list, all_chunks: bool,
                     chain: str | None = None) -> str | None:
    """Every chunk of the committed region of array ``key`` is there (``all_chunks``) and
    decodes; StoreError naming the first chunk file that does not.  With ``chain`` (the
    start of a record chain) returns the chain over the committed rows."""
    try:
        arr = open_ro(path, key)
    except Exception as exc:  # noqa: BLE001 - any failure is damage; say which file
        raise StoreError(f"{path / key / ROOT} is damaged ({why(exc)})") from None
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
        blocks = [(b,) + region[1:] for b in row_blocks(shape, arr.dtype.itemsize, chunks[0])]
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
            raise StoreError(f"{f} is damaged (chunk {c} of array {key}: {why(exc)})") from None
    raise StoreError(f"{path / key} cannot be read")  # pragma: no cover


def load_slot(path, slot: str, hashes: dict | None, offer: bool = True):
    """(state, info) of checkpoint slot ``slot``; each array checked against ``hashes``
    (with ``offer``, the error for a damaged slot names the other slot if that is intact)."""
    path = Path(path)
    meta = load_json(path / slot / ROOT, f"the checkpoint slot {slot} of the last commit")
    info = {k: v for k, v in (meta.get("attributes") or {}).items() if k != "hashes"}
    if hashes is not None:
        names = sorted(hashes)
    else:
        names = sorted(c.name for c in (path / slot).iterdir() if (c / ROOT).is_file())
    state = {}
    for name in names:
        where = f"checkpoint array {name} in slot {slot}"
        try:
            data = np.asarray(open_ro(path, f"{slot}/{name}")[...])
        except Exception as exc:  # noqa: BLE001 - any failure is damage; say which
            raise _corrupt(path, slot, offer, f"{where} cannot be read ({path / slot / name}: "
                                              f"{why(exc)})") from None
        if hashes is not None and content_hash(data) != hashes[name]:
            raise _corrupt(path, slot, offer, f"{where} is corrupt: its content does not match the "
                                              f"hash in the commit record (a chunk was changed, "
                                              f"truncated or deleted: {path / slot / name})")
        state[name] = data
    return state, info


def _corrupt(path: Path, slot: str, offer: bool, what: str) -> StoreError:
    """The error for a damaged committed checkpoint; names the other slot if it is intact."""
    msg = f"{path}: {what}; the run cannot continue from this store"
    if not offer:
        return StoreError(msg)
    other = [s for s in SLOTS if s != slot][0]
    try:
        meta = load_json(path / other / ROOT, "")
        hashes = (meta.get("attributes") or {}).get("hashes")
        if hashes:
            load_slot(path, other, hashes, offer=False)
            info = meta["attributes"]
            msg += (f". The other slot, {other} (epoch {info.get('epoch')}, step "
                    f"{info.get('step')}), is intact but older than the committed records; "
                    f"neurosim does not fall back to it by itself")
    except (StoreError, OSError, KeyError, TypeError):
        pass
    return StoreError(msg)
