"""IFA, sign symmetry, dropout, arbitrary-size outputs (autoencoder), feedback
metrics, and the new rules training a tiny task end to end."""

import numpy as np
import pytest
import xarray as xr

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.metrics.feedback import feedback_metrics
from neurosim.model.network import build_network
from neurosim.protocol import validate_circuit, validate_protocol
from neurosim.rules import backward, build_rule
from neurosim.train import Run

SIG = lambda h: 1 / (1 + np.exp(-h))  # noqa: E731


def make_net(be, sizes=(8, 7, 6), nl="sigmoid", n_in=5, n_out=4, extra=None):
    layers = [{"type": "dense", "units": n} for n in sizes]
    spec = {"vectorized": False, "sign": "mixed", "init": "he", "nonlinearity": nl,
            "layers": layers + (extra or [])}
    return build_network(validate_circuit(spec), be, (n_in,), n_out)


def test_ifa_matches_loop_reference():
    """IFA (slides): δa₁ = (B₁e)⊙f'(a₁), δa_k = (W_k δa_{k−1})⊙f'(a_k),
    readout δW_L = e h_{L−1}ᵀ — a per-example loop reference in float64."""
    be = Backend("cpu", "float64", seed=4)
    net = make_net(be)
    rule = build_rule("ifa", net, be)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 5)), np.array([0, 3, 1])
    got = rule.step(net, x, y, losses.mse).grads
    W = [net.layers[i].params["W"] for i in range(4)]
    b = [net.layers[i].params["b"][0] for i in range(4)]
    B1 = rule.feedback[0]
    ref = {k: np.zeros_like(v) for k, v in got.items()}
    onehot = np.eye(4)
    for n in range(3):
        h0 = x[n]
        z1 = W[0][0] @ h0 + b[0]
        h1 = SIG(z1)
        z2 = W[1] @ h1 + b[1]
        h2 = SIG(z2)
        z3 = W[2] @ h2 + b[2]
        h3 = SIG(z3)
        out = W[3] @ h3 + b[3]
        e = (out - onehot[y[n]]) / 3
        d1 = (e @ B1) * h1 * (1 - h1)
        d2 = (W[1] @ d1) * h2 * (1 - h2)
        d3 = (W[2] @ d2) * h3 * (1 - h3)
        ref[(0, "W")] += np.outer(d1, h0)[None]
        ref[(1, "W")] += np.outer(d2, h1)
        ref[(2, "W")] += np.outer(d3, h2)
        ref[(3, "W")] += np.outer(e, h3)
        for i, d in enumerate((d1, d2, d3, e)):
            ref[(i, "b")] += d[None]
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-10, atol=1e-14)


def test_sign_symmetry_is_fa_with_sign_of_w():
    """Sign symmetry = BP's backward pass through sign(W): equal to FA with
    F = sign(W), and its feedback follows W's signs when they change."""
    be = Backend("cpu", "float64", seed=4)
    net = make_net(be, nl="tanh")
    rule = build_rule("sign_symmetry", net, be)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 4, 6)
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    F = {i: np.sign(net.layers[i].params["W"]) for i in (1, 2, 3)}
    expect = backward(net, states, e, F)
    sig = rule.learning_signals(net, states, e)
    for i in expect:
        np.testing.assert_allclose(sig[i], expect[i], rtol=1e-12)
    assert not np.allclose(sig[0], backward(net, states, e)[0])  # not BP
    net.layers[2].params["W"] *= -1
    assert np.array_equal(rule.feedback[2], -F[2])
    m = feedback_metrics(net, rule, states, e)
    assert m["fb_sign_congruence"][2] == 1.0


def test_feedback_metrics_reference_values():
    """With B = W (BP through 'feedback'), relative error 0, congruence 1,
    angles 0; FA's random feedback gives a large angle."""
    be = Backend("cpu", "float64", seed=4)
    net = make_net(be)
    fa = build_rule("fa", net, be)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 5)), rng.integers(0, 4, 16)
    res = fa.step(net, x, y, losses.mse)
    m = feedback_metrics(net, fa, res.states, res.e, res.grads)
    assert all(v > 30 for v in m["fb_signal_angle"].values())
    assert m["fb_update_angle"][3] < 1e-6  # the readout gets its true gradient
    for i in fa.feedback:
        fa.feedback[i] = net.layers[i].params["W"].copy()
    res = fa.step(net, x, y, losses.mse)
    m = feedback_metrics(net, fa, res.states, res.e, res.grads)
    for i in (1, 2, 3):
        assert m["fb_relative_error"][i] == 0.0 and m["fb_sign_congruence"][i] == 1.0
        assert m["fb_signal_angle"][i] < 1e-5 and m["fb_update_angle"][i] < 1e-5


