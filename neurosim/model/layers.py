"""Layers: the linear maps of a network and their three learning operations.

Activations have shape ``(B, K, *units)``: batch, vector component, units
(``units`` is ``(n,)`` for dense layers and ``(C, H, W)`` for convolutional
ones).  Conventional networks are K = 1.  The network input is ``(B, *in)``
without a component axis; the *first* weight layer maps it to K components
with separate, mixed-sign weights per component (paper §3.1); later layers
share one weight across components (vectorized weight sharing).

Every layer with weights implements

* ``forward(a)``            h = W a + b,
* ``vjp(g, W, a)``          ∂L/∂a from ∂L/∂h, through W (BP) or a feedback
                            matrix of W's shape (FA),
* ``grads(a, g)``           ∂L/∂W, ∂L/∂b from the learning signal g = ∂L/∂h,
* ``gevb_grads(a, G, e)``   the GEVB update direction (eq. 9) from the gate
                            mask G and the error vector e, without forming g.

New layer kinds are one module that calls :func:`register`, imported by
``neurosim/model/__init__.py``.
"""

from __future__ import annotations

import math

from ..core import kernels
from ..core.backend import array_module
from ..core.options import Field, Section
from . import init as initmod


class Layer:
    """Base class.  Subclasses set ``in_shape``, ``unit_shape`` and ``params``."""

    kind = "layer"
    #: the circuit's layer options (beside ``type`` and ``nonlinearity``), passed to __init__
    OPTIONS = Section({})
    has_weights = False

    def __init__(self, in_shape, K: int, first: bool = False):
        self.in_shape = tuple(int(s) for s in in_shape)
        self.K = int(K)
        self.first = bool(first)
        self.params: dict = {}
        self.unit_shape: tuple = self.in_shape

    # shapes -------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return math.prod(self.unit_shape)

    @property
    def gating_shape(self) -> tuple:
        """Shape of the unit part of the gating vectors (one t per unit)."""
        return self.unit_shape

    def n_params(self) -> int:
        return sum(int(p.size) for p in self.params.values())

    def describe(self) -> str:
        return f"{self.kind} {self.in_shape} -> {self.unit_shape}"

    # learning operations -------------------------------------------------
    def forward(self, a):
        raise NotImplementedError

    def vjp(self, g, W=None, a=None):
        raise NotImplementedError

    def grads(self, a, g) -> dict:
        return {}

    def gevb_grads(self, a, G, e) -> dict:
        """GEVB update direction: ``grads`` with g[b,μ,·] = e[b,μ] G[b,·]."""
        xp = array_module(e)
        g = e.reshape(e.shape + (1,) * len(self.unit_shape)) * G
        return self.grads(a, xp.ascontiguousarray(g))

    def pass_flops(self, B: int) -> int:
        """Multiply-add FLOPs (×2) of one matrix-product pass through this weight layer,
        2·B·K·(units)·(fan-in): the forward, the weight gradient and the input gradient
        each cost one pass (dense, convolutional and locally connected layers alike)."""
        return 2 * B * self.K * self.n_units * self.fan_in

    def gevb_update_flops(self, B: int) -> int:
        """Matrix-product FLOPs of :meth:`gevb_grads` (eq. 9) as this layer computes it.

        A first layer forms g = e ⊗ G and takes one pass, (e⊗G)ᵀ x.  A shared layer
        contracts the components first, P = Σ_μ e a (2·B·K·fan_in), then takes Gᵀ P,
        a pass without the K components (1/K of one)."""
        if self.first:
            return self.pass_flops(B)
        return self.pass_flops(B) // self.K + 2 * B * self.K * self.fan_in

    def initialize(self, rng, scheme: str, role: str) -> None:
        """Draw the weights (see :mod:`neurosim.model.init`)."""

    def on_off_axes(self, readout: bool) -> tuple:
        """(view shape of W or None, post axis, pre axis) of the ON/OFF pairing of W
        (:mod:`neurosim.metrics.onoff`; None: not paired on that side): the common
        ``(out, in, ...)`` layout, first layer ``(K, out, in, ...)``."""
        if self.first:
            return None, 1, None
        return None, (None if readout else 0), 1

    def set_mode(self, training: bool, backend=None, key=None) -> None:
        """Training mode with the step's noise key, or evaluation mode; only
        stochastic layers (``dropout``) act on it."""

    def init_std(self, scheme: str, role: str) -> float:
        """Std of this layer's initial weights.  As in the published code, the first
        vectorized layer is scaled on the K-fold expanded input (appendix B: fan-in
        K·fan_in) times √K, i.e. per component std 1/√fan_in."""
        K = self.K if self.first else 1
        return initmod.scale(role, scheme, self.fan_in * K, K)


