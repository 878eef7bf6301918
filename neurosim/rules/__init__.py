"""Registry of learning rules: name -> class.  A new rule is one module here
plus one entry in :data:`RULES`, or a plug-in from another package (entry point group
``neurosim.rules``, see :mod:`neurosim.core.plugins`); what it must declare (learning
signals, error signals, feedback matrices) is the interface of :class:`Rule`."""

from __future__ import annotations

from .base import Feedback, Rule, StepResult, UndeclaredError, backward, weight_grads
from .bp import BP
from .dfa import DFA
from .fa import FA
from .gevb import GEVB
from .ifa import IFA
from .node_perturbation import NodePerturbation
from .sign_symmetry import SignSymmetry

RULES: dict[str, type[Rule]] = {"bp": BP, "fa": FA, "dfa": DFA, "gevb": GEVB}
RULES.update({"node_perturbation": NodePerturbation, "ifa": IFA, "sign_symmetry": SignSymmetry})


_BUILTIN = frozenset(RULES)


def _accept(obj) -> str | None:
    if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule:
        return None
    return f"{obj!r} is not a subclass of neurosim.rules.Rule"


def register_plugins() -> list:
    """(Re)register the rules of installed plug-ins; returns their names."""
    from ..core import plugins

    for k in [k for k in RULES if k not in _BUILTIN]:
        del RULES[k]
    return plugins.register("neurosim.rules", RULES, _accept, _BUILTIN)



def build_rule(name: str, net, backend, **options) -> Rule:
    try:
        cls = RULES[name]
    except KeyError:
        raise KeyError(f"unknown rule {name!r}; known: {sorted(RULES)}") from None
    return cls(net, backend, **options)


__all__ = ["RULES", "Feedback", "Rule", "StepResult", "UndeclaredError", "backward", "build_rule",
           "register_plugins", "weight_grads"]
