"""Sweeps: one protocol, many runs.

* :mod:`~neurosim.sweep.grammar` — a sweep protocol (``sweep:`` axes, zipped axes, ``cases``,
  ``seeds:``) expanded into named runs, each protocol validated before anything runs;
* the sweep store (:mod:`neurosim.recording.sweep_store`): root attrs, the ``runs`` status
  listing, the child run stores ``runs/<name>``, read through :mod:`neurosim.recording.reader`;
* :mod:`~neurosim.sweep.execute` — the per-worker run and the driver on dask.distributed.

Re-running a sweep skips runs whose store says ``status: finished`` (unless the requested
length of training grew and the run did not stop early), resumes every other existing run from
its last checkpoint — only under the protocol that made it, up to the length of training — and
starts the missing ones; failed runs are retried.

The sweep layer reads and writes through :mod:`neurosim.train`, :mod:`neurosim.protocol`,
:mod:`neurosim.recording` and :mod:`neurosim.core`; nothing below it imports it.
"""

from ..recording.reader import committed_epoch, final_errors
from ..recording.sweep_store import KIND, SweepStore, is_sweep_store
from .execute import (
    SweepProgress,
    SweepResult,
    execute,
    gpu_count,
    local_cluster,
    run_is_done,
    run_one,
    run_sweep,
)
from .grammar import (
    CASES,
    SWEEP_KEYS,
    Axis,
    Sweep,
    SweepRun,
    expand,
    is_sweep,
    load_sweep,
    parse_axes,
    sanitise,
    set_dotted,
)

# ``execute`` names the driver function here; the module is ``neurosim.sweep.execute`` in
# ``sys.modules`` (``importlib.import_module("neurosim.sweep.execute")``).
__all__ = [
    "CASES", "KIND", "SWEEP_KEYS", "Axis", "Sweep", "SweepResult", "SweepProgress", "SweepRun", "SweepStore",
    "committed_epoch", "execute", "expand", "final_errors", "gpu_count", "is_sweep", "is_sweep_store",
    "load_sweep", "local_cluster", "parse_axes", "run_is_done", "run_one", "run_sweep", "sanitise",
    "set_dotted",
]
