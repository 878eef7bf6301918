"""Feedback alignment (Lillicrap et al.): BP's backward pass with fixed random
matrices F^ℓ of W^ℓ's shape in place of W^ℓ (eq. 4)."""

from __future__ import annotations

import numpy as np

from ..core.options import Field, Section
from ..model import init as initmod
from .base import BackwardRule
from .feedback import feedback_sign


class FA(BackwardRule):
    """Options: ``sign`` (auto | mixed | nonnegative): nonnegative feedback
    takes |F|; ``scale``: multiplies the He-scaled Gaussian feedback.

    ``feedback`` {ℓ: F^ℓ} for every weight layer after the first; its signals
    and feedback matrices are :class:`~neurosim.rules.base.BackwardRule`'s."""

    name = "fa"
    OPTIONS = Section({
        "sign": Field(str, default="auto", choices=("auto", "mixed", "nonnegative"),
                      doc="sign of the fixed random feedback (auto: nonnegative for a nonnegative network)"),
        "scale": Field(float, default=1.0, min=0, exclusive_min=True,
                       doc="multiplies the He-scaled Gaussian feedback"),
    })

    def __init__(self, net, backend, sign: str = "auto", scale: float = 1.0):
        super().__init__(net, backend)
        self.backend = backend
        self.sign = feedback_sign(net, sign)
        rng = backend.rng("feedback")
        self.feedback = {}
        for i in net.weight_layers[1:]:
            L = net.layers[i]
            W = L.params["W"]
            std = scale * initmod.scale("hidden", "he", L.fan_in)
            F = rng.standard_normal(W.shape) * std
            if self.sign == "nonnegative":
                F = np.abs(F)
            self.feedback[i] = backend.asarray(F)

    def state_dict(self):
        return {f"F{i}": self.backend.to_host(F) for i, F in self.feedback.items()}
