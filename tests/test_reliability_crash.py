"""Crash safety, resume, SIGINT, one writer per store, determinism.

A tiny synthetic run (checkpoint every epoch, weight snapshots on) is killed
with SIGKILL (a) between two seeded-random store writes (fault injection:
``NEUROSIM_FAULT_KILL_AT``, which also leaves a half-written temporary file
behind, as a kill inside a write would) and (b) at a seeded-random moment
from outside.  After every kill the store must open with ``xr.open_zarr``,
show exactly the committed records (a prefix of the uninterrupted run, never
fewer than were visible before the kill) and a committed checkpoint that
matches them; ``neurosim run ... --resume`` must then end bit-identical to
the uninterrupted run.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from neurosim import recording
from neurosim.cli import main
from neurosim.recording import Recorder
from neurosim.recording.session import protocol_differences
from neurosim.recording.store import faults

from ._reliability import PROTOCOL, assert_same_store, run_cli, start_cli, write_protocol

EPOCHS = 3
CRASH_PROTOCOL = (PROTOCOL.replace("epochs: 1,", f"epochs: {EPOCHS},")
                  + "recording: {weights: true}\n")
TALLY = {"kills": 0, "survived": 0}


def protocol_for(folder: Path, dtype: str) -> Path:
    return write_protocol(folder, CRASH_PROTOCOL.replace("dtype: float64", f"dtype: {dtype}"))


def run_inprocess(proto: Path, out: Path, *extra) -> None:
    res = CliRunner().invoke(main, ["run", str(proto), "--out", str(out), "--quiet", *extra])
    assert res.exit_code == 0, (res.output, res.exception)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Uninterrupted runs per dtype, and the number of store writes each makes."""
    cache = {}

    def get(dtype):
        if dtype not in cache:
            folder = tmp_path_factory.mktemp(f"ref_{dtype}")
            proto = protocol_for(folder, dtype)
            count = folder / "writes"
            os.environ["NEUROSIM_FAULT_KILL_AT"] = str(count)
            faults.COUNT["n"] = 0
            try:
                run_inprocess(proto, folder / "ref.zarr")
            finally:
                del os.environ["NEUROSIM_FAULT_KILL_AT"]
            cache[dtype] = (folder / "ref.zarr", faults.COUNT["n"])
        return cache[dtype]

    return get


def visible(store: Path) -> int:
    """Committed epoch records, read cheaply from the root metadata (0 before any)."""
    try:
        return int(Recorder(store).commit.get("records", {}).get("epoch", 0))
    except (recording.StoreError, ValueError):
        return 0


def check_consistent(store: Path, ref: Path) -> int:
    """The store after a kill: opens, shows a committed prefix of the reference."""
    if not (store / "zarr.json").exists():
        return 0
    rec = Recorder(store)
    n = int(rec.commit.get("records", {}).get("epoch", 0))
    with xr.open_zarr(store) as ds, xr.open_zarr(ref) as R:
        assert int(ds.sizes.get("epoch", 0)) == n
        if n == 0:
            return 0
        for k in R.variables:
            if k == "wall_time" or "epoch" not in R[k].dims:
                continue
            assert np.array_equal(ds[k].values, R[k].values[:n], equal_nan=True), k
        state, info = rec.load_checkpoint()
        assert info["step"] == int(ds["n_steps"].values[-1])
        for name in (v for v in R.data_vars if v.startswith("W_")):
            assert np.array_equal(state[f"net.L{name[2:]}.W"], ds[name].values[-1]), name
    return n


def kill_by_fault(proto, out, n_write) -> None:
    res = run_cli("run", proto, "--out", out, "--quiet", NEUROSIM_FAULT_KILL_AT=n_write)
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-2000:])


def kill_at_random_moment(proto, out, rng, resume=True) -> bool:
    """Start a run, SIGKILL it after a random number of further commits plus a random
    delay; True if the kill landed before the run finished."""
    start = visible(out)
    target = start + rng.randrange(0, max(1, EPOCHS + 1 - start))
    delay = rng.uniform(0.0, 0.4)
    args = ["run", proto, "--out", out, "--quiet"] + (["--resume"] if resume else [])
    proc = start_cli(*args)
    try:
        deadline = time.time() + 240
        while proc.poll() is None and visible(out) < target and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is not None:
            out_, err = proc.communicate()
            assert proc.returncode == 0, err[-2000:]
            return False
        seen = visible(out)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert visible(out) >= seen  # nothing committed is ever lost
    return True


