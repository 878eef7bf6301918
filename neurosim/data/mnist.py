"""MNIST from the four official IDX ``.gz`` files in ``<data dir>/mnist/``.

Each file is checked against its official MD5 on every load (on the bytes
that are then decompressed), then parsed strictly: IDX magic, shape, 28×28
images, as many labels as images, labels 0–9.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from .checks import check_count, check_labels
from .store import DataError, data_dir, fetch, read_bytes, read_verified

FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
HOW_TO = "MNIST needs the four official files " + ", ".join(FILES) + " in <data dir>/mnist/."


def parse_idx(gz: bytes, path) -> np.ndarray:
    """Decode gzip-compressed IDX bytes (magic 0x801 labels / 0x803 images);
    ``path`` names the file in errors."""
    try:
        raw = gzip.decompress(gz)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot decompress ({exc}); the file is corrupt") from None
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header")
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x801:
        shape, off = (n,), 8
    elif magic == 0x803 and len(raw) >= 16:
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, off = (n, rows, cols), 16
    else:
        raise DataError(f"{path}: bad IDX magic number {magic:#x}")
    data = np.frombuffer(raw, dtype=np.uint8, offset=off)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def read_idx(path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (no checksum: :func:`load` adds it)."""
    return parse_idx(read_bytes(path), path)


def _pair(paths, images: str, labels: str):
    x = parse_idx(read_verified(paths[images], FILES[images]), paths[images])
    y = parse_idx(read_verified(paths[labels], FILES[labels]), paths[labels])
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{paths[images]}: images of shape {x.shape[1:]}, expected (28, 28)")
    if y.ndim != 1:
        raise DataError(f"{paths[labels]}: not an IDX label file (shape {y.shape})")
    check_count(paths[labels], "labels", y.shape[0], x.shape[0])
    check_labels(paths[labels], y)
    return x[:, None], y


def load(root=None):
    """Return ((x_train, y_train), (x_test, y_test)) as uint8 arrays,
    images shaped (N, 1, 28, 28)."""
    folder = data_dir(root) / "mnist"
    paths = {f: fetch(folder, f, m, [u + f for u in MIRRORS], HOW_TO) for f, m in FILES.items()}
    train = _pair(paths, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test = _pair(paths, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return train, test
