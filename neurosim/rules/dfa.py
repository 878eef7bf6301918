"""Direct feedback alignment (Nøkland): δ^ℓ = B^ℓ e straight from the output
error (eq. 5); g^ℓ = δ^ℓ ⊙ φ'(h^ℓ).  The readout gets its true gradient.

As in the reference (appendix J) one matrix of shape (n_out, max units) is
sampled, U[−1, 1) for mixed-sign and U[0, 1) for nonnegative networks, and
layer ℓ uses the sub-block ``[:, :n_ℓ]`` without normalisation.  In a
vectorized network e has K components per output unit and the feedback maps
output units to hidden units, the same for every component (weight sharing).
"""

from __future__ import annotations

import numpy as np

from ..core.options import Field, Section
from .base import Rule, output_signal, weight_grads
from .feedback import feedback_sign, uniform


class DFA(Rule):
    name = "dfa"
    OPTIONS = Section({
        "sign": Field(str, default="auto", choices=("auto", "mixed", "nonnegative"),
                      doc="sign of the fixed random feedback (auto: nonnegative for a nonnegative network)"),
    })

    def __init__(self, net, backend, sign: str = "auto"):
        super().__init__(net, backend)
        self.sign = feedback_sign(net, sign)
        hidden = net.hidden_weight_layers
        n_max = max((net.layers[i].n_units for i in hidden), default=0)
        big = uniform(backend.rng("feedback"), (net.n_out, n_max), self.sign)
        self.matrix = big
        self.feedback = {i: backend.asarray(big[:, : net.layers[i].n_units]) for i in hidden}

    def signals(self, net, states, e):
        B, K = e.shape[0], net.K
        eo = e.reshape(B * K, net.n_out)
        sig = {}
        for i, Bm in self.feedback.items():
            L = net.layers[i]
            d = (eo @ Bm).reshape((B, K) + L.unit_shape)
            dphi = states[i].dphi
            sig[i] = d if dphi is None else d * dphi
        sig[net.readout] = output_signal(net, states, e)
        return sig

    def gradients(self, net, states, e):
        return weight_grads(net, states, self.signals(net, states, e))

    def state_dict(self):
        return {"B": np.asarray(self.matrix)}