def kill_and_resume(tmp_path, references, dtype, seed, n_fault, n_timed):
    ref, n_writes = references(dtype)
    proto = protocol_for(tmp_path, dtype)
    out = tmp_path / "run.zarr"
    rng = random.Random(seed)
    first = True
    for _ in range(n_fault):
        n = rng.randint(1, n_writes)
        if first:
            kill_by_fault(proto, out, n)
        else:
            kill_by_fault_resume(proto, out, n)
        first = False
        TALLY["kills"] += 1
        check_consistent(out, ref)
        TALLY["survived"] += 1
    for _ in range(n_timed):
        if kill_at_random_moment(proto, out, rng, resume=not first):
            TALLY["kills"] += 1
            check_consistent(out, ref)
            TALLY["survived"] += 1
        first = False
    # a killed writer leaves its lock file behind, unlocked: it must not block the resume
    run_inprocess(proto, out, "--resume")
    assert_same_store(ref, out)
    with xr.open_zarr(out) as ds:
        assert ds.attrs["status"] == "finished"
    assert not (tmp_path / "run.zarr.lock").exists()  # (no lock file is ever made)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.zarr")]  # no leftovers


def kill_by_fault_resume(proto, out, n_write) -> None:
    res = run_cli("run", proto, "--out", out, "--quiet", "--resume", NEUROSIM_FAULT_KILL_AT=n_write)
    assert res.returncode in (-signal.SIGKILL, 0), (res.returncode, res.stderr[-2000:])


def test_sigkill_float64_then_resume_bit_identical(tmp_path, references):
    kill_and_resume(tmp_path, references, "float64", seed=11, n_fault=1, n_timed=1)


