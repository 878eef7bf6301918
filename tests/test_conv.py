"""Conv / locally connected / pooling layers against independent references.

* conv with stride and padding == a slow, obviously-correct loop;
* LC with the same weight at every position == conv;
* BP gradients of networks made of every new layer == central finite
  differences (float64), vectorized and conventional;
* the GEVB fast path (appendix H) == the generic path that materialises g;
* GEVB matches the gradient's sign per example in a nonnegative VNN of
  LC + avg-pool + FC layers, and does not in general with shared conv weights;
* DFA reaches conv/LC units; FA's feedback override goes through conv/LC.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.core.backend import Backend
from neurosim.losses import cross_entropy
from neurosim.model import conv as convmod
from neurosim.model import im2col, pool
from neurosim.model.layers import LAYERS, Layer
from neurosim.model.network import build_network
from neurosim.rules import build_rule


# ---------------------------------------------------------------------------
# slow references
# ---------------------------------------------------------------------------
def ref_conv(x, W, stride, pad):
    """Direct convolution: loops over examples, output channels and positions."""
    N, C, H, Wd = x.shape
    M, _, kh, kw = W.shape
    sh, sw = stride
    ph, pw = pad
    xp = np.zeros((N, C, H + 2 * ph, Wd + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + Wd] = x
    Ho = (H + 2 * ph - kh) // sh + 1
    Wo = (Wd + 2 * pw - kw) // sw + 1
    out = np.zeros((N, M, Ho, Wo))
    for n in range(N):
        for m in range(M):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[n, m, i, j] = np.sum(patch * W[m])
    return out


@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), ((3, 2), (2, 1), (0, 1)),
                                                   (2, 2, 0), (5, 1, 2)])
def test_conv_equals_direct_loop(rng, kernel, stride, padding):
    K, C, H, Wd, M = 3, 2, 7, 6, 4
    x = rng.standard_normal((5, K, C, H, Wd))
    L = convmod.Conv2d((C, H, Wd), K, channels=M, kernel=kernel, stride=stride, padding=padding)
    W = rng.standard_normal(L.params["W"])
    b = rng.standard_normal(L.params["b"])
    L.params = {"W": W, "b": b}
    h = L.forward(x)
    g = L.geo
    ref = ref_conv(x.reshape(-1, C, H, Wd), W, (g.sh, g.sw), (g.ph, g.pw))
    ref = ref.reshape((5, K) + ref.shape[1:]) + b
    assert h.shape == (5, K) + L.unit_shape
    np.testing.assert_allclose(h, ref, rtol=1e-10, atol=1e-10)

    # first layer: one weight per component on the K-less input
    F = convmod.Conv2d((C, H, Wd), K, first=True, channels=M, kernel=kernel, stride=stride,
                       padding=padding)
    W1 = rng.standard_normal(F.params["W"])
    F.params = {"W": W1, "b": np.zeros(F.params["b"])}
    x1 = x[:, 0]
    h1 = F.forward(x1)
    for mu in range(K):
        np.testing.assert_allclose(h1[:, mu], ref_conv(x1, W1[mu], (g.sh, g.sw), (g.ph, g.pw)),
                                   rtol=1e-10, atol=1e-10)


def test_conv_blocks_do_not_change_results(rng, monkeypatch):
    """The im2col buffer limit splits the batch into blocks; results must not move."""
    x = rng.standard_normal((6, 2, 3, 8, 8))
    L = convmod.Conv2d((3, 8, 8), 2, channels=4, kernel=3, padding=1)
    L.params = {"W": rng.standard_normal(L.params["W"]), "b": np.zeros(L.params["b"])}
    g = rng.standard_normal((6, 2) + L.unit_shape)
    full = (L.forward(x), L.vjp(g), L.grads(x, g)["W"])
    monkeypatch.setattr(im2col, "_BLOCK", 3 * 64 * 27)  # 3 images per block
    blocked = (L.forward(x), L.vjp(g), L.grads(x, g)["W"])
    for a, b in zip(full, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


GEOMETRIES = [(3, 1, 1), (3, 2, 1), ((3, 2), (2, 1), (0, 1)), (2, 2, 0), (5, 1, 2)]


@pytest.mark.parametrize("channel_last", [True, False])
@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES)
def test_windows_equal_sliding_window_view(rng, kernel, stride, padding, channel_last):
    """The one im2col (a strided view) is numpy's sliding_window_view of the
    zero-padded input taken every stride positions, in both memory layouts."""
    geo = im2col.Geometry((3, 8, 7), kernel, stride, padding)
    x = rng.standard_normal((4, 3, 8, 7))                                 # (n, C, H, W)
    axes = (1, 2) if channel_last else (2, 3)
    if channel_last:
        x = x.transpose(0, 2, 3, 1)                                        # any strides
    widths = [(0, 0)] * 4
    widths[axes[0]], widths[axes[1]] = (geo.ph, geo.ph), (geo.pw, geo.pw)
    xpad = geo.pad(x, channel_last)
    np.testing.assert_array_equal(xpad, np.pad(x, widths))
    np.testing.assert_array_equal(geo.crop(xpad, channel_last), x)
    ref = np.lib.stride_tricks.sliding_window_view(xpad, (geo.kh, geo.kw), axis=axes)
    at = [slice(None)] * 4
    at[axes[0]], at[axes[1]] = slice(None, None, geo.sh), slice(None, None, geo.sw)
    ref = ref[tuple(at)]
    w = geo.windows(xpad, channel_last)
    assert w.shape == ref.shape
    np.testing.assert_array_equal(w, ref)
    # col2im is its transpose: <col2im(d), xpad> == <d, windows(xpad)>
    d = rng.standard_normal(w.shape)
    back = geo.col2im(d, np.zeros_like(xpad), channel_last)
    np.testing.assert_allclose(np.sum(back * xpad), np.sum(d * w), rtol=1e-12)


def test_lc_blocks_do_not_change_results(rng, monkeypatch):
    """The locally connected layer's im2col blocks do not move its results either."""
    x = rng.standard_normal((6, 2, 3, 8, 8))
    L = convmod.LocallyConnected2d((3, 8, 8), 2, channels=4, kernel=3, stride=2, padding=1)
    L.params = {"W": rng.standard_normal(L.params["W"]), "b": np.zeros(L.params["b"])}
    g = rng.standard_normal((6, 2) + L.unit_shape)
    full = (L.forward(x), L.vjp(g), L.grads(x, g)["W"])
    monkeypatch.setattr(im2col, "_BLOCK", 3 * 16 * 27)  # 3 images per block
    blocked = (L.forward(x), L.vjp(g), L.grads(x, g)["W"])
    for a, b in zip(full, blocked):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("first", [False, True])
