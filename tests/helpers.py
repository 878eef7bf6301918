"""Shared test utilities: small networks and an independent finite-difference gradient."""

from __future__ import annotations

import numpy as np

from neurosim import losses
from neurosim.core.backend import Backend
from neurosim.model.network import build_network


def small_net(vectorized=True, sign="nonnegative", init=None, layers=(6, 4), in_shape=(1, 3, 3),
              n_classes=4, seed=0, gating="paired", nonlinearity="gate", output=None):
    be = Backend("cpu", "float64", seed=seed)
    spec = {
        "vectorized": vectorized,
        "sign": sign,
        "init": init or ("on_off" if sign == "nonnegative" else "he"),
        "gating": gating,
        "nonlinearity": nonlinearity,
        "layers": [{"type": "dense", "units": n} for n in layers],
    }
    if output:
        spec["output"] = output
    return build_network(spec, be, in_shape, n_classes), be


def batch(rng, B=5, in_shape=(1, 3, 3), n_classes=4):
    x = rng.standard_normal((B,) + tuple(in_shape))
    y = rng.integers(0, n_classes, size=B)
    return x, y


def loss_of(net, x, y, loss_fn=losses.cross_entropy):
    logits, _ = net.forward(x)
    return loss_fn(logits, y)[0]


def finite_difference(net, x, y, loss_fn=losses.cross_entropy, eps=1e-6):
    """Central differences of the mean loss w.r.t. every parameter entry."""
    out = {}
    for i, name, p in net.parameters():
        g = np.zeros_like(p)
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for k in range(flat.size):
            old = flat[k]
            flat[k] = old + eps
            lp = loss_of(net, x, y, loss_fn)
            flat[k] = old - eps
            lm = loss_of(net, x, y, loss_fn)
            flat[k] = old
            gflat[k] = (lp - lm) / (2 * eps)
        out[(i, name)] = g
    return out