def test_sigkill_float32_then_resume_bit_identical(tmp_path, references):
    kill_and_resume(tmp_path, references, "float32", seed=12, n_fault=0, n_timed=1)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sigkill_many_points(tmp_path, references, dtype):
    """Every tenth store write, then resume from each (slow)."""
    ref, n_writes = references(dtype)
    proto = protocol_for(tmp_path, dtype)
    for i, n in enumerate(range(1, n_writes + 1, max(1, n_writes // 12))):
        out = tmp_path / f"run{i}.zarr"
        kill_by_fault(proto, out, n)
        TALLY["kills"] += 1
        check_consistent(out, ref)
        run_inprocess(proto, out, "--resume")
        assert_same_store(ref, out)
        TALLY["survived"] += 1
    kill_and_resume(tmp_path / "timed", references, dtype, seed=5, n_fault=3, n_timed=4)
    print(f"\nkills survived / tried (so far in this session): {TALLY['survived']} / {TALLY['kills']}")


def test_sigint_checkpoints_and_says_how_to_resume(tmp_path, references):
    ref, _ = references("float64")
    proto = protocol_for(tmp_path, "float64")
    out = tmp_path / "run.zarr"
    proc = start_cli("run", proto, "--out", out, "--quiet")
    try:
        # the first commit (the epoch-0 evaluation) comes long before the end; a signal during
        # that first evaluation stops at once (test_sigint_during_first_evaluation_stops_at_once)
        deadline = time.time() + 240
        while proc.poll() is None and not _committed(out) and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        # a second writer is refused while the first one runs, naming its pid
        with pytest.raises(recording.StoreError, match=f"another process \\(pid {proc.pid};"):
            recording.StoreLock(out).acquire()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    m = re.search(r"stopped by signal 2 at epoch (\d+)/\d+ batch (\d+)/\d+; checkpoint written", err)
    assert m, err
    assert f"Resume with: neurosim run {proto} --out {out} --resume" in err
    with xr.open_zarr(out) as ds:
        assert ds.attrs["status"] == "interrupted"
    commit = Recorder(out).commit  # the checkpoint holds the step it stopped at
    assert commit["step"] >= 1 and (commit["epoch"] + 1, commit["batch"]) == (int(m[1]), int(m[2]))
    assert not (tmp_path / "run.zarr.lock").exists()  # (no lock file is ever made)
    # resuming with a different protocol is refused, naming what differs
    other = write_protocol(tmp_path / "other", CRASH_PROTOCOL.replace("lr: 1.0e-3", "lr: 2.0e-3"))
    res = CliRunner().invoke(main, ["run", str(other), "--out", str(out), "--quiet", "--resume"])
    assert res.exit_code == 2 and "different protocol" in res.output and "optimizer.lr" in res.output
    run_inprocess(proto, out, "--resume")
    assert_same_store(ref, out)
    # only the length of training may change on resume: the run is extended
    res = CliRunner().invoke(main, ["run", str(proto), "--out", str(out), "--quiet", "--resume",
                                    "--set", f"training.epochs={EPOCHS + 1}"])
    assert res.exit_code == 0, res.output
    with xr.open_zarr(out) as ds:
        assert ds.attrs["extended"] == "training.epochs"
        assert float(ds["epoch"].values[-1]) == EPOCHS + 1


def _committed(store: Path) -> bool:
    try:
        return Recorder(store).commit.get("slot") is not None
    except Exception:  # not created yet, or being written
        return False


def test_sigint_during_first_evaluation_stops_at_once(tmp_path, references):
    """Ctrl-C while the run evaluates its initial weights stops between evaluation batches
    (nothing to checkpoint yet); a resume then starts the run afresh and ends identical."""
    ref, _ = references("float64")
    proto = write_protocol(tmp_path, CRASH_PROTOCOL.replace("{epochs:", "{eval_batch_size: 1, epochs:"))
    out = tmp_path / "run.zarr"
    proc = start_cli("run", proto, "--out", out, "--quiet")
    try:
        deadline = time.time() + 240
        while proc.poll() is None and not (out / "zarr.json").exists() and time.time() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        t0 = time.time()
        _, err = proc.communicate(timeout=240)
        stopped_in = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "during the first evaluation" in err and "Resume with:" in err, err
    assert stopped_in < 5, stopped_in
    assert Recorder(out).commit.get("slot") is None
    run_inprocess(proto, out, "--resume")
    with xr.open_zarr(out) as a, xr.open_zarr(ref) as b:
        np.testing.assert_array_equal(a["test_error"].values, b["test_error"].values)


def test_lock_of_a_dead_process_does_not_block(tmp_path, references, holder):
    """The lock is held on the store directory: a live holder is refused (every flag), a dead
    one's lock is gone with it; an older version's lock file beside the store is never
    written or deleted, and honoured only while a process holds it."""
    ref, _ = references("float64")
    store = tmp_path / "s.zarr"
    shutil.copytree(ref, store)
    legacy = tmp_path / "s.zarr.lock"
    legacy.write_text("999999\n")  # left by an older version's killed run
    with recording.StoreLock(store):
        pass
    assert legacy.read_text() == "999999\n"
    pid = holder(store)  # takes the lock in another process, until killed
    with pytest.raises(recording.StoreError, match=f"another process \\(pid {pid};"):
        recording.StoreLock(store).acquire()
    proto = protocol_for(tmp_path, "float64")
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    for extra in (["--resume", "--set", f"training.epochs={EPOCHS + 1}"], ["--overwrite"], []):
        res = CliRunner().invoke(main, ["run", str(proto), "--out", str(store), "--quiet", *extra])
        assert res.exit_code == 2, res.output
        assert f"is being written by another process (pid {pid};" in res.output
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with recording.StoreLock(store) as lock:
        assert lock.held
    assert legacy.read_text() == "999999\n"  # never touched
    fd = os.open(legacy, os.O_RDWR)  # an older version's live writer holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(recording.StoreError, match=r"pid 999999; an older neurosim holding"):
            recording.StoreLock(store).acquire()
    finally:
        os.close(fd)


def debris(folder: Path) -> list:
    """Temporary names that writers leave beside a store (creation, replacement, root writes)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("points", [(1, 3), pytest.param((2,), marks=pytest.mark.slow)])
def test_resume_of_a_store_killed_while_it_is_created(tmp_path, references, points):
    """Killed while the store is built beside its destination (writes 1, 2: nothing at --out
    yet, a ``.run.zarr.*.creating`` folder beside it) or right after it was renamed into place
    (write 3: root metadata, nothing committed): --resume cleans up and starts over."""
    ref, _ = references("float64")
    proto = protocol_for(tmp_path, "float64")
    for n in points:
        folder = tmp_path / f"k{n}"
        folder.mkdir()
        out = folder / "run.zarr"
        kill_by_fault(proto, out, n)
        TALLY["kills"] += 1
        if n < 3:
            assert not out.exists()
            assert [d.endswith(".creating") for d in debris(folder)] == [True]
        else:
            assert (out / "zarr.json").exists() and visible(out) == 0
            with xr.open_zarr(out) as ds:
                assert ds.sizes.get("epoch", 0) == 0
        run_inprocess(proto, out, "--resume")
        assert_same_store(ref, out)
        assert debris(folder) == [] and sorted(p.name for p in folder.iterdir()) == ["run.zarr"]
        TALLY["survived"] += 1


@pytest.mark.parametrize("points", [(3,), pytest.param((1, 2, 4), marks=pytest.mark.slow)])
def test_overwrite_killed_at_every_write_of_the_replacement(tmp_path, references, points):
    """--overwrite builds the new store beside (store write 1), renames the old one aside (2),
    renames the new one into place (3), then deletes the old one (4): a kill at any of those
    writes leaves either the old store, nothing (and leftovers that say a creation was under
    way) or the new one; --overwrite / --resume then end bit-identical."""
    ref, _ = references("float64")
    proto = protocol_for(tmp_path, "float64")
    for n in points:
        folder = tmp_path / f"k{n}"
        folder.mkdir()
        out = folder / "run.zarr"
        run_inprocess(proto, out, "--set", "seed=1")  # the store to be replaced
        res = run_cli("run", proto, "--out", out, "--quiet", "--overwrite", NEUROSIM_FAULT_KILL_AT=n)
        assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
        TALLY["kills"] += 1
        if out.exists():
            with xr.open_zarr(out) as ds:  # the old store, whole, or the new one
                assert ds.attrs["seed"] == (1 if n < 3 else 0)
        else:
            assert n == 3 and any(d.endswith(".deleting") for d in debris(folder))
        if n < 3:  # the replacement never happened: the old store is still to be replaced
            run_inprocess(proto, out, "--overwrite")
        else:
            run_inprocess(proto, out, "--resume")
        assert_same_store(ref, out)
        assert debris(folder) == []
        TALLY["survived"] += 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_protocol_and_seed_give_identical_stores(tmp_path, references, dtype):
    """Determinism on the CPU; a different seed must give a different store (the
    comparison is not vacuous)."""
    ref, _ = references(dtype)
    proto = protocol_for(tmp_path, dtype)
    run_inprocess(proto, tmp_path / "again.zarr")
    assert_same_store(ref, tmp_path / "again.zarr")
    with xr.open_zarr(ref) as A, xr.open_zarr(tmp_path / "again.zarr") as B:
        # protocol: the circuit file's path
        drop = ("created", "neurosim_commit", "neurosim_seal", "protocol")
        assert {k: v for k, v in A.attrs.items() if k not in drop} == \
            {k: v for k, v in B.attrs.items() if k not in drop}
        assert protocol_differences(json.loads(A.attrs["protocol"]),
                                    json.loads(B.attrs["protocol"])) == []
    if dtype == "float64":
        run_inprocess(proto, tmp_path / "seed1.zarr", "--set", "seed=1")
        with pytest.raises(AssertionError):
            assert_same_store(ref, tmp_path / "seed1.zarr")


def test_store_layout_has_no_foreign_files(tmp_path, references):
    ref, _ = references("float64")
    names = {p.name for p in Path(ref).iterdir()}
    assert "zarr.json" in names and not any(n.endswith(".partial") for n in names)
    meta = json.loads((Path(ref) / "zarr.json").read_text())
    slot = recording.commit_record(meta["attributes"])["slot"]
    assert set(meta["consolidated_metadata"]["metadata"]) >= {"train_error", "epoch", slot}
    # a finished run keeps the committed checkpoint slot only
    assert {n for n in names if n.startswith("checkpoint_")} == {slot}
    assert not any(k.startswith("checkpoint_") and not k.startswith(slot)
                   for k in meta["consolidated_metadata"]["metadata"])


def test_weight_snapshots_every_other_checkpoint_open(tmp_path):
    """recording.weights_every > 1 used to leave W_i shorter than epoch: the store did not open."""
    proto = protocol_for(tmp_path, "float64")
    out = tmp_path / "w.zarr"
    run_inprocess(proto, out, "--set", "recording.weights_every=2")
    with xr.open_zarr(out) as ds:
        assert ds.sizes["epoch"] == EPOCHS + 1
        snap = ~np.isnan(ds["W_1"].values).all(axis=(1, 2))
    np.testing.assert_array_equal(snap, [i % 2 == 0 for i in range(EPOCHS + 1)])


def test_report_tally(capsys):
    """(prints kills survived / tried for the record; runs last in this module)"""
    with capsys.disabled():
        print(f"\nkills survived / tried: {TALLY['survived']} / {TALLY['kills']}")
    assert TALLY["survived"] == TALLY["kills"]


CIRCUIT_REALIZATIONS = {
    "grouped": "realization: {type: grouped, relaxation: {rate: 1.0, schedule: every_n, every: 3}}\n",
    "temporal": "realization: {type: temporal, gating: first_bin}\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("real", sorted(CIRCUIT_REALIZATIONS))
def test_sigkill_explicit_circuits_then_resume_bit_identical(tmp_path, real):
    """The explicit circuits with trajectories, metrics and weight snapshots: killed at seeded
    random store writes (creation, records, checkpoint slots, commits), resumed each time;
    the end is bit-identical to an uninterrupted run (slow)."""
    text = (CRASH_PROTOCOL.replace("recording: {weights: true}\n", "")
            + CIRCUIT_REALIZATIONS[real]
            + "recording:\n  weights: true\n  trajectories: {every: 1, samples: 2, units: 4, "
              "snapshot_every: 2, synapses: 4, chunk: 2}\n")
    proto = write_protocol(tmp_path, text)
    count = tmp_path / "writes"
    res = run_cli("run", proto, "--out", tmp_path / "ref.zarr", "--quiet",
                  NEUROSIM_FAULT_KILL_AT=count)
    assert res.returncode == 0, res.stderr[-2000:]
    n_writes = int(count.read_text())
    rng = random.Random(21 if real == "grouped" else 22)
    out = tmp_path / "run.zarr"
    points = sorted(rng.sample(range(1, n_writes + 1), 6))
    killed = 0
    for i, n in enumerate(points):
        # each kill lands in a new process at its n-th write: a fresh start, then resumes
        at = n if i == 0 else max(1, n - points[i - 1])
        args = ["run", proto, "--out", out, "--quiet"] + (["--resume"] if i else [])
        res = run_cli(*args, NEUROSIM_FAULT_KILL_AT=at)
        assert res.returncode in (-signal.SIGKILL, 0), (res.returncode, res.stderr[-2000:])
        killed += res.returncode == -signal.SIGKILL
        TALLY["kills"] += res.returncode == -signal.SIGKILL
        if out.exists():
            check_consistent(out, tmp_path / "ref.zarr")
        TALLY["survived"] += res.returncode == -signal.SIGKILL
    res = run_cli("run", proto, "--out", out, "--quiet", "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_same_store(tmp_path / "ref.zarr", out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.zarr")]
    with xr.open_zarr(out) as ds:  # the comparison covered the circuit's recordings
        assert {"sim_step", "snapshot"} <= set(ds.dims) and ds.sizes["sim_step"] >= 6
    print(f"\n{real}: {n_writes} store writes; {killed} kills at writes {points}")
    assert killed >= 5
