"""A feed-forward network: layers, their nonlinearities and gating vectors.

Built from a circuit description (``circuits/*.yaml``, see
:mod:`neurosim.protocol`).  A *vectorized* network (VNN) has K-component
vector units and ends in ONE vector output unit whose K components are the
logits; a *conventional* network is the K = 1 case ending in n_classes scalar
output units.  In both cases the output activations have shape
(B, K, n_out) with K·n_out = n_classes, and ``logits = a_L.reshape(B, -1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers as layermod
from . import nonlinearity as nlmod
from .gating import gating_vectors


@dataclass
class LayerState:
    """What the forward pass leaves for learning: input, pre-activation,
    activation and ∂a/∂h (None = 1; the gate mask G for gated layers)."""

    a_in: object
    h: object
    a: object
    dphi: object


class Network:
    """Layers with nonlinearities; the last weight layer is the readout."""

    def __init__(self, layers, nonlins, t, K, n_out, vectorized, sign, backend):
        self.layers = layers
        self.nonlins = nonlins
        self.t = t
        self.K = K
        self.n_out = n_out
        self.vectorized = vectorized
        self.sign = sign
        self.backend = backend
        #: training mode (dropout active) and the optimizer step / epoch it is for;
        #: set by :meth:`begin_step` from the training loop (see ``dropout``)
        self.training = False
        self.step = None
        self.epoch = 0

    # ---------------------------------------------------------------
    @property
    def weight_layers(self) -> list[int]:
        return [i for i, L in enumerate(self.layers) if L.has_weights]

    @property
    def hidden_weight_layers(self) -> list[int]:
        return self.weight_layers[:-1]

    @property
    def readout(self) -> int:
        return self.weight_layers[-1]

    def clamped(self, i: int) -> bool:
        """Nonnegativity applies to every weight layer after the first
        (appendix I), including the readout; biases are never clamped."""
        return self.sign == "nonnegative" and i != self.weight_layers[0]

    def project(self) -> None:
        """Clamp the weights of layers ℓ > 1 at zero (nonnegative networks)."""
        xp = self.backend.xp
        for i in self.weight_layers:
            if self.clamped(i):
                W = self.layers[i].params["W"]
                xp.maximum(W, 0, out=W)

    def parameters(self):
        """(layer index, name, array) of every trainable array."""
        for i in self.weight_layers:
            for name, p in self.layers[i].params.items():
                yield i, name, p

    def n_params(self) -> int:
        return sum(L.n_params() for L in self.layers)

    def begin_step(self, step: int, epoch: int = 0) -> None:
        """Enter training mode for optimizer step ``step`` (1-based) of epoch
        ``epoch`` (0-based): stochastic layers (``dropout``) draw their noise
        from ``backend.device_rng("noise", ..., step, layer)``, the same for every
        forward pass of the step (so a rule's clean and perturbed passes see
        one mask) and the same after a resume."""
        self.training, self.step, self.epoch = True, int(step), int(epoch)
        for i, L in enumerate(self.layers):
            L.set_mode(True, self.backend, (self.step, i))

    def end_step(self) -> None:
        """Back to evaluation mode (dropout is the identity)."""
        self.training = False
        for L in self.layers:
            L.set_mode(False)

    # ---------------------------------------------------------------
    def forward(self, x, t=None, perturb=None):
        """Forward pass; returns (logits, states).  ``t`` overrides gating.
        ``perturb`` ({layer index: array}) is added to those layers'
        activations (node perturbation)."""
        t = self.t if t is None else t
        states = []
        a = x
        for i, (L, phi) in enumerate(zip(self.layers, self.nonlins)):
            h = L.forward(a)
            if phi is None:
                out, d = h, None
            else:
                out, d = phi(h, t[i])
            if perturb is not None and i in perturb:
                out = out + perturb[i]
            states.append(LayerState(a, h, out, d))
            a = out
        return a.reshape(a.shape[0], -1), states

    def predict(self, x, batch_size: int = 1000):
        """Logits for many examples, in batches (no states kept)."""
        xp = self.backend.xp
        outs = []
        for s in range(0, x.shape[0], batch_size):
            logits, _ = self.forward(x[s : s + batch_size])
            outs.append(logits)
        return xp.concatenate(outs, axis=0)

    def summary(self) -> list[dict]:
        rows = []
        for i, L in enumerate(self.layers):
            rows.append({
                "layer": i,
                "kind": L.kind,
                "in": L.in_shape,
                "units": L.unit_shape,
                "nonlinearity": None if self.nonlins[i] is None else self.nonlins[i].name,
                "params": L.n_params(),
                "shared": L.has_weights and not L.first,
                "clamped": L.has_weights and self.clamped(i),
            })
        return rows


class ShapeError(ValueError):
    """A circuit that cannot be built on the given input; ``key`` names the circuit
    entry at fault (``components``, ``layers[i]`` or ``output``)."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


def components(spec: dict, n_classes: int) -> int:
    """K, the number of vector components (paper §3.1): the number of classes in a
    vectorized network (``components`` may state it), 1 in a conventional one."""
    if not spec.get("vectorized", True):
        return 1
    K = int(spec.get("components") or n_classes)
    if K != n_classes:
        raise ShapeError(f"a vectorized network needs as many components as the dataset has "
                         f"classes ({n_classes}), got {K}", "components")
    return K


