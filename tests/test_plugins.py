"""Plug-ins from another package, found through entry points: the demo package of
docs/plugins.md (tests/plugin) is made importable with an installed distribution's metadata
(a ``.dist-info`` folder, what pip writes) in a temporary folder on ``sys.path``; its rule,
dataset and neuron model are then usable in a protocol, and checked against references."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

import neurosim
from neurosim.core.plugins import PluginWarning
from neurosim.protocol import load_plugins

PKG = Path(__file__).parent / "plugin"
DOC = Path(__file__).parents[1] / "docs" / "plugins.md"

BAD = '''"""Entry points that must be refused, each with one warning."""
import numpy as np


def nan_data(root=None):
    x = np.zeros((4, 3))
    x[2, 1] = np.nan
    return {"x_train": x, "y_train": np.array([0, 1, 0, 1]), "x_test": x, "y_test": np.array([0, 1, 0, 1])}
'''

EXTRA = {"neurosim.rules": {"gevb": "neurosim_demo:BinaryDFA", "not_a_rule": "neurosim_demo:xor"},
         "neurosim.datasets": {"missing": "neurosim_demo:not_there", "nan_data": "neurosim_bad:nan_data"}}


def _entry_points_txt(groups: dict) -> str:
    return "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                   for g, eps in groups.items())


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The demo package "installed" into tmp_path (as pip --target would), on sys.path."""
    site = tmp_path / "site"
    shutil.copytree(PKG / "neurosim_demo", site / "neurosim_demo")
    (site / "neurosim_bad.py").write_text(BAD)
    meta = tomllib.loads((PKG / "pyproject.toml").read_text())["project"]
    groups = {g: dict(eps) for g, eps in meta["entry-points"].items()}
    for g, eps in EXTRA.items():
        groups[g].update(eps)
    info = site / f"neurosim_demo-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\n"
                                   f"Name: {meta['name']}\nVersion: {meta['version']}\n")
    (info / "entry_points.txt").write_text(_entry_points_txt(groups))
    monkeypatch.syspath_prepend(str(site))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_plugins(refresh=True)
    yield [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    for mod in ("neurosim_demo", "neurosim_bad"):
        sys.modules.pop(mod, None)
    monkeypatch.undo()
    load_plugins(refresh=True)


XOR = {"name": "xor", "circuit": {"vectorized": False, "sign": "mixed", "init": "he",
                                  "nonlinearity": "softplus", "layers": [{"type": "dense", "units": 32}]},
       "rule": {"name": "binary_dfa", "scale": 0.5}, "data": {"dataset": "xor", "options": {"noise": 0.3}},
       "optimizer": {"name": "adam", "lr": 0.01},
       "training": {"epochs": 10, "batch_size": 20, "eval_every": 5}, "dtype": "float64"}


def test_a_plugin_rule_dataset_and_neuron_model_run_in_a_protocol(installed, tmp_path):
    reg = load_plugins()
    assert reg["neurosim.rules"] == {"binary_dfa": "neurosim-demo 0.1.0"}
    assert set(reg["neurosim.datasets"]) == {"xor", "nan_data"}
    ds = neurosim.run(XOR, out=tmp_path / "xor.zarr", progress=False)
    assert ds.attrs["rule"] == "binary_dfa" and ds.attrs["dataset"] == "xor"
    assert float(ds.test_error[0]) > 30 and float(ds.test_error[-1]) < 5  # XOR needs the hidden layer
    net = neurosim.load(tmp_path / "xor.zarr")  # a store of plug-ins opens with them installed
    assert net.predict(np.array([[1.0, 1.0], [1.0, -1.0]])).argmax(axis=1).tolist() == [0, 1]


def test_broken_entry_points_are_one_warning_each_and_left_out(installed):
    from neurosim.rules import RULES

    assert len(installed) == 3, installed
    assert any("gevb = neurosim_demo:BinaryDFA" in w and "is a built-in name" in w for w in installed)
    assert any("not_a_rule" in w and "not a subclass of neurosim.rules.Rule" in w for w in installed)
    assert any("missing" in w and "fails to load (AttributeError" in w for w in installed)
    assert all("\n" not in w for w in installed)
    assert RULES["gevb"].__module__ == "neurosim.rules.gevb" and "not_a_rule" not in RULES


def test_a_plugin_dataset_gets_the_checks_of_every_dataset(installed):
    from neurosim.data import DataError, load_dataset

    with pytest.raises(DataError, match=r"^dataset nan_data \(plug-in\): x_train has non-finite values.*"
                                        r"first in example 2"):
        load_dataset("nan_data")
    ds = load_dataset("xor", n_train=50)
    assert ds.in_shape == (1, 1, 2) and ds.n_classes == 2 and len(ds.y_train) == 50
    # the label is the XOR of the signs (the points are 4.x noise sds from the boundary)
    x = ds.x_train[:, 0, 0]
    np.testing.assert_array_equal(ds.y_train, (x[:, 0] > 0) ^ (x[:, 1] > 0))


def test_the_plugin_rule_is_dfa_with_sign_feedback(installed):
    from neurosim import experiment
    from neurosim.api import load
    from neurosim.rules.dfa import DFA

    exp = experiment.build(load(XOR), data=False)
    dfa = DFA(exp.net, exp.backend, sign="mixed")  # the same "feedback" stream: the same draws
    for i, B in exp.rule.feedback.items():
        np.testing.assert_array_equal(B, 0.5 * np.sign(dfa.feedback[i]))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 1, 1, 2))
    _, states = exp.net.forward(x)
    e = rng.normal(size=(5, 2))
    for i, delta in exp.rule.error_signals(exp.net, states, e).items():  # eq. 5: δ = e B
        np.testing.assert_allclose(delta.reshape(5, -1), e @ (0.5 * np.sign(dfa.feedback[i])), rtol=1e-12)


def test_the_plugin_neuron_model_derivative_is_its_finite_difference(installed):
    from neurosim.model import nonlinearity

    phi = nonlinearity.get("softplus")
    h = np.linspace(-30, 30, 61)
    a, d = phi(h)
    np.testing.assert_allclose(a, np.log1p(np.exp(-np.abs(h))) + np.maximum(h, 0), rtol=1e-12)
    eps = 1e-6
    fd = (phi(h + eps)[0] - phi(h - eps)[0]) / (2 * eps)
    np.testing.assert_allclose(d, fd, rtol=1e-6, atol=1e-9)


def test_docs_show_the_tested_package():
    """docs/plugins.md's blocks are the files of tests/plugin, character for character."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:python|toml)\n(.*?)^```", text, re.S | re.M)
    files = [(PKG / "pyproject.toml").read_text(), (PKG / "neurosim_demo" / "__init__.py").read_text()]
    for f in files:
        assert any(b.strip() in f and len(b.strip()) > 200 for b in blocks), "docs/plugins.md is stale"
    assert any(b == files[1] for b in blocks)
