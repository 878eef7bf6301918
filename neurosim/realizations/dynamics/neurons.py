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

**One neuron, three spike generators** (:data:`MODELS`, one interface,
:class:`NeuronModel`).  Every model shares the rate neuron's membrane: the gated
input current is integrated linearly, ``tau_m da/dt = -a + G I`` (current-based
synapses), and the rate ``r = max(r0 + g a, 0)`` is rectified *after* the
membrane, so the spiking models' mean dynamics are the rate model's.  The
models differ in what leaves the neuron:

* :class:`RateNeurons` — the rate itself (activity ``a``);
* :class:`PoissonNeurons` — a Poisson count with mean ``r dt`` per step (exact,
  :func:`poisson`);
* :class:`LIFNeurons` — a leaky integrate-and-fire neuron driven through its own
  inverted f–I curve, ``mu = f^-1(r)`` (:func:`lif_drive`), so that it fires at exactly ``r`` for a
  constant ``r`` (:func:`lif_drive`, :func:`lif`), starting each phase in its
  stationary firing state at the baseline (:func:`lif_rest`).

A synapse sees a spike train through a current filter with ``tau_syn``,
``s = filter(counts / dt)`` (Hz, mean = the rate), i.e. the activity
``(s - r0) / g``.
"""

from __future__ import annotations

import math

import numpy as np

from ...core import kernels
from ...core.backend import array_module, stream_seed
from ...core.options import ConfigError
from .timeline import at, decay, relax

#: sub-stream tags of the backend's "noise" stream (node perturbation uses 1, dropout 2)
TRAIN_STREAM = 3  # spikes and neuromodulator noise of a training step
EVAL_STREAM = 4  # spikes of evaluation passes
PROBE_STREAM = 5  # spikes and neuromodulator noise of the trajectory probe set

#: Poisson means above this are drawn by the generator's own (exact) Poisson sampler
POISSON_DIRECT = 10.0
#: an LIF neuron cannot fire faster than 1/tau_ref; rates are capped at this fraction of it
LIF_MAX_FRACTION = 0.99


class Random:
    """Uniform, normal and Poisson numbers on the run's device from a named-stream seed.

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

    def normal(self, shape, dtype):
        return self.g.standard_normal(shape, dtype=dtype)

    def poisson(self, lam):
        """Exact Poisson counts with means ``lam`` (an array on the device), in ``lam``'s dtype."""
        return self.g.poisson(lam).astype(lam.dtype)


def _terms(lmax: float, tail: float = 1e-9) -> int:
    """Smallest k with P(N > k) < tail for a Poisson N of mean lmax (which bounds every smaller mean)."""
    p = F = math.exp(-lmax)
    k = 0
    while 1.0 - F >= tail and k < 10_000:  # (means reach at most POISSON_DIRECT here)
        k += 1
        p *= lmax / k
        F += p
    return k


def poisson(lam, rnd: Random):
    """Poisson counts with means ``lam`` (>= 0).

    Means up to :data:`POISSON_DIRECT` (every spiking step of a neuron below 10 kHz at 1 ms):
    the Poisson CDF is inverted at one uniform number per sample, n = #{k >= 0 : u >= F(k)}.
    Most samples of a spiking step are 0 (u < e^-lam); the CDF is continued only for the
    others, up to the term where the tail of the largest mean is below 1e-9; exact up to the
    resolution of the uniform numbers (float32, ~6e-8).  Larger means are drawn by the
    generator's exact Poisson sampler.  Returns counts in ``lam``'s dtype.  On a GPU the
    device generator's Poisson sampler draws them all (the selection above would read its
    size back to the host at every step).
    """
    xp = array_module(lam)
    if xp is not np:  # on a GPU: no selection of the nonzero samples (it syncs with the host)
        return rnd.poisson(lam)
    u = rnd.uniform(lam.shape, np.float32).ravel()
    flat = xp.ascontiguousarray(lam).ravel()
    big = flat > POISSON_DIRECT
    p0 = xp.negative(flat)
    xp.exp(p0, out=p0)  # P(N = 0)
    spike = xp.greater_equal(u, p0)  # at least one spike
    del p0
    if big.any():
        spike &= ~big
    n = spike.astype(lam.dtype)
    sel = xp.flatnonzero(spike)
    del spike
    if sel.size:
        ls = flat[sel].astype(np.float64)
        us = u[sel].astype(np.float64)
        p = xp.exp(-ls)
        terms = _terms(float(ls.max()))
        cnt = kernels.poisson_cdf(ls, us, p, terms, lam.dtype)  # the loop below, per sample
        if cnt is None:
            F = p.copy()
            cnt = xp.zeros(ls.shape, dtype=lam.dtype)
            for k in range(1, terms + 1):
                p *= ls / k
                F += p
                cnt += us >= F
        n[sel] += cnt
    ib = xp.flatnonzero(big)
    if ib.size:
        n[ib] = rnd.poisson(flat[ib].astype(np.float64)).astype(lam.dtype)
    return n.reshape(lam.shape)


