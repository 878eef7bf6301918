"""Three-factor learning rules: what differs is the learning signal g^ℓ.

Every rule here produces, for each weight layer ℓ, an estimate of ∂L/∂W^ℓ
from (presynaptic activity) × (postsynaptic learning signal g^ℓ ≈ ∂L/∂h^ℓ)
summed over the batch (DESIGN.md).  A rule is a subclass of :class:`Rule`
implementing :meth:`Rule.gradients`; the optimizer and the training loop are
shared by all rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.options import Section


@dataclass
class StepResult:
    """One learning step: mean loss, logits, update directions, forward states
    and the error vector e = ∂L/∂logits (with the batch's 1/B)."""

    loss: float
    logits: object
    grads: dict
    states: list
    e: object


class Rule:
    """Base class of a learning rule.

    ``gradients(net, states, e)`` returns ``{(layer, param): array}`` — the
    rule's estimate of ∂L/∂param (the optimizer descends it).
    """

    name = "rule"
    #: the protocol's ``rule:`` options (beside ``name``), passed to ``__init__`` by keyword
    OPTIONS = Section({})
    #: what the rule needs of a circuit (checked when the protocol is validated)
    needs_vectorized = False
    needs_gating = False
    min_hidden_layers = 0

    def __init__(self, net, backend, **options):
        if options:
            raise TypeError(f"rule {self.name!r} takes no options {sorted(options)}")
        self.check(net)

    def check(self, net) -> None:
        """Raise ValueError when ``net`` cannot be trained with this rule."""

    def step(self, net, x, y, loss_fn) -> StepResult:
        logits, states = net.forward(x)
        loss, e = loss_fn(logits, y)
        return StepResult(loss, logits, self.gradients(net, states, e), states, e)

    def gradients(self, net, states, e) -> dict:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Host arrays of the rule's own state (e.g. feedback matrices)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def output_signal(net, states, e):
    """g at the readout: ∂L/∂h^L = e (reshaped) ⊙ φ'(h^L)."""
    last = states[-1]
    g = e.reshape(last.h.shape)
    return g if last.dphi is None else g * last.dphi


def backward(net, states, e, feedback=None) -> dict:
    """Learning signals g[i] = ∂L/∂h^i for every layer down to the first
    weight layer, through the layers' transposes (BP, eq. 3) or, where
    ``feedback`` has a matrix for layer i, through that matrix (FA, eq. 4)."""
    feedback = feedback or {}
    first = net.weight_layers[0]
    g = output_signal(net, states, e)
    signals = {len(net.layers) - 1: g}
    for i in range(len(net.layers) - 1, first, -1):
        da = net.layers[i].vjp(g, feedback.get(i), a=states[i].a_in)
        d = states[i - 1].dphi
        g = da if d is None else da * d
        signals[i - 1] = g
    return signals


def weight_grads(net, states, signals: dict, layers=None) -> dict:
    """∂L/∂W from the learning signals: the shared three-factor product."""
    out = {}
    for i in net.weight_layers if layers is None else layers:
        for name, g in net.layers[i].grads(states[i].a_in, signals[i]).items():
            out[(i, name)] = g
    return out
