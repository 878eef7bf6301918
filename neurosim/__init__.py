"""neurosim: simulation engine for credit assignment by a globally broadcast
error vector (GEVB) and its baselines, batched and as explicit circuits."""

from .core import host as _host

# OpenMP passive waiting and malloc reuse of large blocks (see neurosim/core/host.py)
_host.configure()

__version__ = "0.1.0"