class Dense(Layer):
    """Fully connected layer.

    First layer: ``W`` has shape (K, n, n_in), one mixed-sign matrix per
    component: ``h[b,μ,i] = Σ_j W[μ,i,j] x[b,j] + b[μ,i]`` (SPEC §1).
    Later layers: ``W`` has shape (n, n_in), shared by the K components:
    ``h[b,μ,i] = Σ_j W[i,j] a[b,μ,j] + b[μ,i]``.  Biases are per component.
    """

    kind = "dense"
    OPTIONS = Section({"units": Field(int, min=1, doc="vector units (or neurons) of the layer")})
    has_weights = True

    def __init__(self, in_shape, K, first=False, units: int = None):
        super().__init__(in_shape, K, first)
        if units is None or units < 1:
            raise ValueError("dense layer needs units >= 1")
        self.n_in = math.prod(self.in_shape)
        self.unit_shape = (int(units),)
        n = int(units)
        wshape = (K, n, self.n_in) if first else (n, self.n_in)
        self.params = {"W": wshape, "b": (K, n)}  # shapes until initialize()

    @property
    def fan_in(self) -> int:
        return self.n_in

    def initialize(self, rng, scheme, role):
        import numpy as np

        wshape = self.params["W"]
        std = self.init_std(scheme, role)
        if scheme == "he":
            W = initmod.he_init(rng, wshape, std)
        else:
            post = 1 if self.first else 0
            pre = None if self.first else 1
            if role == "output":
                # the readout pairs its inputs; a conventional readout with several (an even
                # number of) outputs also pairs its rows, as the published code's
                # init_linear_mono does (out_features > 1): z[2k+1] = -z[2k] at initialisation
                n_out = wshape[-2]
                post = 0 if (not self.first and n_out > 1 and n_out % 2 == 0) else None
            pre_view = None
            if pre is not None and len(self.in_shape) > 1:
                # input is a flattened (C, H, W) map: pair channels, not indices
                pre_view = (wshape[0], self.in_shape[0], math.prod(self.in_shape[1:]))
            if pre_view is not None:
                W = initmod.on_off_init(rng, pre_view, post, pre, std).reshape(wshape)
            else:
                W = initmod.on_off_init(rng, wshape, post, pre, std)
        self.params = {"W": W, "b": np.zeros(self.params["b"])}

    def on_off_axes(self, readout: bool) -> tuple:
        """As :meth:`initialize` pairs them; a flattened (C, H, W) input pairs channels."""
        if self.first:
            return None, 1, None
        post = None if readout else 0
        if len(self.in_shape) > 1:
            return (self.params["W"].shape[0], self.in_shape[0], math.prod(self.in_shape[1:])), post, 1
        return None, post, 1

    def forward(self, a):
        W, b = self.params["W"], self.params["b"]
        B = a.shape[0]
        if self.first:
            x = a.reshape(B, self.n_in)
            h = (x @ W.reshape(-1, self.n_in).T).reshape(B, self.K, -1)
        else:
            h = (a.reshape(-1, self.n_in) @ W.T).reshape(B, a.shape[1], -1)
        h += b  # in place: h is a fresh matmul result (saves a pass and a temporary)
        return h

    def vjp(self, g, W=None, a=None):
        if self.first:
            raise RuntimeError("the first layer has no input gradient to propagate")
        W = self.params["W"] if W is None else W
        B, K = g.shape[:2]
        return (g.reshape(B * K, -1) @ W).reshape((B, K) + self.in_shape)

    def grads(self, a, g):
        B, K = g.shape[:2]
        if self.first:
            dW = (g.reshape(B, -1).T @ a.reshape(B, self.n_in)).reshape(self.params["W"].shape)
        else:
            dW = g.reshape(B * K, -1).T @ a.reshape(B * K, self.n_in)
        return {"W": dW, "b": g.sum(axis=0)}

    def gevb_grads(self, a, G, e):
        """Eq. 9 fast paths (the rule descends these; the minus sign is the optimizer's).

        First layer: ∂W1[μ,i,j] = Σ_b e[b,μ] G[b,i] x[b,j], i.e. one matmul
        (e⊗G)ᵀ x over the batch.  Shared layers: ∂W = Gᵀ P with
        P[b,j] = Σ_μ a[b,μ,j] e[b,μ] (:func:`neurosim.core.kernels.contract_components`).
        Biases: ∂b[μ,i] = Σ_b e[b,μ] G[b,i] = eᵀG in both cases.
        """
        B = a.shape[0]
        G2 = G.reshape(B, -1)
        if self.first:
            g = e[:, :, None] * G2[:, None, :]  # (B, K, n): the learning signal, one pass
            dW = (g.reshape(B, -1).T @ a.reshape(B, self.n_in)).reshape(self.params["W"].shape)
            return {"W": dW, "b": e.T @ G2}
        P = kernels.contract_components(e, a.reshape(B, self.K, self.n_in))
        return {"W": G2.T @ P, "b": e.T @ G2}


LAYERS = {"dense": Dense}


def register(kind: str, cls) -> None:
    """Add a layer kind (called by the module that defines it; :mod:`neurosim.model`
    imports every such module, so the table is complete once the package is imported)."""
    LAYERS[kind] = cls
