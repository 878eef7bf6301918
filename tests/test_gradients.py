"""BP's hand-written backward pass equals finite differences (float64)."""

import numpy as np
import pytest

from neurosim import losses
from neurosim.rules import build_rule

from .helpers import batch, finite_difference, small_net


@pytest.mark.parametrize("vectorized,sign", [(True, "nonnegative"), (True, "mixed"),
                                             (False, "mixed"), (False, "nonnegative")])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_bp_equals_finite_differences(vectorized, sign, loss, rng):
    net, be = small_net(vectorized=vectorized, sign=sign)
    x, y = batch(rng)
    loss_fn = losses.get(loss)
    res = build_rule("bp", net, be).step(net, x, y, loss_fn)
    fd = finite_difference(net, x, y, loss_fn)
    assert set(res.grads) == set(fd)
    for key, g in res.grads.items():
        np.testing.assert_allclose(g, fd[key], rtol=1e-5, atol=1e-8, err_msg=str(key))
    # the check has teeth: gradients are not all zero
    assert sum(float(np.abs(g).sum()) for g in fd.values()) > 1e-3


@pytest.mark.parametrize("nl", ["sigmoid", "tanh", "relu"])
def test_bp_scalar_nonlinearities(nl, rng):
    net, be = small_net(vectorized=False, sign="mixed", nonlinearity=nl)
    x, y = batch(rng)
    res = build_rule("bp", net, be).step(net, x, y, losses.mse)
    fd = finite_difference(net, x, y, losses.mse)
    for key, g in res.grads.items():
        np.testing.assert_allclose(g, fd[key], rtol=1e-5, atol=1e-8, err_msg=str(key))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_error_vector_is_dloss_dlogits(loss, rng):
    z = rng.standard_normal((4, 5))
    y = rng.integers(0, 5, size=4)
    f = losses.get(loss)
    _, e = f(z, y)
    eps = 1e-6
    for b in range(4):
        for k in range(5):
            zp, zm = z.copy(), z.copy()
            zp[b, k] += eps
            zm[b, k] -= eps
            assert abs((f(zp, y)[0] - f(zm, y)[0]) / (2 * eps) - e[b, k]) < 1e-8
