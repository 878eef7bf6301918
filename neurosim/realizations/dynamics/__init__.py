"""Circuit dynamics for the explicit circuits: time, spikes, inhibitory gating,
eligibility traces and neuromodulator transport (protocol ``realization.dynamics``).

The grouped and temporal realizations hold a :class:`~.engine.CircuitDynamics` when their
options have a ``dynamics:`` section (:func:`build`), and hand it their training step,
evaluation, recording and checkpoint state.  Modules, one job each:

* :mod:`.options` — the declared section and its checks;
* :mod:`.timeline` — the trial layout, exponential filters;
* :mod:`.neurons` — the rate code, Poisson and LIF spikes, synaptic filters;
* :mod:`.neuromodulator` — command, crosstalk, delay, filter, noise;
* :mod:`.plasticity` — eligibility traces met by the neuromodulator;
* :mod:`.engine` — one trial (shared); :mod:`.grouped`, :mod:`.temporal` — how each circuit
  is wired;
* :mod:`.recording` — time-resolved trajectory records in ms and Hz;
* :mod:`.memory` — the time course's memory, for the run's estimate at validation.

The model and its equations: ``docs/dynamics.md``.
"""

from __future__ import annotations

from . import memory
from .options import DYNAMICS, agreement, check_trace, is_ideal


def build(realization):
    """The circuit's dynamics, or None when its options have no ``dynamics:`` section."""
    opts = realization.options.dynamics
    if opts is None:
        return None
    return realization.dynamics_engine()(realization, opts)


__all__ = ["DYNAMICS", "agreement", "build", "check_trace", "is_ideal", "memory"]