# ---- LIF -------------------------------------------------------------------------
# The LIF state is kept as the distance to threshold u = 1 - V and the drive as its excess over
# the rheobase, delta = tau mu - 1 (V_inf = 1 + delta): both are small exactly where precision
# matters (a neuron close to threshold, a drive close to the rheobase at low rates).

def lif_rate(delta, tau_s: float, tau_ref_s: float):
    """The LIF f–I curve (Hz) for a constant drive of excess ``delta = tau mu - 1`` over the
    rheobase: ``1 / (tau_ref + tau ln((1 + delta)/delta))``, 0 for ``delta <= 0``."""
    d = np.asarray(delta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, 1.0 / (tau_ref_s + tau_s * np.log1p(1.0 / d)), 0.0)


def lif_drive(r, tau_s: float, tau_ref_s: float):
    """The inverse of :func:`lif_rate`: the excess drive at which an LIF neuron fires at ``r``
    (>= 0, Hz), ``delta = 1 / expm1((1/r - tau_ref)/tau)`` (0, the rheobase, at r = 0).
    Rates are capped at :data:`LIF_MAX_FRACTION` / tau_ref (the neuron cannot fire faster
    than its refractory period allows)."""
    xp = array_module(r)
    if tau_ref_s > 0:
        r = xp.minimum(r, LIF_MAX_FRACTION / tau_ref_s)
    pos = r > 0
    off = ~pos
    # in place on one working array: x = (1 / r - tau_ref) / tau (1 where r <= 0), d = 1 / expm1(x)
    x = xp.where(pos, r, 1.0)
    xp.divide(1.0, x, out=x)
    x -= tau_ref_s
    x *= 1.0 / tau_s
    xp.copyto(x, 1.0, where=off)
    with np.errstate(over="ignore"):
        xp.expm1(x, out=x)
    xp.divide(1.0, x, out=x)
    xp.copyto(x, 0.0, where=off)
    return x.astype(r.dtype, copy=False)


def lif_rest(r0: float, shape, rnd: Random, tau_s: float, tau_ref_s: float, dtype):
    """The stationary state of LIF neurons firing at the baseline ``r0`` (Hz) with independent
    phases: (u = 1 - V, remaining refractory time in s).  The time t since the last spike is
    uniform over the interspike interval 1/r0; a neuron within tau_ref of its spike is held at
    reset (V = 0), later ones have ``V = (1 + delta0)(1 - exp(-(t - tau_ref)/tau))``,
    delta0 = :func:`lif_drive` (r0).  ``r0 = 0``: at reset."""
    xp = rnd.xp
    if r0 <= 0:
        return xp.ones(shape, dtype=dtype), xp.zeros(shape, dtype=dtype)
    d0 = float(lif_drive(np.asarray([r0]), tau_s, tau_ref_s)[0])
    t = xp.asarray(rnd.uniform(shape, np.float64)) * (1.0 / r0)
    rho = xp.maximum(tau_ref_s - t, 0.0)
    u = (1.0 + d0) * xp.exp(-xp.maximum(t - tau_ref_s, 0.0) / tau_s) - d0
    return u.astype(dtype), rho.astype(dtype)


