"""Optimizers over a network's parameters, followed by the nonnegativity
projection (appendix I: after every step, weights of layers ℓ > 1 are
clamped at zero in nonnegative networks; biases never are).

The update direction comes from the learning rule (an estimate of ∂L/∂W);
the optimizer is the same for every rule, as in the paper (Adam, lr 3e-4,
β = (0.9, 0.999), ε = 1e-8).
"""

from __future__ import annotations

import numpy as np

from .core.options import Field, Section


class Optimizer:
    name = "base"
    #: arrays of state it keeps per parameter, for the run's memory estimate
    STATE_ARRAYS = 1

    def __init__(self, net, lr: float):
        self.net = net
        self.lr = float(lr)
        self.t = 0

    def step(self, grads: dict) -> None:
        """Apply ``grads`` ({(layer, name): array}) then project."""
        self.t += 1
        # readout first, first layer last: the first layer's weights are then the ones
        # left in cache for the next forward pass (the order changes no number)
        for (i, name), g in reversed(grads.items()):
            self._update(i, name, self.net.layers[i].params[name], g)
        self.net.project()

    def _update(self, i, name, p, g):
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"t": np.asarray(self.t)}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])


class SGD(Optimizer):
    """Plain (optionally momentum) stochastic gradient descent."""

    name = "sgd"
    OPTIONS = Section({
        "lr": Field(float, default=3e-4, min=0, exclusive_min=True, doc="learning rate η"),
        "momentum": Field(float, default=0.0, min=0, max=1, exclusive_max=True, doc="heavy-ball momentum"),
    })

    def __init__(self, net, lr: float, momentum: float = 0.0):
        super().__init__(net, lr)
        self.momentum = float(momentum)
        self.buf = {}

    def _update(self, i, name, p, g):
        if self.momentum:
            b = self.buf.get((i, name))
            if b is None:
                b = self.buf[(i, name)] = g.copy()
            else:
                b *= self.momentum
                b += g
            g = b
        p -= self.lr * g

    def state_dict(self):
        d = super().state_dict()
        for (i, name), b in self.buf.items():
            d[f"buf.L{i}.{name}"] = self.net.backend.to_host(b)
        return d

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for i, name, _ in self.net.parameters():
            k = f"buf.L{i}.{name}"
            if k in state:
                self.buf[(i, name)] = self.net.backend.asarray(state[k])


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, in place on device arrays."""

    name = "adam"
    STATE_ARRAYS = 2  # first and second moments
    OPTIONS = Section({
        "lr": Field(float, default=3e-4, min=0, exclusive_min=True, doc="learning rate η"),
        "betas": Field(list, default=[0.9, 0.999], length=2,
                       item=Field(float, min=0, max=1),
                       doc="decay rates of the first and second moment estimates"),
        "eps": Field(float, default=1e-8, min=0, exclusive_min=True, doc="added to the root of v"),
    })

    def __init__(self, net, lr: float = 3e-4, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(net, lr)
        self.b1, self.b2 = (float(b) for b in betas)
        self.eps = float(eps)
        xp = net.backend.xp
        self.m = {(i, n): xp.zeros_like(p) for i, n, p in net.parameters()}
        self.v = {(i, n): xp.zeros_like(p) for i, n, p in net.parameters()}

    def _update(self, i, name, p, g):
        m, v = self.m[(i, name)], self.v[(i, name)]
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        step = self.lr / c1
        from .core import kernels

        kernels.adam_update(p, g, m, v, self.b1, self.b2, self.eps, step, np.sqrt(c2))

    def state_dict(self):
        d = super().state_dict()
        h = self.net.backend.to_host
        for (i, name) in self.m:
            d[f"m.L{i}.{name}"] = h(self.m[(i, name)])
            d[f"v.L{i}.{name}"] = h(self.v[(i, name)])
        return d

    def load_state_dict(self, state):
        super().load_state_dict(state)
        for (i, name) in self.m:
            self.m[(i, name)][...] = self.net.backend.asarray(state[f"m.L{i}.{name}"])
            self.v[(i, name)][...] = self.net.backend.asarray(state[f"v.L{i}.{name}"])


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def build_optimizer(net, spec: dict) -> Optimizer:
    spec = dict(spec)
    name = spec.pop("name", "adam")
    if name not in OPTIMIZERS:
        raise KeyError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}")
    if "betas" in spec:
        spec["betas"] = tuple(spec["betas"])
    return OPTIMIZERS[name](net, **spec)