def test_lc_with_equal_position_weights_equals_conv(rng, first):
    K, C, H, Wd, M = 2, 3, 6, 6, 4
    kw = dict(channels=M, kernel=3, stride=2, padding=1)
    cv = convmod.Conv2d((C, H, Wd), K, first=first, **kw)
    lc = convmod.LocallyConnected2d((C, H, Wd), K, first=first, **kw)
    Wc = rng.standard_normal(cv.params["W"])
    bc = rng.standard_normal(cv.params["b"])
    cv.params = {"W": Wc, "b": bc}
    Ho, Wo = lc.geo.Ho, lc.geo.Wo
    lc.params = {"W": np.broadcast_to(Wc, (Ho, Wo) + Wc.shape).copy(),
                 "b": np.broadcast_to(bc, (K, M, Ho, Wo)).copy()}
    x = rng.standard_normal((4, C, H, Wd) if first else (4, K, C, H, Wd))
    np.testing.assert_allclose(lc.forward(x), cv.forward(x), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal((4, K) + cv.unit_shape)
    # the conv weight gradient is the LC gradient summed over positions
    np.testing.assert_allclose(lc.grads(x, g)["W"].sum(axis=(0, 1)), cv.grads(x, g)["W"],
                               rtol=1e-10, atol=1e-10)
    if not first:
        np.testing.assert_allclose(lc.vjp(g), cv.vjp(g), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# BP == finite differences for networks of every new layer
# ---------------------------------------------------------------------------
ARCHS = {
    "conv_avg_lc_max": ((2, 8, 8), [
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "locally_connected2d", "channels": 4, "kernel": 2, "stride": 1, "padding": 0},
        {"type": "max_pool2d", "size": 2},          # 3x3 -> 1x1 (drops the last row/column)
        {"type": "flatten"},
        {"type": "dense", "units": 6},
    ]),
    "lc_max_conv": ((3, 9, 9), [
        {"type": "locally_connected2d", "channels": 4, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "max_pool2d", "size": 2},
        {"type": "conv2d", "channels": 4, "kernel": [2, 3], "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "dense", "units": 4},
    ]),
    "conv_avg_conv_avg": ((2, 9, 8), [   # the appendix-G pattern; 9 rows: pooling crops
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "dense", "units": 5},
    ]),
}


def _net(layers, in_shape, vectorized, sign="mixed", init="he", seed=3, n_classes=3):
    spec = {"vectorized": vectorized, "sign": sign, "init": init, "layers": layers}
    return build_network(spec, Backend("cpu", "float64", seed), in_shape, n_classes)


def _loss(net, x, y):
    return cross_entropy(net.forward(x)[0], y)[0]


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("vectorized", [True, False])
def test_bp_equals_finite_differences(arch, vectorized):
    in_shape, layers = ARCHS[arch]
    net = _net(layers, in_shape, vectorized)
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (4,) + in_shape)
    y = np.array([0, 1, 2, 1])
    for _i, name, p in net.parameters():  # non-zero biases so that they matter
        if name == "b":
            p[...] = rng.standard_normal(p.shape) * 0.1
    res = build_rule("bp", net, net.backend).step(net, x, y, cross_entropy)
    eps = 1e-6
    for i, name, p in net.parameters():
        flat = p.reshape(-1)
        idx = rng.choice(flat.size, size=min(12, flat.size), replace=False)
        num = np.empty(len(idx))
        for k, j in enumerate(idx):
            old = flat[j]
            flat[j] = old + eps
            lp = _loss(net, x, y)
            flat[j] = old - eps
            lm = _loss(net, x, y)
            flat[j] = old
            num[k] = (lp - lm) / (2 * eps)
        ana = res.grads[(i, name)].reshape(-1)[idx]
        np.testing.assert_allclose(ana, num, rtol=1e-5, atol=1e-8, err_msg=f"layer {i} {name}")


