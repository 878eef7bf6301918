"""Malformed protocols and circuits are rejected before anything runs.

Each row of :data:`CASES` breaks the tiny protocol or its circuit in one way and
lists what the message must contain: the offending key (with a "did you mean"
suggestion for misspellings), and ``file:line`` where the key is in a file.
Every case must exit with code 2 and leave no store (nor lock file) behind.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from neurosim.cli import main
from neurosim.core.options import Field, Section
from neurosim.model import layers as layermod

from ._reliability import CIRCUIT, PROTOCOL, write_protocol


def P(old, new):
    """Protocol text substitution."""
    assert old in PROTOCOL, old
    return ("proto", old, new)


def C(old, new):
    """Circuit text substitution."""
    assert old in CIRCUIT, old
    return ("circuit", old, new)


def S(*sets):
    """--set overrides."""
    return ("set",) + sets


LR = "lr: 1.0e-3}"
CASES = [
    # protocol: unknown keys (did you mean), file and line
    ("unknown top key", P("seed: 0", "sead: 0"), ["proto.yaml:10", "'sead'", "did you mean 'seed'"]),
    ("unknown nested key", P("eval_every: 1", "eval_evry: 1"),
     ["proto.yaml:9", "training.eval_evry", "did you mean 'eval_every'"]),
    # wrong types and out-of-range values
    ("negative lr", P(LR, "lr: -0.1}"), ["proto.yaml:8", "optimizer.lr", "must be > 0"]),
    ("zero lr", P(LR, "lr: 0}"), ["optimizer.lr", "must be > 0"]),
    ("lr not a number", P(LR, "lr: fast}"), ["optimizer.lr", "expected number"]),
    ("fractional epochs", P("epochs: 1,", "epochs: 2.5,"), ["proto.yaml:9", "training.epochs",
                                                            "expected integer"]),
    ("boolean epochs", P("epochs: 1,", "epochs: yes,"), ["training.epochs", "expected integer"]),
    ("zero batch size", P("batch_size: 16", "batch_size: 0"), ["training.batch_size", ">= 1"]),
    ("unknown dtype", P("dtype: float64", "dtype: float16"), ["proto.yaml:11", "'dtype'", "not one of"]),
    ("unknown device", P("seed: 0", "seed: 0\ndevice: tpu"), ["'device'", "not one of"]),
    ("betas length", P(LR, "lr: 1.0e-3, betas: [0.9]}"), ["optimizer.betas", "needs 2 items"]),
    ("beta above 1", P(LR, "lr: 1.0e-3, betas: [0.9, 1.5]}"), ["optimizer.betas[1]", "<= 1"]),
    ("negative seed", P("seed: 0", "seed: -1"), ["'seed'", ">= 0"]),
    ("unknown loss", P("seed: 0", "seed: 0\nloss: mae"), ["'loss'", "not one of"]),
    ("zero train subset", P("dataset: synthetic", "dataset: synthetic\n  train_subset: 0"),
     ["data.train_subset", ">= 1"]),
    ("zero weights_every", P("seed: 0", "seed: 0\nrecording: {weights_every: 0}"),
     ["recording.weights_every", ">= 1"]),
    ("section not a mapping", P("training: {epochs: 1, batch_size: 16, eval_every: 1, early_stop: false}",
                                "training: 5"), ["'training'", "must be a mapping"]),
    ("circuit wrong type", P("circuit:\n  file: tiny_circuit.yaml", "circuit: 42"),
     ["'circuit'", "expected string or mapping"]),
    ("missing rule", P("rule: {name: gevb}\n", ""), ["rule.name", "required key is missing"]),
    # rules, realizations, datasets and their options
    ("rule typo", P("name: gevb", "name: gevv"), ["proto.yaml:4", "rule.name", "did you mean 'gevb'"]),
    ("rule option typo", P("{name: gevb}", "{name: fa, scal: 2.0}"), ["rule.scal", "did you mean 'scale'"]),
    ("rule option type", P("{name: gevb}", "{name: fa, scale: big}"), ["rule.scale", "expected number"]),
    ("realization typo", P("seed: 0", "seed: 0\nrealization: {type: bached}"),
     ["realization.type", "did you mean 'batched'"]),
    ("dataset typo", P("dataset: synthetic", "dataset: synthetc"),
     ["proto.yaml:6", "data.dataset", "did you mean 'synthetic'"]),
    ("data option typo", P("n_classes: 4", "n_clases: 4"),
     ["data.options.n_clases", "did you mean 'n_classes'"]),
    ("data option type", P("n_train: 32", "n_train: many"), ["data.options.n_train", "expected integer"]),
    ("gevb on a conventional net", C("vectorized: true", "vectorized: false"),
     ["rule.name", "vectorized"]),
    # K and shapes against the dataset (dry run without data)
    ("K mismatch in circuit", C("vectorized: true", "vectorized: true\ncomponents: 3"),
     ["tiny_circuit.yaml:3", "'components'", "classes (4)", "got 3"]),
    ("K mismatch in protocol", P("file: tiny_circuit.yaml", "file: tiny_circuit.yaml\n  components: 10"),
     ["proto.yaml:4", "circuit.components", "classes (4)"]),
    ("zero units", C("units: 8", "units: 0"), ["tiny_circuit.yaml:4", "layers[0].units", ">= 1"]),
    ("kernel larger than input", C("{type: dense, units: 8}", "{type: toyconv, kernel: 9}"),
     ["tiny_circuit.yaml:4", "layers[0]", "kernel 9 larger than the input 4x4"]),
    # circuit files
    ("missing circuit file", P("file: tiny_circuit.yaml", "file: nope.yaml"),
     ["'circuit'", "'nope.yaml' not found"]),
    ("circuit bad YAML", C("layers:\n", "layers: [\n"), ["tiny_circuit.yaml:", "not valid YAML"]),
    ("circuit top level list", ("circuit_text", "- dense\n- dense\n"),
     ["tiny_circuit.yaml", "mapping at the top level"]),
    ("layer type typo", C("type: dense, units: 8", "type: dnse, units: 8"),
     ["tiny_circuit.yaml:4", "layers[0].type", "did you mean 'dense'"]),
    ("layer key typo", C("units: 8", "unit: 8"), ["tiny_circuit.yaml:4", "layers[0].unit",
                                                  "did you mean 'units'"]),
    ("layer without type", C("{type: dense, units: 8}", "{units: 8}"), ["layers[0]", "needs a 'type'"]),
    ("no layers", C("layers:\n  - {type: dense, units: 8}\n  - {type: dense, units: 4}\n", "layers: []\n"),
     ["'layers'", "at least one"]),
    ("circuit key typo", C("vectorized: true", "vectorised: true"),
     ["tiny_circuit.yaml:2", "'vectorised'", "did you mean 'vectorized'"]),
    ("nonlinearity typo", C("vectorized: true", "vectorized: true\nnonlinearity: gatee"),
     ["tiny_circuit.yaml:3", "'nonlinearity'", "did you mean 'gate'"]),
    ("bad sign", C("vectorized: true", "vectorized: true\nsign: positive"), ["'sign'", "not one of"]),
    ("inline circuit key typo", P("circuit:\n  file: tiny_circuit.yaml",
                                  "circuit:\n  layers: [{type: dense, units: 8}]\n  vectorised: true"),
     ["proto.yaml:4", "circuit.vectorised", "did you mean 'vectorized'"]),
    # protocol files
    ("protocol bad YAML", P("rule: {name: gevb}", "rule: {name: gevb"), ["proto.yaml:", "not valid YAML"]),
    ("protocol top level list", ("proto_text", "- a\n- b\n"), ["proto.yaml", "mapping at the top level"]),
    ("protocol empty", ("proto_text", ""), ["proto.yaml", "mapping at the top level"]),
    ("protocol missing", ("missing",), ["missing.yaml", "file not found"]),
    # --set
    ("--set without =", S("training.epochs"), ["--set expects key=value", "'training.epochs'"]),
    ("--set unknown key", S("training.epoks=3"), ["training.epoks", "did you mean 'epochs'"]),
    ("--set wrong type", S("training.epochs=abc"), ["training.epochs", "expected integer"]),
    ("--set into a scalar", S("seed.x=1"), ["'seed'", "expected integer"]),
]


class ToyConv(layermod.Layer):
    """Stand-in for a convolution: refuses a kernel larger than its input."""

    kind = "toyconv"
    has_weights = True
    OPTIONS = Section({"kernel": Field(int, default=3, min=1)})

    def __init__(self, in_shape, K, first=False, kernel: int = 3):
        super().__init__(in_shape, K, first)
        h, w = self.in_shape[-2:]
        if kernel > min(h, w):
            raise ValueError(f"kernel {kernel} larger than the input {h}x{w}")
        self.unit_shape = (1, h - kernel + 1, w - kernel + 1)


def _invoke(tmp_path, case):
    kind = case[0]
    proto, circ, sets = PROTOCOL, CIRCUIT, []
    if kind == "proto":
        proto = PROTOCOL.replace(case[1], case[2])
    elif kind == "circuit":
        circ = CIRCUIT.replace(case[1], case[2])
    elif kind == "proto_text":
        proto = case[1]
    elif kind == "circuit_text":
        circ = case[1]
    elif kind == "set":
        sets = [a for s in case[1:] for a in ("--set", s)]
    path = write_protocol(tmp_path, proto, circ)
    if kind == "missing":
        path = tmp_path / "missing.yaml"
    out = tmp_path / "out.zarr"
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet", *sets])
    return res, out


@pytest.mark.parametrize("name,case,expect", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_rejected(tmp_path, monkeypatch, name, case, expect):
    monkeypatch.setitem(layermod.LAYERS, "toyconv", ToyConv)
    res, out = _invoke(tmp_path, case)
    msg = res.output
    assert res.exit_code == 2, (res.exit_code, msg, res.exception)
    assert msg.startswith("error: ") and msg.count("\n") == 1, msg  # one clear line, no traceback
    for s in expect:
        assert s in msg, f"{s!r} not in {msg!r}"
    if any(s.endswith(".yaml:") for s in expect):
        assert re.search(r"\.yaml:\d+", msg), msg
    assert not out.exists() and not (tmp_path / "out.zarr.lock").exists()


def test_case_table_is_large_enough():
    assert len(CASES) >= 25


def test_valid_protocol_passes_validation(tmp_path, monkeypatch):
    """The base of the table is valid (so each row fails for its own reason)."""
    from neurosim.protocol import load_protocol

    p = load_protocol(write_protocol(tmp_path))
    assert p["circuit"]["layers"][0]["units"] == 8


def test_existing_store_needs_overwrite(tmp_path):
    path = write_protocol(tmp_path)
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert res.exit_code == 2
    assert "is not a neurosim store" in res.output and "choose another --out" in res.output
    assert (out / "precious.txt").read_text() == "keep me"
    # --resume and --overwrite on something that is not a store are refused too, and leave it alone
    for flag in ("--resume", "--overwrite"):
        res = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet", flag])
        assert res.exit_code == 2 and "not a neurosim store" in res.output
        assert (out / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / "out.zarr.lock").exists()
    # a neurosim store is "already exists": continue it or replace it
    store = tmp_path / "store.zarr"
    assert CliRunner().invoke(main, ["run", str(path), "--out", str(store), "--quiet"]).exit_code == 0
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(store), "--quiet"])
    assert res.exit_code == 2
    assert "already exists" in res.output and "--overwrite" in res.output and "--resume" in res.output
    res = CliRunner().invoke(main, ["run", str(path), "--out", str(store), "--quiet", "--overwrite"])
    assert res.exit_code == 0, res.output
