"""The one reader of neurosim stores, as analysis uses it: :mod:`neurosim.recording.reader`
(run stores) and :func:`neurosim.recording.sweep_store.open_sweep` (sweep stores).  They live
in ``recording`` so that the sweep driver, a sibling of ``analysis``, reads stores through them
too."""

from ..recording.reader import SWEEP_KIND, RunStore, decode_attrs, is_sweep, open_run  # noqa: F401
from ..recording.sweep_store import SweepEntry, SweepStore, open_sweep  # noqa: F401
