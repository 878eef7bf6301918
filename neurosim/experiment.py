"""Assembly: a validated protocol -> an :class:`Experiment`.

This is the one place that reads the protocol dict.  It builds the backend, the data set (only
when asked; otherwise the dataset's shapes, known without loading it, suffice), the network,
the rule, the optimizer, the loss, the realization and, with data, the observers.
Everything below receives its own validated options and the parts it works with, never the
protocol; the training loop (:mod:`neurosim.train`) receives the experiment.

``build(protocol, data=False)`` gives a network and its learning machinery without loading a
data set: analysis and benchmarks use it to rebuild a run's network from its store.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from . import losses, schedule
from .core.backend import Backend
from .core.options import Options, freeze
from .data import describe, load_dataset
from .model.input_code import encode
from .model.network import build_network, load_state_dict, state_dict
from .optim import build_optimizer
from .realizations import REALIZATIONS
from .recording import versions
from .recording.epoch import EpochRecords
from .recording.registry import build_observers
from .rules import build_rule

#: train-error examples of a short run (less than one epoch) without ``eval_train_subset``
SHORT_RUN_TRAIN_SUBSET = 10_000


@dataclass
class Experiment:
    """The parts of one run, assembled from a protocol."""

    protocol: Options  #: the resolved protocol (provenance: stored in the run's attrs)
    backend: Backend
    net: object
    rule: object
    optimizer: object
    loss_fn: object
    realization: object
    circuit: Options  #: validated sections
    training: Options
    recording: Options
    metrics: Options
    data: object = None  #: the Dataset (None when built without data)
    x_train: object = None  #: device arrays of the data
    y_train: object = None
    x_test: object = None
    y_test: object = None
    observers: list = field(default_factory=list)
    epoch_records: EpochRecords | None = None
    _eval_batch: int | None = None

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def eval_batch_size(self) -> int:
        """``training.eval_batch_size``, else as many examples as fit in the memory budget when
        the run starts (:func:`neurosim.schedule.eval_batch_size`)."""
        if self._eval_batch is None:
            from .model import memory

            net, tr = self.net, self.training
            self._eval_batch = schedule.eval_batch_size(
                tr, net.layers, net.K, tuple(self.x_train.shape[1:]), np.dtype(self.backend.dtype).itemsize,
                None if tr.eval_batch_size else memory.budget(tr.memory_gib),
                schedule.memory_needs(tr, self.realization, self.optimizer, net.K))
        return self._eval_batch

    @property
    def eval_train_examples(self) -> int:
        """Training examples the train error is measured on: ``training.eval_train_subset``;
        by default all, except in a short run (``max_steps`` of less than one epoch), which
        measures it on the first :data:`SHORT_RUN_TRAIN_SUBSET` (its first result is then
        not mostly evaluation)."""
        tr, n = self.training, self.n_train
        if tr.eval_train_subset:
            return min(int(tr.eval_train_subset), n)
        if tr.max_steps and tr.max_steps * tr.batch_size < n:
            return min(SHORT_RUN_TRAIN_SUBSET, n)
        return n

    def eval_train_note(self) -> str | None:
        """The line a run prints when its train error is measured on a default subset."""
        tr, k, n = self.training, self.eval_train_examples, self.n_train
        if tr.eval_train_subset or k == n:
            return None
        return (f"train error on the first {k:,} of {n:,} training examples (a short run: "
                f"training.max_steps={tr.max_steps} sees {tr.max_steps * tr.batch_size:,}); "
                f"--set training.eval_train_subset=N measures it on N")

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_train // self.training.batch_size)

    def attrs(self) -> dict:
        """Root attrs of the run's store: the resolved protocol and what built it."""
        p = self.protocol
        return {
            "title": f"neurosim run {p.name}",
            "protocol": json.dumps(p),
            "protocol_name": p.name,
            "rule": p.rule.name,
            "realization": p.realization.type,
            "dataset": p.data.dataset,
            "vectorized": int(self.net.vectorized),
            "sign": self.net.sign,
            "K": self.net.K,
            "seed": p.seed,
            "backend": json.dumps(self.backend.describe()),
            "versions": json.dumps(versions()),
            "layers": json.dumps([{**r, "in": list(r["in"]), "units": list(r["units"])}
                                  for r in self.net.summary()]),
            "status": "running",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "train_error_examples": self.eval_train_examples,
        }

    # checkpoint state ------------------------------------------------------------
    def state(self) -> dict:
        s = {f"net.{k}": v for k, v in state_dict(self.net).items()}
        s.update({f"opt.{k}": v for k, v in self.optimizer.state_dict().items()})
        s.update({f"rule.{k}": v for k, v in self.rule.state_dict().items()})
        s.update({f"real.{k}": v for k, v in self.realization.state_dict().items()})
        return s

    def load_state(self, state: dict) -> None:
        def part(prefix):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        load_state_dict(self.net, part("net."))
        self.optimizer.load_state_dict(part("opt."))
        self.rule.load_state_dict(part("rule."))
        self.realization.load_state_dict(part("real."))


