"""Metrics recorded during a tiny run; ``neurosim report`` and ``neurosim theory`` files."""

from __future__ import annotations

import csv
import json
import sys
import types

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from neurosim.analysis import paper_tables
from neurosim.cli import main
from neurosim.core.options import ConfigError
from neurosim.protocol import validate_protocol
from neurosim.recording import open_store
from neurosim.train import run_protocol


def tiny_protocol(out, rule="gevb", metrics=None, vectorized=True, epochs=2):
    raw = {
        "name": f"tiny_{rule}",
        "circuit": {"vectorized": vectorized, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": 8}, {"type": "dense", "units": 6}]},
        "rule": {"name": rule},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "n_classes": 4,
                                                       "shape": [1, 4, 4]}},
        "training": {"epochs": epochs, "batch_size": 16, "eval_every": 1},
        "metrics": metrics or {},
        "recording": {"out": str(out)},
    }
    return validate_protocol(raw)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    a = d / "gevb.zarr"
    run_protocol(tiny_protocol(a, "gevb", {"every": 3}), out=str(a))
    b = d / "bp.zarr"
    run_protocol(tiny_protocol(b, "dfa", vectorized=False, epochs=1), out=str(b))
    return a, b


def test_metrics_section_is_validated(tmp_path):
    with pytest.raises(ConfigError, match="metrics.evry"):
        tiny_protocol(tmp_path / "x.zarr", metrics={"evry": 3})
    with pytest.raises(ConfigError, match="metrics.every"):
        tiny_protocol(tmp_path / "x.zarr", metrics={"every": -1})
    p = tiny_protocol(tmp_path / "x.zarr")
    assert p["metrics"]["every"] == 0  # off by default


def test_metrics_recorded_with_step_and_layer_dims(stores):
    ds = open_store(stores[0])
    # 2 epochs x 4 batches = 8 steps; metric steps 1, 3, 6
    assert list(ds["step"].values) == [1, 3, 6]
    assert list(ds["layer"].values) == [0, 1, 2]
    assert list(ds["readout"].values) == [False, False, True]
    assert list(ds["exact"].values) == [False, False, True]
    for v in ("alignment_angle", "update_angle", "r", "predicted_angle", "sign_match_batch",
              "sign_match_example", "on_off_drift"):
        assert ds[v].dims == ("step", "layer"), v
    ang = ds["alignment_angle"].values
    assert np.all(ang[:, 2] == 0) and np.all((ang[:, :2] > 0) & (ang[:, :2] < 90))
    # GEVB: angle = atan(r) (appendix E) and sign match per example = 1 (sec. 3.3)
    np.testing.assert_allclose(ang, ds["predicted_angle"].values, rtol=1e-5)
    np.testing.assert_array_equal(ds["sign_match_example"].values, 1.0)
    assert ds["on_off_drift"].values[0, 0] == pytest.approx(0, abs=1e-6)  # before the 1st update
    assert ds["epoch_at_step"].values[-1] == pytest.approx(1.5)


def test_no_metrics_when_off(stores):
    ds = open_store(stores[1])
    assert "alignment_angle" not in ds and "step" not in ds.dims


