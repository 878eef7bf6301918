"""What every rule declares (learning signals, error signals, feedback matrices)
is what its update uses.

* For every registered rule (node perturbation in both styles), on dense
  networks in float64: the error signals δ^ℓ equal a reference written out from
  the rule's definition and its declared feedback matrices (plain einsums, no
  layer code); the learning signals are δ^ℓ ⊙ φ'(h^ℓ) and, at the readout,
  e ⊙ φ'(h^L); the weight and bias updates rebuilt from (input, g) by einsum
  equal the step's to 1e-12.
* The same contract on a conv / LC / pooling network, rebuilt through the
  layers' own ``grads`` (for GEVB that checks its fast path against its
  declared signal).
* Feedback matrices are the live arrays the update uses (zeroing them in place
  zeroes the hidden updates); every rule gets finite alignment angles; a rule
  that declares nothing raises a clear error instead of NaN angles.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.metrics import feedback_metrics, step_metrics
from neurosim.model.network import build_network
from neurosim.rules import RULES, Rule, UndeclaredError, build_rule, weight_grads
from neurosim.rules.base import backward, post_signal

from .helpers import batch, small_net

#: (rule name, options) for every registered rule; node perturbation in both styles
CASES = [(name, {}) for name in sorted(RULES) if name != "node_perturbation"] + [
    ("node_perturbation", {"style": "fa"}), ("node_perturbation", {"style": "dfa"})]
IDS = [n + ("_" + o["style"] if o else "") for n, o in CASES]

#: the kind of feedback each rule declares (None: no feedback matrices)
KINDS = {"bp": None, "gevb": None, "fa": "backward", "sign_symmetry": "backward",
         "dfa": "direct", "ifa": "direct"}


def kind_of(name, opts):
    if name == "node_perturbation":
        return "backward" if opts["style"] == "fa" else "direct"
    return KINDS[name]


def dense_net(name, seed=2):
    """A VNN with gates for GEVB; else a conventional mixed-sign tanh network."""
    if name == "gevb":
        return small_net(vectorized=True, sign="nonnegative", layers=(8, 6, 4), seed=seed)
    be = Backend("cpu", "float64", seed=seed)
    spec = {"vectorized": False, "sign": "mixed", "init": "he", "nonlinearity": "tanh",
            "layers": [{"type": "dense", "units": n} for n in (7, 6, 5)]}
    return build_network(spec, be, (1, 3, 3), 4), be


def reference_errors(name, opts, rule, net, states, e):
    """δ^ℓ per hidden layer from the rule's definition (DESIGN.md's table),
    with the matrices of ``rule.feedback_matrices()`` — dense networks only."""
    Bsz, K = e.shape[0], net.K
    E = e.reshape(Bsz, K, net.n_out)
    fb = {i: f.matrix for i, f in rule.feedback_matrices().items()}
    hidden = net.hidden_weight_layers
    W = {i: net.layers[i].params["W"] for i in net.weight_layers}
    dphi = {i: states[i].dphi for i in net.weight_layers}

    def g_of(d, i):
        return d if dphi[i] is None else d * dphi[i]

    kind = kind_of(name, opts)
    if name == "gevb":  # the broadcast error vector, eq. 9
        return {i: np.repeat(E, net.layers[i].n_units, axis=2) for i in hidden}
    if kind == "direct" and name != "ifa":  # DFA, eq. 5: δ = e B
        return {i: np.einsum("bko,oi->bki", E, fb[i]) for i in hidden}
    if name == "ifa":  # δ1 = e B1, then up through the forward weights
        f = hidden[0]
        out = {f: np.einsum("bko,oi->bki", E, fb[f])}
        for i in hidden[1:]:
            out[i] = np.einsum("bkj,ij->bki", g_of(out[i - 1], i - 1), W[i])
        return out
    # down from the output: through B^{ℓ+1} where the rule has one, else W^{ℓ+1} (BP)
    out, g = {}, g_of(E, net.readout)
    for i in reversed(hidden):
        out[i] = np.einsum("bko,oi->bki", g, fb.get(i + 1, W[i + 1]))
        g = g_of(out[i], i)
    return out


def einsum_grads(net, states, g):
    """Three-factor updates from (input, g), written out for dense layers."""
    out = {}
    for i in net.weight_layers:
        L, a = net.layers[i], states[i].a_in
        Bsz = a.shape[0]
        if L.first:  # W1[μ, i, j] = Σ_b g[b, μ, i] x[b, j]
            out[(i, "W")] = np.einsum("bki,bj->kij", g[i], a.reshape(Bsz, -1))
        else:  # shared W[i, j] = Σ_{b, μ} g[b, μ, i] a[b, μ, j]
            out[(i, "W")] = np.einsum("bki,bkj->ij", g[i], a.reshape(Bsz, a.shape[1], -1))
        out[(i, "b")] = g[i].sum(axis=0)
    return out


def signals_before_step(rule, net, x, y, loss_fn=losses.cross_entropy):
    logits, states = net.forward(x)
    _, e = loss_fn(logits, y)
    return states, e, rule.error_signals(net, states, e), rule.learning_signals(net, states, e)


@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_declared_signals_are_the_update(name, opts, rng):
    net, be = dense_net(name)
    rule = build_rule(name, net, be, **opts)
    x, y = batch(rng, B=6)
    # before the step: node perturbation updates its feedback at the end of a step
    states, e, delta, g = signals_before_step(rule, net, x, y)
    ref = reference_errors(name, opts, rule, net, states, e)
    assert sorted(delta) == net.hidden_weight_layers
    assert sorted(g) == net.weight_layers
    for i in net.hidden_weight_layers:
        assert delta[i].shape == states[i].a.shape
        np.testing.assert_allclose(delta[i], ref[i], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(g[i], post_signal(delta[i], states[i].dphi))
    r = net.readout
    np.testing.assert_array_equal(g[r], post_signal(e.reshape(states[r].h.shape), states[r].dphi))
    res = rule.step(net, x, y, losses.cross_entropy)
    np.testing.assert_array_equal(res.e, e)
    expect = einsum_grads(net, states, g)
    assert set(res.grads) == set(expect)
    for k in expect:
        np.testing.assert_allclose(res.grads[k], expect[k], rtol=1e-12, atol=1e-15, err_msg=str(k))


@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_declared_signals_are_the_update_conv(name, opts):
    """conv → avg-pool → LC → max-pool → flatten → dense: the step equals the
    layers' three-factor product of the declared learning signals."""
    in_shape = (2, 6, 6)
    layers = [{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
              {"type": "avg_pool2d", "size": 2},
              {"type": "locally_connected2d", "channels": 4, "kernel": 2},
              {"type": "max_pool2d", "size": 2},
              {"type": "flatten"},
              {"type": "dense", "units": 6}]
    vec = name == "gevb"
    spec = {"vectorized": vec, "sign": "nonnegative" if vec else "mixed",
            "init": "on_off" if vec else "he", "layers": layers}
    be = Backend("cpu", "float64", seed=4)
    net = build_network(spec, be, in_shape, 3)
    rule = build_rule(name, net, be, **opts)
    x = np.random.default_rng(0).uniform(-1, 1, (3,) + in_shape)
    y = np.array([0, 1, 2])
    states, e, delta, g = signals_before_step(rule, net, x, y)
    for i in net.hidden_weight_layers:
        assert delta[i].shape == states[i].a.shape
        np.testing.assert_array_equal(g[i], post_signal(delta[i], states[i].dphi))
    expect = weight_grads(net, states, g)
    got = rule.step(net, x, y, losses.cross_entropy).grads
    assert set(got) == set(expect)
    for k in expect:
        np.testing.assert_allclose(got[k], expect[k], rtol=1e-12, atol=1e-14, err_msg=str(k))


@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_feedback_matrices_declared_and_live(name, opts, rng):
    net, be = dense_net(name)
    rule = build_rule(name, net, be, **opts)
    fb = rule.feedback_matrices()
    kind = kind_of(name, opts)
    if kind is None:
        assert fb == {}
        return
    assert {f.kind for f in fb.values()} == {kind}
    expect_layers = {"backward": net.weight_layers[1:], "direct": net.hidden_weight_layers}[kind]
    assert sorted(fb) == (expect_layers if name != "ifa" else net.hidden_weight_layers[:1])
    for i, f in fb.items():
        if kind == "backward":
            assert f.matrix.shape == net.layers[i].params["W"].shape
        else:
            assert f.matrix.shape == (net.n_out, net.layers[i].n_units)
    if name == "sign_symmetry":  # derived from W at every call
        for i, f in fb.items():
            np.testing.assert_array_equal(f.matrix, np.sign(net.layers[i].params["W"]))
        return
    # the declared arrays are the ones the update reads: zero them in place
    for f in fb.values():
        f.matrix[...] = 0.0
    x, y = batch(rng, B=6)
    grads = rule.step(net, x, y, losses.cross_entropy).grads
    for i in net.hidden_weight_layers:
        np.testing.assert_array_equal(grads[(i, "W")], 0.0)
    assert np.abs(grads[(net.readout, "W")]).max() > 0


def test_dfa_feedback_matrices_are_the_update(rng):
    """DFA: δ^ℓ = e B^ℓ with B^ℓ = feedback_matrices()[ℓ].matrix, the slice
    [:, :n_ℓ] of the one sampled matrix (appendix J), gives the step's update."""
    net, be = dense_net("dfa")
    rule = build_rule("dfa", net, be)
    fb = rule.feedback_matrices()
    x, y = batch(rng, B=6)
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    grads = rule.step(net, x, y, losses.cross_entropy).grads
    for i in net.hidden_weight_layers:
        B = fb[i].matrix
        np.testing.assert_array_equal(B, rule.matrix[:, : net.layers[i].n_units])
        g = (e @ B)[:, None, :] * states[i].dphi
        a = states[i].a_in.reshape(6, 1, -1)
        dW = np.einsum("bki,bkj->ij", g, a) if i else np.einsum("bki,bj->kij", g, a[:, 0])
        np.testing.assert_allclose(grads[(i, "W")], dW, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name,opts", CASES, ids=IDS)
def test_every_rule_has_finite_metrics(name, opts, rng):
    net, be = dense_net(name)
    rule = build_rule(name, net, be, **opts)
    x, y = batch(rng, B=6)
    res = rule.step(net, x, y, losses.cross_entropy)
    m = step_metrics(net, rule, res, examples=4)
    for k in ("alignment_angle", "update_angle", "sign_match_batch", "sign_match_example"):
        assert np.isfinite(m[k]).all(), (k, m[k])
    fm = feedback_metrics(net, rule, res.states, res.e, res.grads)
    assert sorted(fm["fb_update_angle"]) == net.weight_layers
    for i in rule.feedback_matrices():
        assert np.isfinite(fm["fb_signal_angle"][i])
    if name == "bp":
        np.testing.assert_allclose(m["alignment_angle"], 0.0, atol=1e-5)


def test_bp_signals_are_the_backward_pass(rng):
    net, be = dense_net("bp")
    rule = build_rule("bp", net, be)
    x, y = batch(rng, B=4)
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    g, full = rule.learning_signals(net, states, e), backward(net, states, e)
    for i in net.weight_layers:
        np.testing.assert_array_equal(g[i], full[i])
    assert rule.exact_gradient and not build_rule("fa", net, be).exact_gradient


class Undeclared(Rule):
    """A rule with an update but no declared signals."""

    name = "undeclared"

    def gradients(self, net, states, e):
        return weight_grads(net, states, backward(net, states, e))


def test_undeclared_rule_raises_clearly(rng):
    net, be = dense_net("bp")
    rule = Undeclared(net, be)
    x, y = batch(rng, B=4)
    res = rule.step(net, x, y, losses.cross_entropy)  # training works
    assert rule.feedback_matrices() == {}
    with pytest.raises(UndeclaredError, match="'undeclared'.*error signals"):
        step_metrics(net, rule, res, delta_hat_stats=False, sign_match_on=False)
    with pytest.raises(UndeclaredError, match="'undeclared'.*learning signals"):
        step_metrics(net, rule, res, alignment=False, delta_hat_stats=False)
    assert issubclass(UndeclaredError, NotImplementedError)
    # metrics that need no signal still work
    m = step_metrics(net, rule, res, alignment=False, sign_match_on=False, delta_hat_stats=False)
    assert m == {}
    fm = feedback_metrics(net, rule, res.states, res.e, res.grads)
    assert np.allclose(list(fm["fb_update_angle"].values()), 0.0, atol=1e-5)
