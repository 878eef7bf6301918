"""What a run store is made of: its names, its format number, the codecs of its arrays, the
content hash of a checkpoint array and the versions a store records."""

from __future__ import annotations

import hashlib
import platform

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

#: the root attr holding the commit record
MARKER = "neurosim_commit"
#: metadata file of every Zarr node (the store's own is the commit point)
ROOT = "zarr.json"
#: the two slots of the double-buffered checkpoint
SLOTS = ("checkpoint_a", "checkpoint_b")
#: store format written by this package: 3 = format 2 and a seal over the root metadata and a
#: hash chain over every committed record array; 2 = Zstandard checksums, every chunk written,
#: checkpoint content hashes in the commit record; 1 = none of these (still read and resumed)
FORMAT = 3
#: the consolidated metadata of a group without children
EMPTY_CONSOLIDATED = {"kind": "inline", "must_understand": False, "metadata": {}}


def versions() -> dict:
    """The versions of neurosim, Python and the libraries a store was written with."""
    from ...core.version import VERSION as __version__

    out = {"neurosim": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "xarray": xr.__version__, "zarr": zarr.__version__}
    try:
        import numba

        out["numba"] = numba.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def codecs():
    """Compression of every array: Zstandard with a checksum in every frame."""
    return (ZstdCodec(level=0, checksum=True),)


def content_hash(arr) -> str:
    """BLAKE2b (128 bit) of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(arr)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.reshape(-1).view(np.uint8).data if a.size else b"")
    return "blake2b-128:" + h.hexdigest()