def test_pool_and_flatten_vjp_are_transposes(rng):
    """<vjp(g), a> == <g, forward(a)> for the linear no-weight layers."""
    for L in (pool.AvgPool2d((3, 5, 6), 2, size=2), pool.Flatten((3, 5, 6), 2)):
        for cl in (False, True):  # C-order and channel-last memory (conv outputs)
            a = rng.standard_normal((2, 2, 3, 5, 6))
            h = L.forward(im2col.from_channel_last(np.ascontiguousarray(
                im2col.to_channel_last(a))) if cl else a)
            g = rng.standard_normal(h.shape)
            if cl:
                g = im2col.from_channel_last(np.ascontiguousarray(im2col.to_channel_last(g)))
            np.testing.assert_allclose(np.sum(L.vjp(g) * a), np.sum(g * h), rtol=1e-12)


def test_fa_feedback_override_goes_through_conv_and_lc(rng):
    for cls in (convmod.Conv2d, convmod.LocallyConnected2d):
        L = cls((2, 5, 5), 2, channels=4, kernel=3, padding=1)
        M = cls((2, 5, 5), 2, channels=4, kernel=3, padding=1)
        F = rng.standard_normal(L.params["W"])
        L.params = {"W": rng.standard_normal(L.params["W"]), "b": np.zeros(L.params["b"])}
        M.params = {"W": F, "b": np.zeros(M.params["b"])}
        g = rng.standard_normal((3, 2) + L.unit_shape)
        np.testing.assert_allclose(L.vjp(g, F), M.vjp(g), rtol=1e-12)


# ---------------------------------------------------------------------------
# GEVB (appendix H)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("cls", [convmod.Conv2d, convmod.LocallyConnected2d])
def test_gevb_fast_path_equals_generic(rng, cls, first):
    K, B = 4, 5
    L = cls((4, 6, 6), K, first=first, channels=6, kernel=3, stride=2, padding=1)
    L.params = {"W": rng.standard_normal(L.params["W"]), "b": np.zeros(L.params["b"])}
    a = rng.standard_normal((B, 4, 6, 6) if first else (B, K, 4, 6, 6))
    G = (rng.uniform(size=(B, 1) + L.unit_shape) > 0.5).astype(float)
    e = rng.standard_normal((B, K))
    fast = L.gevb_grads(a, G, e)
    slow = Layer.gevb_grads(L, a, G, e)  # materialises g = e ⊗ G
    for k in ("W", "b"):
        assert fast[k].shape == L.params[k].shape
        np.testing.assert_allclose(fast[k], slow[k], rtol=1e-10, atol=1e-12)


