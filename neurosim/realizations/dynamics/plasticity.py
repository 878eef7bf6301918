"""Three-factor plasticity in time: eligibility traces met by the neuromodulator.

Every synapse keeps an eligibility trace of the coincidences
``c(t) = pre(t) · G_post(t)`` of its presynaptic activity (deviation from
baseline, rate or filtered spikes) and its postsynaptic gate::

    tau_e dE/dt = -E + c(t)        (unit gain: E -> c for a lasting coincidence)
    Δw = -η ∫ M(t) E(t) dt / T      (T: one command window, see below)

with M the neuromodulator of the synapse's channel.  On the step grid (inputs
held over a step, exact exponential update, end-of-step values)::

    E_k = a E_{k-1} + (1 - a) c_k,   a = exp(-dt / tau_e)
    ∫ M E dt = Σ_k dt M_k E_k

A trace per synapse *and* per example would not fit in memory, but it is not
needed: the weights are fixed during a mini-batch and the trace is linear in
the coincidences, so the sum can be reordered (exact, no approximation)::

    Σ_k dt M_k E_k = Σ_j c_j m_j + a dt S_0 E_{-1},
    m_j = (1 - a) dt S_j,   S_j = Σ_{k >= j} a^(k-j) M_k   (a backward filter of M)

— every coincidence is weighted by the neuromodulator that will meet its
trace in the future.  The weight update of a mini-batch is then one matrix
product per layer over (example, time step) rows, and the only per-synapse
state is the trace carried into the next mini-batch,
``E_end = a^L E_{-1} + Σ_j (1 - a) a^(L-1-j) c_j`` (the stream of examples
goes on: the next batch's neuromodulator meets what is left of it).

With ``tau_e = 0`` the trace is the coincidence itself (``m = dt M``), and
nothing is carried.
"""

from __future__ import annotations

import numpy as np

from ...core.backend import array_module
from .timeline import decay, scan


class Eligibility:
    def __init__(self, dt: float, tau_e_ms: float):
        self.dt = dt
        self.a = decay(dt, tau_e_ms)

    def weights(self, M):
        """Row weights for the stream's neuromodulator ``M`` (L, ch).

        Returns ``(m, v, s0)``: ``m`` (L, ch) the weight of a coincidence at each step in the
        update, ``v`` (L,) its weight in the carried trace (None when tau_e = 0) and ``s0``
        (ch,) such that the carried trace adds ``a dt s0 E_{-1}`` to the update.
        """
        xp = array_module(M)
        a, dt = self.a, self.dt
        if a == 0.0:
            return M * dt, None, None
        S = scan(M, a, reverse=True)
        m = S * ((1.0 - a) * dt)
        L = M.shape[0]
        with np.errstate(under="ignore"):
            v = (1.0 - a) * a ** (L - 1.0 - xp.arange(L))  # on the device: no copy per step
        return m, xp.asarray(v, dtype=M.dtype), S[0]

    def carried_decay(self, L: int) -> float:
        """a^L: what is left of the carried trace after a batch of L steps."""
        with np.errstate(under="ignore"):
            return self.a ** L if self.a > 0 else 0.0
