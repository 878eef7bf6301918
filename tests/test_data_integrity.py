"""Data files cannot corrupt a run silently.

* MNIST content is checked on every load: a same-size file with shifted
  labels and the original mtime is refused (no cached verdict vouches for it).
* CIFAR-10 binary batches: size (10,000 records of 3,073 bytes), labels 0–9,
  and the official label sequence and first records; python batches and
  ``cifar10_partial.npz``: checksums, structure and labels.
* A FIFO, a device, a directory, a broken link or an unreadable file in place
  of a data file: a clear error at once, never a hang.
* Through the CLI: exit code 2, one line on stderr, no traceback, no store.

Damaged copies live in ``tmp_path``; the shared data directory is only read.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import re
import shutil
import signal
import struct
import subprocess
import tarfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.data import DataError, cifar10, load_dataset, mnist, store

from ._reliability import PROTOCOL, env, neurosim_cmd, write_protocol

SHARED = Path(os.environ.get("NEUROSIM_DATA_DIR") or "/nonexistent")
PARTIAL_DIR = SHARED / "cifar10" / "partial"
BATCH = 10_000 * 3073


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NEUROSIM_OFFLINE", "1")


class Hung(BaseException):
    """Raised by :func:`deadline`; not an OSError, so no ``except OSError`` can hide it."""


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the suite) if the body blocks for ``seconds``."""
    def hung(*_):
        raise Hung(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def same_size_gzip(payload: bytes, size: int) -> bytes:
    """A valid gzip member holding ``payload``, padded to exactly ``size`` bytes
    with a header comment (RFC 1952 FCOMMENT)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = c.compress(payload) + c.flush()
    trailer = struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)
    pad = size - (10 + 1 + len(deflated) + len(trailer))
    assert pad >= 0
    out = b"\x1f\x8b\x08\x10\0\0\0\0\x00\x03" + b"x" * pad + b"\0" + deflated + trailer
    assert len(out) == size and gzip.decompress(out) == payload
    return out


def _idx_gz(arr, magic) -> bytes:
    header = struct.pack(">II", magic, arr.shape[0])
    if arr.ndim == 3:
        header += struct.pack(">II", arr.shape[1], arr.shape[2])
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), compresslevel=0)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Four small valid IDX files in ``tmp_path/data/mnist``; their checksums are the official ones."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte.gz": (rng.integers(0, 256, (30, 28, 28)), 0x803),
        "train-labels-idx1-ubyte.gz": (rng.integers(0, 10, 30), 0x801),
        "t10k-images-idx3-ubyte.gz": (rng.integers(0, 256, (10, 28, 28)), 0x803),
        "t10k-labels-idx1-ubyte.gz": (rng.integers(0, 10, 10), 0x801),
    }
    md5s = {}
    for name, (arr, magic) in arrays.items():
        (folder / name).write_bytes(_idx_gz(arr, magic))
        md5s[name] = store.md5(folder / name)
    monkeypatch.setattr(mnist, "FILES", md5s)
    return folder


def shift_labels_keeping_size_and_mtime(path: Path) -> None:
    """Labels + 1 (mod 10) in a valid gzip of the same size, mtime restored."""
    st = path.stat()
    raw = gzip.decompress(path.read_bytes())
    shifted = raw[:8] + bytes((b + 1) % 10 for b in raw[8:])
    path.write_bytes(same_size_gzip(shifted, st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---------------------------------------------------------------------------
# MNIST: content, not size and mtime
# ---------------------------------------------------------------------------
def test_same_size_same_mtime_tampered_labels_are_refused(fake_mnist):
    ds = load_dataset("mnist", root=fake_mnist.parent)  # a first, successful verification
    p = fake_mnist / "train-labels-idx1-ubyte.gz"
    before = p.stat()
    shift_labels_keeping_size_and_mtime(p)
    after = p.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    # a well-formed IDX file with plausible labels: only the checksum can tell
    np.testing.assert_array_equal(mnist.read_idx(p), (ds.y_train + 1) % 10)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz is corrupt or truncated "
                                        r"\(md5 [0-9a-f]{32}, expected"):
        load_dataset("mnist", root=fake_mnist.parent)


def test_idx_labels_out_of_range_are_refused(fake_mnist, monkeypatch):
    """Defence in depth, for a file whose checksum is (wrongly) trusted."""
    p = fake_mnist / "t10k-labels-idx1-ubyte.gz"
    y = np.zeros(10, dtype=np.uint8)
    y[3] = 200
    p.write_bytes(_idx_gz(y, 0x801))
    monkeypatch.setitem(mnist.FILES, p.name, store.md5(p))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: label 3 is 200, outside 0..9"):
        load_dataset("mnist", root=fake_mnist.parent)
    p.write_bytes(_idx_gz(np.zeros(9, dtype=np.uint8), 0x801))
    monkeypatch.setitem(mnist.FILES, p.name, store.md5(p))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: 9 labels, expected 10"):
        load_dataset("mnist", root=fake_mnist.parent)


# ---------------------------------------------------------------------------
# not a regular file: FIFO, device, directory, broken link, unreadable
# ---------------------------------------------------------------------------
TARGETS = {  # dataset -> (file under the data dir, load it)
    "mnist": ("mnist/train-labels-idx1-ubyte.gz", lambda root: load_dataset("mnist", root=root)),
    "cifar10_partial": ("cifar10/partial/cifar10_partial.npz",
                        lambda root: load_dataset("cifar10_partial", root=root)),
    "cifar10_bin": ("cifar10/cifar-10-batches-bin/data_batch_1.bin",
                    lambda root: cifar10.load(root)),
    "cifar10_py": ("cifar10/cifar-10-batches-py/data_batch_1", lambda root: cifar10.load(root)),
    "cifar10_tarball": ("cifar10/cifar-10-binary.tar.gz", lambda root: cifar10.load(root)),
}
KINDS = {
    "fifo": r"{path} is a FIFO \(named pipe\), not a regular file",
    "dev_zero": r"{path} \(a link to /dev/zero\) is a character device, not a regular file",
    "directory": r"{path} is a directory, not a regular file",
    "broken_link": r"{path} is a symbolic link to \S+, which does not exist",
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_non_regular_file_in_place_of_a_data_file_is_refused_at_once(
        tmp_path, fake_mnist, kind, target):
    rel, load = TARGETS[target]
    path = tmp_path / "data" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
        (path / "inside").write_bytes(b"x")
    else:
        path.symlink_to(tmp_path / "gone")
    with deadline(20), pytest.raises(DataError) as e:
        load(tmp_path / "data")
    msg = str(e.value)
    assert re.match(KINDS[kind].format(path=re.escape(str(path))), msg), msg
    assert "\n" not in msg
    if kind == "directory":
        assert (path / "inside").exists()  # nothing deleted


def test_fifo_swapped_in_after_the_check_is_refused_without_blocking(tmp_path, monkeypatch):
    """The descriptor is opened non-blocking and checked again, so a file
    replaced by a FIFO between the check and the open cannot hang the read."""
    regular = tmp_path / "regular"
    regular.write_bytes(b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(store.os, "stat", lambda p, *a, **k: real_stat(regular if Path(p) == fifo
                                                                        else p, *a, **k))
    with deadline(20), pytest.raises(DataError, match=r"fifo is a FIFO \(named pipe\)"):
        store.read_bytes(fifo)


def test_unreadable_data_file_is_named(fake_mnist, monkeypatch):
    victim = fake_mnist / "t10k-images-idx3-ubyte.gz"
    real_open = os.open

    def denied(path, *a, **k):
        if Path(path) == victim:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(store.os, "open", denied)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root=fake_mnist.parent)
    assert str(e.value) == (f"{victim} cannot be read (Permission denied); check its permissions "
                            f"or put a readable copy there")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_mode_000_data_file_is_named(fake_mnist):
    victim = fake_mnist / "t10k-images-idx3-ubyte.gz"
    victim.chmod(0)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz cannot be read \(Permission"):
        load_dataset("mnist", root=fake_mnist.parent)


def test_batches_folder_that_is_a_file_is_named(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "cifar-10-batches-bin").write_bytes(b"x")
    with pytest.raises(DataError, match=r"cifar-10-batches-bin is not a directory"):
        cifar10.load(tmp_path)


# ---------------------------------------------------------------------------
# CIFAR-10 binary batches
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def official_heads():
    """For data_batch_1 and test_batch: the official labels (10,000) and the
    first 1,000 records' pixels, from the partial set in the data directory."""
    if not (PARTIAL_DIR / "cifar10_labels_full.npz").exists():
        pytest.skip("cifar10 partial files not in $NEUROSIM_DATA_DIR")
    with np.load(PARTIAL_DIR / "cifar10_labels_full.npz") as lab, \
            np.load(PARTIAL_DIR / "cifar10_partial.npz") as part:
        assert list(part["train_index"][:1000]) == list(range(1000))
        assert list(part["test_index"][:1000]) == list(range(1000))
        return {"data_batch_1": (lab["y_train"][:10_000], part["x_train"][:1000]),
                "test_batch": (lab["y_test"], part["x_test"][:1000])}


def official_like(heads, name: str, seed=0) -> np.ndarray:
    """(10000, 3073) records: official labels, official first 1,000 images,
    random pixels after them (which the checks cannot see)."""
    y, x_head = heads[name]
    rec = np.random.default_rng(seed).integers(0, 256, (10_000, 3073), dtype=np.uint8)
    rec[:, 0] = y
    rec[:1000, 1:] = x_head
    return rec


@pytest.mark.parametrize("name", ["data_batch_1", "test_batch"])
def test_official_binary_batch_passes_and_reads_back(tmp_path, official_heads, name):
    rec = official_like(official_heads, name)
    path = tmp_path / f"{name}.bin"
    rec.tofile(path)
    x, y = cifar10._read_bin_batch(path)
    np.testing.assert_array_equal(y, rec[:, 0])
    np.testing.assert_array_equal(x, rec[:, 1:])


DAMAGE = {
    "random bytes": (lambda rec, rng: rng.integers(0, 256, rec.shape, dtype=np.uint8),
                     r"label of record \d+ is \d+, outside 0..9 \([\d,]+ of 10,000 out of range\)"),
    "label 200": (lambda rec, rng: _set(rec, (5, 0), 200),
                  r"label of record 5 is 200, outside 0..9 \(1 of 10,000 out of range\)"),
    "random pixels, valid labels": (
        lambda rec, rng: np.concatenate([rng.integers(0, 10, (10_000, 1), dtype=np.uint8),
                                         rng.integers(0, 256, (10_000, 3072), dtype=np.uint8)], 1),
        r"its labels differ from the official data_batch_1.bin"),
    "shifted labels": (lambda rec, rng: _set(rec, (slice(None), 0), (rec[:, 0] + 1) % 10),
                       r"its labels differ from the official data_batch_1.bin"),
    "official labels, random pixels": (
        lambda rec, rng: _set(rec, (slice(None), slice(1, None)),
                              rng.integers(0, 256, (10_000, 3072), dtype=np.uint8)),
        r"its first 1,000 records differ from the official data_batch_1.bin"),
    "one pixel of record 999": (lambda rec, rng: _set(rec, (999, 77), rec[999, 77] ^ 1),
                                r"its first 1,000 records differ"),
}


def _set(rec, idx, value):
    rec = rec.copy()
    rec[idx] = value
    return rec


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_binary_batch_is_refused(tmp_path, official_heads, damage):
    make, pattern = DAMAGE[damage]
    path = tmp_path / "data_batch_1.bin"
    make(official_like(official_heads, "data_batch_1"), np.random.default_rng(7)).tofile(path)
    assert path.stat().st_size == BATCH
    with pytest.raises(DataError, match=f"^{path}: {pattern}"):
        cifar10._read_bin_batch(path)


def test_hand_made_binary_batches_need_check_md5_false_but_keep_structure_checks(tmp_path):
    rng = np.random.default_rng(3)
    rec = rng.integers(0, 256, (10_000, 3073), dtype=np.uint8)
    rec[:, 0] %= 10
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rec.tofile(folder / "data_batch_1.bin")
    for name in list(cifar10.PY_BATCHES)[1:]:
        os.link(folder / "data_batch_1.bin", folder / f"{name}.bin")  # one copy on disk
    with pytest.raises(DataError, match="its labels differ from the official data_batch_1.bin"):
        cifar10.load(tmp_path)
    (xtr, ytr), (xte, yte) = cifar10.load(tmp_path, check_md5=False)
    assert xtr.shape == (50_000, 3, 32, 32) and xte.shape == (10_000, 3, 32, 32)
    np.testing.assert_array_equal(yte, rec[:, 0])
    np.testing.assert_array_equal(xte.reshape(10_000, -1), rec[:, 1:])
    del xtr, ytr, xte
    bad = folder / "test_batch.bin"
    bad.unlink()
    _set(rec, (9_999, 0), 10).tofile(bad)
    with pytest.raises(DataError, match=r"test_batch.bin: label of record 9999 is 10"):
        cifar10.load(tmp_path, check_md5=False)


# ---------------------------------------------------------------------------
# CIFAR-10 python batches, archives, cifar10_partial
# ---------------------------------------------------------------------------
def _py_batch(y, n=4):
    import pickle

    x = np.zeros((n, 3072), dtype=np.uint8)
    return pickle.dumps({b"data": x, b"labels": list(y)})


def test_python_batch_labels_are_checked_without_md5(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in cifar10.PY_BATCHES:
        (folder / name).write_bytes(_py_batch([1, 2, 3, 4]))
    (folder / "data_batch_2").write_bytes(_py_batch([1, 2, 200, 4]))
    with pytest.raises(DataError, match=r"data_batch_2: label 2 is 200, outside 0..9"):
        cifar10.load(tmp_path, check_md5=False)
    (folder / "data_batch_2").write_bytes(_py_batch([1, 2, 3]))
    with pytest.raises(DataError, match=r"data_batch_2: 3 labels, expected 4"):
        cifar10.load(tmp_path, check_md5=False)


def _tar_gz(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_is_checked_then_extracted_whole_or_not_at_all(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    tar = folder / cifar10.BIN_TARBALL[0]
    tar.write_bytes(_tar_gz({"cifar-10-batches-bin/readme.html": b"hi"}))
    with pytest.raises(DataError, match=r"cifar-10-binary.tar.gz is corrupt or truncated"):
        cifar10.load(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [tar.name]
    name, _, member = cifar10.BIN_TARBALL
    monkeypatch.setattr(cifar10, "BIN_TARBALL", (name, store.md5(tar), member))
    with pytest.raises(DataError, match=r"data_batch_1.bin is missing"):
        cifar10.load(tmp_path)  # extracted (not the batches the archive should hold)
    assert sorted(p.name for p in folder.iterdir()) == [member, tar.name]
    assert (folder / member / "readme.html").read_bytes() == b"hi"
    # a member escaping the folder is refused by the extraction filter; nothing is left
    shutil.rmtree(folder / member)
    tar.write_bytes(_tar_gz({"cifar-10-batches-bin/a": b"a", "../escaped": b"x"}))
    monkeypatch.setattr(cifar10, "BIN_TARBALL", (name, store.md5(tar), member))
    with pytest.raises(DataError, match=r"cannot extract .*cifar-10-binary.tar.gz into"):
        cifar10.load(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == [tar.name]
    assert not (tmp_path / "escaped").exists()


@pytest.fixture
def partial_copy(tmp_path):
    src = PARTIAL_DIR / cifar10.PARTIAL[0]
    if not src.exists():
        pytest.skip("cifar10_partial not in $NEUROSIM_DATA_DIR")
    dst = tmp_path / "data" / "cifar10" / "partial" / src.name
    dst.parent.mkdir(parents=True)
    shutil.copy2(src, dst)
    return dst


def test_damaged_partial_with_same_size_and_mtime_is_refused(partial_copy):
    load_dataset("cifar10_partial", root=partial_copy.parents[2])
    st = partial_copy.stat()
    raw = bytearray(partial_copy.read_bytes())
    raw[: 4] = b"XXXX"
    raw[len(raw) // 2] ^= 0xFF
    partial_copy.write_bytes(bytes(raw))
    os.utime(partial_copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DataError, match=r"cifar10_partial.npz is corrupt or truncated"):
        load_dataset("cifar10_partial", root=partial_copy.parents[2])


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD = dict(x_train=np.zeros((3, 3072), np.uint8), y_train=np.array([0, 1, 9], np.uint8),
            x_test=np.zeros((2, 3072), np.uint8), y_test=np.array([3, 8], np.uint8))
BAD_PARTIAL = {
    "label 200": (_npz(**{**GOOD, "y_test": np.array([3, 200], np.uint8)}),
                  r"cifar10_partial.npz: label 1 is 200, outside 0..9"),
    "missing array": (_npz(**{k: v for k, v in GOOD.items() if k != "y_test"}),
                      r"cifar10_partial.npz: not a readable cifar10_partial file \("),
    "not a zip": (b"garbage" * 100, r"cifar10_partial.npz: not a readable cifar10_partial file"),
    "pickled objects": (_npz(**{**GOOD, "x_train": np.array([object()] * 3)}),
                        r"cifar10_partial.npz: not a readable cifar10_partial file"),
    "wrong shape": (_npz(**{**GOOD, "x_train": np.zeros((3, 3071), np.uint8)}),
                    r"cifar10_partial.npz: x_train has shape \(3, 3071\)"),
}


@pytest.mark.parametrize("case", list(BAD_PARTIAL))
def test_malformed_partial_is_one_clear_error_even_with_a_trusted_checksum(
        tmp_path, monkeypatch, case):
    blob, pattern = BAD_PARTIAL[case]
    path = tmp_path / "cifar10" / "partial" / cifar10.PARTIAL[0]
    path.parent.mkdir(parents=True)
    path.write_bytes(_npz(**GOOD))
    monkeypatch.setattr(cifar10, "PARTIAL", (path.name, store.md5(path)))
    assert load_dataset("cifar10_partial", root=tmp_path).y_test.tolist() == [3, 8]
    path.write_bytes(blob)
    monkeypatch.setattr(cifar10, "PARTIAL", (path.name, store.md5(path)))
    with pytest.raises(DataError, match=pattern):
        load_dataset("cifar10_partial", root=tmp_path)


# ---------------------------------------------------------------------------
# end to end: neurosim run -> exit 2, one line, no traceback, no store
# ---------------------------------------------------------------------------
CIRCUIT_K10 = "name: c\nvectorized: true\nlayers:\n  - {type: dense, units: 8}\n"


def _protocol(tmp_path, dataset: str, root: Path) -> Path:
    proto = PROTOCOL.replace(
        "dataset: synthetic",
        f"dataset: {dataset}\n  root: {root}\n  train_subset: 32\n  test_subset: 16")
    proto = proto.replace("  options: {n_train: 32, n_test: 16, n_classes: 4, shape: [1, 4, 4]}\n",
                          "")
    return write_protocol(tmp_path / "proto", proto, CIRCUIT_K10)


def _assert_refused(rc: int, stderr: str, out: Path, *needles: str):
    lines = stderr.strip().splitlines()
    assert rc == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() and not Path(f"{out}.lock").exists()


def _cli(tmp_path, dataset: str, root: Path, timeout=120):
    out = tmp_path / "out.zarr"
    res = subprocess.run(neurosim_cmd("run", _protocol(tmp_path, dataset, root), "--out", out,
                                      "--quiet"),
                         env=env(NEUROSIM_OFFLINE=1, XDG_CACHE_HOME=tmp_path / "cache"),
                         capture_output=True, text=True, timeout=timeout)
    return res.returncode, res.stderr, out


@pytest.mark.skipif(not (SHARED / "mnist" / "train-labels-idx1-ubyte.gz").exists(),
                    reason="real MNIST not in $NEUROSIM_DATA_DIR")
def test_cli_tampered_real_mnist_exit_2_no_store(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in mnist.FILES:
        (folder / name).symlink_to(SHARED / "mnist" / name)
    victim = folder / "train-labels-idx1-ubyte.gz"
    victim.unlink()
    shutil.copy2(SHARED / "mnist" / victim.name, victim)
    load_dataset("mnist", root=folder.parent)  # verified once (same user cache as the CLI's)
    shift_labels_keeping_size_and_mtime(victim)
    rc, err, out = _cli(tmp_path, "mnist", folder.parent)
    _assert_refused(rc, err, out, str(victim), "is corrupt or truncated")


def test_cli_fifo_in_place_of_mnist_exit_2_no_hang(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in mnist.FILES:
        (folder / name).write_bytes(b"")
    fifo = folder / "train-images-idx3-ubyte.gz"
    fifo.unlink()
    os.mkfifo(fifo)
    rc, err, out = _cli(tmp_path, "mnist", folder.parent, timeout=60)
    _assert_refused(rc, err, out, str(fifo), "is a FIFO (named pipe), not a regular file")


def _cli_in_process(tmp_path, dataset: str, root: Path):
    out = tmp_path / "out.zarr"
    with deadline(60):
        res = CliRunner().invoke(main, ["run", str(_protocol(tmp_path, dataset, root)), "--out",
                                        str(out), "--quiet"])
    return res.exit_code, res.stderr, out


def test_cli_cifar_label_200_exit_2_no_store(tmp_path):
    rec = np.random.default_rng(0).integers(0, 256, (10_000, 3073), dtype=np.uint8)
    rec[:, 0] %= 10
    rec[5, 0] = 200
    folder = tmp_path / "data" / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rec.tofile(folder / "data_batch_1.bin")
    rc, err, out = _cli_in_process(tmp_path, "cifar10", folder.parents[1])
    _assert_refused(rc, err, out, str(folder / "data_batch_1.bin"), "label of record 5 is 200")


def test_cli_damaged_partial_exit_2_no_store(tmp_path):
    path = tmp_path / "data" / "cifar10" / "partial" / cifar10.PARTIAL[0]
    path.parent.mkdir(parents=True)
    path.write_bytes(_npz(**GOOD))
    rc, err, out = _cli_in_process(tmp_path, "cifar10_partial", tmp_path / "data")
    _assert_refused(rc, err, out, str(path), "is corrupt or truncated")


def test_cli_directory_in_place_of_a_data_file_exit_2_no_store(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in mnist.FILES:
        (folder / name).mkdir()
    rc, err, out = _cli_in_process(tmp_path, "mnist", folder.parent)
    _assert_refused(rc, err, out, f"{folder / 'train-images-idx3-ubyte.gz'} is a directory")
    assert all((folder / name).is_dir() for name in mnist.FILES)
