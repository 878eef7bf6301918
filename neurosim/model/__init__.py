"""Network model: layers, nonlinearities, gating, initialisation."""

from . import conv  # noqa: F401  (registers conv2d, locally_connected2d, pools, flatten)