@dataclass
class LayerPlan:
    """One layer of a :class:`NetworkPlan`: the layer object (its ``params`` hold
    shapes until :meth:`Layer.initialize`), its circuit key, its initialisation role
    (``first``, ``hidden`` or ``output`` for weight layers, else None) and the name
    of its nonlinearity (None: none)."""

    key: str
    layer: layermod.Layer
    role: str | None
    nonlinearity: str | None


@dataclass
class NetworkPlan:
    """A network on shapes only: what :func:`plan_network` derives from a circuit."""

    K: int
    n_out: int
    vectorized: bool
    sign: str
    scheme: str
    gating: str
    layers: list[LayerPlan]


def plan_network(spec: dict, in_shape, n_classes: int) -> NetworkPlan:
    """The layers of circuit ``spec`` on an input of shape ``in_shape``, on shapes
    only: no weights are drawn and no data is needed.

    Every layer is constructed on the output shape of the one before it, the
    readout (``output:``) last: one vector unit in a vectorized network, else
    ``output.units`` or ``n_classes`` scalar units.  A layer that cannot take its
    input (a kernel larger than the image, zero units, ...) raises
    :class:`ShapeError` naming its circuit key.  Used by :func:`build_network` and
    by the protocol validator, so both see the same network.
    """
    K = components(spec, n_classes)
    vectorized = bool(spec.get("vectorized", True))
    out_spec = dict(spec.get("output") or {})
    n_out = out_spec.pop("units", None) or (1 if vectorized else n_classes)
    sign = spec.get("sign", "nonnegative" if vectorized else "mixed")
    scheme = spec.get("init", "on_off" if sign == "nonnegative" else "he")
    hidden_nl = spec.get("nonlinearity", "gate")
    specs = [(f"layers[{i}]", dict(ls)) for i, ls in enumerate(spec["layers"])]
    specs.append(("output", dict(type="dense", units=n_out, **out_spec)))
    n_weight = sum(1 for _, ls in specs if layermod.LAYERS[ls["type"]].has_weights)

    plans, shape, w_seen = [], tuple(in_shape), 0
    for key, ls in specs:
        kind = ls.pop("type")
        nl_name = ls.pop("nonlinearity", None)
        cls = layermod.LAYERS[kind]
        first = w_seen == 0 and cls.has_weights
        try:
            L = cls(shape, K, first=first, **ls)
        except (ValueError, TypeError) as exc:
            raise ShapeError(f"{kind} layer cannot take input of shape {shape}: {exc}", key) from exc
        role = None
        if cls.has_weights:
            w_seen += 1
            role = "first" if first else ("output" if w_seen == n_weight else "hidden")
            nl_name = nl_name or ("identity" if key == "output" else hidden_nl)
        shape = tuple(L.unit_shape)
        if any(int(d) < 1 for d in shape):
            raise ShapeError(f"layer output shape {shape} is empty (input {tuple(L.in_shape)})", key)
        plans.append(LayerPlan(key, L, role, None if nl_name == "none" else nl_name))
    return NetworkPlan(K, n_out, vectorized, sign, scheme, spec.get("gating", "paired"), plans)


def build_network(spec: dict, backend, in_shape, n_classes: int) -> Network:
    """Build and initialise a network from a validated circuit ``spec``.

    ``spec`` keys: ``vectorized``, ``sign`` (nonnegative | mixed), ``init``
    (he | on_off), ``nonlinearity`` (hidden units; default gate),
    ``gating`` (paired | random | first_bin), ``output`` (readout options) and
    ``layers`` (list of ``{type: ..., ...}``), see ``circuits/``.  The layers
    are those of :func:`plan_network`; weights come from the ``init`` stream,
    gating vectors from the ``gating`` stream.
    """
    plan = plan_network(spec, in_shape, n_classes)
    K = plan.K
    rng_init = backend.rng("init")
    rng_gate = backend.rng("gating")
    layers, nonlins, ts = [], [], []
    for lp in plan.layers:
        L = lp.layer
        if lp.role is not None:
            L.initialize(rng_init, plan.scheme, lp.role)
        if lp.nonlinearity is None:
            nonlins.append(None)
            ts.append(None)
        else:
            nl = nlmod.get(lp.nonlinearity)
            nonlins.append(nl)
            if nl.gating:
                gs = L.gating_shape
                t = gating_vectors(rng_gate, K, gs[0], plan.gating)
                t = t.reshape((K, gs[0]) + (1,) * (len(gs) - 1))
                ts.append(backend.asarray(t))
            else:
                ts.append(None)
        layers.append(L)

    for L in layers:
        L.params = {k: backend.asarray(v) for k, v in L.params.items()}
    net = Network(layers, nonlins, ts, K, plan.n_out, plan.vectorized, plan.sign, backend)
    net.project()
    return net


def state_dict(net: Network) -> dict:
    """Host copies of all parameters, keyed ``L{i}.{name}``."""
    return {f"L{i}.{name}": net.backend.to_host(p) for i, name, p in net.parameters()}


def load_state_dict(net: Network, state: dict) -> None:
    for i, name, p in net.parameters():
        p[...] = net.backend.asarray(np.asarray(state[f"L{i}.{name}"]))
