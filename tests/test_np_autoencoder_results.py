"""The fig. 3 autoencoder sweep (protocols/np_autoencoder_fig3.yaml) and the measures of its
results script (docs/results/np_autoencoder.py)."""

import importlib.util
from pathlib import Path

import numpy as np

from neurosim.sweep import load_sweep

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("np_autoencoder",
                                                  ROOT / "docs" / "results" / "np_autoencoder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweep_is_the_five_methods_times_three_seeds():
    m = _script()
    sw = load_sweep(ROOT / "protocols" / "np_autoencoder_fig3.yaml")
    assert len(sw.runs) == 15 and sw.seeds == [0, 1, 2]
    names = {}
    for r in sw.runs:
        p = r.protocol
        assert p["training"]["batch_size"] == 32 and p["loss"] == "mse"
        assert [L["nonlinearity"] for L in p["circuit"]["layers"]] == ["tanh", "identity", "tanh"]
        out = p["circuit"]["output"]
        assert out["units"] == 784 and out["nonlinearity"] == "relu"
        names.setdefault(m.method(p), []).append(r)
    assert sorted(names) == sorted(m.ORDER) and all(len(v) == 3 for v in names.values())
    assert all(r.protocol["training"]["input_noise"] == 0.3 for r in names["DAE"])
    assert all(r.protocol["training"]["input_noise"] == 0 for k in ("NP", "FA", "BP (Adam)")
               for r in names[k])
    assert all(r.protocol["rule"]["feedback_lr"] > 0 for r in names["NP"])


def test_method_names():
    m = _script()
    np_rule = {"name": "node_perturbation", "feedback_lr": 3e-5}
    adam, sgd = {"name": "adam"}, {"name": "sgd"}
    assert m.method({"rule": np_rule, "optimizer": adam, "training": {}}) == "NP"
    assert m.method({"rule": {**np_rule, "feedback_lr": 0.0}, "optimizer": adam, "training": {}}) == "FA"
    assert m.method({"rule": {"name": "fa"}, "optimizer": adam, "training": {}}) == "FA"
    bp_clean = {"rule": {"name": "bp"}, "optimizer": adam, "training": {"input_noise": 0.0}}
    assert m.method(bp_clean) == "BP (Adam)"
    assert m.method({"rule": {"name": "bp"}, "optimizer": sgd, "training": {}}) == "BP (SGD)"
    assert m.method({"rule": {"name": "bp"}, "optimizer": adam, "training": {"input_noise": 0.3}}) == "DAE"


def test_knn_accuracy_separated_and_scrambled_codes():
    m = _script()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    centres = np.stack([np.cos(np.arange(10)), np.sin(np.arange(10))], 1) * 100
    separated = centres[labels] + rng.standard_normal((2000, 2))
    assert m.knn_accuracy(separated, labels) == 100.0
    # nor does the scale of each axis (the code is standardised): a 5 x 2 grid of digit
    # clusters with its first axis shrunk 1e4-fold is still fully separated
    grid = np.stack([labels % 5, labels // 5], 1) * 100.0 + rng.standard_normal((2000, 2))
    assert m.knn_accuracy(grid * [1e-4, 1.0], labels) == 100.0
    scrambled = rng.standard_normal((2000, 2))  # independent of the digit: chance
    assert m.knn_accuracy(scrambled, labels) < 20.0
    # a code that separates only digit 0 from the rest: 0s right, the others at chance
    half = np.where((labels == 0)[:, None], 50.0, 0.0) + rng.standard_normal((2000, 2))
    acc = m.knn_accuracy(half, labels)
    n0 = (labels[1000:] == 0).mean() * 100
    assert n0 < acc < n0 + 20
