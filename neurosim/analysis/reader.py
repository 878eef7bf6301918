"""The one reader of neurosim stores, as analysis uses it: :mod:`neurosim.recording.reader`
(run stores) and :func:`neurosim.recording.sweep_store.open_sweep` (sweep stores).  They live
in ``recording`` so that the sweep driver, a sibling of ``analysis``, reads stores through them
too; :func:`options` adds what only this layer can: the run's protocol as typed options."""

from ..recording.reader import SWEEP_KIND, RunStore, decode_attrs, is_sweep, open_run  # noqa: F401
from ..recording.sweep_store import SweepEntry, SweepStore, open_sweep  # noqa: F401


def options(run: RunStore):
    """The protocol ``run`` was made with as typed :class:`~neurosim.core.options.Options`,
    with the declared defaults where the store lacks a key (:func:`neurosim.protocol.view`)."""
    from ..protocol import view

    return view(run.protocol)
