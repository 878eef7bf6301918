"""The Python API: run a protocol, open a store, get the trained network back.

``neurosim.run(protocol, out=None, overrides=None, device=None, resume=False, data=None)``
validates and trains exactly as ``neurosim run`` does (``data``: your own arrays) and returns
the run's store as an :class:`xarray.Dataset`; ``neurosim.open(store)`` opens a store;
``neurosim.load(store, checkpoint=None)`` returns the network at a checkpoint, ready to
``predict``.  Errors are the CLI's:
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


def load(protocol, overrides: dict | None = None, replace: dict | None = None) -> dict:
    """A validated, resolved protocol from a YAML path or a mapping, with dotted ``overrides``
    (``replace``: top-level sections replacing the protocol's, before the overrides)."""
    from .core.options import ConfigError
    from .protocol import load_protocol, merge, validate_all, validate_protocol

    over = _overrides(overrides)
    if isinstance(protocol, (str, Path)):
        return load_protocol(protocol, over, replace)
    if not isinstance(protocol, dict):
        raise ConfigError(f"a protocol is a YAML path or a mapping, got {type(protocol).__name__}")
    raw = {**plain(protocol), **copy.deepcopy(replace or {})}

    def sourced(exc):
        src = over.source_of(exc.key)
        return exc.at(source=src) if src else exc

    return validate_all(merge(raw, over) if over else raw, validate_protocol, sourced)


def _data_section(data, protocol, overrides):
    """Arrays given to :func:`run` -> (the checked Dataset, the ``data`` section naming dataset
    ``arrays`` with their shapes and fingerprint: the protocol is checked against them and the
    store records what it was trained on).  The protocol's subsets and ``target`` are kept."""
    from .core import yamlio
    from .data.arrays import coerce, fingerprint

    ds = coerce(data)
    raw = protocol
    if isinstance(protocol, (str, Path)):
        try:
            raw, _ = yamlio.read(Path(protocol))
        except Exception:  # noqa: BLE001 - load() reports a bad file in its own words
            raw = {}
    old = (raw.get("data") if isinstance(raw, dict) else None) or {}
    old = old if isinstance(old, dict) else {}
    opts = {"shape": list(ds.in_shape), "n_classes": ds.n_classes, "n_train": len(ds.y_train),
            "n_test": len(ds.y_test), "fingerprint": fingerprint(ds)}
    target = (old.get("options") or {}).get("target") if isinstance(old.get("options"), dict) else None
    if target is not None:
        opts["target"] = target
    section = {"dataset": "arrays", "options": opts}
    section.update({k: old[k] for k in ("train_subset", "test_subset") if k in old})
    return ds, section


def run(protocol, out=None, overrides: dict | None = None, device: str | None = None,
        resume: bool = False, overwrite: bool = False, progress=True, data=None) -> xr.Dataset:
    """Train ``protocol`` (a YAML path or a mapping) and return its store, opened.

    ``out``: the store (default: the protocol's ``recording.out``); ``overrides``: dotted keys
    as ``--set`` takes them, e.g. ``{"training.max_steps": 40}``; ``device``: cpu | gpu | auto;
    ``resume``/``overwrite`` as on the command line; ``progress``: ``True`` (a bar on a
    terminal, lines in a notebook or a log), ``"bar"``, ``"lines"`` or ``False``; ``data``:
    your own data instead of the protocol's dataset (a mapping or ``xarray.Dataset`` with
    ``x_train``, ``y_train``, ``x_test``, ``y_test``, a pair ``((x_train, y_train), (x_test,
    y_test))`` or an ``.npz`` path; checked as the built-in datasets are).
    """
    from .core.progress import make_progress, start_notes
    from .train import run_protocol

    arrays = replace = None
    if data is not None:
        arrays, section = _data_section(data, protocol, overrides)
        replace = {"data": section}
    p = load(protocol, overrides, replace)
    out = str(out or p.recording.out)
    prog = make_progress(p, progress)
    if hasattr(prog, "write"):
        for line in start_notes(p):
            prog.write(line)
    try:
        run_protocol(p, out=out, device=device, resume=resume, overwrite=overwrite,
                     progress=prog, arrays=arrays)
    finally:
        if hasattr(prog, "close"):
            prog.close()
    return open(out)


def load_network(store, checkpoint: int | None = None, device: str | None = None):
    """The network of a run store at ``checkpoint`` (index along ``epoch``; default the last),
    ready to ``predict(x)``: a :class:`neurosim.trained.TrainedNetwork`."""
    from .trained import load as load_trained

    return load_trained(store, checkpoint, device)


def open(store) -> xr.Dataset:  # noqa: A001 - mirrors xarray.open_zarr
    """A run store as an :class:`xarray.Dataset` (its committed records)."""
    from .recording import open_store

    return open_store(store)
