"""Node perturbation with learned feedback (Lansdell et al. 2020).

References: eq. 2 (λ̂ estimates ∂L/∂a), theorems 1–2 and corollary 1 (with W
fixed and c → 0 the least-squares feedback converges to W, or to the product
of the downstream W in a linear network with direct feedback), and the
structure "feedback_lr = 0 is FA / DFA".
"""

import numpy as np
import pytest

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.core.options import ConfigError
from neurosim.metrics.feedback import downstream_product, feedback_metrics, relative_error
from neurosim.model.network import build_network
from neurosim.protocol import validate_circuit, validate_protocol
from neurosim.rules import backward, build_rule


def make_net(be, sizes=(8, 6), nl="sigmoid", n_in=5, n_out=4, out_units=None):
    spec = {"vectorized": False, "sign": "mixed", "init": "he", "nonlinearity": nl,
            "layers": [{"type": "dense", "units": n} for n in sizes]}
    if out_units:
        spec["output"] = {"units": out_units}
    return build_network(validate_circuit(spec), be, (n_in,), n_out)


def true_da(net, states, e, i):
    """Per-example ∂L_b/∂a^i from BP (e carries 1/B)."""
    sig = backward(net, states, e)
    return net.layers[i + 1].vjp(sig[i + 1]) * e.shape[0]


@pytest.mark.parametrize("style", ["fa", "dfa"])
def test_estimator_is_unbiased(style):
    """E[λ̂] = ∂L/∂a to first order in c (eq. 2), Monte Carlo over N noise draws
    of one example; tolerance 5 standard errors + the O(c) bias."""
    be = Backend("cpu", "float64", seed=3)
    net = make_net(be)
    rule = build_rule("node_perturbation", net, be, noise=1e-4, style=style)
    rng = np.random.default_rng(0)
    N = 40000
    x = np.repeat(rng.standard_normal((1, 5)), N, axis=0)
    y = np.full(N, 2)
    logits, states = net.forward(x)
    _, e = losses.mse(logits, y)
    lam = rule.estimates(net, x, y, losses.mse, states, logits, (7,))
    for i, k in rule.targets.items():
        est = lam[i].reshape(N, -1)
        mean, se = est.mean(0), est.std(0) / np.sqrt(N)
        true = true_da(net, states, e, k)[0].ravel()
        assert np.all(np.abs(mean - true) < 5 * se + 1e-3), (i, mean, true, se)
        # the estimate is informative: the error is far below the gradient's size
        assert np.linalg.norm(mean - true) < 0.1 * np.linalg.norm(true)


def _fixed_w_run(rule, net, n_steps, batch, rng, n_in, n_out, regression=True):
    for _ in range(n_steps):
        x = 0.5 * rng.standard_normal((batch, n_in))
        y = rng.standard_normal((batch, n_out)) if regression else rng.integers(0, n_out, batch)
        rule.step(net, x, y, losses.mse)  # W fixed: the returned updates are not applied


def test_fa_feedback_converges_to_w_linear_ridge():
    """Theorem 2: linear network, fixed W, ridge least squares (appendix C.3)
    -> B^ℓ ≈ W^ℓ in every layer.  Widths shrink from the output down (6 -> 4)
    so that ẽẽᵀ is full rank in every layer (assumption A3)."""
    be = Backend("cpu", "float64", seed=5)
    net = make_net(be, sizes=(5, 4), nl="identity", n_in=7, n_out=6)
    rule = build_rule("node_perturbation", net, be, noise=1e-3, solver="ridge", gamma=0.1)
    _fixed_w_run(rule, net, 400, 1000, np.random.default_rng(1), 7, 6)
    # λ̂ is noisy (per-sample SNR ~ 1/#perturbed units): 4e5 samples give
    # ≈ 0.1 in the lower layer (whose ẽ = e B² is small), ≈ 0.03 at the top
    errs = [relative_error(net.layers[i].params["W"], B) for i, B in rule.feedback.items()]
    assert errs[0] < 0.15 and errs[1] < 0.06, errs


def test_dfa_feedback_converges_to_downstream_product_linear():
    """Corollary 1: direct feedback in a linear network converges to
    W^L ⋯ W^{ℓ+1}."""
    be = Backend("cpu", "float64", seed=6)
    net = make_net(be, sizes=(6, 5), nl="identity", n_in=7, n_out=4)
    rule = build_rule("node_perturbation", net, be, noise=1e-3, style="dfa", solver="ridge",
                      gamma=0.1)
    _fixed_w_run(rule, net, 200, 1000, np.random.default_rng(2), 7, 4)
    for i, D in rule.feedback.items():
        P = downstream_product(net, i)
        assert P.shape == D.shape
        err = relative_error(P, D)
        assert err < 0.06, (i, err)


