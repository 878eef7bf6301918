"""A realization turns a network + rule into learning steps.

``batched`` is the vector math of the paper (one array op per layer);
``grouped`` and ``temporal`` (paper §7) simulate the same learning as explicit
circuits.  A realization owns whatever state it needs beyond the network
(e.g. per-component synapses) and may record trajectories.
"""

from __future__ import annotations

from ..core.options import Section


class Realization:
    name = "base"
    #: schema of the protocol's ``realization:`` section (``type`` is added)
    OPTIONS = Section({})

    @classmethod
    def validate_options(cls, options: dict) -> dict:
        from ..core.options import Field

        fields = dict(cls.OPTIONS.fields)
        fields["type"] = Field(str)
        return Section(fields).validate(options, "realization")

    def __init__(self, protocol, backend, net, rule, optimizer, loss_fn):
        self.protocol = protocol
        self.backend = backend
        self.net = net
        self.rule = rule
        self.optimizer = optimizer
        self.loss_fn = loss_fn

    def step(self, x, y, before_update=None):
        """One mini-batch: learn, return the rule's StepResult.

        ``before_update(result)``, if given, is called after the learning
        signals are computed and before any weight changes (observers that
        compare the rule's update with the true gradient run there).
        """
        raise NotImplementedError

    def predict(self, x, batch_size):
        """Logits of many examples, ``batch_size`` at a time (evaluation)."""
        xp = self.backend.xp
        return xp.concatenate([self.logits(x[s:s + batch_size])
                               for s in range(0, x.shape[0], batch_size)], axis=0)

    def logits(self, x):
        """Logits of one batch as this realization computes them (the batched
        network here; explicit circuits run their own dynamics)."""
        return self.net.forward(x)[0]

    # recording hooks -------------------------------------------------
    def observers(self, run) -> list:
        """Observers (see :mod:`neurosim.recording.observers`) this realization records with."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
