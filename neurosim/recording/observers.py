"""Observers: things recorded during training at a step cadence.

An observer has ``due(step) -> bool`` and ``observe(run, step, result) ->
list[(xarray.Dataset, append_dim)]``.  It is called *before* the optimizer
applies the step's update, so it sees the forward states, the error vector
and the rule's update direction of the same weights.  Its datasets are
appended to the run's store and become visible at the next checkpoint
commit.  A new kind of recording is one module plus one entry in
:data:`FACTORIES`: a function ``factory(run) -> observer | None``.
"""

from __future__ import annotations


class Observer:
    every = 1

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def observe(self, run, step: int, result) -> list:
        return []

    def flush(self, run) -> list:
        """Buffered records to write before a checkpoint commit (same form as observe)."""
        return []


def _realization_observers(run):
    return run.realization.observers(run)


def _metrics_observers(run):  # credit-assignment metrics (protocol ``metrics:``)
    from .metrics import metrics_factory

    return metrics_factory(run)


def _feedback_observers(run):  # feedback-matrix metrics (node perturbation, FA, DFA)
    from .feedback import factory

    return factory(run)


#: factories called once per run; each returns an Observer, a list of them, or None
FACTORIES = [_realization_observers, _metrics_observers, _feedback_observers]


def build_observers(run) -> list:
    out = []
    for f in FACTORIES:
        o = f(run)
        if o is None:
            continue
        out.extend(o if isinstance(o, (list, tuple)) else [o])
    return out
