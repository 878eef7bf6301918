"""Data safety: checksums on every load, corrupt or truncated files, malicious
pickles, CIFAR-10 python batches written by today's NumPy, YAML via safe_load.

Nothing is written under the shared data directory: corrupted copies live in
``tmp_path``; ``XDG_CACHE_HOME`` points there too, so a test can see nothing is cached.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.data import DataError, cifar10, load_dataset, mnist
from neurosim.data.safe_pickle import UnsafePickleError, loads

from ._reliability import PROTOCOL, write_protocol

SHARED = Path(os.environ.get("NEUROSIM_DATA_DIR") or "/nonexistent")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """A temporary user cache; no downloads are attempted."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NEUROSIM_OFFLINE", "1")


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _idx_gz(path, arr, magic):
    header = struct.pack(">II", magic, arr.shape[0])
    if arr.ndim == 3:
        header += struct.pack(">II", arr.shape[1], arr.shape[2])
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Four small, valid IDX files; the expected checksums are theirs."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte.gz": (rng.integers(0, 256, (20, 28, 28)), 0x803),
        "train-labels-idx1-ubyte.gz": (rng.integers(0, 10, 20), 0x801),
        "t10k-images-idx3-ubyte.gz": (rng.integers(0, 256, (10, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte.gz": (rng.integers(0, 10, 10), 0x801),
    }
    for name, (arr, magic) in arrays.items():
        _idx_gz(folder / name, arr, magic)
    monkeypatch.setattr(mnist, "FILES", {n: _md5(folder / n) for n in arrays})
    return folder


def test_checksum_is_verified_on_every_load(fake_mnist):
    ds = load_dataset("mnist", root=fake_mnist.parent)
    assert ds.x_train.shape == (20, 1, 28, 28)
    load_dataset("mnist", root=fake_mnist.parent)
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "neurosim").exists()  # nothing cached
    p = fake_mnist / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is corrupt or truncated"):
        load_dataset("mnist", root=fake_mnist.parent)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_corrupt_mnist_file_is_named_with_what_to_do(fake_mnist, damage):
    p = fake_mnist / "train-labels-idx1-ubyte.gz"
    raw = bytearray(p.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = b""
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root=fake_mnist.parent)
    msg = str(e.value)
    assert str(p) in msg and "corrupt or truncated" in msg and "put a fresh copy" in msg


def test_corrupt_idx_content_is_caught_even_with_a_matching_checksum(fake_mnist, monkeypatch):
    """Defence in depth: a file whose checksum is (wrongly) trusted is still parsed strictly."""
    p = fake_mnist / "t10k-images-idx3-ubyte.gz"
    with gzip.open(p, "rb") as f:
        raw = f.read()
    with gzip.open(p, "wb") as f:
        f.write(raw[:-100])
    monkeypatch.setitem(mnist.FILES, p.name, _md5(p))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: expected \d+ values"):
        load_dataset("mnist", root=fake_mnist.parent)


def test_missing_mnist_file_says_where_to_put_it(fake_mnist):
    (fake_mnist / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root=fake_mnist.parent)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte.gz not found" in msg and "NEUROSIM_DATA_DIR" in msg


@pytest.mark.skipif(not (SHARED / "mnist" / "train-labels-idx1-ubyte.gz").exists(),
                    reason="real MNIST not in $NEUROSIM_DATA_DIR")
def test_truncated_copy_of_real_mnist_is_rejected(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in mnist.FILES:
        (folder / name).symlink_to(SHARED / "mnist" / name)
    victim = folder / "train-labels-idx1-ubyte.gz"
    victim.unlink()
    victim.write_bytes((SHARED / "mnist" / victim.name).read_bytes()[:1000])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz is corrupt or truncated"):
        load_dataset("mnist", root=folder.parent)


# ---------------------------------------------------------------------------
# pickles
# ---------------------------------------------------------------------------
class _Payload:
    """Pickles to a call of ``fn(*args)``: what a malicious file would run."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker: Path):
    import builtins

    cmd = f"touch {marker}"
    return {
        "os.system": _Payload(os.system, cmd),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.eval": _Payload(builtins.eval, f"open({str(marker)!r}, 'w').close()"),
    }


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.exec", "builtins.eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path, kind):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({b"data": _payloads(marker)[kind], b"labels": [1]})
    # the payload is real: plain pickle would run it
    pickle.loads(blob)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        loads(blob)
    assert not marker.exists()


def test_malicious_cifar_batch_is_refused_by_the_loader(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(pickle.dumps(_payloads(marker)["os.system"]))
    with pytest.raises(DataError) as e:
        cifar10._read_py_batch(folder / "data_batch_1")
    assert "data_batch_1" in str(e.value) and "posix.system" in str(e.value)
    assert not marker.exists()


@pytest.fixture(scope="module")
def partial_cifar():
    path = SHARED / "cifar10" / "partial" / cifar10.PARTIAL[0]
    if not path.exists():
        pytest.skip("cifar10_partial not in $NEUROSIM_DATA_DIR")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}


def _write_py_batches(folder: Path, data: dict, protocol: int, n_per_batch=40):
    folder.mkdir(parents=True, exist_ok=True)
    x, y = data["x_train"], data["y_train"]
    parts = {f"data_batch_{i + 1}": (x[i * n_per_batch:(i + 1) * n_per_batch],
                                     y[i * n_per_batch:(i + 1) * n_per_batch]) for i in range(5)}
    parts["test_batch"] = (data["x_test"][:n_per_batch], data["y_test"][:n_per_batch])
    for name, (xb, yb) in parts.items():
        d = {b"batch_label": f"{name} (from cifar10_partial)".encode(),
             b"labels": [int(v) for v in yb] if protocol == 2 else list(np.asarray(yb)),
             b"data": np.ascontiguousarray(xb.reshape(len(xb), -1), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(xb))]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=protocol))
    return parts


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar_python_batches_from_real_images_load(tmp_path, partial_cifar, protocol):
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    parts = _write_py_batches(folder, partial_cifar, protocol)
    ds = load_dataset("cifar10", root=tmp_path / "data", check_md5=False)
    xtr = np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert ds.x_train.shape == (200, 3, 32, 32)
    np.testing.assert_array_equal(ds.x_train, ((xtr.astype(np.float32) / 255.0) - 0.5) / 0.5)
    np.testing.assert_array_equal(ds.y_test, parts["test_batch"][1])
    # the official checksums are checked by default: these files are not the official ones
    with pytest.raises(DataError, match="data_batch_1 is corrupt or truncated"):
        load_dataset("cifar10", root=tmp_path / "data")


def test_truncated_cifar_binary_batch_is_named(tmp_path, partial_cifar):
    """Ten records where 10,000 belong, or a cut record: the file and the expected size are named."""
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    x, y = partial_cifar["x_train"][:10].reshape(10, -1), partial_cifar["y_train"][:10]
    rec = np.concatenate([y[:, None].astype(np.uint8), x.astype(np.uint8)], axis=1).tobytes()
    for name in cifar10.PY_BATCHES:
        (folder / f"{name}.bin").write_bytes(rec)
    with pytest.raises(DataError, match=r"data_batch_1.bin: 30,730 bytes, expected 30,730,000 "
                                        r"\(10,000 records of 3,073 bytes\); the file is trunc"):
        load_dataset("cifar10", root=tmp_path / "data")
    (folder / "data_batch_1.bin").write_bytes(rec[:-17])
    with pytest.raises(DataError, match=r"data_batch_1.bin: 30,713 bytes, expected 30,730,000"):
        load_dataset("cifar10", root=tmp_path / "data")


def test_missing_data_gives_exit_2_and_no_store(tmp_path):
    proto = PROTOCOL.replace("dataset: synthetic", f"dataset: cifar10_partial\n  root: {tmp_path / 'empty'}")
    proto = proto.replace("  options: {n_train: 32, n_test: 16, n_classes: 4, shape: [1, 4, 4]}\n", "")
    circuit_k10 = "name: c\nvectorized: true\nlayers:\n  - {type: dense, units: 8}\n"
    path = write_protocol(tmp_path, proto, circuit_k10)
    out = tmp_path / "out.zarr"
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "cifar10_partial.npz is missing" in res.output
    assert not out.exists() and not Path(str(out) + ".lock").exists()


# ---------------------------------------------------------------------------
# YAML only through safe_load; no unrestricted unpickling anywhere
# ---------------------------------------------------------------------------
FORBIDDEN = [
    (r"\byaml\.load\(", "yaml.load"),
    (r"\byaml\.(unsafe_load|full_load|load_all)\b", "unsafe yaml loader"),
    (r"Loader\s*=\s*yaml\.(Loader|FullLoader|UnsafeLoader)", "unsafe yaml Loader"),
    (r"\bpickle\.loads?\(", "plain pickle.load"),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"\b(eval|exec)\(", "eval/exec"),
]


def test_no_unsafe_deserialisation_in_the_package():
    offenders = []
    for f in sorted((ROOT / "neurosim").rglob("*.py")):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pat, what in FORBIDDEN:
                if re.search(pat, code):
                    offenders.append(f"{f.relative_to(ROOT)}:{i}: {what}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    # protocols and circuits are read by one reader, built on yaml.SafeLoader
    yamlio = (ROOT / "neurosim" / "core" / "yamlio.py").read_text()
    assert "class _StrictLoader(yaml.SafeLoader)" in yamlio


def test_data_dir_is_never_written(tmp_path, fake_mnist):
    """Verification writes nothing, next to the data or anywhere else."""
    before = sorted(p.name for p in fake_mnist.iterdir())
    load_dataset("mnist", root=fake_mnist.parent)
    assert sorted(p.name for p in fake_mnist.iterdir()) == before
    shutil.rmtree(fake_mnist)