def test_dropout_train_only_and_consistent_mask():
    be = Backend("cpu", "float64", seed=4)
    net = make_net(be, sizes=(64,), nl="relu", extra=[{"type": "dropout", "p": 0.5},
                                                       {"type": "dense", "units": 6}])
    x = np.random.default_rng(0).standard_normal((200, 5))
    clean, _ = net.forward(x)
    net.begin_step(1)
    a, sa = net.forward(x)
    b, _ = net.forward(x)
    np.testing.assert_array_equal(a, b)  # one mask per step
    assert not np.allclose(a, clean)
    kept = sa[1].a != 0
    frac = kept[sa[0].a != 0].mean()
    assert 0.4 < frac < 0.6
    np.testing.assert_allclose(sa[1].a[kept], 2 * sa[0].a[kept])  # inverted dropout 1/(1-p)
    # vjp is the transpose of the (linear, masked) forward map
    g, v = np.random.default_rng(1).standard_normal((2,) + sa[1].a.shape)
    D = net.layers[1]
    np.testing.assert_allclose((D.vjp(g) * v).sum(), (g * D.forward(v)).sum())
    net.begin_step(2)
    c, _ = net.forward(x)
    assert not np.allclose(a, c)  # new step, new mask
    net.begin_step(1)
    np.testing.assert_array_equal(net.forward(x)[0], a)  # keyed by step: reproducible
    net.end_step()
    np.testing.assert_array_equal(net.forward(x)[0], clean)  # evaluation: identity


#: Bound on the autoencoder's final/initial test loss (2 epochs, float32).  Measured (python -m
#: tests.threshold_audit --only autoencoder; seeds 0-4 x threads x Numba): 0.41-0.59.  The
#: decoder alone reaches it (hidden updates dropped: 0.40-0.56), so this checks the arbitrary-size
#: output and the input target end to end, not node perturbation's hidden signal.
AUTOENCODER_BOUND = 0.8


def autoencoder_protocol(out, seed: int = 0):
    return validate_protocol({
        "circuit": {"vectorized": False, "sign": "mixed", "init": "he",
                    "layers": [{"type": "dense", "units": 16, "nonlinearity": "tanh"},
                               {"type": "dense", "units": 2, "nonlinearity": "identity"},
                               {"type": "dense", "units": 16, "nonlinearity": "tanh"}],
                    "output": {"units": 64, "nonlinearity": "relu"}},
        "rule": {"name": "node_perturbation", "noise": 0.01, "feedback_lr": 1e-3},
        "loss": "mse", "data": {"dataset": "synthetic", "options": {"target": "input"}},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "training": {"epochs": 2, "batch_size": 32, "eval_every": 2},
        "metrics": {"feedback_every": 16},
        "recording": {"out": str(out)}, "seed": seed})


def autoencoder_loss_ratio(out, seed: int = 0) -> float:
    """Node perturbation trains a 64-16-2-16-64 autoencoder for 2 epochs (float32)."""
    Run(autoencoder_protocol(out, seed)).train()
    loss = xr.open_zarr(out).test_loss.values
    return float(loss[-1] / loss[0])


def test_autoencoder_output_units_and_input_target(tmp_path):
    run = Run(autoencoder_protocol(tmp_path / "ae.zarr"))
    assert run.exp.net.n_out == 64 and run.exp.y_train.shape == (512, 64)
    assert run.exp.data.labels_train.shape == (512,)
    s = run.train()
    assert np.isnan(s.test_error)
    ds = xr.open_zarr(tmp_path / "ae.zarr")
    assert ds.test_loss.values[-1] < AUTOENCODER_BOUND * ds.test_loss.values[0]
    assert ds.fb_relative_error.sizes["feedback_step"] == 2


def test_vectorized_circuit_rejects_output_units():
    with pytest.raises(Exception, match="output.units"):
        validate_circuit({"vectorized": True, "layers": [{"type": "dense", "units": 4}],
                          "output": {"units": 3}})


