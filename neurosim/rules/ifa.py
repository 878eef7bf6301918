"""Indirect feedback alignment (Nøkland 2016; feedback-alignment slides).

The output error reaches the *first* hidden layer through a fixed random
matrix, and travels *up* from there through the forward weights:

    δa_1 = (B_1 e) ⊙ f'(a_1),        δa_k = (W_k δa_{k−1}) ⊙ f'(a_k)  (k > 1),

and the readout gets its true gradient (δW_L = −e h_{L−1}ᵀ); updates are the
usual δW_k = −δa_k h_{k−1}ᵀ.  W_k δa_{k−1} is the *linear* part of layer k's
forward map applied to the signal (``forward(s) − forward(0)``, i.e. without
the bias); layers without weights in between (flatten, pooling, dropout)
forward the signal as they forward activations.  B_1 is drawn like DFA's
matrix (U[−1, 1), or U[0, 1) for nonnegative networks).
"""

from __future__ import annotations

import numpy as np

from ..core.options import Field, Section
from .base import Feedback, Rule, direct_errors, output_signal, post_signal
from .feedback import feedback_sign, uniform


class IFA(Rule):
    name = "ifa"
    min_hidden_layers = 1
    OPTIONS = Section({
        "sign": Field(str, default="auto", choices=("auto", "mixed", "nonnegative"),
                      doc="sign of the fixed random feedback (auto: nonnegative for a nonnegative network)"),
    })

    def __init__(self, net, backend, sign: str = "auto"):
        super().__init__(net, backend)
        self.backend = backend
        self.sign = feedback_sign(net, sign)
        hidden = net.hidden_weight_layers
        self.feedback = {}
        if hidden:
            f = hidden[0]
            big = uniform(backend.rng("feedback"), (net.n_out, net.layers[f].n_units), self.sign)
            self.feedback[f] = backend.asarray(big)

    def check(self, net):
        if len(net.weight_layers) < 2:
            raise ValueError("ifa needs at least one hidden weight layer")

    def upward_signals(self, net, states, e):
        """``(δ, g)`` per hidden weight layer, going up from the first:
        δ^f = e B_f, δ^k = W_k g^{k−1} (linear part of layer k's forward map),
        g^k = δ^k ⊙ φ'(h^k)."""
        xp = self.backend.xp
        hidden = net.hidden_weight_layers
        f = hidden[0]
        delta = direct_errors(net, e, self.feedback)
        s = post_signal(delta[f], states[f].dphi)
        g = {f: s}
        for j in range(f + 1, hidden[-1] + 1):
            L = net.layers[j]
            s = L.forward(s) - L.forward(xp.zeros_like(s)) if L.has_weights else L.forward(s)
            if L.has_weights:
                delta[j] = s
            s = post_signal(s, states[j].dphi)
            if L.has_weights:
                g[j] = s
        return delta, g

    def error_signals(self, net, states, e):
        return self.upward_signals(net, states, e)[0]

    def learning_signals(self, net, states, e):
        g = self.upward_signals(net, states, e)[1]
        g[net.readout] = output_signal(net, states, e)
        return g

    def feedback_matrices(self):
        """B_1 at the first hidden layer (kind ``direct``); the forward
        weights that carry the signal up are not feedback matrices."""
        return {i: Feedback(B, "direct") for i, B in self.feedback.items()}

    def state_dict(self):
        return {f"B{i}": np.asarray(self.backend.to_host(B)) for i, B in self.feedback.items()}
