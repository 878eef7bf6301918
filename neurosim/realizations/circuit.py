"""What the explicit-circuit realizations (``grouped``, ``temporal``) share.

Both simulate the fully connected VNN of the protocol as explicit neurons
(paper §7, "Biological implementation") and learn with the three-factor
GEVB rule (eq. 9) written per synapse.  This module holds

* :func:`check_network` — the circuits support dense (fully connected) VNNs
  with gated hidden units and the ``gevb`` rule only;
* :class:`SynapseSet` — a stand-in "network" over arrays the circuit owns, so
  the shared optimizers (:mod:`neurosim.optim`) can update them;
* :func:`build_synapse_optimizer` — the protocol's optimizer over a SynapseSet;
* :func:`gevb_reference` — the batched GEVB update of the network on a batch
  (what the circuits are compared with, "update agreement");
* :func:`cosine` — per-layer cosine between two update dictionaries.

Internal layout: circuit states are held as ``(K, B, n)`` (component or time
bin first) so that every layer is one batched matrix product over μ; states
handed to observers are the engine's ``(B, K, n)`` views.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.backend import array_module
from ..model.network import LayerState


def check_protocol(protocol: dict, hidden: list, realization: str) -> None:
    """What an explicit circuit (grouped or temporal) needs of a validated protocol: GEVB, a
    fully connected vectorized network with gated hidden units and an identity readout."""
    from ..core.options import ConfigError

    if protocol.rule.name != "gevb":
        raise ConfigError(f"realization {realization} implements the three-factor GEVB rule "
                          f"(paper §7); set rule.name: gevb (got {protocol.rule.name!r})",
                          key="rule.name")
    circuit = protocol.circuit
    if not circuit.vectorized:
        raise ConfigError(f"realization {realization} needs a vectorized network", key="circuit.vectorized")
    for i, ls in enumerate(circuit.layers):
        if ls.type != "dense":
            raise ConfigError(f"realization {realization} simulates fully connected VNNs only (dense "
                              f"layers); layer {i} is {ls.type!r}. Use realization type batched for "
                              f"other layer kinds", key=f"circuit.layers[{i}].type")
    if circuit.output.nonlinearity != "identity":
        raise ConfigError(f"realization {realization} needs an identity readout, got "
                          f"{circuit.output.nonlinearity!r}", key="circuit.output.nonlinearity")
    for i, nl in hidden:
        if not nl.gating:
            raise ConfigError(f"realization {realization} needs gated hidden units (nonlinearity: "
                              f"gate); layer {i} has {nl.name!r}", key=f"circuit.layers[{i}].nonlinearity")


def check_network(net, realization: str) -> None:
    """Raise ValueError unless ``net`` can be simulated as a circuit (a protocol that passed
    :func:`check_protocol` always can)."""
    if not net.vectorized or net.n_out != 1:
        raise ValueError(f"realization {realization!r} needs a vectorized network "
                         f"(circuit.vectorized: true)")
    for i, L in enumerate(net.layers):
        if L.kind != "dense" or not L.has_weights:
            raise ValueError(f"realization {realization!r} simulates fully connected VNNs only "
                             f"(dense layers); layer {i} is {L.kind!r}")
    for i in net.hidden_weight_layers:
        nl = net.nonlins[i]
        if nl is None or not nl.gating:
            raise ValueError(f"realization {realization!r} needs gated hidden units; layer {i} "
                             f"has {getattr(nl, 'name', None)!r}")


class _Params:
    def __init__(self):
        self.params = {}


class SynapseSet:
    """Arrays owned by a circuit, shaped like a network for the optimizers.

    ``project`` is a no-op: the circuits apply the nonnegativity clamp
    themselves, at the point of the step where it belongs.
    """

    def __init__(self, backend, arrays: dict):
        self.backend = backend
        n = 1 + max(i for i, _ in arrays)
        self.layers = [_Params() for _ in range(n)]
        for (i, name), a in arrays.items():
            self.layers[i].params[name] = a

    def parameters(self):
        for i, L in enumerate(self.layers):
            for name, p in L.params.items():
                yield i, name, p

    def project(self) -> None:
        pass


def build_synapse_optimizer(synapses: SynapseSet, spec: dict):
    from ..optim import build_optimizer

    opt = dict(spec)
    if opt.get("name") == "sgd":
        opt.pop("betas", None), opt.pop("eps", None)
    else:
        opt.pop("momentum", None)
    return build_optimizer(synapses, opt)


class GEVBReference:
    """Batched GEVB update directions {(layer, name): array} of a network on (x, y): what the
    explicit circuits are compared with (their ideal settings equal it)."""

    def __init__(self, net, backend, loss_fn):
        from ..rules import build_rule

        self.net, self.loss_fn = net, loss_fn
        self.rule = build_rule("gevb", net, backend)

    def __call__(self, x, y, e=None) -> dict:
        """GEVB's update on (x, y); with ``e`` (B, K), GEVB given that error vector instead of
        the network's own (the network's gates and activities, the error of a circuit)."""
        if e is None:
            return self.rule.step(self.net, x, y, self.loss_fn).grads
        _, states = self.net.forward(x)
        return self.rule.gradients(self.net, states, e)


def cosine(a: dict, b: dict, layers) -> np.ndarray:
    """cos(angle) between the concatenated (W, b) updates of each layer."""
    out = np.full(len(layers), np.nan)
    for k, i in enumerate(layers):
        dot = na = nb = 0.0
        for name in ("W", "b"):
            if (i, name) not in a or (i, name) not in b:
                continue
            u, v = a[(i, name)], b[(i, name)]
            xp = array_module(u)
            dot += float(xp.vdot(u.ravel(), v.ravel()))
            na += float(xp.vdot(u.ravel(), u.ravel()))
            nb += float(xp.vdot(v.ravel(), v.ravel()))
        if na > 0 and nb > 0:
            out[k] = dot / math.sqrt(na * nb)
    return out


def engine_states(states) -> list:
    """Circuit states (component axis first) as the batched engine's LayerStates
    (B, K, units; gate G with a singleton component axis), for observers and metrics."""
    out = []
    for a_in, h, a, G in states:
        a_in_e = a_in if a_in.ndim == 2 else a_in.transpose(1, 0, 2)
        out.append(LayerState(a_in_e, h.transpose(1, 0, 2), a.transpose(1, 0, 2),
                              None if G is None else G[:, None, :]))
    return out


def clamp_(W) -> None:
    xp = array_module(W)
    xp.maximum(W, 0, out=W)