def _per_example_sign_agreement(layers, in_shape, layer_kind):
    """For each example separately: (number of weights of ``layer_kind`` layers
    where GEVB and the gradient have strictly opposite signs, number compared)."""
    net = _net(layers, in_shape, True, sign="nonnegative", init="on_off", seed=5)
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (6,) + in_shape)
    y = np.arange(6) % 3
    gevb = build_rule("gevb", net, net.backend)
    bp = build_rule("bp", net, net.backend)
    opposite = compared = 0
    for b in range(x.shape[0]):
        xb, yb = x[b:b + 1], y[b:b + 1]
        rg = gevb.step(net, xb, yb, cross_entropy).grads
        rb = bp.step(net, xb, yb, cross_entropy).grads
        for i in net.weight_layers:
            if net.layers[i].kind != layer_kind:
                continue
            for name in ("W", "b"):
                u, d = rg[(i, name)], rb[(i, name)]
                tol = 1e-12 * max(1.0, np.abs(d).max())
                mask = np.abs(d) > tol
                compared += int(mask.sum())
                opposite += int(np.sum(np.sign(u[mask]) != np.sign(d[mask])))
    return opposite, compared


def test_gevb_matches_gradient_sign_in_nonnegative_lc_vnn():
    layers = [
        {"type": "locally_connected2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "locally_connected2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "dense", "units": 8},
    ]
    opposite, compared = _per_example_sign_agreement(layers, (2, 8, 8), "locally_connected2d")
    assert compared > 1000
    assert opposite == 0


def test_gevb_sign_guarantee_fails_with_shared_conv_weights():
    layers = [
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "dense", "units": 8},
    ]
    opposite, compared = _per_example_sign_agreement(layers, (2, 8, 8), "conv2d")
    assert compared > 100
    assert opposite > 0


