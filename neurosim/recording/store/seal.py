"""Content hashes that cover every committed byte of a run store (format 3).

* The **seal** of the root metadata: BLAKE2b (128 bit) over the canonical JSON of the root
  ``zarr.json`` without the seal itself — every root attr (the protocol, the status, the
  commit record with the store's format, the loop position and every hash below) and the
  consolidated metadata (name, shape, data type, codecs and attrs of every committed array,
  the committed checkpoint slot's attrs).  Written by every root write, in the root attr
  ``neurosim_seal``.
* A **record chain** per committed root array: ``h_0 = H(dtype, row shape)``,
  ``h_k = H(h_{k-1} || bytes of row k-1)`` over the rows along the first axis (the record
  dimension: an append adds rows and never changes one), kept in the commit record as
  ``record_hashes: {name: [rows, hex]}``.  A commit hashes only the rows added since the last
  one; a swapped, changed or deleted chunk changes the chain.
* The checkpoint's arrays have their own content hashes (``hashes``, format 2).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

SEAL = "neurosim_seal"


def canonical(meta: dict) -> bytes:
    """The root metadata without its seal, as canonical JSON bytes."""
    attrs = dict(meta.get("attributes") or {})
    attrs.pop(SEAL, None)
    body = {**meta, "attributes": attrs}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def seal_of(meta: dict) -> str:
    return "blake2b-128:" + hashlib.blake2b(canonical(meta), digest_size=16).hexdigest()


def sealed(meta: dict) -> dict:
    """``meta`` with its seal (re)computed."""
    meta.setdefault("attributes", {})[SEAL] = seal_of(meta)
    return meta


def chain_start(data_type, row_shape) -> str:
    """The start of a chain: the Zarr data type (as in the array's metadata) and row shape."""
    head = json.dumps([data_type, [int(n) for n in row_shape]], sort_keys=True)
    return hashlib.blake2b(head.encode(), digest_size=16).hexdigest()


def chain_rows(h: str, block) -> str:
    """Extend the chain ``h`` by the rows of ``block`` (an array whose first axis are rows)."""
    a = np.ascontiguousarray(block)
    d = bytes.fromhex(h)
    n = a.shape[0]
    if a.dtype.kind == "O":  # variable-length strings: their text, separated
        data = ["\x00".join(map(str, r.ravel())).encode() for r in a.reshape(n, -1)]
    elif a.size:
        data = a.reshape(n, -1).view(np.uint8)
    else:
        data = [b""] * n
    for row in data:
        d = hashlib.blake2b(d + bytes(row), digest_size=16).digest()
    return d.hex()


def rows(shape) -> int:
    """Rows of an array of ``shape`` for its chain (a 0-d array is one row)."""
    return int(shape[0]) if len(shape) else 1