def test_report_files_and_rows(stores, tmp_path):
    a, b = stores
    # pretend the GEVB store is an MNIST FC-Vec run: cells are matched from the attrs
    proto = json.loads(zarr.open_group(str(a), mode="r").attrs["protocol"])
    proto["data"]["dataset"] = "mnist"
    c = tmp_path / "mnist_like.zarr"
    import shutil

    shutil.copytree(a, c)
    from neurosim.recording import Recorder

    Recorder(c).set_attrs(protocol=json.dumps(proto))  # (an edit by zarr would break the seal)

    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(a), str(b), str(c), "--out", str(out)])
    assert res.exit_code == 0, res.output
    for f in ("summary.md", "summary.csv", "learning_curves.png", "alignment.png", "alignment.csv",
              "cells.csv"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [r["name"] for r in rows] == ["tiny_gevb", "tiny_dfa", "tiny_gevb"]
    assert rows[0]["paper_cell"] == "" and rows[1]["paper_cell"] == ""  # synthetic: no published cell
    assert rows[2]["paper_cell"] == "MNIST FC-Vec GEVB/DFA+"
    # three cells (a and c differ in their dataset), each of one run
    assert [r["cell"] for r in rows] == ["tiny_gevb (data.dataset=synthetic)", "tiny_dfa",
                                         "tiny_gevb (data.dataset=mnist)"]
    cells = list(csv.DictReader(open(out / "cells.csv")))
    assert [(c["cell"], c["n"]) for c in cells] == [(rows[0]["cell"], "1"), ("tiny_dfa", "1"),
                                                     (rows[2]["cell"], "1")]
    assert float(rows[2]["paper_test_error"]) == 1.87 and float(rows[2]["paper_train_error"]) == 0.06
    ds = open_store(a)
    assert float(rows[0]["test_error"]) == pytest.approx(float(ds["test_error"].values[-1]))
    md = (out / "summary.md").read_text()
    assert md.count("\n| tiny_") == 3 and "1.87" in md  # one line per cell
    assert all(f"\n| {label} | tiny_" in md for label in ("gevb", "bp", "mnist_like"))  # per run
    al = list(csv.DictReader(open(out / "alignment.csv")))
    assert [int(r["layer"]) for r in al] == [0, 1, 0, 1]  # hidden layers of the two metric stores


def test_report_cluster_quality(stores, tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["report", str(stores[0]), "--out", str(out), "--cluster",
                                    "--cluster-examples", "32", "--cluster-method", "pca"])
    assert res.exit_code == 0, res.output
    row = next(csv.DictReader(open(out / "summary.csv")))
    assert row["cluster_layer"] == "1"
    q0, q1 = float(row["cluster_quality_init"]), float(row["cluster_quality_final"])
    assert -1 < q0 < 1 and -1 < q1 < 1 and q0 != q1


def test_report_dispatches_sweep_stores(tmp_path, monkeypatch):
    sweep = tmp_path / "sw.zarr"
    zarr.open_group(str(sweep), mode="w").attrs["kind"] = "sweep"
    calls = []
    mod = types.ModuleType("neurosim.analysis.sweep_report")
    mod.report_sweep = lambda path, out_dir: calls.append((path, out_dir)) or []
    monkeypatch.setitem(sys.modules, "neurosim.analysis.sweep_report", mod)
    res = CliRunner().invoke(main, ["report", str(sweep), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert calls == [(str(sweep), str(tmp_path / "o"))]


def test_report_bad_store_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a neurosim store" in res.output


def test_paper_cells():
    k = paper_tables.cell("cifar10", ["conv2d", "avg_pool2d", "dense"], False, "nonnegative", "dfa")
    assert k == ("CIFAR-10", "Conv", "GEVB/DFA", "nonnegative")
    assert paper_tables.lookup(k) == {"test": 54.18, "train": 48.43}
    k = paper_tables.cell("mnist", ["locally_connected2d", "dense"], True, "mixed", "bp")
    assert paper_tables.lookup(k)["test"] == 1.44
    assert paper_tables.cell("mnist", ["dense"], True, "nonnegative", "dfa") is None  # not run
    assert paper_tables.cell("mnist", ["dense"], False, "mixed", "fa") is None
    assert len(paper_tables.PAPER) == 48  # 2 datasets x 6 rows x 4 columns


def test_theory_command(tmp_path):
    circ = tmp_path / "c.yaml"
    circ.write_text("dataset: synthetic\nvectorized: true\nlayers:\n  - {type: dense, units: 8}\n"
                    "  - {type: dense, units: 8}\n")
    out = tmp_path / "th"
    res = CliRunner().invoke(main, ["theory", str(circ), "--widths", "16,64", "--out", str(out),
                                    "--examples", "8"])
    assert res.exit_code == 0, res.output
    for f in ("theory.csv", "theory.md", "theory.png"):
        assert (out / f).is_file()
    rows = list(csv.DictReader(open(out / "theory.csv")))
    assert [(int(r["width"]), int(r["hidden_layer"])) for r in rows] == [(16, 1), (16, 2), (64, 1),
                                                                          (64, 2)]
    last = [r for r in rows if r["hidden_layer"] == "2"]
    for r in last:  # δ̂^{L-1} = w^L: exact
        assert float(r["r_measured"]) == pytest.approx(float(r["r_predicted"]), rel=1e-9)
    res = CliRunner().invoke(main, ["theory", str(circ), "--widths", "a,b"])
    assert res.exit_code == 2


def test_store_opens_as_plain_xarray(stores):
    ds = xr.open_zarr(str(stores[0]))
    assert ds["alignment_angle"].attrs["units"] == "deg"
