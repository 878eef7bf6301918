"""The Python API: run a protocol, open a store — for notebooks and scripts.

``neurosim.run(protocol, out=None, overrides=None, device=None, resume=False)`` validates and
trains exactly as ``neurosim run`` does and returns the run's store as an
:class:`xarray.Dataset`; ``neurosim.open(store)`` opens a store.  Errors are the CLI's:
:class:`~neurosim.core.options.ConfigError` for a bad protocol or override,
:class:`~neurosim.data.DataError`, :class:`~neurosim.recording.StoreError`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import xarray as xr


def _overrides(overrides):
    """``{"training.max_steps": 40, "rule": {...}}`` -> the nested form ``--set`` gives."""
    from .protocol import Overrides

    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a mapping of dotted keys to values, e.g. "
                        f"{{'training.epochs': 3}}, not a {type(overrides).__name__}")
    out = Overrides()
    for key, value in (overrides or {}).items():
        out.add(str(key), plain(value), f"overrides[{key!r}]")
    return out


def plain(value):
    """A copy of ``value`` with NumPy scalars (``np.float32(1e-3)``, ``np.int64(1)``,
    ``np.bool_``) and arrays made Python values, as notebooks produce them."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return copy.deepcopy(value)


def load(protocol, overrides: dict | None = None) -> dict:
    """A validated, resolved protocol from a YAML path or a mapping, with dotted ``overrides``."""
    from .core.options import ConfigError
    from .protocol import load_protocol, merge, validate_protocol

    over = _overrides(overrides)
    if isinstance(protocol, (str, Path)):
        return load_protocol(protocol, over)
    if not isinstance(protocol, dict):
        raise ConfigError(f"a protocol is a YAML path or a mapping, got {type(protocol).__name__}")
    try:
        protocol = plain(protocol)
        return validate_protocol(merge(protocol, over) if over else protocol)
    except ConfigError as exc:
        src = over.source_of(exc.key)
        raise exc.at(source=src) if src else exc from None


def run(protocol, out=None, overrides: dict | None = None, device: str | None = None,
        resume: bool = False, overwrite: bool = False, progress=None) -> xr.Dataset:
    """Train ``protocol`` (a YAML path or a mapping) and return its store, opened.

    ``out``: the store (default: the protocol's ``recording.out``); ``overrides``: dotted keys
    as ``--set`` takes them, e.g. ``{"training.max_steps": 40}``; ``device``: cpu | gpu | auto;
    ``resume``/``overwrite`` as on the command line.
    """
    from .train import run_protocol

    p = load(protocol, overrides)
    out = str(out or p["recording"]["out"])
    run_protocol(p, out=out, device=device, resume=resume, overwrite=overwrite, progress=progress)
    return open(out)


def open(store) -> xr.Dataset:  # noqa: A001 - mirrors xarray.open_zarr
    """A run store as an :class:`xarray.Dataset` (its committed records)."""
    from .recording import open_store

    return open_store(store)
