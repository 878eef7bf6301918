"""The sweep store: writer debris of killed workers (lock files, temporaries) is removed so the
hierarchy reads without warnings, live writers are left alone, and an unseen run's listing
follows its own store."""

from __future__ import annotations

import fcntl
import os
import warnings

import numpy as np
import xarray as xr
import zarr

from neurosim.sweep import SweepStore, expand
from tests.test_sweep import tiny


def _walk(path):
    """Read the whole hierarchy, as a Zarr reader walking it does."""
    g = zarr.open_group(str(path), mode="r", use_consolidated=False)
    return [k for k, _ in g.members(max_depth=None)]


def _run_store(path, status, errors=None, **attrs):
    if errors is not None:
        ds = xr.Dataset({"test_error": ("epoch", np.asarray(errors[0], float)),
                         "train_error": ("epoch", np.asarray(errors[1], float))},
                        coords={"epoch": np.arange(len(errors[0]))})
        ds.to_zarr(str(path), mode="w", consolidated=True)
    g = zarr.open_group(str(path), mode="a", use_consolidated=False)
    g.attrs.update({"status": status, **attrs})
    zarr.consolidate_metadata(str(path))


def test_stale_writer_files_are_removed_and_the_hierarchy_reads_without_warnings(tmp_path):
    out = tmp_path / "sw.zarr"
    sw = expand(tiny({"optimizer.lr": [1e-3]}), validate=False)
    store = SweepStore(out)
    store.create_or_open(sw)
    runs = out / "runs"
    for name in ("a", "b.c", "live"):
        _run_store(runs / name, "running")
    (runs / "a.lock").write_text("12345\n")  # a worker killed while writing
    (runs / "b.c.lock").write_text("")  # killed between creating and filling its lock
    (runs / ".b.c.0123456789ab.zarr.json.partial").write_text("{")  # killed in a root write
    (runs / "never.lock").write_text("7\n")  # killed before creating its store
    (runs / "notes.lock").write_text("not a lock file\n")  # not ours: kept
    fd = os.open(runs / "live.lock", os.O_RDWR | os.O_CREAT)  # a live writer (another holder)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"999\n")
    (runs / ".live.0123456789ab.zarr.json.partial").write_text("{")  # the live writer's
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            SweepStore(out).create_or_open(sw)  # the driver opening the store again
        left = sorted(p.name for p in runs.iterdir())
        assert left == [".live.0123456789ab.zarr.json.partial", "a", "b.c", "live", "live.lock",
                        "notes.lock", "zarr.json"]
        assert (runs / "live.lock").read_text() == "999\n"
    finally:
        os.close(fd)  # the live writer ends (killed: its files stay behind, unlocked)
    (runs / "notes.lock").unlink()
    removed = store.remove_stale_writer_files()
    assert sorted(p.name for p in removed) == [".live.0123456789ab.zarr.json.partial", "live.lock"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(_walk(out)) == ["runs", "runs/a", "runs/b.c", "runs/live"]
        assert store.runs() == {} and store.run_attrs("a")["status"] == "running"


def test_settle_lists_unseen_runs_as_their_stores_say(tmp_path):
    out = tmp_path / "sw.zarr"
    store = SweepStore(out)
    store.create_or_open(expand(tiny({"optimizer.lr": [1e-3]}), validate=False))
    runs = out / "runs"
    _run_store(runs / "fin", "finished", ([90.0, 40.0, 25.0], [88.0, 30.0, 20.0]), stopped="epochs")
    _run_store(runs / "div", "diverged", failure="non-finite loss at step 3")
    _run_store(runs / "run", "running")
    _run_store(runs / "int", "interrupted")
    _run_store(runs / "seen", "running")
    names = ["fin", "div", "run", "int", "seen", "never"]
    store.update_runs({n: {"status": "queued", "error": None} for n in names})
    store.update_runs({"seen": {"status": "failed", "error": "KilledWorker"}})  # the driver saw it end
    store.settle(names)
    got = store.runs()
    assert got["fin"] == {"status": "finished", "error": None, "stopped": "epochs", "epochs": 2,
                          "test_error": 25.0, "train_error": 20.0}
    assert got["div"] == {"status": "failed", "error": "non-finite loss at step 3"}
    assert got["run"]["status"] == got["int"]["status"] == "interrupted"
    assert got["seen"] == {"status": "failed", "error": "KilledWorker"}
    assert got["never"] == {"status": "queued", "error": None}  # never started
