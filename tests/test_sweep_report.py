"""The sweep report: paper layout, mean ± std over seeds, 2-std flags, curves (fake stores with
known numbers, no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from neurosim.analysis.sweep_report import (
    COLUMNS,
    collect,
    mean_curve,
    paper_cell,
    published_tables,
    report_sweep,
    summarize,
)

_FIRST_LAYER = {"fc": "dense", "conv": "conv2d", "lc": "locally_connected2d"}


def _proto(rule, vec, sign, arch="mnist_fc", dataset="mnist", epochs=190):
    """A validated protocol's shape: the circuit's layers as the file defines them."""
    first = _FIRST_LAYER[arch.split("_")[-1]]
    return {"name": "x", "rule": {"name": rule}, "data": {"dataset": dataset},
            "training": {"epochs": epochs},
            "circuit": {"name": arch, "vectorized": vec, "sign": sign,
                        "layers": [{"type": first, "channels": 4}, {"type": "dense", "units": 4}]}}


def _fake_sweep(path, runs):
    """runs: list of (cell, seed, protocol, epochs, test_errors, train_errors, status)."""
    g = zarr.open_group(str(path), mode="w")
    listing = {}
    for cell, seed, proto, epochs, te, tr, status in runs:
        name = f"{cell},seed={seed}"
        ds = xr.Dataset({"test_error": ("epoch", np.asarray(te, float)),
                         "train_error": ("epoch", np.asarray(tr, float))},
                        coords={"epoch": np.asarray(epochs, float)},
                        attrs={"protocol": json.dumps(proto), "status": status})
        ds.to_zarr(str(path / "runs" / name), mode="w", consolidated=True)
        listing[name] = {"cell": cell, "seed": seed, "status": status, "store": f"runs/{name}",
                         "error": "ValueError: boom" if status == "failed" else None}
    g.attrs.update({"kind": "sweep", "name": "fake", "runs": listing})


def test_paper_cells_map_rule_sign_and_architecture():
    assert paper_cell(_proto("gevb", True, "nonnegative")) == ("mnist", "FC-Vec", 0)
    assert paper_cell(_proto("bp", True, "nonnegative")) == ("mnist", "FC-Vec", 1)
    assert paper_cell(_proto("gevb", True, "mixed")) == ("mnist", "FC-Vec", 2)
    assert paper_cell(_proto("bp", False, "mixed")) == ("mnist", "FC", 3)
    assert paper_cell(_proto("dfa", False, "nonnegative", "cifar10_lc", "cifar10_partial")) == \
        ("cifar10", "LC", 0)
    assert paper_cell(_proto("bp", True, "mixed", "mnist_conv")) == ("mnist", "Conv-Vec", 3)
    assert paper_cell(_proto("dfa", True, "mixed")) is None  # DFA on a VNN is no paper cell
    assert paper_cell(_proto("gevb", True, "mixed", dataset="synthetic")) is None
    pub = published_tables()
    assert pub["mnist"]["FC-Vec"][0] == (1.87, 0.06) and pub["cifar10"]["Conv"][3][0] == 28.80
    assert COLUMNS == ["GEVB/DFA+", "BP+", "GEVB/DFA", "BP"]


def test_mean_curve_carries_an_early_stop_forward():
    runs = [{"epoch": np.array([0.0, 10, 20]), "test_error": np.array([90.0, 4, 2])},
            {"epoch": np.array([0.0, 10]), "test_error": np.array([80.0, 6])}]  # stopped at 10
    x, m, s = mean_curve(runs, "test_error")
    assert list(x) == [0, 10, 20]
    np.testing.assert_allclose(m, [85, 5, 4])
    np.testing.assert_allclose(s, [5, 1, 2])


def test_report_table_in_paper_layout_with_flags(tmp_path):
    p = tmp_path / "sw.zarr"
    gevb = _proto("gevb", True, "nonnegative")
    bp = _proto("bp", False, "mixed")
    _fake_sweep(p, [
        ("gevbcell", 0, gevb, [0, 10, 20], [90, 3, 1.8], [90, 2, 0.1], "finished"),
        ("gevbcell", 1, gevb, [0, 10], [90, 2.0], [90, 0.0], "finished"),  # stopped early
        ("bpcell", 0, bp, [0, 10], [90, 3.0], [90, 0.5], "finished"),
        ("bpcell", 1, bp, [0, 10], [90, 3.2], [90, 0.7], "finished"),
        ("bpcell", 2, bp, [0], [90], [90], "failed"),
    ])
    cells = {c["cell"]: c for c in summarize(collect(p))}
    g = cells["gevbcell"]
    assert g["finished"] == 2 and g["row"] == "FC-Vec" and g["column"] == "GEVB/DFA+"
    assert g["test_error_mean"] == pytest.approx(1.9)
    assert g["test_error_std"] == pytest.approx(np.std([1.8, 2.0], ddof=1))
    assert g["train_error_mean"] == pytest.approx(0.05)
    assert not g["outside_2std"]  # 1.87 within 1.9 ± 2·0.14
    b = cells["bpcell"]
    assert (b["finished"], b["failed"], b["row"], b["column"]) == (2, 1, "FC", "BP")
    assert b["outside_2std"]  # 1.29 far outside 3.1 ± 2·0.14

    files = report_sweep(p, tmp_path / "rep")
    names = {f.name for f in files}
    assert {"cells.csv", "cells.md", "table_mnist.md", "failed.md", "curves_mnist_FC-Vec.png",
            "curves_mnist_FC.png"} <= names
    table = (tmp_path / "rep" / "table_mnist.md").read_text().splitlines()
    fcvec = next(ln for ln in table if ln.startswith("| FC-Vec |"))
    cols = [c.strip() for c in fcvec.strip("|").split("|")]
    assert cols[0] == "FC-Vec"
    assert cols[1].startswith("1.90 ± 0.14 (0.05)") and cols[2] == "1.87 (0.06)"
    assert cols[3] == "—" and cols[4] == "1.93 (0.05)"
    fc = next(ln for ln in table if ln.startswith("| FC |"))
    cols = [c.strip() for c in fc.strip("|").split("|")]
    assert cols[7].startswith("3.10 ± 0.14 (0.60)") and "**!**" in cols[7] and cols[8] == "1.29"
    assert [ln.split("|")[1].strip() for ln in table if ln.startswith("| ") and "---" not in ln][1:] == \
        ["FC-Vec", "FC", "Conv-Vec", "Conv", "LC-Vec", "LC"]
    assert "ValueError: boom" in (tmp_path / "rep" / "failed.md").read_text()
    # the metrics helper's `neurosim report` dispatches on this root attr
    assert zarr.open_group(str(p), mode="r").attrs["kind"] == "sweep"


def test_two_cells_in_one_paper_cell_are_both_shown(tmp_path):
    p = tmp_path / "sw.zarr"
    gevb = _proto("gevb", True, "nonnegative")
    fast = {**gevb, "optimizer": {"lr": 1e-3}}  # another key varies: another sweep cell
    _fake_sweep(p, [("lr=0.0003", 0, gevb, [0, 10], [90, 3.0], [90, 2.0], "finished"),
                    ("lr=0.001", 0, fast, [0, 10], [90, 2.5], [90, 1.0], "finished")])
    report_sweep(p, tmp_path / "rep")
    table = (tmp_path / "rep" / "table_mnist.md").read_text()
    fcvec = next(ln for ln in table.splitlines() if ln.startswith("| FC-Vec |"))
    assert "lr=0.0003: 3.00 (2.00) n=1" in fcvec and "lr=0.001: 2.50 (1.00) n=1" in fcvec


def test_runs_csv_one_row_per_run_finished_or_not(tmp_path):
    """runs.csv: paper coordinates, the last checkpoint's numbers and why each run stopped."""
    import csv

    p = tmp_path / "sw.zarr"
    dfa = _proto("dfa", False, "nonnegative")
    gevb = _proto("gevb", True, "nonnegative")
    _fake_sweep(p, [
        ("dfacell", 0, dfa, [0, 10, 20], [90, 3, 1.8], [90, 2, 0.1], "finished"),
        ("dfacell", 1, dfa, [0, 10], [90, 2.5], [90, 1.5], "running"),  # killed mid-run
        ("gevbcell", 0, gevb, [0, 10], [90, 2.0], [90, 0.0], "finished"),
    ])
    # the early stop is the run's own record; a queued seed has no store yet
    g = zarr.open_group(str(p / "runs" / "gevbcell,seed=0"), mode="a")
    g.attrs["stopped"] = "early stop (zero train error)"
    root = zarr.open_group(str(p), mode="a")
    listing = dict(root.attrs["runs"])
    listing["dfacell,seed=2"] = {"cell": "dfacell", "seed": 2, "status": "queued",
                                 "store": "runs/dfacell,seed=2", "error": None}
    root.attrs["runs"] = listing
    report_sweep(p, tmp_path / "rep")
    with open(tmp_path / "rep" / "runs.csv") as f:
        rows = {(r["cell"], r["seed"]): r for r in csv.DictReader(f)}
    assert list(next(iter(rows.values())))[:8] == [
        "architecture", "rule", "sign", "seed", "epochs", "train_error", "test_error", "stop_reason"]
    done = rows["dfacell", "0"]
    assert (done["architecture"], done["rule"], done["sign"]) == ("fc", "dfa", "nonnegative")
    assert (float(done["epochs"]), float(done["test_error"]), float(done["train_error"])) == (20, 1.8, 0.1)
    assert done["stop_reason"] == "epochs"
    assert rows["gevbcell", "0"]["architecture"] == "fc_vec"
    assert rows["gevbcell", "0"]["stop_reason"] == "early_stop"
    cut = rows["dfacell", "1"]
    assert (cut["stop_reason"], float(cut["epochs"]), float(cut["test_error"])) == ("unfinished", 10, 2.5)
    queued = rows["dfacell", "2"]
    assert (queued["architecture"], queued["rule"], queued["stop_reason"], queued["epochs"]) == \
        ("fc", "dfa", "queued", "")