def lif(delta, u, rho, tau_s: float, tau_ref_s: float, dt_s: float, n_bin: int, masks=None):
    """Spike counts per step of LIF neurons driven by ``delta`` (excess drive, (n_seg, 1|n_bin,
    ...)), integrated exactly in continuous time for a drive held constant over each step.

    ``tau dV/dt = -V + 1 + delta``; at V = 1 the neuron spikes (at the exact crossing time within
    the step), resets to 0 and is held there for ``tau_ref`` (any duration, not rounded to
    steps), then integrates for the rest of the step.  In ``u = 1 - V``:
    ``u(t) = -delta + (u0 + delta) e^{-t/tau}``, a spike at ``t = tau ln((u0 + delta)/delta)``.
    ``u``, ``rho`` (remaining refractory time, s): the state at the phase onset (arrays of one
    step's shape; updated in place).  The segments follow each other without reset.  Spike
    times, and so the f–I curve (:func:`lif_rate`), do not depend on dt.  ``masks``: find the
    crossings with masks over every neuron (:func:`_crossings`; default on a GPU) instead of
    by index (default on the CPU).
    """
    xp = array_module(delta)
    S = delta.shape[0]
    shape = delta.shape[2:]
    u, rho = u.reshape(-1), rho.reshape(-1)
    out = xp.empty((S, n_bin) + shape, dtype=delta.dtype)
    inv_tau = 1.0 / tau_s
    for s in range(S):
        for k in range(n_bin):
            d = xp.ascontiguousarray(xp.broadcast_to(at(delta, s, k), shape)).reshape(-1)
            R = xp.maximum(dt_s - rho, 0.0)  # time left to integrate in this step
            xp.maximum(rho - dt_s, 0.0, out=rho)
            uend = (u + d) * xp.exp(-R * inv_tau) - d
            cnt = out[s, k].reshape(-1)
            if masks or (masks is None and xp is not np):  # no host syncs on a GPU
                cnt[...] = 0
                u[...] = _crossings(xp, u, uend, d, R, rho, cnt, tau_s, tau_ref_s, dt_s)
                continue
            idx = xp.flatnonzero((uend <= 0.0) & (d > 0.0))
            cnt[...] = 0
            u0, Ri, di = u[idx], R[idx], d[idx]
            u[...] = uend
            while idx.size:
                tc = tau_s * xp.log((u0 + di) / di)  # the crossing, from the start of Ri
                cnt[idx] += 1
                rest = Ri - tc - tau_ref_s  # integration time left after the refractory period
                rho[idx] = xp.maximum(-rest, 0.0)
                ur = (1.0 + di) * xp.exp(-xp.maximum(rest, 0.0) * inv_tau) - di
                u[idx] = ur
                again = ur <= 0.0
                idx, Ri, di = idx[again], rest[again], di[again]
                u0 = xp.ones(idx.shape, dtype=u.dtype)
    return out


