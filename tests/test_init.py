"""ON/OFF initialisation (eq. 16), gating vectors and the nonnegativity clamp."""

import numpy as np
import pytest

from neurosim.core.backend import Backend
from neurosim.model import init as initmod
from neurosim.model.gating import gating_vectors
from neurosim.model.network import build_network

from .helpers import batch, small_net


@pytest.mark.parametrize("vectorized", [True, False])
def test_on_off_pairs_equal_and_opposite(vectorized, rng):
    net, _ = small_net(vectorized=vectorized, layers=(16, 12, 8), n_classes=4)
    x, _ = batch(rng, B=6)
    _, states = net.forward(x)
    for i in net.hidden_weight_layers:
        a = states[i].a
        np.testing.assert_allclose(a[..., 0::2], -a[..., 1::2], atol=1e-12)
        assert np.abs(a).sum() > 0


@pytest.mark.parametrize("vectorized", [True, False])
def test_on_half_is_half_width_mixed_network(vectorized, rng):
    """The ON units of an ON/OFF network compute a half-width mixed-sign network
    with weights W̃ (eq. 16); build that network explicitly and compare."""
    net, _ = small_net(vectorized=vectorized, layers=(8, 6, 4), n_classes=4)
    # a conventional readout pairs its rows too (z[2k+1] = -z[2k]): the half network has
    # half the outputs
    half, _ = small_net(vectorized=vectorized, sign="mixed", init="he", layers=(4, 3, 2), n_classes=4,
                        output=None if vectorized else {"units": 2})
    w = net.weight_layers
    L0, H0 = net.layers[w[0]], half.layers[w[0]]
    H0.params["W"][...] = L0.params["W"][:, 0::2]
    for i in w[1:]:
        W = net.layers[i].params["W"]
        paired_rows = i != net.readout or not vectorized
        Wt = W[0::2, 0::2] - W[0::2, 1::2] if paired_rows else W[:, 0::2] - W[:, 1::2]
        half.layers[i].params["W"][...] = Wt
        if i != net.readout:  # and the OFF rows mirror the ON rows
            np.testing.assert_array_equal(W[1::2, 1::2], W[0::2, 0::2])
            np.testing.assert_array_equal(W[1::2, 0::2], W[0::2, 1::2])
    for i in net.hidden_weight_layers:
        half.t[i] = net.t[i][:, 0::2]
    x, _ = batch(rng, B=6)
    lf, sf = net.forward(x)
    lh, sh = half.forward(x)
    for i in net.hidden_weight_layers:
        np.testing.assert_allclose(sf[i].a[..., 0::2], sh[i].a, atol=1e-12)
    if vectorized:
        np.testing.assert_allclose(lf, lh, atol=1e-12)
    else:
        np.testing.assert_allclose(lf[:, 0::2], lh, atol=1e-12)
        np.testing.assert_allclose(lf[:, 1::2], -lh, atol=1e-12)


def test_on_off_structure_and_signs():
    net, _ = small_net(layers=(8, 6), n_classes=4)
    W1 = net.layers[0].params["W"]
    np.testing.assert_array_equal(W1[:, 0::2], -W1[:, 1::2])  # rows (W̃, −W̃)
    for i in net.weight_layers[1:]:
        assert (net.layers[i].params["W"] >= 0).all()
    Wout = net.layers[net.readout].params["W"]
    assert (np.minimum(Wout[:, 0::2], Wout[:, 1::2]) == 0).all()  # [W̃]+ and [−W̃]+ disjoint


@pytest.mark.parametrize("n_classes", [10, 4])
def test_conventional_on_off_readout_rows_are_paired(n_classes, rng):
    """The published code ON/OFF-initialises a conventional readout with more than one output in
    all four blocks (init_linear_mono): row 2k+1 mirrors row 2k, so the logits start exactly
    anti-paired, z[2k+1] = -z[2k]; the VNN readout (one vector output) pairs only its inputs."""
    net, _ = small_net(vectorized=False, layers=(8, 6), n_classes=n_classes)
    W = net.layers[net.readout].params["W"]
    assert W.shape == (n_classes, 6) and (W >= 0).all()
    np.testing.assert_array_equal(W[1::2, 1::2], W[0::2, 0::2])  # OFF row: the ON row mirrored
    np.testing.assert_array_equal(W[1::2, 0::2], W[0::2, 1::2])
    assert (np.minimum(W[0::2, 0::2], W[0::2, 1::2]) == 0).all()  # [W~]+ and [-W~]+ disjoint
    x, _ = batch(rng, B=7)
    z, _ = net.forward(x)
    assert np.abs(z).max() > 0
    np.testing.assert_allclose(z[:, 1::2], -z[:, 0::2], atol=1e-12)
    # mixed-sign (He) readouts and the vectorized readout are not paired
    vnet, _ = small_net(vectorized=True, layers=(8, 6), n_classes=n_classes)
    Wv = vnet.layers[vnet.readout].params["W"]
    assert Wv.shape[-2] == 1
    hnet, _ = small_net(vectorized=False, sign="mixed", layers=(8, 6), n_classes=n_classes)
    zh, _ = hnet.forward(x)
    assert not np.allclose(zh[:, 1::2], -zh[:, 0::2])


