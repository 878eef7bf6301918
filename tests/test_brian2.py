"""neurosim's circuits in time against Brian2, from the same weights and inputs.

The Brian2 side (``benchmarks/brian2_side.py``) is written by hand in Brian2's own terms
(equations, ``exact`` integration, summed variables, linked variables, refractoriness, a
stochastic threshold) and runs in Brian2's own environment (``benchmarks/brian2_env.py``,
created on first use from the package index: the tests skip only when the index is
unreachable).  The neurosim side uses the engine's own pieces: the filters of
``realizations/dynamics/timeline.py``, the LIF integrator and the Poisson sampler of
``neurons.py``, the neuromodulator of ``neuromodulator.py`` and the eligibility weights of
``plasticity.py``.  Brian2 runs with its ``numpy`` code-generation target (no compilation, the
fastest to start for networks this small).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import brian2_env
from neurosim.realizations.dynamics.neuromodulator import Neuromodulator
from neurosim.realizations.dynamics.neurons import Random, lif, poisson
from neurosim.realizations.dynamics.plasticity import Eligibility
from neurosim.realizations.dynamics.timeline import decay, relax, scan


@pytest.fixture(scope="module")
def brian2():
    """Run a task of the Brian2 side (the environment is created once, then cached)."""
    try:
        brian2_env.ensure()
    except brian2_env.Unavailable as exc:
        pytest.skip(str(exc))
    return brian2_env.run


def _piecewise(rng, T, n, hold, lo=-1.0, hi=1.0):
    """(T, n) values held for ``hold`` steps at a time."""
    v = rng.uniform(lo, hi, (-(-T // hold), n))
    return np.repeat(v, hold, axis=0)[:T]


# ---------------------------------------------------------------------------------------------
# a leaky rate cascade with gating


def neurosim_cascade(x, Ws, bs, ts, thr, dt, tau_m, tau_inh):
    """The grouped circuit's layers in neurosim's terms (realizations/dynamics/grouped.py):
    I = W pre + b; the gate relaxes toward Theta(t . I) (from 1, open); the rate relaxes toward
    max(G I, thr) (from 0).  Arrays (1 segment, T steps, K, n)."""
    T = x.shape[0]
    a_m, a_inh = decay(dt, tau_m), decay(dt, tau_inh)
    pre = x[None]  # (1, T, n0): the one input population
    acts, gates, clipped = [], [], 0
    for layer, (W, b) in enumerate(zip(Ws, bs)):
        if layer == 0:
            I = np.einsum("stj,mij->stmi", pre, W)
        else:  # neuron mu of group j -> neuron mu of group i
            I = np.einsum("stmj,mij->stmi", pre, W)
        I += b
        t = ts[layer]
        if t is not None:
            G = relax(((I * t).sum(axis=2) >= 0).astype(I.dtype), a_inh, 1.0, T)  # (1, T, n)
            v = I * G[:, :, None]
            gates.append(G[0])
        else:
            v = I
        clipped += int((v < thr).sum())
        a = relax(np.maximum(v, thr), a_m, 0.0, T)
        acts.append(a[0])
        pre = a
    return acts, gates, clipped


def test_rate_cascade_with_gating_equals_brian2(brian2):
    """Three layers (two gated hidden layers of K groups and the readout) driven by an input that
    changes every 7 steps: every rate and gate at every step equal to 1e-6."""
    rng = np.random.default_rng(0)
    K, n0, sizes, T, dt = 3, 6, (5, 4, 1), 120, 0.5
    Ws, bs, ts = [], [], []
    n_in = n0
    for layer, n in enumerate(sizes):
        Ws.append(rng.normal(0, 1.2 / np.sqrt(n_in), (K, n, n_in)))
        bs.append(rng.normal(0, 0.2, (K, n)))
        ts.append(rng.choice([-1.0, 1.0], (K, n)) if layer < len(sizes) - 1 else None)
        n_in = n
    x = _piecewise(rng, T, n0, 7)
    consts = {"dt_ms": dt, "tau_m_ms": 10.0, "tau_inh_ms": 5.0, "thr": -0.5}
    inputs = {"x": x, "n_layers": len(sizes), **consts}
    for layer in range(len(sizes)):
        inputs[f"W{layer}"], inputs[f"b{layer}"] = Ws[layer], bs[layer]
        if ts[layer] is not None:
            inputs[f"t{layer}"] = ts[layer]
    out = brian2("cascade", inputs)
    acts, gates, clipped = neurosim_cascade(x, Ws, bs, ts, consts["thr"], dt, consts["tau_m_ms"],
                                   consts["tau_inh_ms"])
    for layer, a in enumerate(acts):
        ref = out[f"a{layer}"]  # (T, K * n), neuron mu * n + i
        np.testing.assert_allclose(a.reshape(T, -1), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max(),
                                   err_msg=f"rates of layer {layer}")
    for layer, G in enumerate(gates):
        np.testing.assert_allclose(G, out[f"G{layer}"], rtol=1e-6, atol=1e-9, err_msg=f"gate {layer}")
    # the comparison is not empty: the gates close and reopen, and some rates are rectified
    G0 = gates[0]
    assert G0.min() < 0.5 and (np.diff(G0, axis=0) > 0).any() and (np.diff(G0, axis=0) < 0).any()
    assert clipped > 0


# ---------------------------------------------------------------------------------------------
# LIF neurons with refractoriness


def _spike_steps(counts):
    """(T, N) 0/1 -> per neuron the steps of its spikes."""
    return [np.flatnonzero(counts[:, k]) for k in range(counts.shape[1])]


def test_lif_with_refractoriness_equals_brian2(brian2):
    """40 LIF neurons (tau_m 10 ms, refractory 2 ms) under a drive that changes every 10 ms between
    60 and 2000 Hz, 300 ms at dt 0.5 ms: the same spike count per neuron, every spike in the same
    step or one step apart.

    Brian2 labels a spike with the start of the step in which V crossed the threshold and counts
    its refractory period from there, neurosim from the end of that step (where the crossing is
    observed), so Brian2's refractory period is given as tau_ref + dt: both then hold V at reset
    for the tau_ref that follows the crossing."""
    rng = np.random.default_rng(1)
    dt, tau_m, tau_ref, T, N = 0.5, 10.0, 2.0, 600, 40
    mu = _piecewise(rng, T, N, 20, 60.0, 2000.0)
    n_ref = int(round(tau_ref / dt))
    counts = lif(mu[None], decay(dt, tau_m), tau_m * 1e-3, n_ref, T)[0]
    out = brian2("lif", {"mu": mu, "dt_ms": dt, "tau_m_ms": tau_m, "refractory_ms": tau_ref + dt})
    ours = _spike_steps(counts)
    theirs = [np.sort(out["step"][out["i"] == k]) for k in range(N)]
    n_ours = np.array([len(s) for s in ours])
    n_theirs = np.array([len(s) for s in theirs])
    np.testing.assert_array_equal(n_ours, n_theirs, err_msg="spike counts per neuron")
    for k in range(N):
        assert np.abs(ours[k] - theirs[k]).max(initial=0) <= 1, f"neuron {k}: spike times"
    # the comparison is not empty: most neurons fire, some are silent part of the time (drive below
    # 1 / tau_m) and the refractory period shapes the intervals at the strongest drive
    assert n_ours.sum() > 500 and (n_ours > 0).mean() > 0.9
    isi = np.concatenate([np.diff(s) for s in ours])
    assert isi.min() == n_ref + 2  # 2000 Hz: released at step s + n_ref, at threshold 2 steps later