def _crossings(xp, u0, uend, d, R, rho, cnt, tau_s: float, tau_ref_s: float, dt_s: float):
    """The threshold crossings of one step for every neuron at once (what :func:`lif` does for
    the crossing neurons only): no array's size depends on the data, so a GPU never waits for
    the host.  A neuron crosses at most floor(dt / tau_ref) + 1 times in a step; with
    tau_ref = 0 the loop asks the device whether any neuron crosses again.  Adds the spikes to
    ``cnt``, updates ``rho``; returns u at the end of the step."""
    hit = (uend <= 0.0) & (d > 0.0)
    ds = xp.where(d > 0.0, d, 1.0)
    start, Ri, u = u0, R, uend
    n_max = int(dt_s // tau_ref_s) + 1 if tau_ref_s > 0 else None
    it = 0
    while (it < n_max) if n_max is not None else bool(hit.any()):
        tc = tau_s * xp.log(xp.where(hit, (start + ds) / ds, 1.0))
        rest = Ri - tc - tau_ref_s
        cnt += hit
        ur = (1.0 + d) * xp.exp(-xp.maximum(rest, 0.0) * (1.0 / tau_s)) - d
        u = xp.where(hit, ur, u)
        rho[...] = xp.where(hit, xp.maximum(-rest, 0.0), rho)
        hit = hit & (ur <= 0.0)
        start, Ri = xp.ones_like(u), rest
        it += 1
    return u


def synaptic(counts, dt_s: float, a_syn: float, r0: float, n_bin: int):
    """Filtered spike train s (Hz): ``s_k = a s_{k-1} + (1 - a) counts_k / dt``, s_{-1} = r0
    (a new array, never ``counts``)."""
    return relax(counts * (1.0 / dt_s), a_syn, r0, n_bin)


# ---- the models ---------------------------------------------------------------------
class NeuronModel:
    """A neuron model of the circuit dynamics (``neurons.model``): the rate neuron's membrane
    followed by the model's output.

    ``membrane`` (shared): ``a_k = a_m a_{k-1} + (1 - a_m) v_k`` from rest (a = 0) for the gated
    input current ``v``, then rectified at zero rate, ``a >= -r0/g``.  ``spikes``: the spike
    counts per step of rate ``r0 + g a`` (None: the model does not spike).  ``recorded_rate``:
    what ``dyn_rate_<l>`` shows (Hz).
    """

    name = "?"
    spiking = True

    def __init__(self, dt: float, neurons: dict, code: dict):
        self.dt = dt
        self.dt_s = dt * 1e-3
        self.a_m = decay(dt, neurons["tau_m_ms"])
        self.tau_m_s = neurons["tau_m_ms"] * 1e-3
        self.tau_ref_s = neurons["tau_ref_ms"] * 1e-3
        self.r0, self.g, self.rectify = code.baseline_hz, code.gain_hz, code.rectify
        self.threshold = -self.r0 / self.g  # the activity of a neuron at zero rate

    @classmethod
    def check(cls, dyn: dict, key) -> None:
        """Constraints of this model on a validated ``dynamics`` section (``key(name)``: the
        full key of a field); raise :class:`~neurosim.core.options.ConfigError`."""
        if cls.spiking and not dyn.code.rectify:
            raise ConfigError("spiking neurons need nonnegative rates: set code.rectify: true",
                              key=key("code.rectify"))

    def membrane(self, v, n_bin: int):
        a = relax(v, self.a_m, 0.0, n_bin)
        if self.rectify:  # in place unless the filter is the identity (a is v)
            a = array_module(a).maximum(a, self.threshold, out=None if a is v else a)
        return a

    def spikes(self, a, n_bin: int, rnd: Random):
        raise NotImplementedError

    def recorded_rate(self, a, out):
        return a * self.g + self.r0


class RateNeurons(NeuronModel):
    """Leaky rate neurons: the activity itself is sent on."""

    name = "rate"
    spiking = False

    def spikes(self, a, n_bin, rnd):
        return None


class PoissonNeurons(NeuronModel):
    """The rate neuron emits a Poisson count with mean ``r dt`` each step."""

    name = "poisson"

    def spikes(self, a, n_bin, rnd):
        xp = array_module(a)
        lam = xp.broadcast_to(a, (a.shape[0], n_bin) + a.shape[2:]) * (self.g * self.dt_s)
        lam += self.r0 * self.dt_s
        return poisson(lam, rnd)


class LIFNeurons(NeuronModel):
    """An LIF spike generator driven through the inverted f–I curve of the rate ``r0 + g a``:
    for a constant rate it fires at exactly that rate; each phase starts from the stationary
    firing state at the baseline (:func:`lif_rest`)."""

    name = "lif"

    @classmethod
    def check(cls, dyn, key):
        super().check(dyn, key)
        if dyn.neurons.tau_m_ms <= 0:
            raise ConfigError("LIF neurons need a membrane time constant > 0", key=key("neurons.tau_m_ms"))

    def spikes(self, a, n_bin, rnd):
        delta = lif_drive(a * self.g + self.r0, self.tau_m_s, self.tau_ref_s)  # (0 Hz at r <= 0)
        u, rho = lif_rest(self.r0, a.shape[2:], rnd, self.tau_m_s, self.tau_ref_s, a.dtype)
        return lif(delta, u, rho, self.tau_m_s, self.tau_ref_s, self.dt_s, n_bin)

    def recorded_rate(self, a, out):
        return out * self.g + self.r0  # the synaptically filtered spike train


#: ``neurons.model`` -> class
MODELS = {m.name: m for m in (RateNeurons, PoissonNeurons, LIFNeurons)}