def test_on_off_pairs_channels_through_conv_pool_dense():
    """ON/OFF init with paired per-channel gating: channel pairs (2c, 2c+1) and
    the dense units after the conv stack carry equal and opposite activations."""
    in_shape, layers = (2, 8, 8), [
        {"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "locally_connected2d", "channels": 4, "kernel": 3, "padding": 1},
        {"type": "conv2d", "channels": 4, "kernel": 2, "stride": 2},
        {"type": "dense", "units": 6},
        {"type": "flatten"},
        {"type": "dense", "units": 4},
    ]
    net = _net(layers, in_shape, True, sign="nonnegative", init="on_off")
    x = np.random.default_rng(0).uniform(-1, 1, (3,) + in_shape)
    _, states = net.forward(x)
    for i in net.hidden_weight_layers:
        h = states[i].h  # biases are zero at init
        np.testing.assert_allclose(h[:, :, 0::2], -h[:, :, 1::2], rtol=1e-10, atol=1e-12)
        t = net.t[i]
        np.testing.assert_array_equal(t[:, 0::2], -t[:, 1::2])


def test_dfa_feedback_reaches_every_conv_and_lc_unit():
    in_shape, layers = ARCHS["conv_avg_lc_max"]
    for vec in (True, False):
        net = _net(layers, in_shape, vec)
        rule = build_rule("dfa", net, net.backend)
        x = np.random.default_rng(0).uniform(-1, 1, (4,) + in_shape)
        logits, states = net.forward(x)
        _, e = cross_entropy(logits, np.array([0, 1, 2, 0]))
        sig = rule.learning_signals(net, states, e)
        for i in net.hidden_weight_layers:
            L = net.layers[i]
            assert sig[i].shape == (4, net.K) + L.unit_shape
            # δ = B e per unit, masked by the gate
            Bm = rule.feedback[i]
            d = (e.reshape(4 * net.K, net.n_out) @ Bm).reshape((4, net.K) + L.unit_shape)
            np.testing.assert_allclose(sig[i], d * states[i].dphi)
        grads = rule.gradients(net, states, e)
        assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_layers_registered_and_validated():
    for k in ("conv2d", "locally_connected2d", "avg_pool2d", "max_pool2d", "flatten"):
        assert k in LAYERS
    with pytest.raises(ValueError, match="channels"):
        convmod.Conv2d((1, 4, 4), 1)
    with pytest.raises(ValueError, match="does not fit"):
        convmod.Conv2d((1, 4, 4), 1, channels=2, kernel=7)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        convmod.Conv2d((16,), 1, channels=2)


def test_fa_and_bp_rules_run_through_pools():
    """FA (random feedback of W's shape) through conv, LC, max/avg pooling and
    flatten: with the feedback set to the weights themselves it equals BP."""
    in_shape, layers = ARCHS["conv_avg_lc_max"]
    net = _net(layers, in_shape, True)
    x = np.random.default_rng(0).uniform(-1, 1, (4,) + in_shape)
    y = np.array([0, 1, 2, 0])
    fa = build_rule("fa", net, net.backend)
    assert set(fa.feedback) == set(net.weight_layers[1:])
    for i in fa.feedback:
        assert fa.feedback[i].shape == net.layers[i].params["W"].shape
        fa.feedback[i] = net.layers[i].params["W"].copy()
    g_fa = fa.step(net, x, y, cross_entropy).grads
    g_bp = build_rule("bp", net, net.backend).step(net, x, y, cross_entropy).grads
    for k in g_bp:
        np.testing.assert_allclose(g_fa[k], g_bp[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("scheme", ["he", "on_off"])
def test_first_layer_init_scale_matches_published_code(scheme):
    """Published code: first vectorized layer drawn on the K-fold expanded input
    (fan-in K·C·kh·kw), times √K → per-component std 1/√(C·kh·kw); hidden He
    layers std √(2/fan_in)."""
    rng = np.random.default_rng(0)
    F = convmod.Conv2d((3, 8, 8), 10, first=True, channels=64, kernel=5, padding=2)
    F.initialize(rng, scheme, "first")
    assert F.params["W"].std() == pytest.approx(1 / np.sqrt(3 * 25), rel=0.05)
    if scheme == "on_off":
        np.testing.assert_array_equal(F.params["W"][:, 0::2], -F.params["W"][:, 1::2])
    H = convmod.LocallyConnected2d((16, 6, 6), 1, channels=16, kernel=3, padding=1)
    H.initialize(rng, "he", "hidden")
    assert H.params["W"].std() == pytest.approx(np.sqrt(2 / (16 * 9)), rel=0.05)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel,stride,padding", GEOMETRIES + [(3, 3, 4)])
def test_im2col_kernel_equals_padded_windows(rng, monkeypatch, kernel, stride, padding, dtype,
                                             parallel):
    """The Numba im2col of a channel-last block (padding folded in) copies exactly what the
    windows of the zero-padded block hold, for contiguous and strided inputs and any block."""
    from neurosim.core import kernels

    if parallel:
        monkeypatch.setattr(kernels, "PARALLEL_MIN", 0)
    geo = im2col.Geometry((3, 8, 7), kernel, stride, padding)
    x = rng.standard_normal((5, 3, 8, 7)).astype(dtype).transpose(0, 2, 3, 1)   # strided NHWC
    ref = convmod._conv_cols(geo, geo.pad(x, True))
    cols = convmod._ConvCols(geo, x)
    assert cols.direct == kernels.im2col_nhwc_takes(x)
    np.testing.assert_array_equal(cols(slice(0, 5)), ref)
    np.testing.assert_array_equal(cols(slice(1, 3)), ref[geo.P:3 * geo.P])
    monkeypatch.setenv("NEUROSIM_NUMBA", "0")                                 # the NumPy path
    cols = convmod._ConvCols(geo, x)
    assert not cols.direct
    np.testing.assert_array_equal(cols(slice(1, 3)), ref[geo.P:3 * geo.P])


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_bias_and_avg_pool_kernels_equal_numpy(rng, monkeypatch, first, dtype):
    """A conv layer's bias (added over its channel-last output) and average pooling of
    channel-last memory give NumPy's numbers bit for bit (signed zeros included), with
    Numba on (one or several threads) and off."""
    from neurosim.core import kernels
    from neurosim.model.pool import AvgPool2d

    K, C, H, Wd, M = 3, 2, 9, 7, 4
    L = convmod.Conv2d((C, H, Wd), K, first=first, channels=M, kernel=3, padding=1)
    L.params = {"W": rng.standard_normal(L.params["W"]).astype(dtype),
                "b": rng.standard_normal(L.params["b"]).astype(dtype)}
    x = rng.standard_normal((5, C, H, Wd) if first else (5, K, C, H, Wd)).astype(dtype)
    pool = AvgPool2d(L.unit_shape, K, size=2)
    out = {}
    for mode in ("serial", "parallel", "numpy"):
        monkeypatch.setattr(kernels, "PARALLEL_MIN", 0 if mode == "parallel" else 1 << 20)
        monkeypatch.setenv("NEUROSIM_NUMBA", "0" if mode == "numpy" else "1")
        h = L.forward(x)
        a = h * (h > 0.2)                                   # zeros of both signs
        out[mode] = (h, pool.forward(a))
    for mode in ("serial", "parallel"):
        for got, ref in zip(out[mode], out["numpy"]):
            assert got.shape == ref.shape and got.dtype == ref.dtype
            assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(ref).tobytes()
    h, p = out["numpy"]
    # against the definitions: the window mean of a, and the direct conv loop plus the bias
    a = h * (h > 0.2)
    ref = a[..., :8, :6].reshape(a.shape[:-2] + (4, 2, 3, 2)).mean(axis=(-3, -1))
    np.testing.assert_allclose(p, ref, rtol=1e-6 if dtype == np.float32 else 1e-12)
