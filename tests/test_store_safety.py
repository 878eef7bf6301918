"""Nothing lost even when the user tidies up (issue 31): the writer lock is held on the store
directory itself (no lock file a user could delete, no file beside the store touched), a
store is never written inside another one or replaced while it holds anything neurosim did
not write, every committed byte is covered by a hash (the root metadata by its seal, records
by hash chains, the checkpoint by content hashes), links and FIFOs inside a store are refused
without blocking, a resume never shortens training, sweeps are bounded and refused before
they start when edited, and the analysis commands refuse what inspect refuses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from neurosim.recording import MARKER, StoreError, StoreLock, commit_record, verify_store
from neurosim.recording.store.seal import SEAL, seal_of

from ._reliability import PROTOCOL, assert_same_store, cli, finished_run, one_line_error, write_protocol

DATA = Path(__file__).parent / "data" / "store_format2"




def tree(folder: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = Path(root) / n
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p):
                big = st.st_size > 2**22  # (a huge sparse file: its size and time)
                out[str(p.relative_to(folder))] = ((st.st_size, st.st_mtime_ns) if big
                                                   else p.read_bytes())
            else:
                out[str(p.relative_to(folder))] = st.st_mode
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return finished_run(tmp_path_factory)


@pytest.fixture
def store(tmp_path, made):
    shutil.copytree(made[1], tmp_path / "run.zarr")
    return tmp_path / "run.zarr"


class Hung(Exception):
    pass


def within(seconds, fn, *args):
    """``fn(*args)`` in a thread; Hung if it has not returned after ``seconds``."""
    out = {}

    def go():
        try:
            out["r"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            out["e"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise Hung(f"still blocked after {seconds} s")
    if "e" in out:
        raise out["e"]
    return out["r"]


# --------------------------------------------------------------------------------------------
# item 1: a lock that belongs to the store
# --------------------------------------------------------------------------------------------


def test_no_lock_file_to_delete_a_live_writer_is_refused_by_every_flag(tmp_path, store, made, holder):
    """Issue 31.1: `rm s.zarr.lock` then `--overwrite` deleted a live run.  There is no lock
    file now; whatever is deleted or renamed beside the store, the writer keeps it."""
    proto, _ = made
    pid = holder(store)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]  # nothing beside it
    before = tree(store)
    for flags in (["--overwrite"], ["--resume", "--set", "training.epochs=2"], []):
        one_line_error(cli("run", proto, "--out", store, "--quiet", *flags),
                       f"is being written by another process (pid {pid};")
    assert tree(store) == before


def test_lock_never_touches_a_file_beside_the_store(tmp_path, made):
    """Issue 31.2: a user's `precious.lock` beside `precious` was deleted by a refused run, and a
    `s.zarr.lock` symlink to notes.txt got notes.txt truncated."""
    proto, _ = made
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("mine")
    (tmp_path / "precious.lock").write_text("my lock notes\n")
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "s.zarr.lock").symlink_to(tmp_path / "notes.txt")
    before = tree(tmp_path)
    one_line_error(cli("run", proto, "--out", tmp_path / "precious", "--quiet"),
                   "not a neurosim store")
    one_line_error(cli("run", proto, "--out", tmp_path / "precious", "--quiet", "--overwrite"),
                   "refusing to overwrite")
    assert tree(tmp_path) == before
    res = cli("run", proto, "--out", tmp_path / "s.zarr", "--quiet")
    assert res.exit_code == 0, res.output
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("s.zarr/") and k != "s.zarr"} \
        == before
    assert os.readlink(tmp_path / "s.zarr.lock") == str(tmp_path / "notes.txt")


def test_a_second_path_to_the_same_directory_meets_the_same_lock(tmp_path, store, holder):
    """Every name of a store reaches one inode, and the lock is on the inode (a bind mount is
    tested in test_a_bind_mount_meets_the_same_lock)."""
    (tmp_path / "link.zarr").symlink_to(store)
    (tmp_path / "folder").symlink_to(tmp_path)
    pid = holder(tmp_path / "link.zarr")
    for name in (store, tmp_path / "folder" / "run.zarr", Path(f"/proc/{os.getpid()}/cwd") / store):
        with pytest.raises(StoreError, match=f"another process \\(pid {pid};"):
            StoreLock(name).acquire()


BIND = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from neurosim.recording import StoreLock, StoreError
a, b = sys.argv[2], sys.argv[3]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    StoreLock(a).acquire(); os.write(w, b"x"); time.sleep(60); os._exit(0)
os.read(r, 1)
try:
    StoreLock(b).acquire()
    print("SECOND WRITER GOT IN")
except StoreError as exc:
    print("refused:", exc)
os.kill(pid, 9)
"""


