"""A sweep continues a run only under the protocol that made it (as ``neurosim run --resume``),
leaves a refused run's store untouched, and an interrupted sweep lists every run as its own
store says."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import pytest
import xarray as xr

from neurosim.recording import Recorder, StoreError
from neurosim.recording.session import check_resumable
from neurosim.sweep import SweepStore, execute, expand, run_is_done
from tests.test_sweep import tiny


@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process."""
    distributed = pytest.importorskip("distributed")
    mp = pytest.MonkeyPatch()
    mp.setenv("NEUROSIM_NUMBA", "0")  # workers are threads here
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    mp.undo()


def _snapshot(path: Path) -> dict:
    """Every file of a store: content hash and mtime."""
    return {str(p.relative_to(path)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def _quiet(line):
    pass


def _edited(raw, **training):
    raw = copy.deepcopy(raw)
    raw["training"].update(training)
    return raw


@pytest.mark.parametrize("killed", [True, False], ids=["unfinished", "finished"])
def test_a_run_is_not_continued_under_an_edited_protocol(client, tmp_path, killed):
    raw = tiny({"optimizer.lr": [1e-3]})
    out = tmp_path / "sw.zarr"
    res = execute(expand(raw, max_epochs=1) if killed else expand(raw), out, client, echo=_quiet)
    (name,) = res.finished
    path = out / "runs" / name
    if killed:  # "killed" mid-run: its store says running (its checkpoint is at epoch 1)
        Recorder(path).set_attrs(status="running")  # (as its writer left it)
    before = _snapshot(path)

    edited = expand(_edited(raw, batch_size=8))  # 16 -> 8: the same run name
    (run,) = edited.runs
    assert run.name == name
    res2 = execute(edited, out, client, echo=_quiet)
    assert list(res2.failed) == [name] and not res2.finished and not res2.skipped
    # the message `neurosim run --resume` gives for this store and protocol
    proto = run.protocol.to_dict()
    proto["recording"]["out"] = str(path.resolve())
    with pytest.raises(StoreError) as ei:
        check_resumable(proto, Recorder(path.resolve()))
    assert "made by a different protocol" in str(ei.value)
    assert "training.batch_size: store has 16, given 8" in str(ei.value)
    assert res2.failed[name] == f"StoreError: {ei.value}"
    listing = SweepStore(out).runs()[name]
    assert listing["status"] == "failed" and listing["error"] == res2.failed[name]
    # the store is exactly as it was: provenance, records, checkpoints
    assert _snapshot(path) == before
    assert json.loads(xr.open_zarr(str(path)).attrs["protocol"])["training"]["batch_size"] == 16

    # the original protocol still continues it (a longer schedule is not an edit)
    res3 = execute(expand(raw), out, client, echo=_quiet)
    if killed:
        assert res3.finished == [name] and not res3.failed
        assert [float(e) for e in xr.open_zarr(str(path))["epoch"].values] == [0.0, 1.0, 2.0]
    else:
        assert res3.skipped == [name]
    assert SweepStore(out).runs()[name]["status"] == "finished"


def test_run_is_done_needs_the_same_protocol_up_to_the_schedule():
    proto = {"name": "a", "training": {"epochs": 4, "max_steps": 0, "batch_size": 16},
             "recording": {"out": "/x/runs/a"}}
    fin = {"status": "finished", "stopped": "epochs", "protocol": json.dumps(proto)}
    same = {**copy.deepcopy(proto), "name": "b", "recording": {"out": "elsewhere"}}
    assert run_is_done(fin, same)  # name and recording.out may differ
    edited = copy.deepcopy(proto)
    edited["training"]["batch_size"] = 8
    assert not run_is_done(fin, edited)
    early = {**fin, "stopped": "early stop (zero train error)"}
    assert run_is_done(early, proto) and not run_is_done(early, edited)
    # a run stopped by max_steps is done unless the step limit grew or was lifted
    capped = copy.deepcopy(proto)
    capped["training"]["max_steps"] = 10
    at_cap = {**fin, "stopped": "max_steps 10", "protocol": json.dumps(capped)}
    assert run_is_done(at_cap, capped)
    assert not run_is_done(at_cap, _edited(capped, max_steps=20))
    assert not run_is_done(at_cap, _edited(capped, max_steps=0))
    assert run_is_done(at_cap, _edited(capped, max_steps=5))


def test_an_interrupted_sweep_lists_finished_runs_as_finished(client, tmp_path):
    raw = tiny({"optimizer.lr": [1e-3, 3e-4]})
    sw = expand(raw)
    out = tmp_path / "sw.zarr"
    store = SweepStore(out)

    def all_finished():
        return all((store.run_attrs(r.name) or {}).get("status") == "finished" for r in sw.runs)

    def ctrl_c_after_first_result(line):
        """Ctrl-C while the driver reports its first result, once every run has finished: the
        other run's end was never seen by the driver."""
        if line.startswith(("  finished", "  FAILED")):
            deadline = time.time() + 120
            while not all_finished() and time.time() < deadline:
                time.sleep(0.05)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(sw, out, client, echo=ctrl_c_after_first_result)
    assert all_finished()
    runs = store.runs()
    for r in sw.runs:
        ds = xr.open_zarr(str(out / "runs" / r.name))
        assert runs[r.name]["status"] == "finished", (r.name, runs[r.name])
        assert runs[r.name]["test_error"] == float(ds["test_error"][-1])
        assert runs[r.name]["train_error"] == float(ds["train_error"][-1])
        assert runs[r.name]["epochs"] == 2
    # the next invocation skips both
    res = execute(sw, out, client, echo=_quiet)
    assert sorted(res.skipped) == sorted(r.name for r in sw.runs)


def test_protocol_differences_look_inside_lists():
    """A key newer than the store inside a list entry (circuit.layers[i]) at its empty default is
    no difference; a changed value there is named down to the entry."""
    from neurosim.recording.session import protocol_differences

    old = {"circuit": {"layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 4}]}}
    new = {"circuit": {"layers": [{"type": "dense", "units": 8, "nonlinearity": None},
                                  {"type": "dense", "units": 4, "nonlinearity": None}]}}
    assert protocol_differences(old, new) == []
    new["circuit"]["layers"][1]["units"] = 5
    assert protocol_differences(old, new) == ["circuit.layers[1].units"]

    class Store:  # what check_resumable reads of a recorder
        path = "run.zarr"
        attrs = {"protocol": json.dumps(old)}

    with pytest.raises(StoreError, match=r"circuit.layers\[1\].units: store has 4, given 5"):
        check_resumable(new, Store())
    new["circuit"]["layers"].append({"type": "dense", "units": 1})
    assert protocol_differences(old, new) == ["circuit.layers"]
