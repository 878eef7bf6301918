"""Credit-assignment metrics against independent references (appendix E, F; §3.3, §5).

Every test here fails when the metric's math is wrong: the tan θ = r identity,
exact zero angles by construction, brute-force per-example loops and finite
differences, eq. 15 at initialisation, and the ON/OFF projection by direct
minimisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.metrics import (
    cluster_quality,
    delta_hat,
    eq15_prediction,
    example_angles,
    example_sign_match,
    gevb_angle,
    mean_sq_pairwise,
    measure_at_init,
    network_on_off_drift,
    on_off_drift,
    predicted_angle,
    relative_std,
    rule_signals,
    sign_match,
    step_metrics,
    true_signals,
)
from neurosim.metrics.onoff import on_off_residual
from neurosim.metrics.theory import iid_nonnegative
from neurosim.model.network import build_network
from neurosim.rules import build_rule, weight_grads
from neurosim.rules.base import Rule, backward


def vnn(be, widths, n_in=5, K=3, sign="nonnegative", init="on_off", vectorized=True):
    spec = dict(vectorized=vectorized, sign=sign, init=init,
                layers=[{"type": "dense", "units": w} for w in widths])
    return build_network(spec, be, (n_in,), K)


def batch(be, B=6, n_in=5, K=3, seed=0):
    rng = np.random.default_rng(seed)
    return be.asarray(rng.uniform(-1, 1, (B, n_in))), rng.integers(0, K, B)


# --------------------------------------------------------------------------
# appendix E: tan θ = r
# --------------------------------------------------------------------------
def test_tan_theta_equals_r_on_random_delta_hat(rng):
    dh = rng.gamma(2.0, 1.0, size=(50, 37)) + 0.01  # positive, per example
    th = gevb_angle(dh)
    r = relative_std(dh)
    # eq. A4 independently: angle between δ̂ and the constant vector 1
    ones = np.ones_like(dh)
    np.testing.assert_allclose(example_angles(ones, dh), th, rtol=1e-10, atol=1e-9)
    # eq. A8: tan θ = r, with r the population std over the mean (eq. A5)
    np.testing.assert_allclose(np.tan(np.radians(th)), r, rtol=1e-9)
    np.testing.assert_allclose(predicted_angle(r), th, rtol=1e-9)
    ref = np.array([np.std(d) / np.mean(d) for d in dh])
    np.testing.assert_allclose(r, ref, rtol=1e-12)


# --------------------------------------------------------------------------
# angles that are zero (or known exactly) by construction
# --------------------------------------------------------------------------
def test_gevb_angle_zero_when_delta_hat_constant(be64):
    net = vnn(be64, [8])  # one hidden layer feeding the readout
    net.layers[net.readout].params["W"][...] = 0.7  # equal readout weights: δ̂ = 0.7 for all units
    x, y = batch(be64)
    rule = build_rule("gevb", net, be64)
    res = rule.step(net, x, y, losses.cross_entropy)
    m = step_metrics(net, rule, res)
    assert m["alignment_angle"][0] == pytest.approx(0.0, abs=1e-5)
    assert m["r"][0] == pytest.approx(0.0, abs=1e-12)
    assert m["update_angle"][0] == pytest.approx(0.0, abs=1e-5)
    assert m["sign_match_example"][0] == 1.0 and m["sign_match_batch"][0] == 1.0


def test_gevb_last_hidden_angle_is_atan_of_readout_cv(be64):
    """δ̂^{L-1} = w^L exactly, so θ^{L-1} = atan(σ_{w^L}/μ_{w^L}) (eq. 15 initial condition)."""
    net = vnn(be64, [8, 6])
    w = np.random.default_rng(3).uniform(0.1, 2.0, 6)
    net.layers[net.readout].params["W"][...] = w[None]
    x, y = batch(be64)
    rule = build_rule("gevb", net, be64)
    m = step_metrics(net, rule, rule.step(net, x, y, losses.cross_entropy))
    expect = math.degrees(math.atan(w.std() / w.mean()))
    assert m["alignment_angle"][1] == pytest.approx(expect, rel=1e-9)
    assert m["predicted_angle"][1] == pytest.approx(expect, rel=1e-9)
    assert eq15_prediction(net)[1] == pytest.approx(w.std() / w.mean(), rel=1e-12)
    # the readout is exact for every rule
    # (arccos near 1 turns float64 rounding into ~1e-6 degrees)
    assert m["alignment_angle"][-1] == 0.0 and m["update_angle"][-1] == pytest.approx(0, abs=1e-5)


def test_dfa_angle_zero_with_true_jacobian_as_feedback(be64):
    net = vnn(be64, [7], vectorized=False, sign="mixed", init="he")
    x, y = batch(be64)
    rule = build_rule("dfa", net, be64)
    # one hidden layer: ∂L/∂a^1 = e W_L, so B = W_L is the true Jacobian
    rule.feedback[0] = net.layers[net.readout].params["W"].copy()
    m = step_metrics(net, rule, rule.step(net, x, y, losses.cross_entropy))
    assert m["alignment_angle"][0] == pytest.approx(0.0, abs=1e-5)
    assert m["update_angle"][0] == pytest.approx(0.0, abs=1e-5)
    assert m["sign_match_batch"][0] == 1.0
    # a random feedback matrix is not aligned
    rule2 = build_rule("dfa", net, be64)
    m2 = step_metrics(net, rule2, rule2.step(net, x, y, losses.cross_entropy))
    assert m2["alignment_angle"][0] > 10.0


def test_fa_angle_zero_with_transposes_as_feedback(be64):
    net = vnn(be64, [7, 6], vectorized=False, sign="mixed", init="he")
    x, y = batch(be64)
    rule = build_rule("fa", net, be64)
    for i in rule.feedback:
        rule.feedback[i] = net.layers[i].params["W"].copy()
    m = step_metrics(net, rule, rule.step(net, x, y, losses.cross_entropy))
    np.testing.assert_allclose(m["alignment_angle"][:2], 0.0, atol=1e-5)


# --------------------------------------------------------------------------
# brute-force per-example references
# --------------------------------------------------------------------------
def forward_from(net, a, start):
    """Logits from activation ``a`` of layer ``start - 1`` (a plain loop)."""
    for i in range(start, len(net.layers)):
        h = net.layers[i].forward(a)
        a = h if net.nonlins[i] is None else net.nonlins[i](h, net.t[i])[0]
    return a.reshape(a.shape[0], -1)


def fd_dL_da(net, x, y, layer, eps=1e-6):
    """Per-example ∂L_b/∂a^layer by central finite differences (float64)."""
    _, states = net.forward(x)
    a = states[layer].a
    out = np.zeros_like(a)
    for b in range(a.shape[0]):
        ab = a[b : b + 1]
        flat = ab.reshape(-1)
        for k in range(flat.size):
            vals = []
            for s in (eps, -eps):
                p = flat.copy()
                p[k] += s
                loss, _ = losses.cross_entropy(forward_from(net, p.reshape(ab.shape), layer + 1),
                                               y[b : b + 1])
                vals.append(loss)
            out[b].reshape(-1)[k] = (vals[0] - vals[1]) / (2 * eps)
    return out


def angle_deg(u, v):
    u, v = np.ravel(u), np.ravel(v)
    return math.degrees(math.acos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))


@pytest.mark.parametrize("rule_name", ["gevb", "dfa"])
def test_alignment_against_brute_force(be64, rule_name):
    net = vnn(be64, [8, 6], sign="nonnegative")
    x, y = batch(be64, B=5)
    rule = build_rule(rule_name, net, be64)
    res = rule.step(net, x, y, losses.cross_entropy)
    # precondition for finite differences: no gate sits on its boundary t·h = 0
    for i, s in enumerate(res.states):
        if net.t[i] is not None:
            assert np.abs((s.h * net.t[i]).sum(axis=1)).min() > 1e-3
    m = step_metrics(net, rule, res, examples=5, per_example=True)
    B = x.shape[0]
    true = true_signals(net, res.states, res.e)
    for k, layer in enumerate(net.hidden_weight_layers):
        fd = fd_dL_da(net, x, y, layer)
        # ∂L/∂a from the metrics' backward pass = finite differences (per example, 1/B aside)
        np.testing.assert_allclose(true[layer] * B, fd, rtol=1e-5, atol=1e-8)
        ref = []
        for b in range(B):
            e_b = res.e[b] * B
            if rule_name == "gevb":  # broadcast error: δ[μ, i] = e_μ
                d = np.repeat(e_b[:, None], net.layers[layer].n_units, axis=1)
            else:  # DFA in a VNN: δ[μ, i] = Σ_o e[μ, o] B[o, i] with one output unit
                d = e_b[:, None] * rule.feedback[layer][0][None, :]
            ref.append(angle_deg(d, fd[b]))
        np.testing.assert_allclose(m["alignment_angle_example"][k], ref, rtol=1e-6, atol=1e-6)
        assert m["alignment_angle"][k] == pytest.approx(np.mean(ref), rel=1e-6)
        if rule_name == "gevb":  # = atan(r) with r from δ̂ (appendix E)
            assert m["predicted_angle"][k] == pytest.approx(np.mean(ref), rel=1e-6)


def test_sign_match_against_brute_force(be64):
    # DFA with mixed-sign feedback in a conventional net: sign match is not guaranteed
    net = vnn(be64, [8, 6], vectorized=False, sign="mixed", init="he")
    x, y = batch(be64, B=5)
    rule = build_rule("dfa", net, be64)
    res = rule.step(net, x, y, losses.cross_entropy)
    m = step_metrics(net, rule, res, examples=5)
    per = {i: [] for i in net.weight_layers}
    for b in range(5):
        xb, yb = x[b : b + 1], y[b : b + 1]
        rb = rule.step(net, xb, yb, losses.cross_entropy)  # the rule's own one-example update
        tb = weight_grads(net, rb.states, backward(net, rb.states, rb.e))  # BP on one example
        for i in net.weight_layers:
            u, t = rb.grads[(i, "W")].ravel(), tb[(i, "W")].ravel()
            nz = [j for j in range(t.size) if t[j] != 0]
            per[i].append(sum(np.sign(u[j]) == np.sign(t[j]) for j in nz) / len(nz))
    true = weight_grads(net, res.states, backward(net, res.states, res.e))
    for k, i in enumerate(net.weight_layers):
        assert m["sign_match_example"][k] == pytest.approx(np.mean(per[i]), rel=1e-12)
        u, t = res.grads[(i, "W")].ravel(), true[(i, "W")].ravel()
        nz = t != 0
        ref = np.mean(np.sign(u[nz]) == np.sign(t[nz]))
        assert m["sign_match_batch"][k] == pytest.approx(ref, rel=1e-12)
    assert m["sign_match_example"][-1] == 1.0
    # the generic path (layer.grads per example, used for non-dense layers) agrees too
    from neurosim.metrics.alignment import backward_signals
    from neurosim.rules.base import post_signal

    gs_true, _ = backward_signals(net, res.states, res.e)
    sig = rule_signals(rule, net, res.states, res.e)
    for i in net.hidden_weight_layers:
        g_rule = post_signal(sig[i], res.states[i].dphi)
        val = example_sign_match(net.layers[i], res.states[i].a_in, g_rule, gs_true[i], range(5))
        assert val == pytest.approx(np.mean(per[i]), rel=1e-12)
    assert min(m["sign_match_example"][:-1]) < 0.9 and min(m["sign_match_batch"][:-1]) < 0.9


def test_sampled_dense_sign_match_estimates_the_full_fraction(be64):
    from neurosim.metrics.alignment import (
        backward_signals,
        dense_block_sample,
        dense_example_sign_match,
    )
    from neurosim.rules.base import post_signal

    net = vnn(be64, [64, 48], n_in=40, vectorized=False, sign="mixed", init="he")
    x, y = batch(be64, B=16, n_in=40)
    rule = build_rule("dfa", net, be64)
    res = rule.step(net, x, y, losses.cross_entropy)
    gs_true, _ = backward_signals(net, res.states, res.e)
    sig = rule_signals(rule, net, res.states, res.e)
    for i in net.hidden_weight_layers:
        L, g_rule = net.layers[i], post_signal(sig[i], res.states[i].dphi)
        full = example_sign_match(L, res.states[i].a_in, g_rule, gs_true[i], range(16))
        exact = dense_example_sign_match(L, res.states[i].a_in, g_rule, gs_true[i],
                                         dense_block_sample(L, 0))
        assert exact == pytest.approx(full, rel=1e-12)
        est = dense_example_sign_match(L, res.states[i].a_in, g_rule, gs_true[i],
                                       dense_block_sample(L, 1000))
        assert est == pytest.approx(full, abs=0.04)


def test_gevb_matches_gradient_sign_per_example(be64):
    """Sec. 3.3: in a nonnegative VNN δ̂ ≥ 0, so GEVB has the gradient's sign per example."""
    net = vnn(be64, [10, 8])
    x, y = batch(be64, B=8, seed=2)
    rule = build_rule("gevb", net, be64)
    res = rule.step(net, x, y, losses.cross_entropy)
    dh = delta_hat(net, res.states)
    assert all((d >= 0).all() for d in dh.values())
    m = step_metrics(net, rule, res, examples=8)
    np.testing.assert_array_equal(m["sign_match_example"], 1.0)
    # and ∂L/∂a = δ̂ ⊗ e (eq. 12) for every hidden layer
    true = true_signals(net, res.states, res.e)
    for i, d in dh.items():
        np.testing.assert_allclose(true[i], d[:, None, :] * res.e[:, :, None], rtol=1e-10, atol=1e-14)


