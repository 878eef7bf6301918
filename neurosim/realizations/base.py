"""A realization turns a network + rule into learning steps.

``batched`` is the vector math of the paper (one array op per layer);
``grouped`` and ``temporal`` (paper §7) simulate the same learning as explicit
circuits.  A realization owns whatever state it needs beyond the network
(e.g. per-component synapses) and may record trajectories.
"""

from __future__ import annotations

from ..core.options import Options, Section


class Realization:
    name = "base"
    #: the protocol's ``realization:`` options (beside ``type``)
    OPTIONS = Section({})
    #: whether it records trajectories (``recording.trajectories``)
    records_trajectories = False

    @classmethod
    def check_protocol(cls, protocol: Options, hidden: list) -> None:
        """Raise :class:`~neurosim.core.options.ConfigError` (naming the key to change) when a
        validated protocol (typed) cannot run on this realization; ``hidden`` lists the circuit's
        hidden weight layers as ``(index, nonlinearity)``."""

    @classmethod
    def agreement(cls, options: dict) -> str:
        """Whether this realization's update equals batched GEVB's on the same weights and batch,
        for its ``realization:`` options (missing keys take their defaults): a sentence that
        starts with ``exact`` or ``approximate`` and says why (``analysis.compare`` shows it
        beside ``update_cosine``)."""
        return "no circuit recordings"

    @classmethod
    def parameter_copies(cls, K: int) -> int:
        """Copies of every parameter this realization keeps (with their gradients and optimizer
        state), for the run's memory estimate."""
        return 1

    @classmethod
    def memory_parts(cls, protocol: Options, units: list, K: int, itemsize: int) -> dict:
        """Memory this realization needs beyond the network's parameters and batches, for the
        run's memory estimate at validation: {part: (bytes, key to change)}.  ``units``: the
        neurons per vector unit of each weight layer."""
        return {}

    @classmethod
    def validated_options(cls, options: dict) -> Options:
        """``options`` (a stored or partial ``realization:`` mapping; its ``type`` is left out)
        as typed :class:`~neurosim.core.options.Options`, the defaults of :attr:`OPTIONS` filled
        in."""
        return cls.OPTIONS.validate({k: v for k, v in options.items() if k != "type"}, "realization")

    def __init__(self, options, backend, net, rule, optimizer, loss_fn, optimizer_options=None):
        #: the validated ``realization:`` options (without ``type``)
        self.options = self.validated_options(options)
        self.backend = backend
        self.net = net
        self.rule = rule
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.optimizer_options = optimizer_options or {}

    def step(self, x, y, before_update=None):
        """One mini-batch: learn, return the rule's StepResult.

        ``before_update(result)``, if given, is called after the learning
        signals are computed and before any weight changes (observers that
        compare the rule's update with the true gradient run there).
        """
        raise NotImplementedError

    def predict(self, x, batch_size, before_batch=None):
        """Logits of many examples, ``batch_size`` at a time (evaluation); ``before_batch()``,
        if given, runs before each batch (the training loop stops there on a signal)."""
        xp = self.backend.xp
        parts = []
        for s in range(0, x.shape[0], batch_size):
            if before_batch is not None:
                before_batch()
            parts.append(self.logits(x[s:s + batch_size]))
        return xp.concatenate(parts, axis=0)

    def logits(self, x):
        """Logits of one batch as this realization computes them (the batched
        network here; explicit circuits run their own dynamics)."""
        return self.net.forward(x)[0]

    # recording hooks -------------------------------------------------
    def observers(self, exp) -> list:
        """Observers (see :mod:`neurosim.recording.observers`) this realization records with."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
