"""Nonlinearities, each returning the activation and its derivative mask.

The vector gating nonlinearity of the paper (eq. 7-8) is the default:
``a[b,μ,i] = G[b,i] h[b,μ,i]`` with ``G[b,i] = Θ(Σ_μ t[μ,i] h[b,μ,i])`` and
gating vectors ``t`` frozen at initialisation.  With K = 1 and t = ±1 it is a
ReLU (t = +1) or its mirror image (t = −1), the paper's conventional unit.

Every nonlinearity returns ``(a, dphi)``: ``dphi`` is ∂a/∂h as an array that
broadcasts against ``h`` (B, K, *units).  For the gate it is G with a
singleton component axis, which is also the binary mask GEVB uses.
"""

from __future__ import annotations

from ..core import kernels
from ..core.backend import array_module


class Nonlinearity:
    name = "identity"
    #: True when ∂a/∂h is the gate mask G (shared by all K components).
    gating = False

    def __call__(self, h, t=None):
        return h, None  # dphi None means 1


class Gate(Nonlinearity):
    """Vector gating nonlinearity Φ(h) = Θ(t·h) h (eq. 7-8), gate G = (t·h ≥ 0)."""

    name = "gate"
    gating = True

    def __call__(self, h, t=None):
        # t has shape (K, *unit_or_channel_shape) broadcastable over h[b];
        # one fused pass on the CPU (Numba), the xp reference otherwise
        return kernels.gate(h, t)


class Relu(Nonlinearity):
    name = "relu"

    def __call__(self, h, t=None):
        m = (h > 0).astype(h.dtype)
        return h * m, m


class Sigmoid(Nonlinearity):
    name = "sigmoid"

    def __call__(self, h, t=None):
        xp = array_module(h)
        a = 1.0 / (1.0 + xp.exp(-h))
        return a, a * (1.0 - a)


class Tanh(Nonlinearity):
    name = "tanh"

    def __call__(self, h, t=None):
        xp = array_module(h)
        a = xp.tanh(h)
        return a, 1.0 - a * a


NONLINEARITIES = {cls.name: cls for cls in (Nonlinearity, Gate, Relu, Sigmoid, Tanh)}


def get(name: str) -> Nonlinearity:
    try:
        return NONLINEARITIES[name]()
    except KeyError:
        raise KeyError(f"unknown nonlinearity {name!r}; known: {sorted(NONLINEARITIES)}") from None


_BUILTIN = frozenset(NONLINEARITIES)


def _accept(obj) -> str | None:
    if isinstance(obj, type) and issubclass(obj, Nonlinearity):
        return None
    return f"{obj!r} is not a subclass of neurosim.model.nonlinearity.Nonlinearity"


def register_plugins() -> list:
    """(Re)register the neuron models (unit nonlinearities) of installed plug-ins (entry point
    group ``neurosim.nonlinearities``); returns their names."""
    from ..core import plugins

    for k in [k for k in NONLINEARITIES if k not in _BUILTIN]:
        del NONLINEARITIES[k]
    return plugins.register("neurosim.nonlinearities", NONLINEARITIES, _accept, _BUILTIN)