def test_unknown_rule_has_no_signals(be64):
    class Other(Rule):
        name = "other"

    net = vnn(be64, [4])
    x, y = batch(be64)
    _, states = net.forward(x)
    _, e = losses.cross_entropy(net.forward(x)[0], y)
    assert rule_signals(Other(net, be64), net, states, e) is None


def test_sign_match_ignores_zero_gradients():
    assert sign_match(np.array([1.0, -1.0, 5.0]), np.array([2.0, 0.0, -1.0])) == 0.5
    assert math.isnan(sign_match(np.ones(3), np.zeros(3)))


# --------------------------------------------------------------------------
# eq. 15 at initialisation (appendix F)
# --------------------------------------------------------------------------
def test_eq15_matches_measurement_for_wide_iid_nonnegative_net():
    """Tolerance: 10 % relative on r for layers ℓ < L−1 at width 1024 (measured
    agreement is ~2 %); exact for ℓ = L−1 where δ̂ = w^L."""
    be = Backend("cpu", "float64", seed=5)
    rs = {}
    for n in (256, 1024):
        net = vnn(be, [n, n, n], n_in=16, K=10)
        iid_nonnegative(net, be.rng("init", 9, n))
        x = be.rng("synthetic").uniform(-1, 1, (24, 16))
        rows = measure_at_init(net, x)
        for r in rows[:-1]:
            assert r["r_measured"] == pytest.approx(r["r_predicted"], rel=0.10)
        assert rows[-1]["r_measured"] == pytest.approx(rows[-1]["r_predicted"], rel=1e-9)
        rs[n] = rows[0]["r_measured"]
    # r ∝ 1/√n in early layers: quadrupling the width halves r
    assert rs[256] / rs[1024] == pytest.approx(2.0, rel=0.15)