@pytest.mark.parametrize("name,opts", [
    ("node_perturbation", {"noise": 0.01, "feedback_lr": 1e-3}),
    ("node_perturbation", {"noise": 0.01, "feedback_lr": 1e-3, "style": "dfa"}),
    ("ifa", {}),
    ("sign_symmetry", {}),
])
def test_rules_train_tiny_task(name, opts):
    """Each rule learns the synthetic blobs task (chance: 90 % error)."""
    assert tiny_task_error(name, opts) < TINY_TASK_BOUND


#: Bound on the tiny task's test error (%, float32).  Measured (python -m tests.threshold_audit
#: --only tiny; seeds 0-4 x threads x Numba): 0-9.4 % for node perturbation and IFA, 1.2-25.4 %
#: for sign symmetry (12.5 % at seed 0 in every setting).  The readout alone solves this task
#: (hidden layers frozen: 0-1.6 %), so it checks that each rule trains end to end in float32;
#: the rules' hidden-layer signals are checked exactly in test_rule_signals.py.
TINY_TASK_BOUND = 30.0


def tiny_task_error(name, opts, seed: int = 0) -> float:
    """Test error (%) of ``name`` after 300 SGD steps on the synthetic blobs (float32)."""
    from neurosim.data import load_dataset
    from neurosim.losses import error_rate
    from neurosim.optim import build_optimizer

    be = Backend("cpu", "float32", seed=seed)
    ds = load_dataset("synthetic")
    net = make_net(be, sizes=(32, 16), nl="tanh", n_in=64, n_out=10)
    rule = build_rule(name, net, be, **opts)
    # SGD: tiny arrays (Adam's parallel Numba kernel costs ~10 ms a call on a loaded machine)
    opt = build_optimizer(net, {"name": "sgd", "lr": 0.2, "momentum": 0.9})
    x = be.asarray(ds.x_train.reshape(len(ds.x_train), -1))
    for step in range(300):
        idx = be.rng("data", step).integers(0, len(x), 32)
        opt.step(rule.step(net, x[idx], ds.y_train[idx], losses.mse).grads)
    logits = net.predict(be.asarray(ds.x_test.reshape(len(ds.x_test), -1)))
    return float(error_rate(logits, ds.y_test))


@pytest.mark.parametrize("name", ["np_mnist_fc", "np_mnist_fc_fa", "np_mnist_fc_bp",
                                  "np_mnist_autoencoder", "dfa_mnist_7x240", "np_cifar10_cnn",
                                  "np_mnist_fc_fixed_w"])
def test_protocols_validate(name):
    from pathlib import Path

    from neurosim.protocol import load_protocol

    root = Path(__file__).resolve().parents[1]
    p = load_protocol(root / "protocols" / f"{name}.yaml")
    assert p["rule"]["name"] in ("node_perturbation", "fa", "bp", "dfa")


def test_resume_is_exact_with_noise_and_dropout(tmp_path):
    """Node-perturbation noise (keyed by the rule's checkpointed step counter)
    and dropout masks (keyed by the step) make a resumed run identical to an
    uninterrupted one."""
    from neurosim.model.network import state_dict

    def proto(out, max_steps=None):
        return validate_protocol({
            "circuit": {"vectorized": False, "sign": "mixed", "init": "he", "nonlinearity": "tanh",
                        "layers": [{"type": "dense", "units": 16}, {"type": "dropout", "p": 0.3},
                                   {"type": "dense", "units": 8}]},
            "rule": {"name": "node_perturbation", "noise": 0.05, "feedback_lr": 1e-3},
            "loss": "mse", "data": {"dataset": "synthetic", "train_subset": 128, "test_subset": 64},
            "optimizer": {"name": "sgd", "lr": 0.05},
            "training": {"epochs": 3, "batch_size": 32, "eval_every": 3, "max_steps": max_steps},
            "metrics": {"feedback_every": 0}, "recording": {"out": str(out)}})

    full = Run(proto(tmp_path / "a.zarr"))
    full.train()
    Run(proto(tmp_path / "b.zarr", max_steps=6)).train()
    resumed = Run(proto(tmp_path / "b.zarr"))
    resumed.train(resume=True)
    assert resumed.step == full.step == 12
    a, b = state_dict(full.exp.net), state_dict(resumed.exp.net)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for k, v in full.exp.rule.state_dict().items():
        np.testing.assert_array_equal(v, resumed.exp.rule.state_dict()[k])