def test_a_bind_mount_meets_the_same_lock(tmp_path, store):
    """Issue 31.3: a bind mount of the store directory took a different lock."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare")
    other = tmp_path / "mounted.zarr"
    other.mkdir()
    script = tmp_path / "bind.py"
    script.write_text(BIND)
    cmd = (f"mount --bind {store} {other} && {sys.executable} {script} "
           f"{Path(__file__).parents[1]} {store} {other}")
    res = subprocess.run(["unshare", "-Urm", "sh", "-c", cmd], capture_output=True, text=True,
                         timeout=60)
    if res.returncode != 0 and "mount" in res.stderr:
        pytest.skip(f"bind mounts not permitted here: {res.stderr.strip()[:200]}")
    assert "refused:" in res.stdout and "another process (pid" in res.stdout, res.stdout + res.stderr


# --------------------------------------------------------------------------------------------
# item 2: never inside a store, never replace what neurosim did not write
# --------------------------------------------------------------------------------------------
def test_out_inside_a_store_is_refused(tmp_path, store, made):
    """Issue 31.4: `--out outer.zarr/inner.zarr` was accepted."""
    proto, _ = made
    before = tree(store)
    for inner in (store / "inner.zarr", store / "checkpoint_b" / "x", store / "a" / "b" / "c"):
        one_line_error(cli("run", proto, "--out", inner, "--quiet"), "inside the store", str(store))
    assert tree(store) == before
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    one_line_error(cli("run", proto, "--out", plain / "x.zarr", "--quiet"), "inside the store")


@pytest.mark.parametrize("what", ["nested store", "user file", "symlink", "fifo", "folder"])
def test_overwrite_refuses_a_store_holding_what_neurosim_did_not_write(tmp_path, store, made, what):
    """Issue 31.4: overwriting outer.zarr deleted inner.zarr without a word."""
    proto, src = made
    if what == "nested store":
        shutil.copytree(src, store / "inner.zarr")
        name = store / "inner.zarr"
    elif what == "user file":
        name = store / "notes.txt"
        name.write_text("mine")
    elif what == "symlink":
        name = store / "W_0" / "c" / "9"
        name.symlink_to(tmp_path)
    elif what == "fifo":
        name = store / "epoch" / "c" / "7"
        os.mkfifo(name)
    else:
        name = store / "mydata"
        name.mkdir()
        (name / "x.npy").write_bytes(b"1")
    before = tree(tmp_path)
    msg = one_line_error(within(30, cli, "run", proto, "--out", store, "--quiet", "--overwrite"),
                         "refusing to overwrite", str(name))
    assert tree(tmp_path) == before, msg
    if what in ("symlink", "fifo"):  # nor resumed, nor inspected (without blocking)
        one_line_error(within(30, cli, "inspect", store), str(name))
        one_line_error(within(30, cli, "run", proto, "--out", store, "--quiet", "--resume",
                              "--set", "training.epochs=2"), str(name))
        assert tree(tmp_path) == before
    if what in ("symlink", "fifo"):
        name.unlink()
    else:
        shutil.rmtree(name) if name.is_dir() else name.unlink()
    res = cli("run", proto, "--out", store, "--quiet", "--overwrite")
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------------------------
# item 3: integrity over every committed byte
# --------------------------------------------------------------------------------------------
def _root(s: Path) -> dict:
    return json.loads((s / "zarr.json").read_text())


def _record(s: Path) -> dict:
    return commit_record(_root(s)["attributes"])


def _write_record(s: Path, record: dict, reseal: bool) -> None:
    """Replace the commit record; with ``reseal`` the seal is recomputed (an attacker who knows
    the seal: the other checks must still catch the edit)."""
    meta = _root(s)
    meta["attributes"][MARKER] = json.dumps(record)
    if reseal:
        meta["attributes"][SEAL] = seal_of(meta)
    (s / "zarr.json").write_text(json.dumps(meta))


def _slot_json(s: Path) -> Path:
    return s / _record(s)["slot"] / "zarr.json"


def _edit_position(s: Path) -> None:
    f = _slot_json(s)
    meta = json.loads(f.read_text())
    meta["attributes"]["epoch"] = 0  # one digit
    f.write_text(json.dumps(meta))


def _swap_chunks(s: Path) -> None:
    a, b = s / "test_error" / "c" / "0", s / "test_error" / "c" / "1"
    da, db = a.read_bytes(), b.read_bytes()
    assert da != db
    a.write_bytes(db)
    b.write_bytes(da)


def _drop_hash(reseal):
    def damage(s):
        r = _record(s)
        del r["hashes"][sorted(r["hashes"])[0]]
        _write_record(s, r, reseal)
    return damage


def _format_1(reseal, drop_seal=False):
    def damage(s):
        r = _record(s)
        r["format"] = 1
        if drop_seal:
            del r["record_hashes"]
        _write_record(s, r, reseal)
        if drop_seal:
            meta = _root(s)
            del meta["attributes"][SEAL]
            (s / "zarr.json").write_text(json.dumps(meta))
        (s / "test_error" / "c" / "1").unlink()
    return damage


def _root_epoch(s):
    r = _record(s)
    r["epoch"] = 0
    _write_record(s, r, reseal=False)


def _attr_edit(s):
    meta = _root(s)
    meta["attributes"]["status"] = "running"
    (s / "zarr.json").write_text(json.dumps(meta))


def _units_edit(s):
    f = s / "test_error" / "zarr.json"
    meta = json.loads(f.read_text())
    meta["attributes"]["units"] = "1"
    f.write_text(json.dumps(meta))


def _loop(s):
    (s / "loop").symlink_to(s)


def _fifo_ckpt(s):
    slot = _record(s)["slot"]
    chunk = next(p for p in (s / slot / "net.L0.W").rglob("*") if p.is_file())
    chunk.unlink()
    os.mkfifo(chunk)


INTEGRITY = {
    "loop position edited in the slot": (_edit_position, "its loop position or content hashes"),
    "loop position edited in the root": (_root_epoch, "its seal does not match"),
    "two record chunks swapped": (_swap_chunks, "does not match its record hash"),
    "a checkpoint hash removed": (_drop_hash(False), "its seal does not match"),
    "a checkpoint hash removed, resealed": (_drop_hash(True), "checkpoint hashes do not list"),
    "format set back to 1": (_format_1(False), "its seal does not match"),
    "format set back to 1, resealed": (_format_1(True), "does not match its record hash"),
    "format 1, seal and record hashes removed": (_format_1(False, True), "format 2 or later"),
    "a root attr edited": (_attr_edit, "its seal does not match"),
    "an array's units edited": (_units_edit, "does not match the last commit"),
    "a symlink loop inside": (_loop, "is a symbolic link inside the store"),
    "a FIFO in place of a checkpoint chunk": (_fifo_ckpt, "is a FIFO inside the store"),
}


@pytest.mark.parametrize("case", sorted(INTEGRITY))
def test_every_committed_byte_is_covered(tmp_path, store, made, case):
    """Issue 31.5/31.6: each of these passed inspect (or hung it) before."""
    proto, _ = made
    damage, needle = INTEGRITY[case]
    damage(store)
    before = tree(tmp_path)
    one_line_error(within(30, cli, "inspect", store), needle)
    one_line_error(within(30, cli, "run", proto, "--out", store, "--quiet", "--resume",
                          "--set", "training.epochs=2"), needle)
    assert tree(tmp_path) == before


def test_the_seal_covers_the_whole_root_and_the_chains_every_record(store):
    info = verify_store(store)
    assert info["sealed"] and info["records"] == "verified" and info["format"] == 3
    r = _record(store)
    meta = _root(store)
    assert set(r["record_hashes"]) == {k for k, v in meta["consolidated_metadata"]["metadata"].items()
                                       if v["node_type"] == "array" and not k.startswith("checkpoint")}
    with xr.open_zarr(store) as ds:
        assert r["record_hashes"]["test_error"][0] == ds.sizes["epoch"]


@pytest.mark.parametrize("kind", [
    "plain",
    "weights",
])
def test_a_store_of_the_previous_format_opens_verifies_and_resumes(tmp_path, kind):
    """A format-2 store (written by the previous version, tests/data/store_format2) is verified
    as format 2 (every chunk there and decoding, checkpoint content hashes); resumed, it is
    sealed and chained (format 3) and ends equal to a fresh run (to float64 rounding: the old
    store's first epoch may come from another CPU)."""
    src, proto = {"plain": ("run_v2_plain", "proto_plain.yaml"),
                  "weights": ("run_v2", "proto.yaml")}[kind]
    shutil.copy(DATA / proto, tmp_path / "proto.yaml")
    shutil.copy(DATA / "tiny_circuit.yaml", tmp_path / "tiny_circuit.yaml")
    store = tmp_path / "old.zarr"
    shutil.copytree(DATA / src, store)
    info = verify_store(store)
    assert (info["format"], info["sealed"], info["records"], info["checkpoint"]) == \
        (2, False, "decoded", "verified")
    res = cli("inspect", store)
    assert res.exit_code == 0 and "intact" in res.output, res.output
    (store / "test_error" / "c" / "1").unlink()  # its checks still catch damage
    one_line_error(cli("inspect", store), "is missing")
    shutil.rmtree(store)
    shutil.copytree(DATA / src, store)
    res = cli("run", tmp_path / "proto.yaml", "--out", store, "--quiet", "--resume",
              "--set", "training.epochs=2")
    assert res.exit_code == 0, res.output
    info = verify_store(store)
    assert (info["format"], info["sealed"], info["records"]) == (3, True, "verified")
    ref = tmp_path / "ref.zarr"
    res = cli("run", tmp_path / "proto.yaml", "--out", ref, "--quiet", "--set", "training.epochs=2")
    assert res.exit_code == 0, res.output
    # the old store keeps the variables it was made with: the bias snapshots b_<l> of this
    # version are not added to it (they would disagree on the length of epoch)
    with xr.open_zarr(store) as old, xr.open_zarr(ref) as new:
        newer = {k for k in new.data_vars if k.startswith("b_")}
        assert not newer & set(old.data_vars) and (kind == "plain") == (not newer)
    # the old store's first epoch was computed on another CPU, whose float64 BLAS may round
    # differently: equal to rounding, not bit for bit (measured on an AMD EPYC against the
    # stored store, made on an Intel Xeon: every value within a relative 1e-15)
    assert_same_store(ref, store, skip=("wall_time", *newer), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# item 7 (here 4): a resume never shortens training
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value,had", [("training.epochs", 0.5, 1),
                                           ("training.max_steps", 1, "None")])
