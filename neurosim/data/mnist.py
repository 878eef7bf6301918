"""MNIST from the four official IDX ``.gz`` files in ``<data dir>/mnist/``."""

from __future__ import annotations

import gzip
import struct

import numpy as np

from .store import DataError, data_dir, fetch

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


def read_idx(path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (magic 0x801 labels / 0x803 images)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot decompress ({exc}); the file is corrupt") from exc
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX header")
    magic, n = struct.unpack(">II", raw[:8])
    if magic == 0x801:
        shape, off = (n,), 8
    elif magic == 0x803:
        rows, cols = struct.unpack(">II", raw[8:16])
        shape, off = (n, rows, cols), 16
    else:
        raise DataError(f"{path}: bad IDX magic number {magic:#x}")
    data = np.frombuffer(raw, dtype=np.uint8, offset=off)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: expected {int(np.prod(shape))} values, found {data.size}")
    return data.reshape(shape)


def load(root=None):
    """Return ((x_train, y_train), (x_test, y_test)) as uint8 arrays,
    images shaped (N, 1, 28, 28)."""
    folder = data_dir(root) / "mnist"
    paths = {f: fetch(folder, f, m, [u + f for u in MIRRORS], HOW_TO) for f, m in FILES.items()}
    xtr = read_idx(paths["train-images-idx3-ubyte.gz"])[:, None]
    ytr = read_idx(paths["train-labels-idx1-ubyte.gz"])
    xte = read_idx(paths["t10k-images-idx3-ubyte.gz"])[:, None]
    yte = read_idx(paths["t10k-labels-idx1-ubyte.gz"])
    return (xtr, ytr), (xte, yte)
