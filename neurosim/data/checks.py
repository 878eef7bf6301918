"""Structural checks of decoded dataset arrays, each failure a one-line
:class:`~neurosim.data.store.DataError` naming the file.

They hold for every official file, so they never refuse good data; they catch
what a checksum cannot (files read without one) and name the first bad value.
"""

from __future__ import annotations

import numpy as np

from .store import DataError


def check_labels(path, y: np.ndarray, n_classes: int = 10, what: str = "label") -> None:
    """Every label is an integer in ``0 .. n_classes-1``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{path}: labels must be one-dimensional, found shape {y.shape}")
    if y.size and y.dtype.kind not in "iu":
        raise DataError(f"{path}: labels must be integers, found dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{path}: {what} {i} is {int(y[i])}, outside 0..{n_classes - 1} "
                        f"({bad.size:,} of {y.size:,} out of range); the file is corrupt or not "
                        f"this dataset")


def check_count(path, what: str, found: int, expected: int) -> None:
    if found != expected:
        raise DataError(f"{path}: {found} {what}, expected {expected}; the file is truncated or "
                        f"not this dataset")
