"""Adam against a reference written from Kingma & Ba; Numba and NumPy paths agree."""

import numpy as np
import pytest

from neurosim.core import kernels
from neurosim.optim import build_optimizer

from .helpers import small_net


def adam_reference(p, grads, lr, b1, b2, eps):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize("numba", ["1", "0"])
def test_adam_matches_reference(numba, monkeypatch):
    monkeypatch.setenv("NEUROSIM_NUMBA", numba)
    net, _ = small_net(sign="mixed", layers=(6,))
    opt = build_optimizer(net, {"name": "adam", "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8})
    rng = np.random.default_rng(1)
    p0 = {(i, n): p.copy() for i, n, p in net.parameters()}
    gs = [{k: rng.standard_normal(v.shape) for k, v in p0.items()} for _ in range(5)]
    for g in gs:
        opt.step(g)
    for (i, n), p in p0.items():
        ref = adam_reference(p, [g[(i, n)] for g in gs], 1e-2, 0.9, 0.999, 1e-8)
        np.testing.assert_allclose(net.layers[i].params[n], ref, rtol=1e-10, atol=1e-12)


def test_numba_and_numpy_adam_kernels_agree():
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(1000) for _ in range(2)] + [rng.random(1000) * 0.1 for _ in range(2)]
    a = [x.copy() for x in args]
    b = [x.copy() for x in args]
    kernels.adam_update(*a, 0.9, 0.999, 1e-8, 0.01, 0.3)
    kernels.adam_update_numpy(*b, 0.9, 0.999, 1e-8, 0.01, 0.3)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)


def test_sgd_momentum():
    net, _ = small_net(sign="mixed", layers=(4,))
    opt = build_optimizer(net, {"name": "sgd", "lr": 0.1, "momentum": 0.5})
    p = net.layers[0].params["b"]
    p0 = p.copy()
    g = {(i, n): np.ones_like(q) for i, n, q in net.parameters()}
    opt.step(g)
    opt.step(g)
    np.testing.assert_allclose(p, p0 - 0.1 * (1 + 1.5))
