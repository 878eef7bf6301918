"""What a researcher meets on the second day: every error of a protocol at once, a caveat
printed first, a short run's train-error subset stated, progress that can be switched, and
compare speaking YAML."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

import neurosim
from neurosim.cli import main
from neurosim.core.options import ConfigError, ConfigErrors
from neurosim.core.progress import Progress, make_progress
from neurosim.protocol import load_protocol

from ._reliability import write_protocol

BAD = """\
name: old
circuit: {file: tiny_circuit.yaml}
rule: {name: gevb, sign: auto}
data: {dataset: synthetic, train_subst: 100}
optimizer: {name: adam, lr: -1}
training: {epochs: 3.5, batch_size: 16, evel_every: 1}
recording: {weigths: true}
dtype: float16
"""


def test_every_error_of_a_protocol_is_reported_at_once_with_its_line(tmp_path):
    p = write_protocol(tmp_path, BAD)
    res = CliRunner().invoke(main, ["run", str(p), "--set", "training.max_steps=-3"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    want = [(3, "rule.sign", "unknown key for name 'gevb'"),
            (4, "data.train_subst", "did you mean 'train_subset'"),
            (5, "optimizer.lr", "must be > 0"),
            (6, "training.evel_every", "did you mean 'eval_every'"),
            (6, "training.epochs", "expected integer"),
            (7, "recording.weigths", "did you mean 'weights'"),
            (8, "dtype", "'float16' is not one of")]
    assert len(lines) == len(want) + 1, res.output
    for line, (n, key, words) in zip(lines, want):
        assert line.startswith(f"error: {p}:{n}; key '{key}': ") and words in line, line
    assert lines[-1].startswith("error: --set training.max_steps=-3; key 'training.max_steps'")
    assert "Traceback" not in res.output


def test_one_error_is_still_one_error_and_a_missing_required_key_is_not_invented(tmp_path):
    p = write_protocol(tmp_path, BAD.replace("name: gevb, sign: auto", "name: gevbb"))
    with pytest.raises(ConfigErrors) as exc:
        load_protocol(p)
    keys = [e.key for e in exc.value.errors]
    assert "rule.name" in keys and "rule" not in keys  # taking rule.name out adds no error
    q = write_protocol(tmp_path, BAD.split("rule:")[0] + "rule: {name: gevb}\ndata: {dataset: synthetic}\n"
                       "dtype: float16\n", name="one.yaml")
    with pytest.raises(ConfigError) as one:
        load_protocol(q)
    assert not isinstance(one.value, ConfigErrors) and one.value.key == "dtype"


def test_a_caveat_is_the_first_line_of_a_run_and_in_compare(tmp_path):
    proto = ("name: c\ncircuit: {file: tiny_circuit.yaml}\nrule: {name: gevb}\n"
             "caveat: >-\n  this configuration\n  does not learn\n"
             "data: {dataset: synthetic,\n"
             "       options: {n_train: 32, n_test: 16, n_classes: 4, shape: [1, 4, 4]}}\n"
             "training: {epochs: 1, batch_size: 16, eval_every: 1}\n")
    p = write_protocol(tmp_path, proto)
    res = CliRunner().invoke(main, ["run", str(p), "--out", str(tmp_path / "c.zarr"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "caveat: this configuration does not learn"
    res2 = CliRunner().invoke(main, ["run", str(p), "--out", str(tmp_path / "d.zarr"), "--quiet",
                                     "--set", "caveat=null"])
    assert "caveat:" not in res2.output
    out = CliRunner().invoke(main, ["compare", str(tmp_path / "c.zarr"), str(tmp_path / "d.zarr")])
    assert out.exit_code == 0, out.output
    assert out.output.count("CAVEAT: this configuration does not learn") == 1


def test_a_short_run_measures_train_error_on_a_subset_and_says_so(tmp_path):
    d = {"x_train": np.random.default_rng(0).normal(size=(400, 6)), "y_train": np.arange(400) % 2,
         "x_test": np.zeros((10, 6)), "y_test": np.arange(10) % 2}
    proto = {"name": "s", "circuit": {"layers": [{"type": "dense", "units": 4}]}, "rule": {"name": "gevb"},
             "training": {"epochs": 1, "batch_size": 10, "max_steps": 3}}
    from neurosim import experiment
    from neurosim.api import _data_section, load

    arrays, section = _data_section(d, proto, None)
    p = load(proto, replace={"data": section})
    exp = experiment.build(p, arrays=arrays)
    assert exp.eval_train_examples == 400  # fewer than 10,000: all of them
    old = experiment.SHORT_RUN_TRAIN_SUBSET
    try:
        experiment.SHORT_RUN_TRAIN_SUBSET = 100
        assert exp.eval_train_examples == 100
        assert exp.eval_train_note().startswith("train error on the first 100 of 400 training examples "
                                                "(a short run: training.max_steps=3 sees 30)")
        s = io.StringIO()
        ds = neurosim.run(proto, out=tmp_path / "s.zarr", data=d, progress="lines",
                          overrides={"training.eval_batch_size": 7})
        ds2 = neurosim.run(proto, out=tmp_path / "t.zarr", data=d, progress=False,
                           overrides={"training.eval_train_subset": 400})
    finally:
        experiment.SHORT_RUN_TRAIN_SUBSET = old
    assert ds.attrs["train_error_examples"] == 100 and ds2.attrs["train_error_examples"] == 400
    net = neurosim.load(tmp_path / "s.zarr")  # the recorded train error is that of the first 100
    assert float(ds.train_error[-1]) == net.error(d["x_train"][:100], d["y_train"][:100])
    assert float(ds2.train_error[-1]) == net.error(d["x_train"], d["y_train"])
    del s


def test_progress_modes():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    p = {"training": {"epochs": 2, "max_steps": None}}
    assert make_progress(p, False) is None and make_progress(p, None) is None
    assert make_progress(p, "lines", stream=Tty()).tty is False  # lines even on a terminal
    assert make_progress(p, "bar", stream=io.StringIO()).tty is True  # a bar even in a notebook
    assert make_progress(p, True, stream=Tty()).tty is True
    assert make_progress(p, True, stream=io.StringIO()).tty is False
    with pytest.raises(ValueError, match="progress must be"):
        make_progress(p, "fancy")
    s = io.StringIO()
    prog = Progress(2, stream=s, mode="lines", interval=0.0)
    prog.phase("loading")
    for b in range(1, 4):
        prog(1, b, 3, 0.5)
    assert "\r" not in s.getvalue() and s.getvalue().count("\n") == 3


def test_compare_prints_options_as_yaml():
    from neurosim.analysis.compare import _short

    v = {"type": "x", "dynamics": {"neurons": {"model": "rate", "input_spikes": False},
                                   "probe": [1, 2], "tau": None}}
    assert _short(v) == ("{type: x, dynamics: {neurons: {model: rate, input_spikes: false}, "
                         "probe: [1, 2], tau: null}}")


def test_a_sweep_of_short_runs_estimates_its_own_length():
    import time

    from neurosim.sweep.execute import SweepProgress, run_length

    def proto(max_steps, dataset="mnist", subset=None):
        return {"training": {"epochs": 190, "max_steps": max_steps, "batch_size": 128},
                "data": {"dataset": dataset, "options": None, "train_subset": subset}}

    assert run_length(proto(20)) == pytest.approx(20 / 469)  # 60,000 images, 469 batches
    assert run_length(proto(None)) == 190
    assert run_length(proto(10**6, subset=1280)) == 190  # max_steps beyond the epochs
    assert run_length(proto(20, dataset="cifar10_partial")) == 190  # unknown size: until told
    todo = {"a": (0, run_length(proto(20))), "b": (0, run_length(proto(20)))}
    prog = SweepProgress(2, 0, todo, echo=lambda s: None)
    prog.t0 = time.time() - 10.0  # 10 s for half of run a: 30 s left in all
    prog.event({"event": "start", "run": "a"})
    prog.event({"event": "epoch", "run": "a", "epoch": 10 / 469, "target": 20 / 469})
    assert prog.eta() == pytest.approx(30.0, rel=0.05)
    assert "ETA 30s" in prog.line() or "ETA 29s" in prog.line() or "ETA 31s" in prog.line()


def test_positions_are_counted_one_way():
    from neurosim.core.progress import format_position

    assert format_position(3.0, 3, 469) == "epoch 3/3"
    assert format_position(0.0426, 3, 469) == "epoch 1/3 batch 20/469"  # as the bar says it
    s = io.StringIO()
    p = Progress(3, stream=s, mode="lines")
    for b in range(1, 21):
        p(1, b, 469, 0.5)
    p.evaluated(20 / 469, {"train_error": 1.0, "test_error": 2.0})
    assert "] epoch 1/3 batch 20/469: train error 1.00%" in s.getvalue()


def test_inspect_says_what_a_checkpoint_holds(tmp_path):
    from neurosim.commands.inspect import checkpoint_parts
    from neurosim.recording import store_sizes

    d = {"x_train": np.random.default_rng(0).normal(size=(40, 6)), "y_train": np.arange(40) % 2,
         "x_test": np.zeros((10, 6)), "y_test": np.arange(10) % 2}
    proto = {"name": "g", "circuit": {"layers": [{"type": "dense", "units": 4}]}, "rule": {"name": "gevb"},
             "realization": {"type": "grouped"}, "training": {"epochs": 1, "batch_size": 10}}
    neurosim.run(proto, out=tmp_path / "g.zarr", data=d, progress=False)
    res = CliRunner().invoke(main, ["inspect", str(tmp_path / "g.zarr")])
    assert res.exit_code == 0, res.output
    line = res.output.splitlines()[-1]
    assert line.startswith("checkpoint ") and "circuit synapses (K per pair)" in line
    store = tmp_path / "g.zarr"
    parts = checkpoint_parts(store, "checkpoint_a" if (store / "checkpoint_a").exists() else "checkpoint_b")
    assert sum(parts.values()) == store_sizes(tmp_path / "g.zarr")["checkpoints"]
    assert set(parts) >= {"network parameters", "circuit synapses (K per pair)",
                          "circuit synapses' optimizer state"}
