"""Time in the circuit dynamics: the trial layout and exponential filters.

A *trial* is what one example experiences: a presentation phase and (with
replay) a replay phase, each made of ``n_seg`` segments of ``n_bin`` steps of
``dt`` ms (grouped: one segment, the presentation; temporal: K segments, the
time bins), followed by ``n_interval`` steps of rest.  Within each segment the
first ``n_settle`` steps are the settling period.  Examples follow each other
on one *stream*: example b of a mini-batch occupies steps
``[b * slot, (b + 1) * slot)`` of the batch's stream, and consecutive
mini-batches continue the stream.

Activity arrays of a phase are shaped ``(n_seg, steps, ...)`` where ``steps``
is ``n_bin`` — or 1 when the quantity is constant within each segment (the
instantaneous limit with a constant stimulus); every operation here
broadcasts such arrays.

Filters (all exact for inputs held constant over a step, "exponential
Euler")::

    y_k = a * y_{k-1} + (1 - a) * x_k,   a = exp(-dt / tau)       (relax)
    y_k = a * y_{k-1} + x_k                                         (scan)

``tau = 0`` gives ``a = 0``: the filter is the identity.

Both filters set a value that decays below the dtype's smallest normal number to zero
(:func:`~neurosim.core.kernels.flush_subnormal`): an activity, trace or gate of 1e-38 is
zero to the circuit, but the subnormal numbers an exponential decay passes through on its
way to zero are 10-100 times slower in arithmetic on many CPUs (a float32 matrix product with 30 % subnormal
operands: ~30 times slower on Intel Xeon), and a neuron silent for longer than ~90 time
constants reaches them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...core import kernels
from ...core.backend import array_module


def decay(dt: float, tau: float) -> float:
    """a = exp(-dt/tau), 0 for tau = 0 (the instantaneous limit)."""
    return 0.0 if tau <= 0 else math.exp(-dt / tau)


@dataclass(frozen=True)
class Timeline:
    dt: float  # ms
    n_seg: int  # segments per phase (grouped 1, temporal K)
    n_bin: int  # steps per segment
    n_settle: int  # settling steps at the start of each segment
    n_phase: int  # phases on the stream: 1 (presentation) or 2 (presentation, replay)
    n_interval: int  # rest steps after the last phase

    @property
    def phase_steps(self) -> int:
        return self.n_seg * self.n_bin

    @property
    def slot(self) -> int:
        """Steps from one example's onset to the next's."""
        return self.n_phase * self.phase_steps + self.n_interval

    @property
    def count_ms(self) -> float:
        """Duration of the decoding / plasticity window of one segment (ms)."""
        return (self.n_bin - self.n_settle) * self.dt

    def counting(self) -> np.ndarray:
        """(n_bin,) bool: the steps of a segment after the settling period."""
        return np.arange(self.n_bin) >= self.n_settle

    def count_slice(self) -> slice:
        """The counting steps of a segment as a slice (an index that stays off the device)."""
        return slice(self.n_settle, self.n_bin)

    def phase_start(self, p: int) -> int:
        return p * self.phase_steps

    def times_ms(self) -> np.ndarray:
        """Time (ms, end of each step) of every step of the phases of a trial."""
        return (np.arange(self.n_phase * self.phase_steps) + 1) * self.dt


def at(arr, s: int, k: int):
    """Step k of segment s of a phase array whose step axis may be broadcast (length 1)."""
    return arr[s, k if arr.shape[1] > 1 else 0]


def relax(target, a: float, init, n_bin: int, out_dtype=None):
    """Exponential relaxation along a phase: ``y_k = a y_{k-1} + (1-a) target_k``, y_{-1} = init.

    ``target``: (n_seg, 1 | n_bin, ...); ``init``: a scalar or an array broadcastable to one
    step.  With ``a == 0`` the result is ``target`` itself (no copy); otherwise an array
    (n_seg, n_bin, ...) — the segments follow each other without reset.
    """
    if a == 0.0:
        return target
    if out_dtype is None or out_dtype == target.dtype:
        y = kernels.relax(target, a, init, n_bin)  # one pass (NumPy, Numba on)
        if y is not None:
            return y
    xp = array_module(target)
    S = target.shape[0]
    y = xp.empty((S, n_bin) + target.shape[2:], dtype=out_dtype or target.dtype)
    prev = None
    for s in range(S):
        for k in range(n_bin):
            prev = relax_step(y[s, k], at(target, s, k), a, prev, init)
    return y


def relax_step(out, target, a: float, prev, init):
    """One step of :func:`relax` into ``out``: ``out = (1-a) target + a prev`` (``prev`` None:
    the initial value ``init``), subnormal results set to zero.  Returns ``out``."""
    array_module(out).multiply(target, 1.0 - a, out=out)
    out += (init if prev is None else prev) * a
    return kernels.flush_subnormal(out)


def scan(x, a: float, init=None, reverse: bool = False):
    """Linear recursion along axis 0: ``y_k = a y_{k-1} + x_k`` (``y_{-1} = init``, default 0);
    ``reverse``: ``y_k = a y_{k+1} + x_k`` from the end.

    Long axes (a stream of many trials) are processed in blocks of ~sqrt(length): a loop
    inside the blocks (vectorized over blocks and trailing axes), then the block carries
    through a small matrix of powers of ``a``.  Exact up to rounding.
    """
    xp = array_module(x)
    if reverse:
        return scan(x[::-1], a, init, False)[::-1]
    if a == 0.0:
        return x.copy()
    L = x.shape[0]
    tail = x.shape[1:]
    bl = max(1, int(math.ceil(math.sqrt(L))))
    nb = -(-L // bl)
    pad = nb * bl - L
    xb = x if pad == 0 else xp.concatenate([x, xp.zeros((pad,) + tail, dtype=x.dtype)])
    xb = xb.reshape((nb, bl) + tail)
    yl = xp.empty_like(xb)
    yl[:, 0] = xb[:, 0]
    for j in range(1, bl):
        xp.multiply(yl[:, j - 1], a, out=yl[:, j])
        yl[:, j] += xb[:, j]
    # carries: C_b = y at the end of block b = yl[b, -1] + a^bl C_{b-1}, C_{-1} = init
    ab = a ** bl
    idx = xp.arange(nb)  # the coefficients are made on the device (no copy per call)
    diff = idx[:, None] - idx[None, :]
    with np.errstate(under="ignore"):
        P = xp.where(diff >= 0, ab ** xp.maximum(diff, 0).astype(float), 0.0)
    ends = yl[:, -1].reshape(nb, -1)
    C = xp.asarray(P, dtype=x.dtype) @ ends
    if init is not None:
        with np.errstate(under="ignore"):
            pw = ab ** (idx + 1.0)
        C = C + xp.asarray(pw, dtype=x.dtype)[:, None] * xp.reshape(xp.asarray(init, dtype=x.dtype), (1, -1))
    C = C.reshape((nb,) + tail)
    with np.errstate(under="ignore"):
        pj = a ** (xp.arange(bl) + 1.0)
    prev = xp.concatenate([xp.zeros((1,) + tail, dtype=x.dtype) if init is None
                           else xp.reshape(xp.asarray(init, dtype=x.dtype), (1,) + tail)
                           * xp.ones((1,) + tail, dtype=x.dtype), C[:-1]])
    pj_d = xp.asarray(pj, dtype=x.dtype).reshape((1, bl) + (1,) * len(tail))
    y = yl + pj_d * prev[:, None]
    return kernels.flush_subnormal(y).reshape((nb * bl,) + tail)[:L]
