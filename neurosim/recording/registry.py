"""Which observers a run records with: factories called once per experiment, each returning an
:class:`~neurosim.recording.observers.Observer`, a list of them, or None."""

from __future__ import annotations

from .feedback import factory as feedback_factory
from .metrics import metrics_factory


def _realization_observers(exp):  # trajectories of the explicit circuits
    return exp.realization.observers(exp)


#: credit-assignment metrics (``metrics:``), feedback-matrix metrics, realization observers
FACTORIES = [_realization_observers, metrics_factory, feedback_factory]


def build_observers(exp) -> list:
    out = []
    for f in FACTORIES:
        o = f(exp)
        if o is None:
            continue
        out.extend(o if isinstance(o, (list, tuple)) else [o])
    return out
