"""The store reader, cells (runs that differ only in seed), the report's per-cell table and the
comparison's number formatting — on small stores with known numbers (no training)."""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from neurosim.analysis.cells import group_cells, identity, mean_std
from neurosim.analysis.compare import RunData, agreement_note, report
from neurosim.analysis.reader import decode_attrs, is_sweep, open_run, open_sweep
from neurosim.cli import main
from neurosim.recording import StoreError

BASE = {
    "name": "grouped_mnist", "description": "", "seed": 0, "device": "cpu", "dtype": "float32",
    "circuit": {"name": "mnist_fc", "file": "/x/circuits/mnist_fc.yaml", "vectorized": True,
                "sign": "nonnegative", "layers": [{"type": "dense", "units": 8}]},
    "realization": {"type": "grouped", "relaxation": {"rate": 1.0, "schedule": "every_n", "every": 10}},
    "rule": {"name": "gevb"}, "data": {"dataset": "mnist", "root": None},
    "training": {"epochs": 3, "batch_size": 128},
    "recording": {"out": "runs/grouped_mnist.zarr"}, "metrics": {"every": 0},
}


def proto(**changes):
    """BASE with dotted-key changes."""
    p = copy.deepcopy(BASE)
    for key, v in changes.items():
        node = p
        *parents, last = key.split("__")
        for k in parents:
            node = node[k]
        node[last] = v
    return p


def fake_run(path, protocol, test, train, epochs=None):
    epochs = list(range(len(test))) if epochs is None else epochs
    ds = xr.Dataset({"test_error": ("epoch", np.asarray(test, float), {"units": "%"}),
                     "train_error": ("epoch", np.asarray(train, float), {"units": "%"})},
                    coords={"epoch": np.asarray(epochs, float)},
                    attrs={"protocol": json.dumps(protocol), "status": "finished", "stopped": "epochs",
                           "seed": protocol["seed"], "layers": "[]"})
    ds.to_zarr(str(path), mode="w", consolidated=True)
    return str(path)


@pytest.fixture
def runs(tmp_path):
    return {
        "g0": fake_run(tmp_path / "g0.zarr", proto(), [90, 10, 4.0], [90, 8, 3.0]),
        "g1": fake_run(tmp_path / "g1.zarr", proto(seed=1, recording__out="elsewhere.zarr",
                                                   device="gpu"), [90, 9, 3.5], [90, 7, 2.0]),
        "t0": fake_run(tmp_path / "t0.zarr", proto(name="temporal_mnist", realization={
            "type": "temporal", "gating": "first_bin"}), [90, 12, 3.9], [90, 9, 2.6]),
        "b1": fake_run(tmp_path / "b1.zarr", proto(name="batched", realization={"type": "batched"},
                                                   training__epochs=1), [90, 6.5], [90, 5.5]),
        "b3": fake_run(tmp_path / "b3.zarr", proto(name="batched", realization={"type": "batched"}),
                       [90, 6, 4.0, 3.94], [90, 5, 3.0, 2.0]),
    }


def test_identity_ignores_seed_labels_paths_recording_and_device():
    assert identity(proto()) == identity(proto(seed=7, name="other", description="x", device="gpu",
                                               recording={"out": "a.zarr"}, metrics={"every": 5}))
    assert identity(proto()) == identity(proto(circuit__file="/elsewhere/mnist_fc.yaml"))
    assert identity(proto()) != identity(proto(realization__relaxation={"rate": 0.5}))
    assert identity(proto()) != identity(proto(training__epochs=1))
    assert identity(proto()) != identity(proto(dtype="float64"))


def test_cells_group_only_seeds_and_tell_same_names_apart(runs):
    stores = [open_run(runs[k]) for k in ("g0", "t0", "g1", "b1", "b3")]
    cells = group_cells(stores, lambda r: r.protocol, lambda r: r.name)
    assert [(c.label, [r.label for r in c.members]) for c in cells] == [
        ("grouped_mnist", ["g0", "g1"]),
        ("temporal_mnist", ["t0"]),
        ("batched (training.epochs=1)", ["b1"]),
        ("batched (training.epochs=3)", ["b3"]),
    ]
    m, s = mean_std([4.0, 3.5])
    assert m == 3.75 and s == pytest.approx(np.std([4.0, 3.5], ddof=1))
    assert mean_std([4.0])[0] == 4.0 and np.isnan(mean_std([4.0])[1])  # one run: no spread