def test_sgd_feedback_converges_nonlinear_top_layer():
    """Theorem 1 (one nonlinear hidden layer, smooth loss): SGD on
    ½Σ‖Bẽ − λ̂‖² drives B toward the readout's W; the relative error falls
    from ~1.4 (random init) below 0.2 (SGD noise floor ≈ 0.12 at this step
    size), and the synthetic signal aligns."""
    be = Backend("cpu", "float64", seed=7)
    net = make_net(be, sizes=(10,), nl="sigmoid", n_in=6, n_out=3)
    rule = build_rule("node_perturbation", net, be, noise=1e-3, feedback_lr=5e-4)
    (i, B0), = rule.feedback.items()
    W = net.layers[i].params["W"]
    err0 = relative_error(W, B0.copy())
    _fixed_w_run(rule, net, 800, 256, np.random.default_rng(3), 6, 3)
    err = relative_error(W, rule.feedback[i])
    assert err0 > 1.0 and err < 0.2, (err0, err)
    x = np.random.default_rng(4).standard_normal((64, 6))
    logits, states = net.forward(x)
    _, e = losses.mse(logits, np.random.default_rng(5).standard_normal((64, 3)))
    m = feedback_metrics(net, rule, states, e)
    assert m["fb_signal_angle"][i] < 15.0
    assert m["fb_sign_congruence"][i] > 0.85


@pytest.mark.parametrize("style,base", [("fa", "fa"), ("dfa", "dfa")])
def test_zero_feedback_lr_is_fa_or_dfa(style, base):
    """With feedback_lr = 0 the rule is exactly FA (layer to layer) or DFA
    (direct): same initial feedback, same updates."""
    be = Backend("cpu", "float64", seed=9)
    net = make_net(be)
    np_rule = build_rule("node_perturbation", net, be, noise=0.01, feedback_lr=0.0, style=style)
    ref = build_rule(base, net, be)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.integers(0, 4, 16)
    a = np_rule.step(net, x, y, losses.mse).grads
    b = ref.step(net, x, y, losses.mse).grads
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14)


def test_sgd_feedback_update_formula():
    """ΔB = −η_B Σ_b (B ẽ_b − λ̂_b) ẽ_bᵀ, in the layer's W layout (loop reference)."""
    be = Backend("cpu", "float64", seed=11)
    net = make_net(be)
    rule = build_rule("node_perturbation", net, be, noise=0.01, feedback_lr=0.1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5)), rng.integers(0, 4, 4)
    before = {i: B.copy() for i, B in rule.feedback.items()}
    logits, states = net.forward(x)
    _, e = losses.mse(logits, y)
    sig = backward(net, states, e, before)
    lam = rule.estimates(net, x, y, losses.mse, states, logits, (1,))  # the key step() uses first
    rule.step(net, x, y, losses.mse)
    for i, B in before.items():
        expect = B.copy()
        for b in range(4):
            et = sig[i][b, 0] * 4
            expect -= 0.1 * np.outer(et, et @ B - lam[i][b, 0])
        np.testing.assert_allclose(rule.feedback[i], expect, rtol=1e-10)


def test_state_roundtrip_and_reproducible_noise():
    """B, the ridge sums and the step counter are checkpointed: a rule
    restored from state_dict continues exactly like the original."""
    for solver in ("sgd", "ridge"):
        be = Backend("cpu", "float64", seed=2)
        net = make_net(be)
        r1 = build_rule("node_perturbation", net, be, noise=0.01, feedback_lr=0.05, solver=solver)
        rng = np.random.default_rng(0)
        batches = [(rng.standard_normal((8, 5)), rng.integers(0, 4, 8)) for _ in range(4)]
        for x, y in batches[:3]:
            r1.step(net, x, y, losses.mse)
        r2 = build_rule("node_perturbation", net, be, noise=0.01, feedback_lr=0.05, solver=solver)
        r2.load_state_dict(r1.state_dict())
        g1 = r1.step(net, *batches[3], losses.mse).grads
        g2 = r2.step(net, *batches[3], losses.mse).grads
        for k in g1:
            np.testing.assert_array_equal(g1[k], g2[k])
        for i in r1.feedback:
            np.testing.assert_array_equal(r1.feedback[i], r2.feedback[i])


def test_warmup_trains_only_feedback():
    be = Backend("cpu", "float64", seed=2)
    net = make_net(be)
    rule = build_rule("node_perturbation", net, be, noise=0.01, warmup_epochs=1)
    x, y = np.random.default_rng(0).standard_normal((8, 5)), np.arange(8) % 4
    B0 = {i: B.copy() for i, B in rule.feedback.items()}
    net.begin_step(1, epoch=0)
    assert rule.step(net, x, y, losses.mse).grads == {}
    net.begin_step(2, epoch=1)
    assert rule.step(net, x, y, losses.mse).grads
    net.end_step()
    assert any(not np.array_equal(B0[i], rule.feedback[i]) for i in B0)


def test_options_validated():
    base = {"circuit": {"vectorized": False, "sign": "mixed", "init": "he",
                        "layers": [{"type": "dense", "units": 4}]},
            "data": {"dataset": "synthetic"}, "loss": "mse"}
    with pytest.raises(ConfigError, match="rule.nosie"):
        validate_protocol({**base, "rule": {"name": "node_perturbation", "nosie": 0.1}})
    validate_protocol({**base, "rule": {"name": "node_perturbation", "noise": 0.1,
                                        "style": "dfa", "solver": "ridge"}})
    be = Backend("cpu", "float64")
    with pytest.raises(ValueError, match="rule.style"):
        build_rule("node_perturbation", make_net(be), be, style="sideways")
    with pytest.raises(ValueError, match="rule.noise"):
        build_rule("node_perturbation", make_net(be), be, noise=0.0)
