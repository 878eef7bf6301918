"""Where a run writes: one lock per real store, --overwrite deletes only neurosim stores, the
--resume / --overwrite flags, output paths that cannot hold a store, run names that would
escape the output directory.  Every refusal is one line, exit code 2, nothing written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zarr
from click.testing import CliRunner

from neurosim import recording
from neurosim.cli import main
from neurosim.recording import StoreError, StoreLock, prepare_store

from ._reliability import PROTOCOL, one_line_error, write_protocol


def cli(proto: Path, out, *extra):
    res = CliRunner().invoke(main, ["run", str(proto), "--out", str(out), "--quiet", *extra])
    return res


#: exit 2 with one line naming what is wrong (no traceback)
refused = one_line_error


def tree(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (what must not change)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def proto(tmp_path):
    return write_protocol(tmp_path / "p")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished run store (made once; tests copy it)."""
    folder = tmp_path_factory.mktemp("made")
    proto = write_protocol(folder)
    res = cli(proto, folder / "run.zarr")
    assert res.exit_code == 0, res.output
    return folder / "run.zarr"


def copy_store(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------------------------
# one writer per real store
# --------------------------------------------------------------------------------------------
def test_every_name_of_a_store_takes_the_same_lock(tmp_path):
    real = tmp_path / "real.zarr"
    real.mkdir()
    (tmp_path / "link.zarr").symlink_to(real)
    (tmp_path / "dir_link").symlink_to(tmp_path)
    (tmp_path / "dangling.zarr").symlink_to(tmp_path / "later.zarr")  # a store not made yet
    names = [real, tmp_path / "link.zarr", tmp_path / "dir_link" / "real.zarr",
             tmp_path / "dir_link" / "link.zarr", Path(os.path.relpath(real))]
    assert {StoreLock(n).store for n in names} == {real}
    assert StoreLock(tmp_path / "dangling.zarr").store == tmp_path / "later.zarr"
    before = sorted(p.name for p in tmp_path.iterdir())
    with StoreLock(tmp_path / "link.zarr"):
        assert all(StoreLock(n).held for n in names)
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made beside it
    assert not any(StoreLock(n).held for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == before




def test_a_second_writer_through_a_symlink_is_refused(tmp_path, made, proto, holder):
    """The writer lock was taken on the given name: ``link.zarr -> real.zarr`` got a second lock
    and two writers mixed their records into one store."""
    real = copy_store(made, tmp_path / "real.zarr")
    (tmp_path / "link.zarr").symlink_to(real)
    (tmp_path / "folder_link").symlink_to(tmp_path)
    before = tree(real)
    pid = holder(real)
    for name in (tmp_path / "link.zarr", tmp_path / "folder_link" / "real.zarr"):
        with pytest.raises(StoreError, match=f"another process \\(pid {pid};"):
            StoreLock(name).acquire()
        for flags in (["--resume", "--set", "training.epochs=2"], ["--overwrite"]):
            refused(cli(proto, name, *flags), "is being written by another process", f"pid {pid}")
    assert tree(real) == before


def test_the_writer_through_a_symlink_locks_the_real_store(tmp_path, made, holder):
    real = copy_store(made, tmp_path / "real.zarr")
    (tmp_path / "link.zarr").symlink_to(real)
    pid = holder(tmp_path / "link.zarr")
    with pytest.raises(StoreError, match=f"{real} is being written by another process \\(pid {pid};"):
        StoreLock(real).acquire()


# --------------------------------------------------------------------------------------------
# --overwrite replaces only neurosim stores and empty directories
# --------------------------------------------------------------------------------------------
def _thesis(p: Path):
    p.mkdir()
    (p / "thesis.tex").write_text("\\documentclass{book}")
    (p / "figures").mkdir()
    (p / "figures" / "fig1.pdf").write_bytes(b"%PDF")


def _file(p: Path):
    p.write_text("notes")


def _home(p: Path):  # what `--out ~` names: a folder of dot files and folders
    p.mkdir()
    (p / ".bashrc").write_text("export X=1")
    (p / ".ssh").mkdir()
    (p / ".ssh" / "id_ed25519").write_text("key")


def _plain_zarr(p: Path):
    zarr.open_group(str(p), mode="w").create_array("x", shape=(3,), dtype="f8")[...] = 1.0


def _sweep_store(p: Path):
    zarr.open_group(str(p), mode="w").attrs["kind"] = "sweep"


def _damaged_root(p: Path, made=None):
    copy_store(made, p)
    (p / "zarr.json").write_text((p / "zarr.json").read_text()[:50])


def _no_root(p: Path, made=None):
    copy_store(made, p)
    (p / "zarr.json").unlink()


def _link_to_thesis(p: Path):
    _thesis(p.with_name("thesis"))
    p.symlink_to(p.with_name("thesis"))


@pytest.mark.parametrize("make,needle", [
    (_thesis, "not a neurosim store"),
    (_file, "is a file, not a neurosim store"),
    (_home, "not a neurosim store"),
    (_plain_zarr, "not a neurosim run store"),
    (_sweep_store, "sweep store"),
    (_damaged_root, "zarr.json is damaged"),
    (_no_root, "not a neurosim store (no zarr.json)"),
    (_link_to_thesis, "not a neurosim store"),
])
def test_overwrite_refuses_anything_but_a_neurosim_store(tmp_path, proto, made, make, needle):
    out = tmp_path / "out"
    if make in (_damaged_root, _no_root):
        make(out, made)
    else:
        make(out)
    folder = out.resolve().parent
    before = tree(folder)
    msg = refused(cli(proto, out, "--overwrite"), needle, "refusing to overwrite", out)
    assert "choose another --out" in msg or "delete it yourself" in msg
    assert tree(folder) == before  # nothing deleted, nothing added (lock file removed)
    refused(cli(proto, out))  # and without a flag


def test_overwrite_replaces_a_neurosim_store_and_an_empty_directory(tmp_path, proto, made):
    store = copy_store(made, tmp_path / "run.zarr")
    (store / "zarr.json").read_text()
    res = cli(proto, store, "--overwrite", "--set", "seed=3")
    assert res.exit_code == 0, res.output
    assert recording.Recorder(store).attrs["seed"] == 3
    (tmp_path / "empty.zarr").mkdir()
    assert cli(proto, tmp_path / "empty.zarr", "--overwrite").exit_code == 0
    assert cli(proto, tmp_path / "new.zarr", "--overwrite").exit_code == 0  # nothing there yet
    # through a symlink: the store it points to is replaced, the link stays
    (tmp_path / "link.zarr").symlink_to(store)
    assert cli(proto, tmp_path / "link.zarr", "--overwrite").exit_code == 0
    assert (tmp_path / "link.zarr").is_symlink() and recording.Recorder(store).attrs["seed"] == 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_run_name_cannot_escape_the_output_directory(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for name in ("../../escaped", "/tmp/abs", "..", "a/b"):
        proto = write_protocol(work / "p", PROTOCOL.replace("name: tiny", f"name: '{name}'"))
        res = CliRunner().invoke(main, ["run", str(proto), "--quiet"])
        refused(res, "name", "plain name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["a", "b", "p", "proto.yaml", "tiny_circuit.yaml"])


# --------------------------------------------------------------------------------------------
# --resume / --overwrite
# --------------------------------------------------------------------------------------------
def test_resume_refuses_what_it_cannot_continue(tmp_path, proto, made):
    # nothing there: no fresh run behind the user's back, no folders left behind
    refused(cli(proto, tmp_path / "none" / "deeper" / "run.zarr", "--resume"),
            "it does not exist", "run without --resume")
    assert not (tmp_path / "none").exists()
    # a regular file: no advice to --overwrite it
    (tmp_path / "notes.txt").write_text("keep")
    msg = refused(cli(proto, tmp_path / "notes.txt", "--resume"), "is a file", "choose another --out")
    assert "--overwrite" not in msg and (tmp_path / "notes.txt").read_text() == "keep"
    # an empty directory
    (tmp_path / "empty.zarr").mkdir()
    refused(cli(proto, tmp_path / "empty.zarr", "--resume"), "empty directory")
    # both flags
    store = copy_store(made, tmp_path / "run.zarr")
    before = tree(store)
    refused(cli(proto, store, "--resume", "--overwrite"), "--resume", "--overwrite", "only one")
    assert tree(store) == before
    with pytest.raises(StoreError, match="only one"):
        prepare_store(store, resume=True, overwrite=True)


@pytest.mark.parametrize("out,needle", [
    ("{file}/x.zarr", "is not a directory"),
    ("{file}/deeper/x.zarr", "is not a directory"),
    ("/", "cannot be a store"),
])
def test_output_paths_that_cannot_hold_a_store(tmp_path, proto, out, needle):
    f = tmp_path / "hostname"
    f.write_text("host")
    refused(cli(proto, out.format(file=f)), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostname", "p"]


def test_prepare_store_answers(tmp_path, made):
    """The decision table, without the command line (nothing is written by asking)."""
    store = copy_store(made, tmp_path / "run.zarr")
    before = tree(tmp_path)
    assert prepare_store(tmp_path / "new.zarr") == "create"
    assert prepare_store(store, resume=True) == "resume"
    assert prepare_store(store, overwrite=True) == "replace"
    with pytest.raises(StoreError, match="already exists; use --resume"):
        prepare_store(store)
    seen = []
    with pytest.raises(StoreError, match="different"):
        prepare_store(store, resume=True, check=lambda rec: seen.append(rec.path) or (
            _ for _ in ()).throw(StoreError("different")))
    assert seen == [store]
    assert tree(tmp_path) == before
    # a store created but killed before its first checkpoint is replaced on resume
    rec = recording.Recorder(tmp_path / "fresh.zarr")
    rec.create({"title": "t"})
    assert prepare_store(rec.path, resume=True) == "replace"
    # leftovers of an interrupted creation beside a missing store: resume starts afresh
    (tmp_path / ".gone.zarr.0123456789ab.creating").mkdir()
    assert prepare_store(tmp_path / "gone.zarr", resume=True) == "create"
    recording.Recorder(tmp_path / "gone.zarr").create({"title": "t"})
    assert not (tmp_path / ".gone.zarr.0123456789ab.creating").exists()
