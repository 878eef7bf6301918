"""CIFAR-10 from the standard files in ``<data dir>/cifar10/``.

Accepted layouts (first found wins):

* ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` — the python
  batches, checked against their official MD5s and read with a restricted
  unpickler (:mod:`.safe_pickle`);
* ``cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`` — the binary
  version: each file exactly 10,000 records of 1 label byte (0–9) + 3,072
  pixel bytes.  No official per-file checksums exist for these files; the
  label sequence of every file and its first 1,000 records (labels and
  pixels) are checked against checksums computed from the official python
  batches (the binary files hold the same images in the same order);
* ``cifar-10-binary.tar.gz`` or ``cifar-10-python.tar.gz`` — checked against
  the official MD5 and extracted on first use (the python one is downloaded
  if a network is reachable).

``check_md5: false`` (a data option, for batches made by hand) skips the
checksums; the structure and the labels are still checked.

``cifar10_partial`` loads the partial real subset
``partial/cifar10_partial.npz`` (8,068 train and 1,017 test images, see the
data README), checked against its MD5, for smoke runs where the full set is
unavailable.

Every problem is a one-line :class:`DataError` naming the file, raised while
the data loads, before a run creates its store.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .checks import check_count, check_labels
from .safe_pickle import loads
from .store import DataError, data_dir, fetch, read_bytes, read_verified, verify

PY_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
#: official archives: file name, MD5, the folder it holds
TARBALL = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py")
BIN_TARBALL = ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
               "cifar-10-batches-bin")
URLS = ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
PARTIAL = ("cifar10_partial.npz", "d1773a24f4b9732821d338390d6c1b01")
PIXELS = 3 * 32 * 32
RECORD = 1 + PIXELS
RECORDS = 10_000
#: binary batches: MD5 of the 10,000 label bytes, and of the first KNOWN_RECORDS
#: records (label + pixels), both computed from the official python batches
KNOWN_RECORDS = 1000
BIN_KNOWN = {
    "data_batch_1": ("30f55b79f7954f592721267e37ffcbcf", "6672568c6f9da0ae2d58cd800deb0f83"),
    "data_batch_2": ("bdca50851f742064551c3fa947e975d6", "729f8b191e2ef03c65ccd3e59891ad36"),
    "data_batch_3": ("23228d18cd9f4c032bb8cfa72996e3ef", "7864ab41a6b80278eb57fef703be0a02"),
    "data_batch_4": ("61be7314d261d42101f429408af67a28", "09eee2b63b453d75e138bd548370c7cb"),
    "data_batch_5": ("8ca6bc10f4bd0e81fba552f724423842", "2954249bd8c8fee39cb7085e04e1d98d"),
    "test_batch": ("251f18ce75337ae9ca5d0dbd7ea62cf4", "371f65da31ad652f5e24b3699a3e6515"),
}
HOW_TO = (
    "CIFAR-10 needs cifar-10-batches-py/ (data_batch_1..5, test_batch) or "
    "cifar-10-batches-bin/ (*.bin) or cifar-10-python.tar.gz or cifar-10-binary.tar.gz in "
    "<data dir>/cifar10/."
)


def _read_py_batch(path, expected_md5=None):
    raw = read_verified(path, expected_md5) if expected_md5 else read_bytes(path)
    try:
        d = loads(raw, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8)
        y = np.asarray(d[b"labels"])
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if x.ndim != 2 or x.shape[1] != PIXELS or y.ndim != 1:
        raise DataError(f"{path}: unexpected batch shape {x.shape}")
    check_count(path, "labels", y.shape[0], x.shape[0])
    check_labels(path, y)
    return x, y.astype(np.uint8)


def _read_bin_batch(path, check: bool = True):
    """(pixels (10000, 3072), labels (10000,)) of a binary batch ``<name>.bin``.

    ``check``: compare the labels and the first records with :data:`BIN_KNOWN`.
    """
    raw = read_bytes(path)
    if len(raw) != RECORDS * RECORD:
        raise DataError(f"{path}: {len(raw):,} bytes, expected {RECORDS * RECORD:,} "
                        f"({RECORDS:,} records of {RECORD:,} bytes); the file is truncated or not a "
                        f"CIFAR-10 binary batch")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(RECORDS, RECORD)
    y = rec[:, 0].copy()
    check_labels(path, y, what="label of record")
    name = os.path.basename(path).removesuffix(".bin")
    if check and name in BIN_KNOWN:
        labels_md5, head_md5 = BIN_KNOWN[name]
        if hashlib.md5(y.tobytes()).hexdigest() != labels_md5:
            what = "labels"
        elif hashlib.md5(rec[:KNOWN_RECORDS].tobytes()).hexdigest() != head_md5:
            what = f"first {KNOWN_RECORDS:,} records"
        else:
            what = None
        if what:
            raise DataError(f"{path}: its {what} differ from the official {name}.bin; the file is "
                            f"corrupt or not CIFAR-10. Delete it and put a fresh copy there "
                            f"(data option check_md5: false accepts batches made by hand).")
    return rec[:, 1:], y


def _as_images(x):
    return x.reshape(-1, 3, 32, 32)


def _folder(path) -> bool:
    """True if ``path`` is a directory, False if absent; anything else is an error."""
    if path.is_dir():
        return True
    if path.exists() or path.is_symlink():
        raise DataError(f"{path} is not a directory. {HOW_TO}")
    return False


def _extract(tar_path, expected_md5: str, folder, member: str) -> None:
    """Check an official archive and move its ``member`` folder into ``folder``
    (extracted beside it first, so an interrupted extraction leaves no half folder)."""
    verify(tar_path, expected_md5)
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{member}.extracting-", dir=folder))
        with tarfile.open(tar_path) as tf:
            tf.extractall(tmp, filter="data")
        if not (tmp / member).is_dir():
            raise DataError(f"{tar_path}: holds no {member}/ folder")
        os.replace(tmp / member, folder / member)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"cannot extract {tar_path} into {folder}: {exc}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def load(root=None, check_md5: bool = True):
    """Return ((x_train, y_train), (x_test, y_test)) uint8, images (N, 3, 32, 32)."""
    folder = data_dir(root) / "cifar10"
    py = folder / "cifar-10-batches-py"
    binf = folder / "cifar-10-batches-bin"
    has_py, has_bin = _folder(py), _folder(binf)
    if not has_py and not has_bin:
        if (folder / BIN_TARBALL[0]).exists() or (folder / BIN_TARBALL[0]).is_symlink():
            _extract(folder / BIN_TARBALL[0], BIN_TARBALL[1], folder, BIN_TARBALL[2])
            has_bin = True
        else:
            tar = fetch(folder, TARBALL[0], TARBALL[1], URLS, HOW_TO)
            _extract(tar, TARBALL[1], folder, TARBALL[2])
            has_py = True
    parts = {}
    for name, m in PY_BATCHES.items():
        p = py / name if has_py else binf / f"{name}.bin"
        if not p.exists() and not p.is_symlink():
            raise DataError(f"{p} is missing. {HOW_TO}")
        if has_py:
            parts[name] = _read_py_batch(p, m if check_md5 else None)
        else:
            parts[name] = _read_bin_batch(p, check=check_md5)
    xtr = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)])
    ytr = np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)])
    xte, yte = parts["test_batch"]
    return (_as_images(xtr), ytr), (_as_images(xte), yte)


def load_partial(root=None):
    """The partial real CIFAR-10 subset (smoke tests only)."""
    folder = data_dir(root) / "cifar10" / "partial"
    path = folder / PARTIAL[0]
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{path} is missing; cifar10_partial needs the partial subset file there.")
    raw = read_verified(path, PARTIAL[1])
    out = []
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            for split in ("train", "test"):
                x, y = z[f"x_{split}"], z[f"y_{split}"]
                if x.ndim != 2 or x.shape[1] != PIXELS or x.dtype != np.uint8:
                    raise DataError(f"{path}: x_{split} has shape {x.shape} and dtype {x.dtype}, "
                                    f"expected (N, {PIXELS}) uint8")
                check_count(path, f"y_{split} labels", y.shape[0], x.shape[0])
                check_labels(path, y)
                out.append((_as_images(x), y))
    except DataError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable cifar10_partial file ({exc})") from None
    return tuple(out)