# --------------------------------------------------------------------------
# ON/OFF drift (eq. 16)
# --------------------------------------------------------------------------
def test_on_off_drift_zero_at_init_and_grows(be64):
    net = vnn(be64, [8, 6])
    np.testing.assert_allclose(network_on_off_drift(net), 0.0, atol=1e-12)
    W = net.layers[1].params["W"]
    W += np.random.default_rng(0).uniform(0, 0.5, W.shape)
    d = network_on_off_drift(net)
    assert d[1] > 0.05 and d[0] == pytest.approx(0, abs=1e-12)


def test_on_off_projection_is_nearest_by_brute_force(rng):
    from scipy.optimize import minimize_scalar

    def best(f, split=True):
        """min over w of f(w) (both half-lines when f has a kink at 0)."""
        if not split:
            return minimize_scalar(f).fun
        return min(minimize_scalar(f, bounds=bd, method="bounded").fun for bd in ((-5, 0), (0, 5)))

    def hidden_cost(a, b, c, d):
        return lambda w: ((a - max(w, 0)) ** 2 + (d - max(w, 0)) ** 2
                          + (b - max(-w, 0)) ** 2 + (c - max(-w, 0)) ** 2)

    def first_cost(on, off):
        return lambda w: (on - w) ** 2 + (off + w) ** 2

    def readout_cost(a, b):
        return lambda w: (a - max(w, 0)) ** 2 + (b - max(-w, 0)) ** 2

    def brute(W, kind):
        tot = 0.0
        if kind == "hidden":
            for i in range(0, W.shape[0], 2):
                for j in range(0, W.shape[1], 2):
                    tot += best(hidden_cost(W[i, j], W[i, j + 1], W[i + 1, j], W[i + 1, j + 1]))
        elif kind == "first":
            for i in range(0, W.shape[0], 2):
                for j in range(W.shape[1]):
                    tot += best(first_cost(W[i, j], W[i + 1, j]), split=False)
        else:
            for i in range(W.shape[0]):
                for j in range(0, W.shape[1], 2):
                    tot += best(readout_cost(W[i, j], W[i, j + 1]))
        return tot

    W = rng.normal(size=(6, 4))
    assert on_off_residual(W, 0, 1) == pytest.approx(brute(W, "hidden"), rel=1e-5, abs=1e-9)
    assert on_off_residual(W, 0, None) == pytest.approx(brute(W, "first"), rel=1e-6, abs=1e-9)
    assert on_off_residual(W, None, 1) == pytest.approx(brute(W, "readout"), rel=1e-5, abs=1e-9)
    assert 0 < on_off_drift(W, 0, 1) < 1