def test_report_averages_within_cells_only(runs, tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", *runs.values(), "--out", str(out)])
    assert res.exit_code == 0, res.output
    cells = {c["cell"]: c for c in csv.DictReader(open(out / "cells.csv"))}
    assert set(cells) == {"grouped_mnist", "temporal_mnist", "batched (training.epochs=1)",
                          "batched (training.epochs=3)"}
    g = cells["grouped_mnist"]
    assert (g["n"], g["seeds"]) == ("2", "0 1")
    assert float(g["test_error_mean"]) == pytest.approx(3.75)
    assert float(g["test_error_std"]) == pytest.approx(np.std([4.0, 3.5], ddof=1))
    assert float(g["train_error_mean"]) == pytest.approx(2.5)
    t = cells["temporal_mnist"]
    assert t["n"] == "1" and float(t["test_error_mean"]) == 3.9 and t["test_error_std"] == "nan"
    assert cells["batched (training.epochs=1)"]["epochs"] == "1"
    md = (out / "summary.md").read_text()
    assert "| grouped_mnist | 2 | 0 1 | 2 | 3.75 ± 0.35 | 2.50 ± 0.71 |" in md
    assert "| temporal_mnist | 1 | 0 | 2 | 3.90 | 2.60 |" in md  # one run: no ±
    assert (out / "learning_curves.png").stat().st_size > 10_000


def test_reader_decodes_attrs_and_tells_sweeps_from_runs(runs, tmp_path):
    r = open_run(runs["g0"])
    assert r.protocol["realization"]["type"] == "grouped" and r.seed == 0 and r.label == "g0"
    assert r.values("test_error").tolist() == [90, 10, 4.0] and r.last("test_error") == 4.0
    assert r.values("no_such_variable").size == 0 and np.isnan(r.last("no_such_variable"))
    assert decode_attrs({"a": '{"x": [1, 2]}', "b": "[3]", "c": "{not json", "d": 5}) == \
        {"a": {"x": [1, 2]}, "b": [3], "c": "{not json", "d": 5}
    sw = tmp_path / "sw.zarr"
    g = zarr.open_group(str(sw), mode="w")
    fake_run(sw / "runs" / "a,seed=0", proto(), [90, 5], [90, 4])
    g.attrs.update({"kind": "sweep", "name": "s",  # the run listing as a JSON string (netCDF-safe)
                    "runs": json.dumps({"a,seed=0": {"cell": "a", "seed": 0, "status": "running"},
                                        "a,seed=1": {"cell": "a", "seed": 1, "status": "pending"}})})
    assert is_sweep(sw) and not is_sweep(runs["g0"])
    s = open_sweep(sw)
    assert [(e.name, e.cell, e.status, e.run is not None) for e in s.entries] == [
        ("a,seed=0", "a", "finished", True), ("a,seed=1", "a", "pending", False)]
    with pytest.raises(StoreError, match="sweep store"):
        open_run(sw)
    with pytest.raises(StoreError, match="not a sweep store"):
        open_sweep(runs["g0"])
    with pytest.raises(StoreError, match="not a neurosim store"):
        open_run(tmp_path)


def test_compare_formats_numbers_by_column_and_explains_agreement():
    def run(label, real, opts, test, sv, tv, cos):
        return RunData(label, label, real, "", np.array([0.0, 1.0]), np.array([90.0, 3.0]),
                       np.array([90.0, test]), sim_step=np.array([5.0]),
                       update_cosine=np.array([[cos, cos]]), spatial_var=np.array([sv]),
                       temporal_var=np.array([tv]), spread=np.zeros((1, 1)),
                       realization_options=opts)

    g = run("g", "grouped", {"relaxation": {"rate": 1.0, "schedule": "every_n", "every": 10}},
            4.0, 0.05, 0.0, 0.99)
    t = run("t", "temporal", {"gating": "first_bin"}, 3.83, 3.901e-17, 0.04, 0.41)
    f = run("f", "temporal", {"gating": "full"}, 3.9, 2e-18, 0.04, 1.0 - 1e-12)
    text = report([g, t, f])
    assert "e-17" not in text and "e-18" not in text  # round-off of an exact zero shows as 0
    table = text.split("Last checkpoint and circuit recordings:")[1].split("Columns:")[0].splitlines()
    rows = {ln.split()[0]: ln.split() for ln in table[3:] if ln.strip()}
    # run realization checkpoints final_epoch train test cos cos_min spatial temporal fraction ...
    assert rows["g"][3:6] == ["1", "3.00", "4.00"]  # whole epochs as integers, errors as 0.00
    assert rows["t"][5:11] == ["3.83", "0.410", "0.410", "0", "0.04", "0.000"]
    assert rows["f"][6] == "1.000"
    assert "1.000" in text  # gating full: exactly batched GEVB
    assert "gating: full gives 1.000" in text and "different" in text
    assert "drift apart between relaxations (relaxation every 10 steps" in agreement_note(g)
    assert agreement_note(f).startswith("exact") and agreement_note(t).startswith("approximate")


def test_theory_accepts_a_protocol(tmp_path):
    circ = tmp_path / "c.yaml"
    circ.write_text("vectorized: true\nlayers:\n  - {type: dense, units: 8}\n  - {type: dense, units: 8}\n")
    p = tmp_path / "p.yaml"
    p.write_text("circuit: {file: c.yaml, sign: nonnegative, init: on_off}\nrule: {name: gevb}\n"
                 "data: {dataset: synthetic, options: {shape: [1, 8, 8]}}\n")
    out = tmp_path / "th"
    res = CliRunner().invoke(main, ["theory", str(p), "--widths", "16", "--out", str(out),
                                    "--examples", "4"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / "theory.csv")))
    assert [(r["width"], r["hidden_layer"]) for r in rows] == [("16", "1"), ("16", "2")]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(p.read_text() + "seeds: [0, 1]\n")
    res = CliRunner().invoke(main, ["theory", str(sweep)])
    assert res.exit_code == 2 and "sweep protocol" in res.output
