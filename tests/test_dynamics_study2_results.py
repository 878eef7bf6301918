"""The results script of the second dynamics study (docs/results/dynamics_study2.py): its
merge of sweep stores into the committed CSVs — rows keyed by run name, kept across sessions,
updated when a store is read again, unfinished runs listed and not written — and the
``--missing`` patterns, on a small sweep store trained here (a few seconds)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml

from neurosim.recording import Recorder
from neurosim.sweep import SweepStore, expand, load_sweep
from neurosim.sweep.execute import run_one

ROOT = Path(__file__).resolve().parent.parent

DYN = {"dt_ms": 1.0, "presentation_ms": 5.0, "settle_ms": 1.0, "interval_ms": 0.0,
       "neurons": {"tau_m_ms": 0.0}, "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 2.0},
       "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0}}
RAW = {
    "name": "tiny_study",
    "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                "layers": [{"type": "dense", "units": 6}]},
    "realization": {"type": "grouped", "dynamics": DYN},
    "rule": {"name": "gevb"},
    "data": {"dataset": "synthetic", "options": {"n_train": 32, "n_test": 16, "shape": [1, 3, 3]}},
    "training": {"epochs": 2, "batch_size": 16, "eval_every": 1},
    "recording": {"trajectories": {"every": 2, "samples": 1, "units": 2, "synapses": 2}},
    "sweep": {"cases": [
        {"description": "g-ref"},
        {"description": "g-noise0.1", "realization.dynamics.neuromodulator.noise": 0.1},
        {"description": "bp", "realization": {"type": "batched"}, "rule.name": "bp",
         "recording.trajectories.every": 0}]},
    "seeds": [0, 1],
}


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("dynamics_study2", ROOT / "docs" / "results" /
                                                  "dynamics_study2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _store(path: Path, names) -> dict:
    """A sweep store of RAW listing every run, with the runs ``names`` trained (run by run, in
    this process, as a sweep's worker runs them); returns ``{name: run}`` of the whole sweep."""
    sw = expand(RAW)
    store = SweepStore(path)
    store.create_or_open(sw)
    store.update_runs({r.name: {"cell": r.cell, "overrides": r.overrides, "seed": r.overrides["seed"],
                                "store": f"runs/{r.name}", "status": "queued", "error": None}
                       for r in sw.runs})
    for r in sw.runs:
        if r.name in names:
            proto = dict(r.protocol, recording={**r.protocol["recording"],
                                                "out": str(store.run_path(r.name))})
            res = run_one(proto, proto["recording"]["out"])
            assert res["status"] == "finished", res
            store.update_runs({r.name: res})
    return {r.name: r for r in sw.runs}


def _read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_merge_keeps_updates_and_lists(script, tmp_path, capsys):
    runs = _store(tmp_path / "a.zarr", [])  # the names only
    by = {(r.overrides["description"], r.overrides["seed"]): n for n, r in runs.items()}
    ref0, bp0, noise0 = by["g-ref", 0], by["bp", 0], by["g-noise0.1", 0]
    _store(tmp_path / "s1.zarr", [ref0, bp0, noise0])
    # the noise run is "killed" mid-run: its store says running
    Recorder(tmp_path / "s1.zarr" / "runs" / noise0).set_attrs(status="running")
    out = tmp_path / "out"
    out.mkdir()
    said = []
    rows, unfinished = script.update([tmp_path / "s1.zarr"], out, echo=said.append)
    table = _read(out / script.RUNS_CSV)
    assert {r["run"] for r in table} == {ref0, bp0}
    assert {u[0] for u in unfinished} == set(runs) - {ref0, bp0}  # listed, not written
    assert any(noise0 in s and "running" in s for s in said)
    row = {r["case"]: r for r in table}
    g, b = row["g-ref"], row["bp"]
    assert (g["circuit"], g["item"], b["circuit"], b["item"]) == ("grouped", "5", "batched", "5")
    # the values are the store's (read independently with xarray)
    import xarray as xr

    ds = xr.open_zarr(str(tmp_path / "s1.zarr" / "runs" / ref0))
    assert float(g["test_error"]) == pytest.approx(float(ds["test_error"][-1]), abs=1e-5)
    assert float(g["best_test_error"]) == pytest.approx(float(ds["test_error"].min()), abs=1e-5)
    assert int(g["steps"]) == 4 and float(g["epochs"]) == 2.0
    assert float(g["mean_rate_hz"]) == pytest.approx(float(ds["mean_rate"].values[:, :-1].mean()), abs=1e-4)
    assert float(g["spikes_per_window"]) == pytest.approx(20.0 * 4e-3)  # r0 x (5 - 1) ms
    assert b["mean_rate_hz"] == "" and b["spikes_per_window"] == ""
    curves = _read(out / script.CURVES_CSV)
    assert sorted((c["case"], float(c["epoch"])) for c in curves) == sorted(
        (c, e) for c in ("g-ref", "bp") for e in (0.0, 1.0, 2.0))

    # a later session: the CSV holds a row of an earlier session's store (not in this store)
    # and a stale value of a run this store holds again
    old = dict(g, run="description=g-ref,old-session,seed=7", seed="7", test_error="55.5")
    table[0 if table[0]["case"] == "g-ref" else 1]["test_error"] = "999"
    script.write_csv(out / script.RUNS_CSV, table + [old], script.COLUMNS)
    script.write_csv(out / script.CURVES_CSV, curves + [{"case": "g-ref", "seed": "7", "epoch": "0.0",
                                                         "test_error": "88", "train_error": "88",
                                                         "run": old["run"]}], script.CURVE_COLUMNS)
    ref1 = by["g-ref", 1]
    _store(tmp_path / "s2.zarr", [ref1])
    script.update([tmp_path / "s1.zarr", tmp_path / "s2.zarr"], out, echo=lambda s: None)
    table2 = {r["run"]: r for r in _read(out / script.RUNS_CSV)}
    assert set(table2) == {ref0, ref1, bp0, old["run"]}  # kept (bp0, old) and added (ref1)
    assert table2[old["run"]]["test_error"] == "55.5"
    assert table2[ref0]["test_error"] != "999"  # updated from the store read again
    assert table2[bp0] == row["bp"]
    curves2 = _read(out / script.CURVES_CSV)
    assert sum(c["run"] == ref0 for c in curves2) == 3  # replaced, not appended
    assert sum(c["run"] == old["run"] for c in curves2) == 1

    # --missing: patterns that select exactly the runs not in the CSV
    proto = tmp_path / "tiny_study.yaml"
    proto.write_text(yaml.safe_dump(RAW, sort_keys=False))
    pats = script.missing_patterns(list(table2.values()), proto)
    sw = load_sweep(proto, validate=False)
    assert {r.name for r in sw.select(pats)} == set(runs) - {ref0, ref1, bp0}
    assert "description=g-noise0.1,*" in pats  # a case with no run yet: one pattern
    # the command line prints them
    assert script.main(["--out", str(out), "--missing", "--protocol", str(proto)]) == 0
    assert "--only 'description=g-noise0.1,*'" in capsys.readouterr().out
    # the figures are drawn from the CSVs alone (the stores are gone), cases not run marked
    import shutil

    for s in ("s1.zarr", "s2.zarr"):
        shutil.rmtree(tmp_path / s)
    assert script.main(["--out", str(out), "--figures"]) == 0
    for name in ("curves", "spikes", "noise", "temporal", "crosstalk"):
        assert (out / f"dynamics_study2_{name}.png").stat().st_size > 10_000


def test_bad_input_is_one_line(script, tmp_path, capsys):
    assert script.main([str(tmp_path / "nothing.zarr"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a sweep store" in err
    assert script.main(["--out", str(tmp_path / "absent"), "--missing"]) == 2


def test_items_and_levels_of_the_study_protocol(script):
    """Every case of the study protocol has an item; its level is the value the case varies."""
    sw = load_sweep(script.PROTOCOL, validate=False, only=["*seed=0"])
    from neurosim.sweep import load_sweep as _ls  # (validated: the resolved protocols)

    full = _ls(script.PROTOCOL, only=[r.name for r in sw.runs])
    d = {x["case"]: x for x in (script.describe(r.protocol) for r in full.runs)}
    assert all(x["item"] in (1, 2, 3, 4, 5, 6) for x in d.values()), d
    assert d["g-poisson-r320"]["level"] == pytest.approx(9.6)
    assert d["g-lif-r100-p320"]["level"] == pytest.approx(30.0)
    assert d["g-noise0.3"]["level"] == 0.3 and d["g-xt0.95"]["level"] == 0.95
    assert d["t-b250-d100"]["level"] == "250/100"
