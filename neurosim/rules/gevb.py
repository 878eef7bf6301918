"""Global error-vector broadcasting (GEVB, paper eq. 9).

Every hidden unit receives the same K-dimensional error vector e; its learning
signal is g[b,μ,i] = G[b,i] e[b,μ] (the gate mask times the broadcast error) —
no feedback weights and no backward pass.  For a shared weight this gives

    ΔW[i,j] ∝ −Σ_b G[b,i] P[b,j],   P[b,j] = Σ_μ a[b,μ,j] e[b,μ],

i.e. ΔW = −GᵀP, computed by each layer's ``gevb_grads`` fast path (for the
first layer ΔW1[μ,i,j] = −Σ_b G[b,i] e[b,μ] x[b,j]).  The readout's update is
its true gradient.  In a nonnegative VNN this matches the gradient's sign per
example (sec. 3.3).

:meth:`GEVB.learning_signals` is the signal G ⊗ e written out; the update
takes the layers' ``gevb_grads``, which contract e with the input first (the
same sum in the cheaper order, equal to the three-factor product of the
learning signals up to rounding).
"""

from __future__ import annotations

from ..core.backend import array_module
from .base import Rule, hidden_learning_signals, output_signal


class GEVB(Rule):
    name = "gevb"
    needs_gating = True
    needs_vectorized = True

    def check(self, net):
        if not net.vectorized or net.n_out != 1:
            raise ValueError("gevb needs a vectorized network (one vector output unit); "
                             "set circuit.vectorized: true")
        for i in net.hidden_weight_layers:
            nl = net.nonlins[i]
            if nl is None or not nl.gating:
                raise ValueError(f"gevb needs gated hidden units (nonlinearity: gate); layer {i} "
                                 f"has {getattr(nl, 'name', None)!r}")

    def error_signals(self, net, states, e):
        """δ^ℓ[b, μ, i] = e[b, μ] for every unit i: the broadcast error vector (eq. 9)."""
        B, K = e.shape[0], net.K
        xp = array_module(e)
        out = {}
        for i in net.hidden_weight_layers:
            units = net.layers[i].unit_shape
            out[i] = xp.broadcast_to(e.reshape((B, K) + (1,) * len(units)), (B, K) + units)
        return out

    def learning_signals(self, net, states, e):
        """g^ℓ[b, μ, i] = G^ℓ[b, i] e[b, μ]; the readout's true gradient signal."""
        return hidden_learning_signals(net, states, e, self.error_signals(net, states, e))

    def gradients(self, net, states, e):
        """Eq. 9 through each hidden layer's ``gevb_grads`` fast path (= the
        three-factor product of :meth:`learning_signals`)."""
        grads = {}
        for i in net.hidden_weight_layers:
            s = states[i]
            for name, g in net.layers[i].gevb_grads(s.a_in, s.dphi, e).items():
                grads[(i, name)] = g
        r = net.readout
        for name, g in net.layers[r].grads(states[r].a_in, output_signal(net, states, e)).items():
            grads[(r, name)] = g
        return grads
