"""Sweeps: grid expansion, naming, validation, the sweep store, skip/resume, failures, and a
two-worker dask cluster running a tiny sweep end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from neurosim.core.options import ConfigError
from neurosim.sweep import (
    SweepStore,
    execute,
    expand,
    is_sweep_store,
    load_sweep,
    parse_axes,
    run_is_done,
    sanitise,
)

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "name": "tiny",
    "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                "layers": [{"type": "dense", "units": 6}]},
    "rule": {"name": "gevb"},
    "data": {"dataset": "synthetic", "options": {"n_train": 48, "n_test": 24, "shape": [1, 3, 3]}},
    "training": {"epochs": 2, "batch_size": 16, "eval_every": 1},
}


def tiny(sweep=None, seeds=(0,), **extra):
    raw = copy.deepcopy(BASE)
    raw.update(extra)
    if sweep is not None:
        raw["sweep"] = sweep
    raw["seeds"] = list(seeds)
    return raw


# ---------------------------------------------------------------------------- expansion
def test_grid_zipped_and_cases_expand_in_order_with_readable_names():
    raw = tiny({
        "optimizer.lr": [1e-3, 3e-4],
        "circuit.sign, circuit.init": [["nonnegative", "on_off"], ["mixed", "he"]],
        "cases": [{"rule.name": "gevb", "circuit.vectorized": True},
                  {"rule.name": "dfa", "circuit.vectorized": False}],
    }, seeds=[3, 7])
    sw = expand(raw)
    assert len(sw.runs) == sw.n_total == 2 * 2 * 2 * 2
    names = [r.name for r in sw.runs]
    assert len(set(names)) == len(names)
    assert names[0] == "lr=0.001,sign=nonnegative,init=on_off,rule=gevb,vectorized=true,seed=3"
    assert names[-1] == "lr=0.0003,sign=mixed,init=he,rule=dfa,vectorized=false,seed=7"
    # seed-major: every cell for seed 3 before any run of seed 7
    assert [r.overrides["seed"] for r in sw.runs] == [3] * 8 + [7] * 8
    assert [r.cell for r in sw.runs[:8]] == [r.cell for r in sw.runs[8:]]
    # the values reach the validated protocols
    r = sw.runs[-1]
    p = r.protocol
    assert (p["optimizer"]["lr"], p["circuit"]["sign"], p["circuit"]["init"]) == (3e-4, "mixed", "he")
    assert (p["rule"]["name"], p["circuit"]["vectorized"], p["seed"], p["name"]) == ("dfa", False, 7, r.name)
    # deterministic
    assert [x.name for x in expand(copy.deepcopy(raw)).runs] == names


def test_names_shorten_keys_unless_ambiguous_and_are_file_safe():
    raw = tiny({"optimizer.lr": [1e-3], "data.options": [{"n_train": 40, "noise": 0.5}],
                "training.batch_size": [8]})
    sw = expand(raw)
    assert sw.runs[0].name == "lr=0.001,options=n_train_40-noise_0.5,batch_size=8,seed=0"
    assert sw.runs[0].protocol["data"]["options"] == {"n_train": 40, "noise": 0.5}
    # two keys with the same last component keep their full dotted names
    raw = tiny({"optimizer.eps": [1e-8], "rule.eps": [0.1]})
    assert expand(raw, validate=False).runs[0].name == "optimizer.eps=1e-08,rule.eps=0.1,seed=0"
    assert sanitise("a/b c:*?") == "a_b_c___"
    long = sanitise("x" * 500)
    assert len(long) <= 180 and long != sanitise("x" * 499)


def test_circuit_file_values_compose_with_a_file_reference():
    raw = {"name": "t", "circuit": "mnist_fc.yaml", "rule": {"name": "bp"},
           "data": {"dataset": "synthetic"},
           "sweep": {"circuit.file": ["mnist_fc.yaml"], "circuit.vectorized": [False]}}
    sw = expand(raw, ROOT / "protocols" / "x.yaml")
    (r,) = sw.runs
    assert r.name == "circuit=mnist_fc,vectorized=false,seed=0"
    assert r.protocol["circuit"]["vectorized"] is False
    assert r.protocol["circuit"]["file"].endswith("circuits/mnist_fc.yaml")


def test_only_selects_runs_and_validates_only_those():
    raw = tiny({"rule.name": ["gevb", "nosuchrule"]}, seeds=[0, 1])
    with pytest.raises(ConfigError):
        expand(raw)
    sw = expand(raw, only=["rule=gevb,*"])
    assert [r.name for r in sw.runs] == ["rule=gevb,seed=0", "rule=gevb,seed=1"]
    assert sw.n_total == 4
    assert [r.name for r in expand(raw, only=["seed=1"], validate=False).runs] == \
        ["rule=gevb,seed=1", "rule=nosuchrule,seed=1"]


@pytest.mark.parametrize("sweep, key, words", [
    ({"rule.name": ["gevb"], "circuit.vectorized": [False]}, "rule.name", "vectorized"),
    ({"optimizer.lrr": [1e-3]}, "optimizer.lrr", "did you mean"),
    ({"optimizer.lr": [-1.0]}, "optimizer.lr", "must be"),
    ({"a, b": [[1, 2], [3]]}, "sweep.a, b", "2 values"),
    ({"optimizer.lr": []}, "sweep.optimizer.lr", "non-empty"),
    ({"optimizer.lr": 3e-4}, "sweep.optimizer.lr", "non-empty list"),
    ({"seed": [1, 2]}, "sweep.seed", "seeds"),
    ({"cases": [{"optimizer.lr": 1e-3}], "optimizer.lr": [1e-4]}, "sweep.optimizer.lr", "swept twice"),
    ({"cases": ["rule=bp"]}, "sweep.cases", "mapping"),
    ({"bad key": [1]}, "sweep.bad key", "dotted"),
])
def test_invalid_sweeps_name_the_key(sweep, key, words):
    with pytest.raises(ConfigError) as ei:
        expand(tiny(sweep))
    assert ei.value.key == key
    assert words in str(ei.value)


def test_invalid_expanded_run_error_names_run_file_and_sweep_line(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: s\ncircuit: {layers: [{type: dense, units: 4}]}\nrule: {name: gevb}\n"
                 "data: {dataset: synthetic}\nsweep:\n  circuit.vectorized: [true, false]\nseeds: [0]\n")
    with pytest.raises(ConfigError) as ei:
        load_sweep(f)
    e = ei.value
    assert e.key == "rule.name" and e.line == 3 and str(f) in str(e)  # the rule line
    assert "sweep run 'vectorized=false,seed=0'" in str(e)


def test_bad_seeds():
    for seeds in ([], [0, 0], [-1], ["a"], [True]):
        raw = tiny()
        raw["seeds"] = seeds
        with pytest.raises(ConfigError) as ei:
            expand(raw)
        assert ei.value.key == "seeds"


def test_parse_axes_kinds():
    axes = parse_axes({"a.b": [1, 2], "c.d, e.f": [[1, 2]], "cases": [{"g.h": 1}, {"i.j": 2}]})
    assert [a.keys for a in axes] == [["a.b"], ["c.d", "e.f"], ["g.h", "i.j"]]
    assert axes[1].entries == [{"c.d": 1, "e.f": 2}]


def test_max_epochs_caps_every_run():
    sw = expand(tiny({"optimizer.lr": [1e-3]}), max_epochs=1)
    assert sw.runs[0].protocol["training"]["epochs"] == 1
    assert expand(tiny(), max_epochs=5).runs[0].protocol["training"]["epochs"] == 2


def test_run_is_done():
    p = {"training": {"epochs": 4}}
    fin = {"status": "finished", "stopped": "epochs", "protocol": json.dumps({"training": {"epochs": 4}})}
    assert run_is_done(fin, p)
    assert not run_is_done(None, p)
    assert not run_is_done({**fin, "status": "running"}, p)
    short = {**fin, "protocol": json.dumps({"training": {"epochs": 2}})}
    assert not run_is_done(short, p)  # asked for more epochs now: resume it
    assert run_is_done({**short, "stopped": "early stop (zero train error)"}, p)


def test_table_protocols_expand_to_the_24_cells_times_5_seeds():
    for name, ds in (("table1_mnist", "mnist"), ("table2_cifar10", "cifar10")):
        sw = load_sweep(ROOT / "protocols" / f"{name}.yaml", validate=False)
        assert len(sw.runs) == 120 and sw.seeds == [0, 1, 2, 3, 4]
        cells = {r.cell for r in sw.runs}
        assert len(cells) == 24
        for r in sw.runs:
            o = r.overrides
            assert (o["rule.name"] == "gevb") <= o["circuit.vectorized"]  # no GEVB on conventional
            assert (o["circuit.sign"] == "nonnegative") == (o["circuit.init"] == "on_off")
            p = r.protocol
            assert p["optimizer"]["lr"] == 3e-4 and p["training"]["batch_size"] == 128
            assert p["training"]["epochs"] == 190 and p["training"]["eval_every"] == 10
            assert p["training"]["early_stop"] and p["data"]["dataset"] == ds
        # every cell whose circuit file is present validates (conv/LC come with the conv layers)
        have = [a for a in ("fc", "conv", "lc") if (ROOT / "circuits" / f"{ds}_{a}.yaml").exists()]
        assert "fc" in have
        sel = load_sweep(ROOT / "protocols" / f"{name}.yaml", only=[f"circuit={ds}_{a},*" for a in have])
        assert len(sel.runs) == 40 * len(have)
        # the validated runs land one-to-one on the paper's cells, each with a published value
        from neurosim.analysis.sweep_report import COLUMNS, paper_cell, published_tables

        pub = published_tables()[ds]
        mapped = {r.cell: paper_cell(r.protocol) for r in sel.runs}
        assert None not in mapped.values()
        assert len(set(mapped.values())) == 8 * len(have)
        for r in sel.runs:
            table, row, col = mapped[r.cell]
            o = r.overrides
            assert table == ds and row.startswith({"fc": "FC", "conv": "Conv", "lc": "LC"}[
                o["circuit.file"].split("_")[-1].split(".")[0]])
            assert row.endswith("-Vec") == o["circuit.vectorized"]
            assert COLUMNS[col].startswith("BP") == (o["rule.name"] == "bp")
            assert COLUMNS[col].endswith("+") == (o["circuit.sign"] == "nonnegative")
            assert pub[row][col][0] > 0


# ---------------------------------------------------------------------------- execution
@pytest.fixture(scope="module")
def client():
    """Two single-threaded workers in this process (fast to start on a 2-core machine)."""
    distributed = pytest.importorskip("distributed")
    mp = pytest.MonkeyPatch()
    mp.setenv("NEUROSIM_NUMBA", "0")  # numba's workqueue layer is not thread-safe; workers are threads here
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    mp.undo()


def _store_state(path: Path) -> dict:
    """What a run store holds: attrs, epoch records and the mtimes of its metadata files."""
    ds = xr.open_zarr(str(path))
    return {"created": ds.attrs["created"], "status": ds.attrs["status"],
            "epochs": [float(e) for e in ds["epoch"].values],
            "mtimes": {str(p.relative_to(path)): p.stat().st_mtime_ns for p in path.rglob("zarr.json")}}


def test_two_worker_cluster_runs_sweep_records_failure_and_skips_finished(client, tmp_path):
    # the third case is a valid protocol that diverges at run time (SGD with an absurd step)
    raw = tiny({"cases": [{"optimizer.lr": 1e-3}, {"optimizer.lr": 3e-4},
                          {"optimizer.name": "sgd", "optimizer.lr": 1e300}]},
               seeds=[0])
    sw = expand(raw)
    bad = next(r.name for r in sw.runs if "sgd" in r.name)
    out = tmp_path / "sw.zarr"
    lines = []
    res = execute(sw, out, client, echo=lines.append, heartbeat=1.0)
    assert sorted(res.finished) == sorted(r.name for r in sw.runs if r.name != bad)
    assert sorted(res.failed) == [bad]
    assert not res.skipped
    # the sweep store: root attrs, listing with status and error, run stores as child groups
    assert is_sweep_store(out)
    root = xr.open_zarr(str(out), consolidated=False)
    assert root.attrs["kind"] == "sweep" and root.attrs["name"] == "tiny"
    runs = root.attrs["runs"]
    assert set(runs) == {r.name for r in sw.runs}
    assert runs[bad]["status"] == "failed"
    assert "non-finite" in runs[bad]["error"]
    ok = "lr=0.0003,seed=0"
    assert runs[ok]["status"] == "finished" and runs[ok]["store"] == f"runs/{ok}"
    child = zarr.open_group(str(out), mode="r", use_consolidated=False)["runs"][ok]
    assert child.attrs["status"] == "finished"
    # a nested run store opens on its own, with its records
    ds = xr.open_zarr(str(out / "runs" / ok))
    assert ds.attrs["status"] == "finished" and ds.sizes["epoch"] == 3
    assert abs(float(ds["test_error"][-1]) - runs[ok]["test_error"]) < 1e-9
    assert json.loads(ds.attrs["protocol"])["optimizer"]["lr"] == 3e-4
    assert any("ETA" in ln for ln in lines)

    # second invocation: finished runs untouched, failed runs retried (and still failing)
    before = {n: _store_state(out / "runs" / n) for n in res.finished}
    res2 = execute(sw, out, client, echo=lambda s: None)
    assert sorted(res2.skipped) == sorted(res.finished) and not res2.finished
    assert sorted(res2.failed) == sorted(res.failed)
    assert {n: _store_state(out / "runs" / n) for n in res.finished} == before
    assert SweepStore(out).runs()[ok]["status"] == "finished"
    # nothing left to run: no cluster is started at all
    import importlib

    sweepmod = importlib.import_module("neurosim.sweep.execute")  # the module, not the function

    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started")

    done = expand(raw, only=[r for r in res.finished])
    mp = pytest.MonkeyPatch()
    mp.setattr(sweepmod, "local_cluster", no_cluster)
    try:
        res3 = sweepmod.run_sweep(done, out, echo=lambda s: None)
    finally:
        mp.undo()
    assert sorted(res3.skipped) == sorted(res.finished) and res3.ok


def test_local_cluster_has_single_threaded_workers():
    from neurosim.sweep import local_cluster

    cluster = local_cluster(workers=2, processes=False)
    try:
        assert len(cluster.workers) == 2
        assert all(w.state.nthreads == 1 for w in cluster.workers.values())
    finally:
        cluster.close()


def test_unfinished_runs_resume_from_their_checkpoints(client, tmp_path):
    raw = tiny({"optimizer.lr": [1e-3]}, seeds=[0, 1])
    out = tmp_path / "sw.zarr"
    short = expand(raw, max_epochs=1)
    res = execute(short, out, client, echo=lambda s: None)
    assert len(res.finished) == 2
    a, b = (out / "runs" / r.name for r in short.runs)
    st_a, st_b = _store_state(a), _store_state(b)
    assert st_a["epochs"] == [0.0, 1.0]
    # run b is "killed" mid-run: its store says running (its checkpoint is at epoch 1)
    # (set as the killed run's writer left it: through the recorder, which keeps the seal)
    from neurosim.recording import Recorder

    Recorder(b).set_attrs(status="running")
    # the full sweep asks for 2 epochs: both continue from epoch 1 (not from scratch)
    full = expand(raw)
    res2 = execute(full, out, client, echo=lambda s: None)
    assert not res2.failed, res2.failed
    assert sorted(res2.finished) == sorted(r.name for r in full.runs) and not res2.skipped
    for path, st in ((a, st_a), (b, st_b)):
        now = _store_state(path)
        assert now["created"] == st["created"]  # same store, continued
        assert now["epochs"] == [0.0, 1.0, 2.0] and now["status"] == "finished"
        assert json.loads(xr.open_zarr(str(path)).attrs["protocol"])["training"]["epochs"] == 2
    # the continued run equals an uninterrupted 2-epoch run (exact resume)
    r = full.runs[1]
    fresh = execute(full, tmp_path / "fresh.zarr", client, runs=[r], echo=lambda s: None)
    assert fresh.finished == [r.name]
    x = xr.open_zarr(str(out / "runs" / r.name))["test_loss"].values
    y = xr.open_zarr(str(tmp_path / "fresh.zarr" / "runs" / r.name))["test_loss"].values
    assert len(x) == 3 and (x == y).all()


def test_sweep_command_lists_and_rejects_bad_input(tmp_path):
    from neurosim.cli import main

    f = tmp_path / "s.yaml"
    raw = tiny({"optimizer.lr": [1e-3, 3e-4]}, seeds=[0, 1])
    import yaml

    f.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(main, ["sweep", str(f), "--list"])
    assert r.exit_code == 0
    assert r.output.split() == ["lr=0.001,seed=0", "lr=0.0003,seed=0", "lr=0.001,seed=1", "lr=0.0003,seed=1"]
    r = CliRunner().invoke(main, ["sweep", str(f), "--list", "--only", "seed=1"])
    assert r.output.split() == ["lr=0.001,seed=1", "lr=0.0003,seed=1"]
    r = CliRunner().invoke(main, ["run", str(f)])
    assert r.exit_code == 2 and "neurosim sweep" in r.output
    r = CliRunner().invoke(main, ["sweep", str(f), "--list", "--only", "nomatch"])
    assert r.exit_code == 2 and "matches none" in r.output
    raw["sweep"] = {"optimizer.lrr": [1]}
    f.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(main, ["sweep", str(f), "--list"])
    assert r.exit_code == 2 and "optimizer.lrr" in r.output
    # an existing non-sweep directory is refused
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "junk").write_text("")
    raw.pop("sweep")
    f.write_text(yaml.safe_dump(raw))
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "x.zarr")])
    assert r.exit_code == 2 and "not a Zarr store" in r.output
