"""Network model: layers, nonlinearities, gating, initialisation.

The layer table :data:`neurosim.model.layers.LAYERS` is filled by the modules that
define layer kinds; importing them here completes it whenever any part of
``neurosim.model`` is imported (``dense`` lives in :mod:`.layers` itself).
"""

from . import conv, pool  # noqa: F401  (register conv2d, locally_connected2d; pools, flatten)

# isort: split
from . import dropout  # noqa: F401  (registered after them: the order of the layer table)
