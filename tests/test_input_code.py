"""The ON/OFF input code (``circuit.input_code: on_off``): a Dale-compliant first layer.

* The encoded input is exactly ((1 + x)/2, (1 − x)/2) stacked along the channels.
* At initialisation the network computes the identity code's function (same draw, split into
  ON and OFF weights with the bias absorbing the constant part).
* BP through the encoded input equals finite differences (float64).
* The first layer is nonnegative and stays so under every realization (batched, grouped,
  temporal, with and without dynamics).
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.core.options import ConfigError
from neurosim.model.input_code import encode, encoded_shape
from neurosim.model.network import build_network
from neurosim.protocol import validate_protocol
from neurosim.rules import build_rule
from neurosim.train import Run

from .helpers import finite_difference


def test_encoding_is_exact():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = rng.uniform(-1, 1, (5, 3, 4, 4)).astype(dtype)
        got = encode(x, "on_off")
        want = np.concatenate([(1 + x) / 2, (1 - x) / 2], axis=1)
        assert got.dtype == dtype and got.shape == (5, 6, 4, 4)
        assert np.array_equal(got, want)
        assert np.array_equal(got[:, :3], (x + 1) * np.asarray(0.5, dtype))  # ON: (1 + x)/2
        assert got.min() >= 0 and got.max() <= 1
    assert encode(x, "identity") is x
    assert encoded_shape((3, 4, 4), "on_off") == (6, 4, 4) and encoded_shape((784,), "identity") == (784,)


def _net(code, vectorized=True, seed=0, in_shape=(1, 3, 3), n_classes=4):
    be = Backend("cpu", "float64", seed=seed)
    spec = {"vectorized": vectorized, "sign": "nonnegative", "init": "on_off", "input_code": code,
            "layers": [{"type": "dense", "units": 6}, {"type": "dense", "units": 4}]}
    return build_network(spec, be, in_shape, n_classes), be


@pytest.mark.parametrize("vectorized", [True, False])
def test_initial_function_is_the_identity_codes(vectorized):
    x = np.random.default_rng(1).uniform(-1, 1, (7, 1, 3, 3))
    ref, _ = _net("identity", vectorized)
    net, _ = _net("on_off", vectorized)
    W = net.layers[0].params["W"]
    assert W.min() == 0 and (W > 0).mean() > 0.4  # nonnegative, half of the pair nonzero
    np.testing.assert_allclose(net.forward(encode(x, "on_off"))[0], ref.forward(x)[0],
                               rtol=0, atol=1e-12)
    assert net.clamped(net.weight_layers[0]) and not ref.clamped(ref.weight_layers[0])


def test_bp_through_the_encoded_input_equals_finite_differences():
    rng = np.random.default_rng(2)
    net, be = _net("on_off")
    x = encode(rng.uniform(-1, 1, (5, 1, 3, 3)), "on_off")
    y = rng.integers(0, 4, 5)
    res = build_rule("bp", net, be).step(net, x, y, losses.cross_entropy)
    fd = finite_difference(net, x, y)
    first = net.weight_layers[0]
    for key, g in res.grads.items():
        np.testing.assert_allclose(g, fd[key], rtol=1e-5, atol=1e-8, err_msg=str(key))
    assert np.abs(fd[(first, "W")]).sum() > 1e-3
    # ON + OFF = 1 for every input: the ON and OFF weights' gradients of one input add up to
    # the bias gradient
    g, n = fd[(first, "W")], fd[(first, "W")].shape[-1] // 2
    np.testing.assert_allclose(g[..., :n] + g[..., n:], np.repeat(fd[(first, "b")][..., None], n, -1),
                               rtol=1e-5, atol=1e-8)


def _protocol(real, rule="gevb", code="on_off", sign="nonnegative"):
    return validate_protocol({
        "name": "dale", "seed": 3, "dtype": "float64",
        "circuit": {"vectorized": True, "sign": sign, "init": "on_off" if sign == "nonnegative" else "he",
                    "input_code": code,
                    "layers": [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]},
        "realization": real, "rule": {"name": rule},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": "sgd", "lr": 0.5}, "training": {"epochs": 1, "batch_size": 16},
        "recording": {"out": "unused.zarr"}})


@pytest.mark.parametrize("real,rule", [
    ({"type": "batched"}, "gevb"), ({"type": "batched"}, "bp"), ({"type": "grouped"}, "gevb"),
    ({"type": "temporal"}, "gevb"), ({"type": "grouped", "dynamics": {}}, "gevb"),
    ({"type": "temporal", "dynamics": {"dt_ms": 5.0}}, "gevb")],
    ids=["batched-gevb", "batched-bp", "grouped", "temporal", "grouped-dynamics", "temporal-dynamics"])
def test_first_layer_stays_nonnegative(real, rule):
    r = Run(_protocol(real, rule))
    assert r.exp.x_train.shape[1:] == (2, 4, 4)  # the data are encoded where they are loaded
    assert np.array_equal(r.exp.x_train[:, 0] + r.exp.x_train[:, 1], np.ones_like(r.exp.x_train[:, 0]))
    W = r.exp.net.layers[0].params["W"]
    W0 = np.array(W)
    for s in range(3):
        sl = slice(16 * s, 16 * s + 16)
        r.exp.realization.step(r.exp.x_train[sl], r.exp.y_train[sl])
        assert r.exp.net.layers[0].params["W"].min() >= 0
    W1 = r.exp.net.layers[0].params["W"]
    assert np.abs(W1 - W0).max() > 1e-6  # it learned
    assert ((W0 > 0) & (W1 == 0)).any()  # and the clamp acted


def test_on_off_input_code_needs_a_nonnegative_dense_first_layer():
    with pytest.raises(ConfigError) as exc:
        _protocol({"type": "batched"}, sign="mixed")
    assert "input_code" in str(exc.value)


@pytest.mark.parametrize("real", [{"type": "grouped"}, {"type": "temporal", "gating": "full"}],
                         ids=["grouped", "temporal"])
def test_circuits_equal_batched_gevb_with_the_on_off_code(real):
    """The circuits' equality with batched GEVB (docs/circuits.md) holds with the clamped first
    layer: the same projection follows the same update."""
    runs = [Run(_protocol(r)) for r in ({"type": "batched"}, real)]
    for s in range(3):
        sl = slice(16 * s, 16 * s + 16)
        for r in runs:
            r.exp.realization.step(r.exp.x_train[sl], r.exp.y_train[sl])
    for (i, n, p), (_, _, q) in zip(runs[0].exp.net.parameters(), runs[1].exp.net.parameters()):
        np.testing.assert_allclose(q, p, rtol=0, atol=1e-10, err_msg=f"{i}.{n}")


def test_a_trained_network_encodes_the_images_it_is_given(tmp_path):
    """``neurosim.load(store).error(x, y)`` on raw images reproduces the recorded test error."""
    import neurosim
    from neurosim.experiment import examples

    p = _protocol({"type": "batched"})
    ds = neurosim.run(p, out=tmp_path / "dale.zarr", progress=False)
    x, y = examples(p, "test")
    assert x.shape[1:] == (1, 4, 4)  # the raw images
    net = neurosim.load(tmp_path / "dale.zarr")
    assert net.in_shape == (1, 4, 4)
    assert net.error(x, y) == pytest.approx(float(ds.test_error[-1]), abs=1e-9)
    assert net.weights[0].min() >= 0


def test_stores_made_before_the_option_resume_as_identity():
    import copy

    from neurosim.core.jsonable import jsonable as _jsonable
    from neurosim.recording.session import protocol_differences as differences
    from neurosim.train import declared_default

    def protocol_differences(a, b):
        return differences(a, b, default=declared_default)

    new = _jsonable(_protocol({"type": "batched"}, code="identity"))
    old = copy.deepcopy(new)
    del old["circuit"]["input_code"]
    assert protocol_differences(old, new) == []
    assert protocol_differences(old, _jsonable(_protocol({"type": "batched"}))) == ["circuit.input_code"]
