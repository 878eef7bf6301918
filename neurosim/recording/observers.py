"""Observers: things recorded during training at a step cadence.

An observer has ``due(step) -> bool`` and ``observe(exp, ctx) -> list[(xarray.Dataset,
append_dim)]``, where ``exp`` is the :class:`~neurosim.experiment.Experiment` (network, rule,
realization, options) and ``ctx`` a :class:`StepContext`.  It is called *before* the optimizer
applies the step's update, so it sees the forward states, the error vector and the rule's
update direction of the same weights.  Its datasets are appended to the run's store and become
visible at the next checkpoint commit.  Observers never see the training loop itself.

A new kind of recording is one module plus one entry in
:data:`neurosim.recording.registry.FACTORIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class StepContext:
    """Where the loop is when an observer runs."""

    step: int  #: the optimizer step being taken (1-based)
    epoch: int  #: epochs completed before this step
    batch: int  #: batches of the current epoch completed before this step
    steps_per_epoch: int
    result: Any = None  #: the rule's StepResult (None when flushing)
    records: Callable[[str], int] = lambda dim: 0  #: records already stored along ``dim``

    @property
    def epoch_after_step(self) -> float:
        """Epochs completed once this step is applied."""
        return self.epoch + (self.batch + 1) / self.steps_per_epoch


class Observer:
    every = 1
    #: protocol key of ``every`` (for :meth:`plan`'s note); None: no cadence to check
    every_key = None
    #: a run shorter than the cadence records its last step instead (set by :meth:`plan`)
    final_step = None

    def plan(self, n_steps: int) -> list:
        """Called once before training with the run's planned optimizer steps.  A cadence
        longer than the run would record nothing: the observer records the run's last step
        instead and returns ``[(protocol key, cadence)]`` for the run's one-line note."""
        if self.every_key and self.every > n_steps:
            self.final_step = n_steps
            return [(self.every_key, self.every)]
        return []

    def check_store(self, names: set, path) -> None:
        """Before a resume: refuse (StoreError) a store whose records (``names``: the store's
        arrays) this observer cannot extend."""

    def due(self, step: int) -> bool:
        return (self.every > 0 and step % self.every == 0) or step == self.final_step

    def observe(self, exp, ctx: StepContext) -> list:
        return []

    def flush(self, exp, ctx: StepContext) -> list:
        """Buffered records to write before a checkpoint commit (same form as observe)."""
        return []


def records(observers, exp, ctx: StepContext, flush: bool = False):
    """The ``(dataset, append_dim)`` records of ``observers`` at ``ctx``: those due at its step
    (before the update), or with ``flush`` those they buffered (before a checkpoint commit)."""
    for obs in observers:
        if flush or obs.due(ctx.step):
            yield from (obs.flush(exp, ctx) if flush else obs.observe(exp, ctx)) or ()


def plan_note(observers, n_steps: int) -> str | None:
    """Tell ``observers`` the run's length (:meth:`Observer.plan`); a cadence longer than the
    run is said in one line (those records are taken at the run's last step instead)."""
    long = [f"{key} = {every}" for obs in observers for key, every in obs.plan(n_steps)]
    if long:
        return (f"note: this run takes {n_steps} optimizer steps, fewer than {', '.join(long)}: "
                f"recorded at its last step ({n_steps}) instead")
    return None