def test_resume_of_a_finished_run_with_a_shorter_schedule_is_refused(tmp_path, store, made, key,
                                                                      value, had):
    proto, _ = made
    if key == "training.epochs":  # make a 2-epoch store, then ask for 1
        res = cli("run", proto, "--out", store, "--quiet", "--resume", "--set", "training.epochs=2")
        assert res.exit_code == 0, res.output
        value, had = 1, 2
    before = tree(tmp_path)
    one_line_error(cli("run", proto, "--out", store, "--quiet", "--resume", "--set", f"{key}={value}"),
                   f"with {key}={value}", f"{key}={had}", "can only lengthen")
    assert tree(tmp_path) == before
    with xr.open_zarr(store) as ds:
        assert json.loads(ds.attrs["protocol"])["training"]["epochs"] == (2 if had == 2 else 1)


# --------------------------------------------------------------------------------------------
# item 10: sweeps
# --------------------------------------------------------------------------------------------
def _sweep_file(tmp_path, extra: str, name="sw") -> Path:
    write_protocol(tmp_path, PROTOCOL.replace("name: tiny", f"name: {name}") + extra, name="sw.yaml")
    return tmp_path / "sw.yaml"


def test_sweep_name_cannot_escape(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    f = _sweep_file(work, "sweep: {optimizer.lr: [1.0e-3]}\n", name="'../../escaped'")
    one_line_error(cli("sweep", f, "--list"), "plain name")
    one_line_error(cli("sweep", f, "--workers", "1"), "plain name")
    assert not (tmp_path / "escaped.zarr").exists() and not (work / "runs").exists()


def test_a_huge_grid_is_refused_with_its_count_at_once(tmp_path):
    values = ", ".join(str(j + 1) for j in range(10))
    axes = "".join(f"  {k}: [{values}]\n" for k in
                   ("training.batch_size", "training.epochs", "optimizer.lr", "training.eval_every",
                    "data.options.n_train", "data.options.n_test", "training.max_steps",
                    "training.eval_batch_size"))
    f = _sweep_file(tmp_path, "sweep:\n" + axes)
    t0 = time.time()
    one_line_error(cli("sweep", f, "--list"), "100,000,000 runs", "more than the 10,000")
    assert time.time() - t0 < 5


def test_a_long_string_repeated_by_aliases_or_axes_is_refused(tmp_path):
    big = "x" * 300_000
    f = _sweep_file(tmp_path, f"description: &d '{big}'\nsweep:\n  description: [{', '.join(['*d'] * 20)}]\n")
    one_line_error(cli("sweep", f, "--list"), "MiB of text through aliases")
    # the same text without aliases: one axis value repeated by the other axes' runs
    val = "y" * 100_000
    seeds = ", ".join(map(str, range(200)))
    f = _sweep_file(tmp_path, f"sweep:\n  description: ['{val}']\nseeds: [{seeds}]\n")
    one_line_error(cli("sweep", f, "--list"), "MiB of swept values")


def test_an_edited_sweep_is_refused_before_it_starts_with_advice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    f = _sweep_file(tmp_path, "sweep: {training.epochs: [1]}\n")
    from neurosim.sweep import SweepStore, load_sweep
    from neurosim.train import run_protocol

    sw = load_sweep(f)
    out = tmp_path / "sw.zarr"
    SweepStore(out).create_or_open(sw)
    (r,) = sw.runs
    proto = json.loads(json.dumps(r.protocol))
    proto["training"]["epochs"] = 2
    proto["training"]["max_steps"] = 1  # an unfinished run (stopped by max_steps)
    run_protocol(proto, out=str(out / "runs" / r.name))
    f.write_text(f.read_text().replace("lr: 1.0e-3", "lr: 2.0e-3"))
    res = cli("sweep", f, "--out", out, "--workers", "1")
    one_line_error(res, "cannot continue under this sweep protocol", "optimizer.lr",
                   "into a new store (--out")


# --------------------------------------------------------------------------------------------
# item 11: analysis commands
# --------------------------------------------------------------------------------------------
def test_report_and_compare_refuse_a_foreign_zarr_store(tmp_path, made):
    _, src = made
    foreign = tmp_path / "foreign.zarr"
    g = zarr.open_group(str(foreign), mode="w")
    g.create_array("x", shape=(3,), dtype="f8")[:] = 1.0
    one_line_error(cli("report", foreign, "--out", tmp_path / "rep"), "not a neurosim run store")
    one_line_error(cli("compare", src, foreign), "not a neurosim run store")


def test_report_and_compare_name_a_damaged_chunk_as_inspect_does(tmp_path, store, made):
    _, src = made
    chunk = store / "test_error" / "c" / "1"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    msg = one_line_error(cli("inspect", store), str(chunk))
    assert one_line_error(cli("report", store, "--out", tmp_path / "rep")) == msg
    assert one_line_error(cli("compare", src, store)) == msg


def test_python_api_overrides_must_be_a_mapping_and_take_numpy_scalars(made, tmp_path):
    import neurosim
    from neurosim.api import load

    proto, _ = made
    with pytest.raises(TypeError, match="overrides must be a mapping of dotted keys"):
        neurosim.run(str(proto), out=tmp_path / "x.zarr", overrides=["training.epochs=2"])
    assert not (tmp_path / "x.zarr").exists()
    p = load(str(proto), overrides={"optimizer.lr": np.float32(1e-3),
                                             "training.epochs": np.int64(2),
                                             "training.shuffle": np.bool_(False)})
    assert p["training"]["epochs"] == 2 and type(p["training"]["epochs"]) is int
    assert p["optimizer"]["lr"] == pytest.approx(1e-3) and type(p["optimizer"]["lr"]) is float
    assert p["training"]["shuffle"] is False
    raw = {"training": {"epochs": np.int64(3)}}
    from neurosim.api import plain

    assert type(plain(raw)["training"]["epochs"]) is int
