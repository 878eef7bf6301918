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
from .base import Feedback, Rule, direct_errors, hidden_learning_signals
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

    def error_signals(self, net, states, e):
        """δ^ℓ = e B^ℓ for every hidden weight layer (eq. 5)."""
        return direct_errors(net, e, self.feedback)

    def learning_signals(self, net, states, e):
        """g^ℓ = (e B^ℓ) ⊙ φ'(h^ℓ); the readout's true gradient signal."""
        return hidden_learning_signals(net, states, e, self.error_signals(net, states, e))

    def feedback_matrices(self):
        return {i: Feedback(B, "direct") for i, B in self.feedback.items()}

    def state_dict(self):
        return {"B": np.asarray(self.matrix)}
