"""Data loaders: IDX parsing, checksums, clear errors, CIFAR-10 python batches."""

import gzip
import pickle
import struct

import numpy as np
import pytest

from neurosim.data import DataError, cifar10, load_dataset, mnist
from neurosim.data.safe_pickle import UnsafePickleError, loads

from .conftest import mnist_dir, requires_mnist


def write_idx(path, arr):
    if arr.ndim == 1:
        head = struct.pack(">II", 0x801, arr.shape[0])
    else:
        head = struct.pack(">IIII", 0x803, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28))
    write_idx(tmp_path / "i.gz", imgs)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "i.gz"), imgs)
    labels = np.arange(7)
    write_idx(tmp_path / "l.gz", labels)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "l.gz"), labels)


def test_truncated_idx_is_reported(tmp_path):
    imgs = np.zeros((7, 28, 28))
    write_idx(tmp_path / "i.gz", imgs)
    raw = gzip.decompress((tmp_path / "i.gz").read_bytes())[:-100]
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="expected"):
        mnist.read_idx(tmp_path / "t.gz")


def test_missing_mnist_names_files_and_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "MIRRORS", [])
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", root=tmp_path)
    msg = str(exc.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "NEUROSIM_DATA_DIR" in msg


def test_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    d = tmp_path / "mnist"
    d.mkdir()
    for name in mnist.FILES:
        (d / name).write_bytes(b"not the real file")
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("mnist", root=tmp_path)


def test_cifar_python_batches_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in cifar10.PY_BATCHES:
        x = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        y = list(rng.integers(0, 10, size=4))
        (folder / name).write_bytes(pickle.dumps({b"data": x, b"labels": [int(v) for v in y]}))
    (xtr, ytr), (xte, yte) = cifar10.load(tmp_path, check_md5=False)
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32) and ytr.shape == (20,)


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    with pytest.raises(UnsafePickleError):
        loads(pickle.dumps({b"data": Evil()}))
    assert not marker.exists()


@requires_mnist
def test_real_mnist():
    ds = load_dataset("mnist", root=mnist_dir())
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.x_train.min() == -1.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                                5851, 5949]
    assert ds.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
