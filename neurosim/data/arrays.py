"""A researcher's own data: a :class:`~neurosim.data.Dataset` from arrays or an ``.npz`` file.

Two ways in, one set of checks (those the built-in datasets get):

* ``data: {dataset: npz, path: my_data.npz}`` in a protocol: a NumPy ``.npz`` file holding
  ``x_train``, ``y_train``, ``x_test``, ``y_test`` (and optionally ``n_classes``), read with
  ``allow_pickle=False``;
* ``neurosim.run(protocol, data=...)`` in Python: a mapping (or an :class:`xarray.Dataset`)
  with those four names, a pair ``((x_train, y_train), (x_test, y_test))``, or the path of an
  ``.npz`` file.

Inputs are used as given (no rescaling), as float32 arrays of shape ``(N, C, H, W)``; a
``(N, D)`` array is one row of D pixels, ``(1, 1, D)``, and ``(N, H, W)`` one channel.  Labels
are integers ``0 .. n_classes-1`` (``n_classes`` defaults to the largest label + 1).  Every
failure is one :class:`~neurosim.data.store.DataError` line naming the array and what is wrong.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .store import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _inputs(where: str, name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise DataError(f"{where}: {name} must hold numbers, found dtype {x.dtype}")
    if x.ndim not in (2, 3, 4):
        raise DataError(f"{where}: {name} must have shape (N, D), (N, H, W) or (N, C, H, W), "
                        f"found shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{where}: {name} is empty (shape {x.shape})")
    if 0 in x.shape[1:]:
        raise DataError(f"{where}: {name} has an empty example shape {x.shape[1:]}")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(x.shape[0], -1).any(axis=1))[0])
        raise DataError(f"{where}: {name} has non-finite values (NaN or Inf), the first in "
                        f"example {i}; the network needs finite inputs")
    if x.ndim == 2:
        x = x[:, None, None, :]
    elif x.ndim == 3:
        x = x[:, None]
    return np.ascontiguousarray(x)


def _labels(where: str, name: str, y, n: int, xname: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{where}: {name} must be one-dimensional (one label per example), "
                        f"found shape {y.shape}")
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)  # whole numbers stored as floats
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: {name} must be integer class labels, found dtype {y.dtype}")
    if y.shape[0] != n:
        raise DataError(f"{where}: {name} has {y.shape[0]} labels for {n} examples in {xname}")
    return y.astype(np.int64)


def from_arrays(x_train, y_train, x_test, y_test, n_classes=None, where: str = "data",
                name: str = "arrays"):
    """Checked :class:`~neurosim.data.Dataset` from four arrays (see the module docstring)."""
    from . import Dataset
    from .checks import check_labels

    xtr = _inputs(where, "x_train", x_train)
    xte = _inputs(where, "x_test", x_test)
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{where}: x_train examples have shape {xtr.shape[1:]} but x_test examples "
                        f"{xte.shape[1:]}; both splits need the same example shape")
    ytr = _labels(where, "y_train", y_train, xtr.shape[0], "x_train")
    yte = _labels(where, "y_test", y_test, xte.shape[0], "x_test")
    top = int(max(ytr.max(), yte.max()))
    if n_classes is None:
        n_classes = top + 1
    else:
        n_classes = int(np.asarray(n_classes))
    if n_classes < 2:
        raise DataError(f"{where}: a classification data set needs at least 2 classes; the labels "
                        f"give {n_classes}")
    check_labels(f"{where}: y_train", ytr, n_classes)
    check_labels(f"{where}: y_test", yte, n_classes)
    return Dataset(name, xtr, ytr, xte, yte, n_classes)


def coerce(data, where: str = "data"):
    """What ``neurosim.run(..., data=...)`` accepts -> a checked Dataset."""
    from . import Dataset

    if isinstance(data, Dataset):
        return from_arrays(data.x_train, data.y_train, data.x_test, data.y_test, data.n_classes,
                           where, data.name)
    if isinstance(data, (str, Path)):
        return load_npz(data)
    if isinstance(data, (tuple, list)):
        try:
            (xtr, ytr), (xte, yte) = data
        except (TypeError, ValueError):
            raise DataError(f"{where}: a pair ((x_train, y_train), (x_test, y_test)) expected") from None
        return from_arrays(xtr, ytr, xte, yte, where=where)
    if hasattr(data, "keys") and hasattr(data, "__getitem__"):  # a mapping or an xarray.Dataset
        missing = [k for k in KEYS if k not in data.keys()]
        if missing:
            raise DataError(f"{where}: needs {', '.join(KEYS)}; missing {', '.join(missing)}")
        values = {k: getattr(data[k], "values", data[k]) for k in KEYS}
        n = data["n_classes"] if "n_classes" in data.keys() else None
        n = getattr(n, "values", n)
        return from_arrays(**values, n_classes=n, where=where)
    raise DataError(f"{where}: expected a mapping of {', '.join(KEYS)}, a pair ((x_train, y_train), "
                    f"(x_test, y_test)), an xarray.Dataset or an .npz path; got {type(data).__name__}")


def _npz_file(path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file (data.path of dataset npz)" if not p.exists() else
                        f"{p} is not a regular file")
    return p


def load_npz(path, n_classes=None):
    """A checked Dataset from an ``.npz`` file (no pickles: object arrays are refused)."""
    p = _npz_file(path)
    if not zipfile.is_zipfile(p):
        raise DataError(f"{p}: not a readable .npz file (a zip of .npy arrays, as numpy.savez "
                        f"writes)")
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(f"{p}: needs arrays {', '.join(KEYS)}; missing "
                                f"{', '.join(missing)} (has {', '.join(z.files) or 'none'})")
            arrays = {k: z[k] for k in KEYS}
            if n_classes is None and "n_classes" in z.files:
                n_classes = z["n_classes"]
    except DataError:
        raise
    except ValueError:  # object arrays need pickles
        raise DataError(f"{p}: cannot be read without pickles (an array of Python objects); "
                        f"store plain numeric arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{p}: not a readable .npz file ({exc})") from None
    return from_arrays(**arrays, n_classes=n_classes, where=str(p), name="npz")


def fingerprint(ds) -> str:
    """A short content hash of a Dataset's four arrays (recorded with a run of in-memory data,
    so a resume with different arrays is refused)."""
    h = hashlib.blake2b(digest_size=8)
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
