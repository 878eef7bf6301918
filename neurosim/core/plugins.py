"""Plug-ins: learning rules, datasets and neuron models from other packages, found through
Python entry points (as xarray finds its backends).

A package declares, in its ``pyproject.toml``::

    [project.entry-points."neurosim.rules"]
    binary_dfa = "my_package.rules:BinaryDFA"

and once it is installed the name is usable in any protocol.  Groups (:data:`GROUPS`):
``neurosim.rules`` (a :class:`~neurosim.rules.Rule` subclass), ``neurosim.datasets`` (a
loader returning arrays, see :mod:`neurosim.data`), ``neurosim.nonlinearities`` (a
:class:`~neurosim.model.nonlinearity.Nonlinearity` subclass: the neuron model of a unit).
Each registry registers its group itself (:func:`register`); a built-in name is never
replaced, and a plug-in that fails to import is reported in one line (a warning naming the
entry point and the error) and left out, so one broken package does not stop the rest.
"""

from __future__ import annotations

import warnings
from importlib import metadata

GROUPS = ("neurosim.rules", "neurosim.datasets", "neurosim.nonlinearities")

#: group -> {name: "distribution version"} of the plug-ins registered
REGISTERED: dict = {g: {} for g in GROUPS}


class PluginWarning(UserWarning):
    """A plug-in could not be registered (it is left out)."""


def _entry_points(group: str) -> list:
    try:
        return list(metadata.entry_points(group=group))
    except Exception as exc:  # noqa: BLE001 - a broken installation must not stop neurosim
        warnings.warn(f"neurosim plug-ins of {group} cannot be listed: {exc}", PluginWarning,
                      stacklevel=3)
        return []


def register(group: str, registry: dict, accept, builtins=()) -> list:
    """Add the entry points of ``group`` to ``registry`` (name -> object).

    ``accept(obj)`` returns None for a usable object, else why it is not one.  A name already
    in ``builtins`` (the registry's own names) is refused.  Returns the names added."""
    added = []
    REGISTERED[group].clear()
    for ep in _entry_points(group):
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
        where = f"plug-in {ep.name} = {ep.value} ({origin}, entry point group {group})"
        if ep.name in builtins:
            warnings.warn(f"{where} is ignored: {ep.name} is a built-in name", PluginWarning,
                          stacklevel=3)
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import error of someone else's package
            warnings.warn(f"{where} is left out: it fails to load ({type(exc).__name__}: {exc})",
                          PluginWarning, stacklevel=3)
            continue
        why = accept(obj)
        if why:
            warnings.warn(f"{where} is left out: {why}", PluginWarning, stacklevel=3)
            continue
        registry[ep.name] = obj
        REGISTERED[group][ep.name] = origin
        added.append(ep.name)
    return added
