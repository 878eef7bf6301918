"""A realization turns a network + rule into learning steps.

``batched`` is the vector math of the paper (one array op per layer);
``grouped`` and ``temporal`` (paper §7) simulate the same learning as explicit
circuits.  A realization owns whatever state it needs beyond the network
(e.g. per-component synapses) and may record trajectories.
"""

from __future__ import annotations

from ..schema import Section


class Realization:
    name = "base"
    #: schema of the protocol's ``realization:`` section (``type`` is added)
    OPTIONS = Section({})

    @classmethod
    def validate_options(cls, options: dict) -> dict:
        from ..schema import Field

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
        return self.net.predict(x, batch_size)

    # recording hooks -------------------------------------------------
    def observers(self, run) -> list:
        """Observers (see :mod:`neurosim.observers`) this realization records with."""
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
