"""The third factor in time: command -> crosstalk -> delay -> low-pass -> noise.

The circuit commands the neuromodulator with the per-example error vector
ε = B e (the error of each example, SPEC §1) at fixed moments of each trial
(grouped: channel μ carries ε_μ during the replay; temporal: the one
broadcast signal carries ε_μ during bin μ).  On its way to the synapses the
signal

1. mixes (``crosstalk`` χ): component μ reaches its own place with weight
   1 − χ, and the rest where ``crosstalk_structure`` says — ``uniform``: each
   of the K − 1 others with χ/(K − 1); ``neighbours``: the adjacent indices
   μ ± 1 with χ/2 each — grouped: other channels' synapses, temporal: other
   bins (:func:`mix`, applied to ε before the command is laid out);
2. is delayed by ``delay_ms`` (a whole number of steps);
3. is low-pass filtered, ``tau_M dM/dt = -M + command(t - delay)``;
4. gets additive noise, defined in continuous time so that its statistics do
   not depend on dt: an Ornstein-Uhlenbeck process with standard deviation
   σ_M and correlation time tau_M (updated exactly on the grid); for
   tau_M = 0 white noise of intensity σ_M² · 1 ms,
   ``<ξ(t) ξ(t')> = σ_M² (1 ms) δ(t − t')`` — its mean over a window T has
   standard deviation σ_M sqrt(1 ms / T) at any dt (on the grid: σ_M
   sqrt(1 ms / dt) per step; σ_M per step at dt = 1 ms).

The signal lives on the example stream (see :mod:`.timeline`): a late
neuromodulator spills into the next trials and, past the end of a
mini-batch, into the next mini-batch — :class:`Neuromodulator` carries the
delay line, the filter and the noise state from one batch to the next.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.backend import array_module
from .timeline import decay, scan

#: the structures of crosstalk (``neuromodulator.crosstalk_structure``)
CROSSTALK = ("uniform", "neighbours")


def mix(eps, chi: float, structure: str = "uniform"):
    """ε (B, K) -> ε C, C symmetric: component μ keeps 1 − χ and sends

    * ``uniform``: χ/(K − 1) to each other component, C = (1 − χ) I + χ/(K − 1) (J − I).  On an
      ε that sums to 0 (the softmax error) C ε = (1 − χK/(K − 1)) ε: the error is only rescaled,
      to 0 at χ = (K − 1)/K and reversed beyond;
    * ``neighbours``: χ/2 to each adjacent index μ ± 1, C = (1 − χ) I + χ/2 (S + Sᵀ) with S the
      shift by one, on an open chain (components 0 and K − 1 have one neighbour; the χ/2 that
      would leave the chain is lost).  C's eigenvalues are 1 − χ + χ cos(πj/(K + 1)),
      j = 1..K, with eigenvectors sin(πjμ/(K + 1)): the error is filtered along the index, not
      rescaled — components smooth across neighbours pass almost unchanged, components that
      alternate between neighbours shrink and are reversed for χ > 1/(1 + cos(π/(K + 1))).
    """
    if chi == 0.0:
        return eps
    if structure == "neighbours":
        out = (1.0 - chi) * eps
        out[:, 1:] += (0.5 * chi) * eps[:, :-1]
        out[:, :-1] += (0.5 * chi) * eps[:, 1:]
        return out
    K = eps.shape[1]
    total = eps.sum(axis=1, keepdims=True)
    return (1.0 - chi) * eps + (chi / (K - 1)) * (total - eps)


#: the reference time of white neuromodulator noise (tau_M = 0): intensity sigma^2 x WHITE_MS
WHITE_MS = 1.0


class Neuromodulator:
    """M(t) on the stream for ``ch`` channels; state carried across mini-batches."""

    def __init__(self, xp, dtype, ch: int, dt: float, delay_ms: float, tau_ms: float, noise: float):
        self.xp, self.dtype, self.ch = xp, dtype, ch
        self.D = int(round(delay_ms / dt))
        self.a = decay(dt, tau_ms)
        self.sigma = float(noise)
        # the noise added per step: OU (stationary sigma) or white (sigma^2 WHITE_MS / dt)
        self.step_sigma = self.sigma * (math.sqrt(1.0 - self.a * self.a) if self.a > 0
                                        else math.sqrt(WHITE_MS / dt))
        self.reset()

    def reset(self) -> None:
        xp = self.xp
        self.pending = xp.zeros((self.D, self.ch), dtype=self.dtype)  # delayed command not yet out
        self.m = xp.zeros((self.ch,), dtype=self.dtype)  # filter state
        self.xi = xp.zeros((self.ch,), dtype=self.dtype)  # noise state

    def signal(self, u, rnd=None):
        """The neuromodulator (L, ch) at the synapses for command ``u`` (L, ch) on this batch's
        stream; ``rnd`` (a :class:`~.neurons.Random`) draws the noise."""
        xp = array_module(u)
        L = u.shape[0]
        if self.D:
            line = xp.concatenate([self.pending, u])
            ud, self.pending = line[:L], line[L:].copy()
        else:
            ud = u
        a = self.a
        M = scan(ud * (1.0 - a), a, self.m) if a > 0 else ud.copy()
        self.m = M[-1].copy()
        if self.sigma > 0:
            z = rnd.normal((L, self.ch), np.float32 if self.dtype == np.float32 else np.float64)
            z = xp.asarray(z, dtype=self.dtype) * self.step_sigma
            xi = scan(z, a, self.xi) if a > 0 else z
            self.xi = xi[-1].copy()
            M = M + xi
        return M

    def state_dict(self, h) -> dict:
        return {"pending": h(self.pending), "m": h(self.m), "xi": h(self.xi)}

    def load_state_dict(self, state: dict, asarray) -> None:
        self.pending = asarray(state["pending"]).reshape(self.D, self.ch)
        self.m = asarray(state["m"])
        self.xi = asarray(state["xi"])
