"""Sign symmetry (Liao, Leibo & Poggio 2016; Xiao et al. 2018).

BP's backward pass with feedback sign(W^ℓ) (times ``scale``) in place of
W^ℓ — in the paper's notation B = sign(Wᵀ), the transpose being taken by the
backward pass itself.  The feedback follows the forward weights' signs
every step but never their magnitudes.  It is FA (eq. 4) with
F^ℓ = scale · sign(W^ℓ).
"""

from __future__ import annotations

from ..core.options import Field, Section
from .base import BackwardRule


class SignSymmetry(BackwardRule):
    name = "sign_symmetry"
    OPTIONS = Section({
        "scale": Field(float, default=1.0, min=0, exclusive_min=True,
                       doc="feedback = scale x sign(W)"),
    })

    def __init__(self, net, backend, scale: float = 1.0):
        super().__init__(net, backend)
        if not float(scale) > 0:
            raise ValueError(f"rule.scale must be > 0, got {scale}")
        self.scale = float(scale)
        self.net = net

    @property
    def feedback(self) -> dict:
        """{ℓ: scale · sign(W^ℓ)}, from the current weights."""
        xp = self.net.backend.xp
        return {i: self.scale * xp.sign(self.net.layers[i].params["W"])
                for i in self.net.weight_layers[1:]}
