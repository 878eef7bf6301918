"""CIFAR-10 from the standard files in ``<data dir>/cifar10/``.

Accepted layouts (first found wins):

* ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` — the python
  batches, read with a restricted unpickler (:mod:`.safe_pickle`) and
  checked against the official MD5s;
* ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` — the binary
  version (each record: 1 label byte + 3072 pixel bytes), size-checked;
* ``cifar-10-python.tar.gz`` — extracted on first use (downloaded if a
  network is reachable).

``cifar10_partial`` loads the partial real subset
``partial/cifar10_partial.npz`` (≈9,000 images, see the data README) for
smoke runs where the full set is unavailable.
"""

from __future__ import annotations

import tarfile

import numpy as np

from .safe_pickle import loads
from .store import DataError, data_dir, fetch, verify

PY_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TARBALL = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
PARTIAL = ("cifar10_partial.npz", "d1773a24f4b9732821d338390d6c1b01")
RECORD = 1 + 3072
HOW_TO = (
    "CIFAR-10 needs cifar-10-batches-py/ (data_batch_1..5, test_batch) or "
    "cifar-10-batches-bin/ (*.bin) or cifar-10-python.tar.gz in <data dir>/cifar10/."
)


def _read_py_batch(path, expected_md5=None):
    if expected_md5:
        verify(path, expected_md5)
    try:
        d = loads(path.read_bytes(), encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8)
        y = np.asarray(d[b"labels"], dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if x.ndim != 2 or x.shape[1] != 3072 or x.shape[0] != y.shape[0]:
        raise DataError(f"{path}: unexpected batch shape {x.shape}")
    return x, y


def _read_bin_batch(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataError(f"{path}: size {raw.size} is not a multiple of {RECORD}; file truncated")
    rec = raw.reshape(-1, RECORD)
    return rec[:, 1:], rec[:, 0].copy()


def _as_images(x):
    return x.reshape(-1, 3, 32, 32)


def load(root=None, check_md5: bool = True):
    """Return ((x_train, y_train), (x_test, y_test)) uint8, images (N, 3, 32, 32)."""
    folder = data_dir(root) / "cifar10"
    py = folder / "cifar-10-batches-py"
    binf = folder / "cifar-10-batches-bin"
    if not py.is_dir() and not binf.is_dir():
        tar = fetch(folder, TARBALL[0], TARBALL[1], URLS, HOW_TO)
        with tarfile.open(tar) as tf:
            tf.extractall(folder, filter="data")
    if py.is_dir():
        parts = {}
        for name, m in PY_BATCHES.items():
            p = py / name
            if not p.exists():
                raise DataError(f"{p} is missing. {HOW_TO}")
            parts[name] = _read_py_batch(p, m if check_md5 else None)
    else:
        parts = {}
        for name in PY_BATCHES:
            p = binf / f"{name}.bin"
            if not p.exists():
                raise DataError(f"{p} is missing. {HOW_TO}")
            parts[name] = _read_bin_batch(p)
    xtr = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    ytr = np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)])
    xte, yte = parts["test_batch"]
    return (_as_images(xtr), ytr), (_as_images(xte), yte)


def load_partial(root=None):
    """The partial real CIFAR-10 subset (smoke tests only)."""
    folder = data_dir(root) / "cifar10" / "partial"
    path = folder / PARTIAL[0]
    if not path.exists():
        raise DataError(f"{path} is missing; cifar10_partial needs the partial subset file there.")
    verify(path, PARTIAL[1])
    with np.load(path, allow_pickle=False) as z:
        return (_as_images(z["x_train"]), z["y_train"]), (_as_images(z["x_test"]), z["y_test"])