def build(protocol: dict, device: str | None = None, data: bool = True, phase=None,
          arrays=None) -> Experiment:
    """Assemble ``protocol`` (validated, see :func:`neurosim.protocol.load_protocol`).

    ``device`` overrides the protocol's; ``data=False`` skips loading the data set (the
    network's input shape then comes from the dataset's description); ``phase(text)`` is
    told what is being done (for progress displays); ``arrays``: the data of dataset
    ``arrays`` (``neurosim.run(protocol, data=...)``).
    """
    from .protocol import load_plugins

    load_plugins()  # a store's protocol may name a plug-in's rule, dataset or neuron model
    p = freeze(protocol)  # a stored protocol (a plain mapping) is typed as a validated one is
    say = phase or (lambda text: None)
    backend = Backend(device or p.device, p.dtype, p.seed)
    d = p.data
    shape_info = describe(d.dataset, d.options, d.get("path"))  # older stores have no path
    dataset = None
    if data or shape_info is None:
        say(f"loading {d.dataset}")
        dataset = load_dataset(d.dataset, d.root, d.train_subset, d.test_subset,
                               path=d.get("path"), arrays=arrays, **(d.options or {}))
        shape_info = (dataset.in_shape, dataset.n_classes)
    say("building the network")
    net = build_network(p.circuit, backend, *shape_info)
    rule_opts = {k: v for k, v in p.rule.items() if k != "name"}
    rule = build_rule(p.rule.name, net, backend, **rule_opts)
    opt_spec = dict(p.optimizer)
    optimizer = build_optimizer(net, opt_spec)
    loss_fn = losses.get(p.loss)
    realization = REALIZATIONS[p.realization.type](p.realization, backend, net, rule, optimizer,
                                                    loss_fn, opt_spec)
    exp = Experiment(protocol=p, backend=backend, net=net, rule=rule, optimizer=optimizer,
                     loss_fn=loss_fn, realization=realization, circuit=p.circuit,
                     training=p.training, recording=p.recording, metrics=p.metrics,
                     data=dataset if data else None)
    if data:
        xp = backend.xp
        exp.x_train = encode(backend.asarray(dataset.x_train), net.input_code)
        exp.y_train = xp.asarray(dataset.y_train)
        exp.x_test = encode(backend.asarray(dataset.x_test), net.input_code)
        exp.y_test = xp.asarray(dataset.y_test)
        exp.epoch_records = EpochRecords(net, backend, p.recording)
        exp.observers = build_observers(exp)
    return exp


def examples(protocol: dict, split: str, n: int | None = None, arrays=None):
    """The first ``n`` (x, y) host arrays of a split (``train`` | ``test``) of the protocol's data."""
    d = freeze(protocol).data
    subset = {"train_subset": n, "test_subset": None} if split == "train" else \
        {"train_subset": 1, "test_subset": n}
    ds = load_dataset(d.dataset, d.root, **subset, path=d.get("path"), arrays=arrays,
                      **(d.options or {}))
    return (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
