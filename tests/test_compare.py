"""``neurosim compare`` on two tiny synthetic circuit runs (+ a batched one)."""

from __future__ import annotations

import numpy as np
import yaml
from click.testing import CliRunner

from neurosim.cli import main


def _protocol(tmp_path, name, realization):
    p = {
        "name": name,
        "circuit": {"vectorized": True, "layers": [{"type": "dense", "units": 8}]},
        "realization": realization,
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 16, "eval_every": 1},
        "recording": {"out": str(tmp_path / f"{name}.zarr"),
                      "trajectories": {"every": 2, "samples": 2, "units": 4, "snapshot_every": 4}},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def test_compare_two_circuit_runs(tmp_path):
    cli = CliRunner()
    stores = []
    for name, real in (("g", {"type": "grouped", "relaxation": {"schedule": "per_epoch"}}),
                       ("t", {"type": "temporal", "gating": "first_bin"})):
        res = cli.invoke(main, ["run", str(_protocol(tmp_path, name, real)), "--quiet"])
        assert res.exit_code == 0, res.output
        stores.append(str(tmp_path / f"{name}.zarr"))
    png = tmp_path / "cmp.png"
    res = cli.invoke(main, ["compare", *stores, "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "test_error" in out and "update_cosine" in out and "spatial_fraction" in out
    assert png.exists() and png.stat().st_size > 10_000
    from neurosim.analysis.compare import load_run, summary

    g, t = (summary(load_run(s)) for s in stores)
    assert g["checkpoints"] == 2 and t["checkpoints"] == 2  # initial + 1 epoch
    assert g["spatial_fraction"] > 0.999 and t["spatial_fraction"] < 1e-9
    assert g["synapse_spread_max"] > 0 and t["synapse_spread_max"] == 0
    assert 0 < t["update_cosine"] < 1.0 - 1e-6  # first_bin gating is not the network's gating
    # a store without circuit recordings (batched) summarises to NaN
    from neurosim.analysis.compare import RunData

    empty = RunData("x", "x", "batched", "", np.zeros(1), np.ones(1), np.ones(1))
    row = summary(empty)
    assert row["update_cosine"] != row["update_cosine"] and row["test_error"] == 1.0


def test_compare_needs_two_stores(tmp_path):
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "x.zarr")])
    assert res.exit_code == 2 and "at least two" in res.output
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr")])
    assert res.exit_code == 2 and "not a neurosim store" in res.output
