"""Three-factor learning rules: what differs is the learning signal g^ℓ.

Every rule here produces, for each weight layer ℓ, an estimate of ∂L/∂W^ℓ
from (presynaptic activity) × (postsynaptic learning signal g^ℓ ≈ ∂L/∂h^ℓ)
summed over the batch (DESIGN.md).  A rule is a subclass of :class:`Rule`;
the optimizer and the training loop are shared by all rules.

What a rule declares, for its update and for the metrics that judge it
(:mod:`neurosim.metrics`), all as methods of :class:`Rule`:

* :meth:`Rule.learning_signals` — g^ℓ for every weight layer, the
  postsynaptic factor its update multiplies in;
* :meth:`Rule.error_signals` — δ^ℓ ≈ ∂L/∂a^ℓ for every hidden weight layer,
  the same signal before the layer's own derivative-of-nonlinearity term
  (g^ℓ = δ^ℓ ⊙ φ'(h^ℓ)), which the alignment angle of appendix E compares
  with the backpropagated ∂L/∂a^ℓ;
* :meth:`Rule.feedback_matrices` — the feedback matrices B^ℓ the rule sends
  error through, and how (:class:`Feedback`); none for BP and GEVB.

A rule computes its signals in one place and its update from them, so a
metric sees exactly the signal the update used.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

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


#: how a feedback matrix is used (see :class:`Feedback`)
FEEDBACK_KINDS = ("backward", "direct")


@dataclass(frozen=True)
class Feedback:
    """A feedback matrix B^ℓ of one weight layer ℓ and how the rule uses it.

    ``kind``:

    * ``"backward"`` — B^ℓ has W^ℓ's shape and takes W^ℓ's place in the
      backward pass through layer ℓ (FA eq. 4, sign symmetry, node
      perturbation ``style: fa``); the signal it carries arrives at layer ℓ's
      input;
    * ``"direct"`` — B^ℓ (n_out × n_ℓ) sends the output error straight to
      layer ℓ's units, δ^ℓ = e B^ℓ (DFA eq. 5, IFA's first hidden layer, node
      perturbation ``style: dfa``).

    ``matrix`` is the array the rule's update uses (not a copy).
    """

    matrix: object
    kind: str

    def __post_init__(self):
        if self.kind not in FEEDBACK_KINDS:
            raise ValueError(f"feedback kind must be one of {FEEDBACK_KINDS}, not {self.kind!r}")


class UndeclaredError(NotImplementedError):
    """A rule does not declare a signal that a caller (a metric) asked for."""


class Rule:
    """Base class of a learning rule.

    A rule implements :meth:`learning_signals` and :meth:`error_signals`
    (both ``{layer index: array}``) and, when it has feedback matrices,
    :meth:`feedback_matrices`.  The default :meth:`gradients` is the shared
    three-factor product of :meth:`learning_signals` with each layer's input
    (:func:`weight_grads`); a rule overrides it only for a faster path to the
    same numbers.
    """

    name = "rule"
    #: the protocol's ``rule:`` options (beside ``name``), passed to ``__init__`` by keyword
    OPTIONS = Section({})
    #: what the rule needs of a circuit (checked when the protocol is validated)
    needs_vectorized = False
    needs_gating = False
    min_hidden_layers = 0
    #: whether the rule's update is the true gradient in every layer (BP)
    exact_gradient = False

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
        """``{(layer, param): array}``: the rule's estimate of ∂L/∂param (the
        optimizer descends it)."""
        return weight_grads(net, states, self.learning_signals(net, states, e))

    # -- what the rule declares (called by its update and by the metrics) ----------
    def learning_signals(self, net, states, e) -> dict:
        """``{ℓ: g^ℓ}`` for every weight layer ℓ (``net.weight_layers``): the
        learning signal g^ℓ ≈ ∂L/∂h^ℓ (shape of h^ℓ, the batch's 1/B
        included) that the rule's update multiplies with the layer's input
        (DESIGN.md's table).  The readout's is its true gradient signal
        e ⊙ φ'(h^L) for every rule here."""
        raise UndeclaredError(
            f"rule {self.name!r} ({type(self).__name__}) does not declare its learning "
            "signals: implement Rule.learning_signals (g per weight layer)")

    def error_signals(self, net, states, e) -> dict:
        """``{ℓ: δ^ℓ}`` for every hidden weight layer ℓ
        (``net.hidden_weight_layers``): the rule's estimate of ∂L/∂a^ℓ
        (shape of a^ℓ), i.e. its learning signal before layer ℓ's own
        derivative-of-nonlinearity term, g^ℓ = δ^ℓ ⊙ φ'(h^ℓ).  The alignment
        angle (appendix E) compares it with the backpropagated ∂L/∂a^ℓ."""
        raise UndeclaredError(
            f"rule {self.name!r} ({type(self).__name__}) does not declare its error "
            "signals: implement Rule.error_signals (δ ≈ ∂L/∂a per hidden weight layer)")

    def feedback_matrices(self) -> dict:
        """``{ℓ: Feedback}``: the feedback matrices the rule's update uses, by
        the weight layer they serve.  Empty for a rule without feedback
        matrices (BP uses the layers' own transposes, GEVB broadcasts e)."""
        return {}

    # -- checkpointed state ----------------------------------------------------------
    def state_dict(self) -> dict:
        """Host arrays of the rule's own state (e.g. feedback matrices)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class BackwardRule(Rule):
    """A rule whose signals travel down through the layers from the output
    error (:func:`backward_pass`): BP through the layers' own transposes
    (eq. 3), or FA-like rules with the matrices of ``feedback`` ({ℓ: B^ℓ of
    W^ℓ's shape}) in W^ℓ's place (eq. 4)."""

    #: {ℓ: matrix used in W^ℓ's place}; empty: the layers' transposes (BP)
    feedback = MappingProxyType({})

    def learning_signals(self, net, states, e):
        g, _ = backward_pass(net, states, e, self.feedback)
        return {i: g[i] for i in net.weight_layers}

    def error_signals(self, net, states, e):
        _, da = backward_pass(net, states, e, self.feedback)
        return {i: da[i] for i in net.hidden_weight_layers}

    def feedback_matrices(self):
        return {i: Feedback(B, "backward") for i, B in self.feedback.items()}


def output_signal(net, states, e):
    """g at the readout: ∂L/∂h^L = e (reshaped) ⊙ φ'(h^L)."""
    last = states[-1]
    g = e.reshape(last.h.shape)
    return g if last.dphi is None else g * last.dphi


def post_signal(delta, dphi):
    """g = δ ⊙ φ'(h): the learning signal a three-factor update multiplies in."""
    return delta if dphi is None else delta * dphi


def backward_pass(net, states, e, feedback=None):
    """Backward pass from the output error, through the layers' transposes
    (BP, eq. 3) or, where ``feedback`` has a matrix for layer i, through that
    matrix in W^i's place (FA, eq. 4).

    Returns ``(g, da)``: ``g[i]`` = ∂L/∂h^i for every layer down to the first
    weight layer, ``da[i]`` = ∂L/∂a^i (before layer i's φ') for every layer
    below the output.
    """
    feedback = feedback or {}
    first = net.weight_layers[0]
    g = output_signal(net, states, e)
    gs = {len(net.layers) - 1: g}
    das = {}
    for i in range(len(net.layers) - 1, first, -1):
        da = net.layers[i].vjp(g, feedback.get(i), a=states[i].a_in)
        das[i - 1] = da
        g = post_signal(da, states[i - 1].dphi)
        gs[i - 1] = g
    return gs, das


def backward(net, states, e, feedback=None) -> dict:
    """The learning signals g[i] = ∂L/∂h^i of :func:`backward_pass`."""
    return backward_pass(net, states, e, feedback)[0]


def direct_errors(net, e, feedback: dict) -> dict:
    """δ^ℓ = e B^ℓ for every layer ℓ of ``feedback`` ({ℓ: B^ℓ (n_out × n_ℓ)}):
    the output error sent straight to layer ℓ's units (DFA, eq. 5), shape
    (B, K, *units).  In a vectorized network B^ℓ maps the output unit to the
    hidden units, the same for every component (weight sharing)."""
    Bsz, K = e.shape[0], net.K
    eo = e.reshape(Bsz * K, net.n_out)
    return {i: (eo @ Bm).reshape((Bsz, K) + net.layers[i].unit_shape)
            for i, Bm in feedback.items()}


def hidden_learning_signals(net, states, e, delta: dict) -> dict:
    """g per weight layer from δ per hidden weight layer: g^ℓ = δ^ℓ ⊙ φ'(h^ℓ),
    and the readout's true gradient signal (:func:`output_signal`)."""
    g = {i: post_signal(delta[i], states[i].dphi) for i in net.hidden_weight_layers}
    g[net.readout] = output_signal(net, states, e)
    return g


def weight_grads(net, states, signals: dict, layers=None) -> dict:
    """∂L/∂W from the learning signals: the shared three-factor product."""
    out = {}
    for i in net.weight_layers if layers is None else layers:
        for name, g in net.layers[i].grads(states[i].a_in, signals[i]).items():
            out[(i, name)] = g
    return out
