"""The trained network back from a run store: ``neurosim.load(store, checkpoint=...)``.

A store holds the full state of its last checkpoint (the committed slot: weights, the
realization's own state such as the grouped circuit's K synapses per pair) and, with
``recording.weights: true``, the network's parameters at every evaluation (``W_<l>``,
``b_<l>`` along ``epoch``, every ``weights_every`` records).  :func:`load` rebuilds the run's
network from the store's ``protocol`` attr (no data set is loaded) and sets its parameters from
the checkpoint asked for; :class:`TrainedNetwork` then predicts exactly as the run's
evaluation did (the realization's own forward pass: batched math or the circuit's dynamics).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .model.input_code import encode


class TrainedNetwork:
    """A run's network at one checkpoint: :meth:`predict`, :meth:`classify`, :meth:`error`,
    and its parameters (:attr:`weights`, :attr:`biases`) and gating vectors (:attr:`gates`)."""

    def __init__(self, experiment, checkpoint: int, epoch: float, step: int, store: str):
        self.experiment = experiment
        self.net = experiment.net
        self.protocol = experiment.protocol
        self.checkpoint = checkpoint  #: index of the record along the store's ``epoch``
        self.epoch = epoch  #: epochs completed at that checkpoint
        self.step = step  #: optimizer steps taken at that checkpoint
        self.store = store

    def __repr__(self) -> str:
        layers = ", ".join(f"{r['kind']} {tuple(r['units'])}" for r in self.net.summary())
        p = self.protocol
        return (f"<TrainedNetwork {p.name} ({p.rule.name}, {p.realization.type}) at checkpoint "
                f"{self.checkpoint}: epoch {self.epoch:g}, step {self.step}; "
                f"{self.experiment.backend.device}; {layers}>")

    @property
    def in_shape(self) -> tuple:
        """The shape of one example as given (before the circuit's input code)."""
        shape = tuple(self.net.layers[0].in_shape)
        return (shape[0] // 2,) + shape[1:] if self.net.input_code == "on_off" else shape

    def _inputs(self, x):
        x = np.asarray(x, dtype=self.experiment.backend.dtype)
        if x.shape[1:] != self.in_shape:
            if x.ndim < 2 or math.prod(x.shape[1:]) != math.prod(self.in_shape):
                raise ValueError(f"inputs of shape {x.shape[1:]} per example; this network takes "
                                 f"{self.in_shape} ({math.prod(self.in_shape)} values)")
            x = x.reshape((x.shape[0],) + self.in_shape)
        return encode(self.experiment.backend.asarray(x), self.net.input_code)

    def predict(self, x, batch_size: int = 1000) -> np.ndarray:
        """Logits (host array, ``(N, n_classes)``) of the examples ``x``, as the run's
        evaluation computes them (``x``: ``(N, *in_shape)`` or ``(N, D)`` with the same size)."""
        logits = self.experiment.realization.predict(self._inputs(x), int(batch_size))
        return self.experiment.backend.to_host(logits)

    def classify(self, x, batch_size: int = 1000) -> np.ndarray:
        """The predicted class of each example."""
        return np.argmax(self.predict(x, batch_size), axis=1)

    def error(self, x, y, batch_size: int = 1000) -> float:
        """Classification error in percent, as the store's ``test_error``."""
        return float(np.mean(self.classify(x, batch_size) != np.asarray(y))) * 100.0

    @property
    def weights(self) -> dict:
        """``{layer index: W}`` (host copies), layer numbering of the store's ``layers`` attr."""
        return self._params("W")

    @property
    def biases(self) -> dict:
        return self._params("b")

    @property
    def gates(self) -> dict:
        """``{layer index: t}``: the gating vectors of every gated layer (host copies, shape
        ``(K, units)``, entries ±1; eq. 8: unit i's gate is open where t_i · h_i ≥ 0)."""
        to_host = self.experiment.backend.to_host
        return {i: to_host(t).reshape(t.shape[0], -1) for i, t in enumerate(self.net.t)
                if t is not None}

    def gate_states(self, x) -> dict:
        """``{layer index: G}``: which gates are open (bool, ``(N, units)``) for each example of
        ``x`` in the network's own forward pass (eq. 7-8)."""
        _, states = self.net.forward(self._inputs(x))
        to_host = self.experiment.backend.to_host
        return {i: to_host(st.dphi).reshape(st.dphi.shape[0], -1) > 0
                for i, st in enumerate(states)
                if self.net.nonlins[i] is not None and self.net.nonlins[i].gating}

    def _params(self, name):
        to_host = self.experiment.backend.to_host
        return {i: to_host(p) for i, n, p in self.net.parameters() if n == name}


def _fail(msg):
    from .recording import StoreError

    return StoreError(msg)


def load(store, checkpoint: int | None = None, device: str | None = None) -> TrainedNetwork:
    """The network of run store ``store`` at ``checkpoint`` (an index along the store's
    ``epoch``, negative from the end; default: the last checkpoint), on ``device`` (cpu, gpu,
    auto; default cpu)."""
    from . import experiment
    from .recording import MARKER, Recorder, open_store, read_root, verify_store

    path = Path(store)
    attrs = read_root(path, commit=False).get("attributes")
    if isinstance(attrs, dict) and MARKER in attrs:
        verify_store(path)  # every committed byte, before a weight is read (as inspect says)
    ds = open_store(path)
    if "protocol" not in ds.attrs:
        raise _fail(f"{path} is not a neurosim run store (no protocol attr)")
    protocol = json.loads(ds.attrs["protocol"])
    n = int(ds.sizes.get("epoch", 0))
    if n == 0:
        raise _fail(f"{path} has no checkpoint yet")
    if checkpoint is None:
        checkpoint = n - 1
    if not isinstance(checkpoint, (int, np.integer)) or not -n <= checkpoint < n:
        raise _fail(f"{path} has checkpoints 0..{n - 1} (one per evaluation, along epoch); "
                    f"checkpoint {checkpoint!r} is not one of them")
    checkpoint = int(checkpoint) % n
    steps = int(ds["n_steps"].values[checkpoint])
    epoch = float(ds["epoch"].values[checkpoint])
    exp = experiment.build(protocol, device or "cpu", data=False)
    state, info = Recorder(path).load_checkpoint()
    if state is not None and int(info["step"]) == steps and checkpoint == n - 1:
        exp.load_state(state)  # the full state, the realization's own included
    else:
        _load_snapshot(exp, ds, checkpoint, path)
    return TrainedNetwork(exp, checkpoint, epoch, steps, str(path))


def _load_snapshot(exp, ds, k: int, path) -> None:
    """Parameters of record ``k`` from the ``W_<l>``/``b_<l>`` snapshots."""
    from .model.network import load_state_dict

    every = "recording.weights: true (and weights_every: 1)"
    if exp.realization.state_dict():
        raise _fail(f"{path}: the {exp.protocol.realization.type} realization keeps its own "
                    f"state (its synapses) for the last checkpoint only; checkpoint {k} cannot be "
                    f"rebuilt (load the last one)")
    state = {}
    for i, name, _ in exp.net.parameters():
        var = f"{name}_{i}"
        if var not in ds:
            raise _fail(f"{path} keeps the weights of its last checkpoint only; checkpoint {k} needs "
                        f"the weight snapshots of a run with {every}")
        v = np.asarray(ds[var].isel(epoch=k).values)
        if not np.all(np.isfinite(v)):
            have = [j for j in range(ds.sizes["epoch"])
                    if np.all(np.isfinite(ds[f"W_{i}"].isel(epoch=j).values))]
            raise _fail(f"{path} has no weight snapshot at checkpoint {k} (snapshots at "
                        f"{have}; record with {every})")
        state[f"L{i}.{name}"] = v
    load_state_dict(exp.net, state)
