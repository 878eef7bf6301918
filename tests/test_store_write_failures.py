"""Writes that fail (disk full, file too large, read-only directory or store): one line, exit
code 2, the store keeps its last commit, and once the cause is gone the run continues to a
store bit-identical to an uninterrupted run.  Failures are injected at the N-th store write
(the hook the crash tests use to kill a run)."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.recording.store import faults

from ._reliability import PROTOCOL, assert_same_store, write_protocol

FAIL_PROTOCOL = PROTOCOL.replace("epochs: 1,", "epochs: 2,") + "recording: {weights: true}\n"


def cli(proto, out, *extra):
    return CliRunner().invoke(main, ["run", str(proto), "--out", str(out), "--quiet", *extra])


def one_line_error(res, *needles) -> str:
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert n in res.output, (n, res.output)
    return res.output


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


class Faults:
    """Replaces the store's write hook: counts writes, raises ``OSError(code)`` at write ``at``
    (once) — or at every write from ``at`` on with ``every``."""

    def __init__(self, at=None, code=errno.ENOSPC, every=False):
        self.n, self.at, self.code, self.every = 0, at, code, every

    def __call__(self, path=None):
        self.n += 1
        if self.at is not None and (self.n == self.at or (self.every and self.n >= self.at)):
            if path is not None and not self.every:  # a write that got half way
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.with_name(path.name + ".0123.partial").write_bytes(b"\0" * 5)
                except OSError:
                    pass
            raise OSError(self.code, os.strerror(self.code), str(path) if path else None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, its protocol and the number of store writes it makes."""
    folder = tmp_path_factory.mktemp("ref")
    proto = write_protocol(folder, FAIL_PROTOCOL)
    mp = pytest.MonkeyPatch()
    count = Faults()
    mp.setattr(faults, "fault_point", count)
    try:
        res = cli(proto, folder / "ref.zarr")
    finally:
        mp.undo()
    assert res.exit_code == 0, res.output
    return proto, folder / "ref.zarr", count.n


def fail_then_continue(tmp_path, monkeypatch, reference, at, code):
    proto, ref, _ = reference
    out = tmp_path / "run.zarr"
    with monkeypatch.context() as m:
        m.setattr(faults, "fault_point", Faults(at, code))
        msg = one_line_error(cli(proto, out), os.strerror(code))
    assert ("file size limit" if code == errno.EFBIG else "free some space") in msg
    if "--resume" in msg:  # as the message says
        assert (out / "zarr.json").exists()
        res = cli(proto, out, "--resume")
    else:
        assert "run again" in msg and not out.exists()
        res = cli(proto, out)
    assert res.exit_code == 0, res.output
    assert_same_store(ref, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]  # no leftovers


def test_disk_full_at_creation_and_at_the_first_records(tmp_path, monkeypatch, reference):
    for at in (1, 3):
        fail_then_continue(tmp_path / str(at), monkeypatch, reference, at, errno.ENOSPC)


def test_disk_full_or_file_too_large_anywhere_then_resume_bit_identical(tmp_path, monkeypatch,
                                                                         reference):
    n_writes = reference[2]
    rng = random.Random(7)
    points = sorted(rng.sample(range(5, n_writes), 2)) + [n_writes]  # the last: finish
    for i, at in enumerate(points):
        code = errno.EFBIG if i % 2 else errno.ENOSPC
        fail_then_continue(tmp_path / str(at), monkeypatch, reference, at, code)


@pytest.mark.slow
def test_disk_full_at_every_write(tmp_path, monkeypatch, reference):
    for at in range(1, reference[2] + 1):
        fail_then_continue(tmp_path / str(at), monkeypatch, reference, at, errno.ENOSPC)


def test_read_only_store_is_refused_and_left_alone(tmp_path, monkeypatch, reference):
    """Every write fails with EACCES (a read-only store; root ignores chmod, so injected)."""
    proto, ref, _ = reference
    out = tmp_path / "run.zarr"
    assert cli(proto, out, "--set", "training.epochs=1").exit_code == 0
    before = tree(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(faults, "fault_point", Faults(1, errno.EACCES, every=True))
        one_line_error(cli(proto, out, "--resume"), "Permission denied", "not writable")
        one_line_error(cli(proto, out, "--overwrite"), "Permission denied", "not writable")
    assert tree(tmp_path) == before
    for code in (errno.EROFS, errno.EACCES):
        with monkeypatch.context() as m:
            m.setattr(faults, "fault_point", Faults(1, code, every=True))
            one_line_error(cli(proto, tmp_path / "new.zarr"), os.strerror(code), "not writable")
        assert tree(tmp_path) == before


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
def test_read_only_output_directory_refused_at_creation(tmp_path, monkeypatch, reference, code):
    """PermissionError creating the store was a traceback (the lock is taken on the store
    directory itself, so nothing is created before the store)."""
    proto = reference[0]
    real_mkdir = os.mkdir

    def fake_mkdir(path, *a, **k):
        if str(path).endswith(".creating"):
            raise OSError(code, os.strerror(code), str(path))
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    out = tmp_path / "sub" / "run.zarr"
    one_line_error(cli(proto, out), "cannot create", os.strerror(code), "not writable")
    assert list(tmp_path.iterdir()) == []  # the folder made for it is gone again