# --------------------------------------------------------------------------
# cluster quality (§6)
# --------------------------------------------------------------------------
def test_cluster_quality_against_pairwise_reference(rng):
    Y = rng.normal(size=(30, 2))
    lab = rng.integers(0, 3, 30)
    D = ((Y[:, None] - Y[None]) ** 2).sum(-1)
    off = ~np.eye(30, dtype=bool)
    assert mean_sq_pairwise(Y) == pytest.approx(D[off].mean(), rel=1e-12)
    within = []
    for c in range(3):
        idx = np.where(lab == c)[0]
        Dc = D[np.ix_(idx, idx)]
        within.append(Dc[~np.eye(len(idx), dtype=bool)].mean())
    assert cluster_quality(Y, lab) == pytest.approx(1 - np.mean(within) / D[off].mean(), rel=1e-12)
    tight = np.repeat(np.eye(3) * 10, 10, axis=0) + 1e-3 * rng.normal(size=(30, 3))
    assert cluster_quality(tight, np.repeat(np.arange(3), 10)) > 0.99


def tsne_cluster_quality(seed: int = 0):
    """Cluster quality of 3 separated Gaussian clusters after t-SNE, and of shuffled labels."""
    from neurosim.metrics import representation_quality

    rng = np.random.default_rng(seed)
    X = np.repeat(rng.normal(size=(3, 40)) * 5, 15, axis=0) + rng.normal(size=(45, 40))
    lab = np.repeat(np.arange(3), 15)
    q = representation_quality(X, lab, method="tsne", max_iter=250)
    q_rand = representation_quality(X, rng.permutation(lab), method="pca")
    return q, q_rand


def test_cluster_quality_tsne_embedding():
    pytest.importorskip("sklearn")
    q, q_rand = tsne_cluster_quality()
    assert q > 0.5 and q_rand < 0.3  # 250 iterations: early exaggeration only
