"""neurosim: simulation engine for credit assignment by a globally broadcast
error vector (GEVB) and its baselines, batched and as explicit circuits.

In Python (a notebook)::

    import neurosim
    ds = neurosim.run("protocols/grouped_mnist.yaml", out="runs/g.zarr",
                      overrides={"training.max_steps": 40})
    ds = neurosim.open("runs/g.zarr")      # an xarray.Dataset
    net = neurosim.load("runs/g.zarr")     # the trained network: net.predict(x)

See :mod:`neurosim.api`.

Importing neurosim changes nothing process-wide: the host settings of
:mod:`neurosim.core.host` (OpenMP waiting, OpenBLAS thread timeout, malloc reuse
of large blocks) are applied by the ``neurosim`` command and the benchmarks, and
by a program that calls :func:`neurosim.core.host.configure` itself.
"""

from .core.version import VERSION as __version__

__all__ = ["__version__", "load", "open", "run"]


def __getattr__(name):  # the API loads the engine only when it is used
    if name in ("run", "open"):
        from . import api

        return getattr(api, name)
    if name == "load":  # the trained network of a store
        from . import api

        return api.load_network
    raise AttributeError(f"module 'neurosim' has no attribute {name!r}")
