"""GEVB (eq. 9): explicit formula, fast path, sign match, readout, appendix B."""

import numpy as np
import pytest

from neurosim import losses
from neurosim.model.layers import Dense, Layer
from neurosim.rules import build_rule

from .helpers import batch, small_net


def gevb_reference(net, x, y):
    """Eq. 9 written out with loops over examples, units and components."""
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    B, K = e.shape
    ref = {}
    for i in net.hidden_weight_layers:
        s = states[i]
        G = s.dphi[:, 0, :]  # (B, n)
        L = net.layers[i]
        W = L.params["W"]
        dW = np.zeros_like(W)
        db = np.zeros_like(L.params["b"])
        a = s.a_in.reshape(B, -1) if L.first else s.a_in
        for b in range(B):
            for u in range(G.shape[1]):
                if L.first:  # ΔW1[ν,i,j] = Σ_b G[b,i] e[b,ν] x[b,j]
                    for nu in range(K):
                        dW[nu, u] += G[b, u] * e[b, nu] * a[b]
                else:  # ΔW[i,j] = Σ_b G[b,i] Σ_μ a[b,μ,j] e[b,μ]
                    dW[u] += G[b, u] * (a[b] * e[b][:, None]).sum(axis=0)
                for mu in range(K):
                    db[mu, u] += G[b, u] * e[b, mu]
        ref[(i, "W")], ref[(i, "b")] = dW, db
    return ref


@pytest.mark.parametrize("sign", ["nonnegative", "mixed"])
def test_gevb_matches_explicit_formula(sign, rng):
    net, be = small_net(sign=sign, layers=(6, 4, 4))
    x, y = batch(rng, B=7)
    grads = build_rule("gevb", net, be).step(net, x, y, losses.cross_entropy).grads
    ref = gevb_reference(net, x, y)
    for key, r in ref.items():
        np.testing.assert_allclose(grads[key], r, rtol=1e-12, atol=1e-14, err_msg=str(key))
    assert any(np.abs(r).sum() > 0 for r in ref.values())


def test_gevb_fast_path_equals_materialised_signal(rng):
    """Dense.gevb_grads (ΔW = −GᵀP) equals grads() with g = G ⊗ e."""
    net, be = small_net(layers=(6, 4))
    x, y = batch(rng)
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    i = net.hidden_weight_layers[-1]
    L, s = net.layers[i], states[i]
    fast = L.gevb_grads(s.a_in, s.dphi, e)
    slow = Layer.gevb_grads(L, s.a_in, s.dphi, e)
    for k in fast:
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-12, atol=1e-15)


def test_gevb_readout_update_is_the_gradient(rng):
    net, be = small_net(layers=(6, 4))
    x, y = batch(rng)
    g = build_rule("gevb", net, be).step(net, x, y, losses.cross_entropy).grads
    bp = build_rule("bp", net, be).step(net, x, y, losses.cross_entropy).grads
    r = net.readout
    for name in ("W", "b"):
        np.testing.assert_allclose(g[(r, name)], bp[(r, name)], rtol=1e-12)
    # ... but not for hidden layers (GEVB is not BP)
    h = net.hidden_weight_layers[0]
    assert not np.allclose(g[(h, "W")], bp[(h, "W")])


def per_example_sign_agreement(net, be, x, y, tol=1e-12):
    """Fraction of hidden weights (per example, where the gradient is non-zero)
    whose GEVB update sign equals the gradient sign."""
    gevb, bp = build_rule("gevb", net, be), build_rule("bp", net, be)
    agree = total = 0
    for b in range(x.shape[0]):
        xb, yb = x[b : b + 1], y[b : b + 1]
        g = gevb.step(net, xb, yb, losses.cross_entropy).grads
        t = bp.step(net, xb, yb, losses.cross_entropy).grads
        for i in net.hidden_weight_layers:
            for name in ("W", "b"):
                tg, gg = t[(i, name)], g[(i, name)]
                m = np.abs(tg) > tol
                agree += int((np.sign(tg[m]) == np.sign(gg[m])).sum())
                total += int(m.sum())
    return agree / total, total


def test_gevb_sign_matches_gradient_in_nonnegative_vnn(rng):
    """Sec. 3.3: with W ≥ 0 past the first layer, δ̂ ≥ 0 and GEVB has the
    gradient's sign for every hidden weight, per example."""
    net, be = small_net(sign="nonnegative", layers=(10, 8, 6), in_shape=(1, 4, 4), n_classes=5)
    x, y = batch(rng, B=8, in_shape=(1, 4, 4), n_classes=5)
    frac, total = per_example_sign_agreement(net, be, x, y)
    assert total > 500
    assert frac == 1.0


def test_gevb_sign_match_fails_in_mixed_sign_vnn(rng):
    net, be = small_net(sign="mixed", layers=(10, 8, 6), in_shape=(1, 4, 4), n_classes=5)
    x, y = batch(rng, B=8, in_shape=(1, 4, 4), n_classes=5)
    frac, total = per_example_sign_agreement(net, be, x, y)
    assert total > 500
    assert frac < 0.9


def test_appendix_b_vector_input_units(rng):
    """Appendix B: K·n0 vector input units a0[(ν,j), μ] = δ_μν x_j with a weight-
    shared layer give the same h1 and the same GEVB ΔW1 as the first layer."""
    net, be = small_net(layers=(6, 4))
    K, n0 = net.K, 9
    x, y = batch(rng)
    B = x.shape[0]
    first = net.layers[0]
    W1 = first.params["W"]  # (K, n, n0)
    shared = Dense((K * n0,), K, first=False, units=W1.shape[1])
    # W_shared[i, ν·n0 + j] = W1[ν, i, j]
    shared.params = {"W": W1.transpose(1, 0, 2).reshape(W1.shape[1], K * n0).copy(),
                     "b": first.params["b"].copy()}
    a0 = np.zeros((B, K, K * n0))
    xf = x.reshape(B, n0)
    for nu in range(K):
        a0[:, nu, nu * n0 : (nu + 1) * n0] = xf
    h_first = first.forward(x)
    h_shared = shared.forward(a0)
    np.testing.assert_allclose(h_shared, h_first, rtol=1e-12, atol=1e-14)
    logits, states = net.forward(x)
    _, e = losses.cross_entropy(logits, y)
    G = states[0].dphi
    d_first = first.gevb_grads(states[0].a_in, G, e)["W"]
    d_shared = shared.gevb_grads(a0, G, e)["W"]
    np.testing.assert_allclose(d_shared.reshape(-1, K, n0).transpose(1, 0, 2), d_first,
                               rtol=1e-12, atol=1e-15)


def test_gevb_rejects_conventional_network():
    net, be = small_net(vectorized=False, sign="mixed")
    with pytest.raises(ValueError, match="vectorized"):
        build_rule("gevb", net, be)
