"""The benchmark suite compares like with like: the plain-PyTorch reference
computes the same update as neurosim (float64), and the analytic FLOP count
matches a direct count for the FC MNIST VNN."""

import numpy as np
import pytest

from benchmarks import core


def _small(rule, vectorized=True):
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network
    from neurosim.rules import build_rule

    be = Backend("cpu", "float64", seed=5)
    spec = {"vectorized": vectorized, "layers": [{"type": "dense", "units": 10},
                                                 {"type": "dense", "units": 6}]}
    if not vectorized:
        spec.update(sign="mixed", init="he")
    net = build_network(spec, be, (1, 3, 3), 4)
    return be, net, build_rule(rule, net, be)


@pytest.mark.parametrize("rule,vectorized", [("gevb", True), ("bp", True), ("dfa", False),
                                             ("bp", False)])
def test_torch_reference_equals_neurosim(rule, vectorized):
    torch = pytest.importorskip("torch")
    from benchmarks.torch_ref import TorchDenseNet
    from neurosim import losses

    be, net, r = _small(rule, vectorized)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 1, 3, 3)), rng.integers(0, 4, 8)
    res = r.step(net, x, y, losses.cross_entropy)
    tnet = TorchDenseNet(net, r, rule)
    tg = tnet.gradients(torch.tensor(x), torch.tensor(y))
    for pos, i in enumerate(net.weight_layers):
        for k in ("W", "b"):
            np.testing.assert_allclose(tg[(pos, k)].detach().numpy(), res.grads[(i, k)],
                                       rtol=1e-10, atol=1e-12, err_msg=f"{rule} layer {i} {k}")



@pytest.mark.parametrize("rule", ["gevb", "bp"])
def test_torch_conv_reference_equals_neurosim(rule):
    """The conv VNN in PyTorch (F.conv2d, conv2d_weight, autograd) computes
    neurosim's update: first conv (per component), avg pool, shared conv with
    padding and stride, a hidden dense layer and the readout."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_ref import TorchConvNet
    from neurosim import losses
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network
    from neurosim.rules import build_rule

    be = Backend("cpu", "float64", seed=3)
    spec = {"vectorized": True, "layers": [
        {"type": "conv2d", "channels": 4, "kernel": 3, "stride": 1, "padding": 1},
        {"type": "avg_pool2d", "size": 2},
        {"type": "conv2d", "channels": 6, "kernel": 2, "stride": 2, "padding": 0},
        {"type": "dense", "units": 6}]}
    net = build_network(spec, be, (2, 8, 8), 4)
    r = build_rule(rule, net, be)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((6, 2, 8, 8)), rng.integers(0, 4, 6)
    res = r.step(net, x, y, losses.cross_entropy)
    tnet = TorchConvNet(net, r, rule)
    tg = tnet.gradients(torch.tensor(x), torch.tensor(y))
    for pos, i in enumerate(net.weight_layers):
        for k in ("W", "b"):
            np.testing.assert_allclose(tg[(pos, k)].detach().numpy(), res.grads[(i, k)],
                                       rtol=1e-9, atol=1e-12, err_msg=f"{rule} layer {i} {k}")

def test_step_flops_fc_mnist_vnn():
    from neurosim.core.backend import Backend
    from neurosim.model.network import build_network

    be = Backend("cpu", "float32", 0)
    spec = {"vectorized": True, "layers": [{"type": "dense", "units": 1024}, {"type": "dense", "units": 512}]}
    net = build_network(spec, be, (1, 28, 28), 10)
    B, K = 128, 10
    fwd = 2 * B * (784 * K * 1024 + K * 1024 * 512 + K * 512)
    gevb = fwd + 2 * B * K * 1024 * 784 + (2 * B * 512 * 1024 + 2 * B * K * 1024) + 2 * B * K * 512
    assert core.step_flops(net, "gevb", B) == gevb
    bp = fwd + fwd + 2 * B * (K * 1024 * 512 + K * 512)
    assert core.step_flops(net, "bp", B) == bp
    assert abs(gevb * 469 / 1e12 - 2.6) < 0.1  # the "~2.6 TFLOP per epoch"


def test_registry_skips_missing(monkeypatch):
    w = core.Workload("x", "mnist_fc.yaml", "gevb", "mnist", realization={"type": "nonexistent"})
    with pytest.raises(core.Skip, match="nonexistent"):
        core.build(w)
    w = core.Workload("y", "mnist_fc.yaml", "gevb", "mnist", needs_layers=("no_such_layer",))
    with pytest.raises(core.Skip, match="no_such_layer"):
        core.build(w)
