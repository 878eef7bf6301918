"""Neurons of the circuit dynamics: the rate code, Poisson spikes, LIF, synaptic filters.

**Signed activity as a rate around a baseline.**  A VNN activity ``a`` is
signed; a firing rate is not.  Each neuron carries its activity as a
deviation from a baseline rate, ``r = r0 + g a`` (Hz), rectified at 0 Hz.
This code was chosen over ON/OFF population pairs because

* it keeps the circuits of paper §7 as drawn: one neuron per vector
  component (grouped) or per vector unit (temporal); ON/OFF pairs would
  double every population and need a sign-inverting (inhibitory) relay for
  the OFF half of every excitatory projection;
* the presynaptic factor of the three-factor rule is then the deviation of
  the presynaptic rate from its baseline — the covariance form of Hebbian
  plasticity — and the neuromodulator itself is a signed deviation from a
  tonic level, as phasic dopamine bursts and pauses are;
* its one failure mode is explicit and measurable: activities below
  ``-r0/g`` cannot be represented, the neuron sits at zero rate.  The
  fraction of neuron-time samples at zero rate is recorded
  (``dyn_zero_rate_fraction``).

Internally every layer is simulated in activity units (``a``, the deviation
divided by g); rates in Hz are ``r0 + g a``.  With rectification off and
instantaneous neurons the activities are the VNN's exactly.

**Gating** is shunting inhibition of the driven input: ``G`` multiplies the
input current, so a silenced neuron returns to its baseline rate (activity 0).

**Spikes.**  ``poisson``: the rate neuron emits a Poisson count with mean
``r dt`` each step (drawn by inverting the Poisson CDF against one uniform
number, exact up to the uniform numbers' resolution, ~6e-8).  ``lif``: a leaky
integrate-and-fire neuron ``tau_m dV/dt = -V + tau_m mu(t)`` with
``mu = max(r0 + g G I, 0)`` Hz, threshold 1, reset 0 and an absolute
refractory period; without leak it fires at exactly ``mu``, with leak at
``1 / (tau_ref + tau_m ln(tau_m mu / (tau_m mu - 1)))`` (0 for tau_m mu <= 1).
A synapse sees the spike train through a current filter with ``tau_syn``,
``s = filter(counts / dt)`` (Hz, mean = the rate), i.e. the activity
``(s - r0) / g``.
"""

from __future__ import annotations

import math

import numpy as np

from ...core.backend import array_module, stream_seed
from .timeline import at, relax

#: sub-stream tags of the backend's "noise" stream (node perturbation uses 1, dropout 2)
TRAIN_STREAM = 3  # spikes and neuromodulator noise of a training step
EVAL_STREAM = 4  # spikes of evaluation passes
PROBE_STREAM = 5  # spikes and neuromodulator noise of the trajectory probe set


class Random:
    """Uniform and normal numbers on the run's device from a named-stream seed.

    NumPy: a ``numpy.random.Generator``; CuPy: ``cupy.random.RandomState``
    seeded from the same seed sequence (the same seed gives reproducible, but
    device-specific, spikes).
    """

    def __init__(self, xp, seed: int, *keys: int):
        ss = stream_seed(seed, "noise", *keys)
        self.xp = xp
        if xp is np:
            self.g = np.random.default_rng(ss)
        else:  # pragma: no cover - GPU
            self.g = xp.random.RandomState(int(ss.generate_state(1)[0]))

    def uniform(self, shape, dtype):
        if self.xp is np:
            return self.g.random(shape, dtype=dtype)
        return self.g.random_sample(shape, dtype=dtype)  # pragma: no cover

    def poisson(self, lam):
        """Poisson counts with means ``lam`` (a device array), in ``lam``'s dtype (GPU only)."""
        return self.g.poisson(lam).astype(lam.dtype)

    def normal(self, shape, dtype):
        if self.xp is np:
            return self.g.standard_normal(shape, dtype=dtype)
        return self.g.standard_normal(shape, dtype=dtype)  # pragma: no cover


def _terms(lmax: float, tail: float = 1e-9) -> int:
    """Smallest k with P(N > k) < tail for a Poisson N of mean lmax (which bounds every smaller mean)."""
    p = F = math.exp(-lmax)
    k = 0
    while 1.0 - F >= tail and k < 10_000:
        k += 1
        p *= lmax / k
        F += p
    return k


def poisson(lam, rnd: Random):
    """Poisson counts with means ``lam`` (>= 0), by inverting the CDF at one uniform number per
    sample: n = #{k >= 0 : u >= F(k)}.  Most samples of a spiking step are 0 (u < e^-lam); the
    CDF is continued only for the others, up to the term where the tail of the largest mean is
    below 1e-9.  Exact up to the resolution of the uniform numbers (float32, ~6e-8).  Returns
    counts in ``lam``'s dtype.  On a GPU the device generator's Poisson sampler draws them
    (the selection above would read its size back to the host at every step)."""
    xp = array_module(lam)
    if xp is not np:  # on a GPU: no selection of the nonzero samples (it syncs with the host)
        return rnd.poisson(lam)
    u = rnd.uniform(lam.shape, np.float32).ravel()
    flat = xp.ascontiguousarray(lam).ravel()
    n = (u >= xp.exp(-flat)).astype(lam.dtype)  # at least one spike
    sel = xp.flatnonzero(n)
    if sel.size:
        ls = flat[sel].astype(np.float64)
        us = u[sel].astype(np.float64)
        p = xp.exp(-ls)
        F = p.copy()
        cnt = xp.zeros(ls.shape, dtype=lam.dtype)
        for k in range(1, _terms(float(ls.max())) + 1):
            p *= ls / k
            F += p
            cnt += us >= F
        n[sel] += cnt
    return n.reshape(lam.shape)


def lif(mu, a: float, tau_s: float, n_ref: int, n_bin: int):
    """Spike counts (0/1 per step) of LIF neurons driven by ``mu`` (Hz, (n_seg, 1|n_bin, ...)).

    ``V_k = a V_{k-1} + (1 - a) tau mu_k`` (tau in s, V = 0 at the phase onset); a neuron
    whose V reaches 1 spikes, resets to 0 and is held there for ``n_ref`` steps.
    """
    xp = array_module(mu)
    S = mu.shape[0]
    shape = mu.shape[2:]
    V = xp.zeros(shape, dtype=mu.dtype)
    ref = xp.zeros(shape, dtype=np.int32)
    out = xp.empty((S, n_bin) + shape, dtype=mu.dtype)
    drive = mu * ((1.0 - a) * tau_s)
    for s in range(S):
        for k in range(n_bin):
            V *= a
            V += at(drive, s, k)
            # xp.where, not boolean-mask assignment: on a GPU a mask reads its count back to
            # the host at every step
            if n_ref:
                V = xp.where(ref > 0, 0, V)
                ref -= 1
            spk = V >= 1.0
            V = xp.where(spk, 0, V)
            if n_ref:
                ref = xp.where(spk, n_ref, ref)
            out[s, k] = spk
    return out


def synaptic(counts, dt_s: float, a_syn: float, r0: float, n_bin: int):
    """Filtered spike train s (Hz): ``s_k = a s_{k-1} + (1 - a) counts_k / dt``, s_{-1} = r0."""
    return relax(counts * (1.0 / dt_s), a_syn, r0, n_bin)
