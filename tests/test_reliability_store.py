"""The commit protocol of :class:`neurosim.recording.Recorder`, step by step (no subprocesses).

What a reader sees is exactly the last commit, whatever was appended since (a
kill can land between the variables of one xarray append); ``repair`` brings
the arrays back to it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from neurosim.recording import Recorder, StoreError, commit_record


def record(i, extra=False):
    data = {"loss": ("epoch", [float(i)]), "err": ("epoch", [10.0 * i])}
    if extra:
        data["late"] = ("epoch", [1.0])
    return xr.Dataset(data, coords={"epoch": ("epoch", [float(i)])})


def trace(step):
    return xr.Dataset({"g": (("step", "unit"), np.full((1, 3), float(step)))},
                      coords={"step": ("step", [step])})


@pytest.fixture
def rec(tmp_path):
    r = Recorder(tmp_path / "s.zarr")
    r.create({"title": "t"})
    return r


def visible(r):
    with xr.open_zarr(r.path) as ds:
        return {k: ds[k].values.tolist() for k in ds.variables}


def test_uncommitted_appends_are_invisible_and_repaired(rec):
    rec.append(record(0), "epoch")
    rec.commit_checkpoint({"w": np.arange(3.0), "t": np.array(1)}, {"epoch": 0})
    committed = visible(rec)
    assert committed["loss"] == [0.0]
    # after the commit: one more record, a new variable, a new append dimension
    rec.append(record(1, extra=True), "epoch")
    rec.append(trace(5), "step")
    # ... and a kill between the variables of an append: one array one record longer
    zarr.open_array(rec.store(), path="err", mode="r+").resize((3,))
    assert visible(rec) == committed  # readers see the commit only
    cut = rec.repair()
    assert cut == {"epoch": 1, "err": 2, "loss": 1, "late": "removed", "g": "removed",
                   "step": "removed"}
    assert visible(rec) == committed
    with xr.open_zarr(rec.path, consolidated=False) as ds:  # the files agree now too
        assert ds.sizes["epoch"] == 1 and "late" not in ds and "step" not in ds.dims
    state, info = rec.load_checkpoint()
    assert state["t"].shape == () and int(state["t"]) == 1 and info["epoch"] == 0
    # and the run goes on from there
    rec.append(record(1), "epoch")
    rec.commit_checkpoint({"w": np.arange(3.0) + 1, "t": np.array(2)}, {"epoch": 1})
    assert visible(rec)["loss"] == [0.0, 1.0]


def test_commit_alternates_slots_and_never_touches_the_committed_one(rec):
    slots = []
    for i in range(4):
        rec.append(record(i), "epoch")
        rec.commit_checkpoint({"w": np.full(2, float(i))}, {"epoch": i})
        slots.append(rec.commit["slot"])
        state, info = rec.load_checkpoint()
        assert state["w"].tolist() == [float(i)] * 2 and info["epoch"] == i
    assert slots == ["checkpoint_a", "checkpoint_b"] * 2
    assert rec.commit["records"] == {"epoch": 4}


def test_status_attrs_do_not_publish_uncommitted_records(rec):
    rec.append(record(0), "epoch")
    rec.commit_checkpoint({"w": np.zeros(1)}, {"epoch": 0})
    rec.append(record(1), "epoch")
    rec.set_attrs(status="diverged", failure="x")
    with xr.open_zarr(rec.path) as ds:
        assert ds.sizes["epoch"] == 1 and ds.attrs["status"] == "diverged"
        assert commit_record(ds.attrs)["records"] == {"epoch": 1}


def test_root_metadata_is_written_only_by_the_recorder(rec):
    with pytest.raises(StoreError, match="written only by Recorder"):
        rec.open_group().attrs.update({"x": 1})
    meta = json.loads((rec.path / "zarr.json").read_text())
    assert "x" not in meta["attributes"] and meta["consolidated_metadata"]["kind"] == "inline"


def test_create_refuses_an_existing_store(rec):
    with pytest.raises(StoreError, match="already exists"):
        Recorder(rec.path).create({})


def test_create_replaces_only_a_neurosim_store(tmp_path, rec):
    """``create(replace=True)`` is the only place a store is deleted: it refuses anything else."""
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("keep")
    with pytest.raises(StoreError, match="refusing to replace"):
        Recorder(thesis).create({}, replace=True)
    (tmp_path / "file").write_text("keep")
    with pytest.raises(StoreError, match="refusing to replace"):
        Recorder(tmp_path / "file").create({}, replace=True)
    assert (thesis / "thesis.tex").read_text() == "keep" and (tmp_path / "file").read_text() == "keep"
    rec.append(record(0), "epoch")
    rec.commit_checkpoint({"w": np.zeros(1)}, {"epoch": 0})
    Recorder(rec.path).create({"title": "new"}, replace=True)
    assert Recorder(rec.path).attrs["title"] == "new" and Recorder(rec.path).commit["slot"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "s.zarr", "thesis"]


def test_finish_keeps_the_committed_slot_only(rec):
    for i in range(3):
        rec.append(record(i), "epoch")
        rec.commit_checkpoint({"w": np.full(2, float(i))}, {"epoch": i})
    assert {p.name for p in rec.path.iterdir()} >= {"checkpoint_a", "checkpoint_b"}
    rec.finish(status="finished")
    assert rec.commit["slot"] == "checkpoint_a" and rec.attrs["status"] == "finished"
    assert not (rec.path / "checkpoint_b").exists()
    meta = json.loads((rec.path / "zarr.json").read_text())
    assert not [k for k in meta["consolidated_metadata"]["metadata"] if k.startswith("checkpoint_b")]
    with xr.open_zarr(rec.path) as ds:
        assert ds["loss"].values.tolist() == [0.0, 1.0, 2.0]
    # the run can go on: the next checkpoint recreates the free slot
    rec.append(record(3), "epoch")
    rec.commit_checkpoint({"w": np.full(2, 3.0)}, {"epoch": 3})
    state, info = rec.load_checkpoint()
    assert rec.commit["slot"] == "checkpoint_b" and state["w"].tolist() == [3.0, 3.0]