def test_init_scales():
    rng = np.random.default_rng(0)
    n_in = 400
    W = initmod.he_init(rng, (2000, n_in), initmod.scale("hidden", "he", n_in))
    assert abs(W.std() - np.sqrt(2 / n_in)) < 0.02 * np.sqrt(2 / n_in)
    s_first = initmod.scale("first", "he", n_in, K=10)
    assert np.isclose(s_first, np.sqrt(10 / n_in))
    W = initmod.on_off_init(rng, (2000, n_in), 0, 1, initmod.scale("hidden", "on_off", n_in))
    # the half-size matrix W̃ = W[0::2,0::2] − W[0::2,1::2] has std sqrt(4/fan_in)
    Wt = W[0::2, 0::2] - W[0::2, 1::2]
    assert abs(Wt.std() - np.sqrt(4 / n_in)) < 0.03 * np.sqrt(4 / n_in)


def test_gating_vectors_paired():
    t = gating_vectors(np.random.default_rng(0), 10, 8)
    assert t.shape == (10, 8)
    np.testing.assert_array_equal(t[:, 0::2], -t[:, 1::2])
    assert set(np.unique(t)) == {-1.0, 1.0}
    t1 = gating_vectors(np.random.default_rng(0), 1, 6)
    np.testing.assert_array_equal(t1[0], [1, -1, 1, -1, 1, -1])
    tf = gating_vectors(np.random.default_rng(0), 5, 4, "first_bin")
    assert (tf[1:] == 0).all() and set(np.abs(tf[0])) == {1.0}


def test_nonnegative_clamp_after_step(rng):
    from neurosim import losses
    from neurosim.optim import build_optimizer
    from neurosim.rules import build_rule

    net, be = small_net(layers=(8, 6))
    opt = build_optimizer(net, {"name": "sgd", "lr": 50.0})
    x, y = batch(rng, B=16)
    W1_before = net.layers[0].params["W"].copy()
    for _ in range(3):
        opt.step(build_rule("bp", net, be).step(net, x, y, losses.cross_entropy).grads)
    for i in net.weight_layers[1:]:
        assert (net.layers[i].params["W"] >= 0).all()
    assert (net.layers[0].params["W"] < 0).any()  # layer 1 stays mixed sign
    assert not np.allclose(W1_before, net.layers[0].params["W"])
    assert any((net.layers[i].params["b"] < 0).any() for i in net.weight_layers)  # biases free


@pytest.mark.parametrize("scheme", ["he", "on_off"])
def test_first_layer_std_per_component(scheme):
    """Published code: std √K/√(K·n0) = 1/√n0 per component (expanded input, ×√K)."""
    spec = {"vectorized": True, "init": scheme, "sign": "nonnegative" if scheme == "on_off" else "mixed",
            "layers": [{"type": "dense", "units": 400}]}
    net = build_network(spec, Backend("cpu", "float64", 1), (1, 20, 20), 10)
    W = net.layers[0].params["W"]
    assert abs(W.std() - 1 / 20) < 0.02 / 20


def test_same_seed_same_network():
    spec = {"vectorized": True, "layers": [{"type": "dense", "units": 6}]}
    a = build_network(spec, Backend("cpu", "float64", 7), (4,), 3)
    b = build_network(spec, Backend("cpu", "float64", 7), (4,), 3)
    c = build_network(spec, Backend("cpu", "float64", 8), (4,), 3)
    for (_, _, p), (_, _, q) in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p, q)
    assert not np.array_equal(a.layers[0].params["W"], c.layers[0].params["W"])
