"""Building blocks of the circuit dynamics against analytic expectations.

Exponential filters (exact on the grid), Poisson counts (mean, variance,
P(0)), the LIF f-I curve, the neuromodulator's delay / low-pass / noise /
crosstalk, and the reordering of the eligibility-trace integral.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurosim.realizations.dynamics.neuromodulator import Neuromodulator, mix
from neurosim.realizations.dynamics.neurons import (
    Random,
    lif,
    lif_drive,
    lif_rate,
    lif_rest,
    poisson,
    synaptic,
)
from neurosim.realizations.dynamics.plasticity import Eligibility
from neurosim.realizations.dynamics.timeline import Timeline, decay, relax, scan


def naive(x, a, init=0.0):
    y = np.empty_like(x)
    prev = np.zeros(x.shape[1:]) + init
    for k in range(x.shape[0]):
        prev = a * prev + x[k]
        y[k] = prev
    return y


@pytest.mark.parametrize("L", [1, 7, 100, 1001])
@pytest.mark.parametrize("a", [0.0, 0.3, 0.999])
def test_scan_is_the_linear_recursion(L, a):
    rng = np.random.default_rng(L)
    x = rng.standard_normal((L, 3))
    init = rng.standard_normal(3)
    np.testing.assert_allclose(scan(x, a, init), naive(x, a, init), atol=1e-10)
    np.testing.assert_allclose(scan(x, a), naive(x, a), atol=1e-10)
    np.testing.assert_allclose(scan(x, a, init, reverse=True), naive(x[::-1], a, init)[::-1], atol=1e-10)


def test_relax_step_response_is_the_exponential():
    tau, dt = 7.0, 0.5
    a = decay(dt, tau)
    target = np.ones((3, 1, 2))  # 3 segments, constant within each
    y = relax(target, a, 0.0, 10)
    t = (np.arange(30) + 1) * dt
    np.testing.assert_allclose(y.reshape(30, 2), (1 - np.exp(-t / tau))[:, None] * np.ones((1, 2)),
                               atol=1e-14)
    # from a nonzero initial state toward a new target: e^{-t/tau} of the initial gap remains
    y = relax(np.zeros((1, 1, 2)), a, 3.0, 8)
    np.testing.assert_allclose(y[0, :, 0], 3.0 * np.exp(-(np.arange(8) + 1) * dt / tau), atol=1e-14)
    # tau = 0: the identity, no copy
    assert relax(target, decay(dt, 0.0), 5.0, 10) is target


def test_timeline_layout():
    tl = Timeline(dt=2.0, n_seg=10, n_bin=5, n_settle=2, n_phase=2, n_interval=7)
    assert tl.phase_steps == 50 and tl.slot == 107
    assert tl.count_ms == 6.0
    assert list(tl.counting()) == [False, False, True, True, True]
    assert tl.times_ms()[0] == 2.0 and len(tl.times_ms()) == 100


@pytest.mark.parametrize("lam", [0.02, 0.3, 2.5])
def test_poisson_counts_mean_variance_and_zero(lam):
    n = 400_000
    counts = poisson(np.full(n, lam), Random(np, 0, 3, 1))
    se_mean = math.sqrt(lam / n)
    assert abs(counts.mean() - lam) < 5 * se_mean
    se_var = math.sqrt((2 * lam * lam + lam) / n)  # var of the sample variance of a Poisson
    assert abs(counts.var() - lam) < 6 * se_var
    p0 = math.exp(-lam)
    assert abs((counts == 0).mean() - p0) < 5 * math.sqrt(p0 * (1 - p0) / n)
    assert counts.dtype == np.float64 and np.all(counts == np.round(counts))


def test_poisson_window_count_is_poisson_of_rate_times_duration():
    """Counts of a neuron at r Hz over T ms: mean and variance r T (the readout's spike count)."""
    r, dt, N = 40.0, 1.0, 50
    lam = np.full((1, N, 20_000), r * dt * 1e-3)
    counts = poisson(lam, Random(np, 1, 3, 2)).sum(axis=1)[0]
    rT = r * N * dt * 1e-3
    assert abs(counts.mean() - rT) < 5 * math.sqrt(rT / counts.size)
    assert abs(counts.var() - rT) < 6 * math.sqrt((2 * rT * rT + rT) / counts.size)


def test_synaptic_filter_has_unit_gain():
    counts = np.zeros((1, 40, 1))
    counts[0, 0, 0] = 1.0  # one spike in the first step
    s = synaptic(counts, 1e-3, decay(1.0, 5.0), 0.0, 40)[0, :, 0]
    a = math.exp(-1 / 5)
    np.testing.assert_allclose(s, 1e3 * (1 - a) * a ** np.arange(40), rtol=1e-12)
    assert abs(s.sum() * 1e-3 - 1.0) < 1e-3  # one spike's worth of rate x time (truncated tail)


def test_poisson_large_means_are_exact():
    """Means far above a spike per step (1 MHz at 1 ms) are drawn exactly, not capped."""
    for lam in (800.0, 1e4):
        counts = poisson(np.full(20_000, lam), Random(np, 2, 3, 3))
        se = math.sqrt(lam / counts.size)
        assert abs(counts.mean() - lam) < 5 * se
        assert abs(counts.var() / lam - 1) < 6 * math.sqrt(2 / counts.size)
    mixed = poisson(np.array([0.0, 0.5, 50.0, 5e6]), Random(np, 2, 3, 4))
    assert mixed[0] == 0 and abs(mixed[3] - 5e6) < 6 * math.sqrt(5e6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_kernel_equals_the_array_loop(monkeypatch, dtype):
    """The Numba CDF kernel gives the array loop's counts bit for bit (same seed, same
    uniforms), for means from 0 to above POISSON_DIRECT and uniforms up to 1 - 2^-24."""
    rng = np.random.default_rng(5)
    lam = np.concatenate([rng.uniform(0, 0.05, 30_000), rng.uniform(0, 10, 30_000),
                          [0.0, 9.99, 10.0, 12.5, 1e3]]).astype(dtype).reshape(5, -1)
    with_kernel = poisson(lam, Random(np, 4, 3, 5))
    monkeypatch.setenv("NEUROSIM_NUMBA", "0")
    without = poisson(lam, Random(np, 4, 3, 5))
    assert with_kernel.dtype == without.dtype == dtype
    np.testing.assert_array_equal(with_kernel, without)
    assert with_kernel.max() >= 10  # the upper terms were reached
    # the count stops at the number of terms for u just below 1, as the loop's does
    from neurosim.core import kernels
    monkeypatch.setenv("NEUROSIM_NUMBA", "1")
    ls = np.array([0.3, 2.0, 9.0])
    us = np.full(3, 1 - 2.0 ** -24)
    cnt = kernels.poisson_cdf(ls, us, np.exp(-ls), 4, np.float64)
    np.testing.assert_array_equal(cnt, [4, 4, 4])


def _lif_spike_steps(mu, tau_m, tau_ref, dt, T):
    n = int(round(T / dt))
    u, rho = np.ones(1), np.zeros(1)
    out = lif(np.full((1, 1, 1), tau_m * 1e-3 * mu - 1), u, rho, tau_m * 1e-3, tau_ref * 1e-3, dt * 1e-3, n)
    return out[0, :, 0]


@pytest.mark.parametrize("mu", [60.0, 100.0, 300.0])
@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_lif_spikes_at_the_exact_times(mu, dt):
    """From V = 0 a constant drive gives spikes at t1 + k ISI, t1 = tau ln(x/(x-1)),
    ISI = tau_ref + t1 (the f-I curve): each in the step that contains it, at any dt, also for
    a refractory period that is not a whole number of steps."""
    tau_m, tau_ref, T = 20.0, 2.5, 400.0
    counts = _lif_spike_steps(mu, tau_m, tau_ref, dt, T)
    x = tau_m * 1e-3 * mu
    t1 = tau_m * math.log(x / (x - 1))
    isi = 1e3 / float(lif_rate(x - 1, tau_m * 1e-3, tau_ref * 1e-3))
    assert isi == pytest.approx(tau_ref + t1, rel=1e-12)
    times = t1 + isi * np.arange(int((T - t1) // isi) + 1)
    expect = np.zeros_like(counts)
    np.add.at(expect, (np.ceil(times / dt - 1e-9) - 1).astype(int), 1)
    np.testing.assert_array_equal(counts, expect)


def test_lif_drive_inverts_the_f_i_curve():
    tau, ref = 0.01, 0.002
    r = np.array([0.5, 5.0, 20.0, 100.0, 400.0])
    np.testing.assert_allclose(lif_rate(lif_drive(r, tau, ref), tau, ref), r, rtol=1e-10)
    assert float(lif_drive(np.array([0.0]), tau, ref)[0]) == 0.0  # the rheobase
    # float32 keeps low rates (the drive's excess over the rheobase is ~e^-(1/r)/tau)
    r32 = np.array([2.0, 3.0, 8.0], dtype=np.float32)  # (below ~1.2 Hz e^-x underflows)
    np.testing.assert_allclose(lif_rate(lif_drive(r32, tau, ref), tau, ref), r32, rtol=1e-5)
    assert float(lif_rate(lif_drive(np.array([1e4]), tau, ref), tau, ref)[0]) == pytest.approx(0.99 / ref)


def test_lif_below_rheobase_is_silent():
    assert _lif_spike_steps(40.0, 20.0, 1.0, 0.1, 500.0).sum() == 0  # tau mu = 0.8 < 1


@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_lif_rest_state_fires_at_the_baseline(dt):
    """Neurons started in the stationary state at r0 (random phases) fire at r0 in any
    window: the mean count over 30 ms is r0 T within its sampling error."""
    r0, tau, ref, T, N = 20.0, 0.01, 0.002, 30.0, 20_000
    rnd = Random(np, 5, 1)
    u, rho = lif_rest(r0, (N,), rnd, tau, ref, np.float64)
    drive = lif_drive(np.full((1, 1, N), r0), tau, ref)
    n = lif(drive, u, rho, tau, ref, dt * 1e-3, int(round(T / dt)))[0].sum(axis=0)
    expect = r0 * T * 1e-3
    assert abs(n.mean() - expect) < 5 * math.sqrt(expect / N)
    # a regular neuron: each count is the floor or the ceiling of r0 T
    assert set(np.unique(n)) <= {math.floor(expect), math.ceil(expect)}


def test_neuromodulator_delay_lowpass_shape_and_carry():
    """Step command at k0: M is 0 until k0 + D, then 1 - e^{-(k - k0 - D + 1) dt/tau} (exact on the
    grid); the delay line and the filter carry over to the next mini-batch."""
    dt, tau, D = 1.0, 4.0, 6
    nm = Neuromodulator(np, np.float64, 2, dt, D * dt, tau, 0.0)
    u = np.zeros((20, 2))
    u[10:, 0] = 1.0
    M = nm.signal(u)
    a = math.exp(-dt / tau)
    assert np.all(M[:16] == 0)
    np.testing.assert_allclose(M[16:, 0], 1 - a ** (np.arange(4) + 1), atol=1e-14)
    assert np.all(M[:, 1] == 0)
    # next batch: the last D steps of the command come out first, the filter continues
    M2 = nm.signal(np.zeros((20, 2)))
    np.testing.assert_allclose(M2[:6, 0], 1 - a ** (np.arange(4, 10) + 1), atol=1e-14)
    np.testing.assert_allclose(M2[6:, 0], (1 - a ** 10) * a ** (np.arange(14) + 1), atol=1e-14)
    # a pulse of area 1 decays as (1 - a) a^k: the filter has unit gain
    nm = Neuromodulator(np, np.float64, 1, dt, 0.0, tau, 0.0)
    p = np.zeros((200, 1))
    p[0] = 1.0
    np.testing.assert_allclose(nm.signal(p)[:, 0], (1 - a) * a ** np.arange(200), atol=1e-15)


def test_neuromodulator_noise_is_ou_with_sigma():
    sigma, dt, tau = 0.5, 1.0, 10.0
    nm = Neuromodulator(np, np.float64, 4, dt, 0.0, tau, sigma)
    M = np.concatenate([nm.signal(np.zeros((50_000, 4)), Random(np, 0, 3, k)) for k in range(4)])
    assert abs(M.std() - sigma) < 0.03
    a = math.exp(-dt / tau)
    ac = np.mean([np.corrcoef(M[:-1, c], M[1:, c])[0, 1] for c in range(4)])
    assert abs(ac - a) < 0.01
    white = Neuromodulator(np, np.float64, 1, dt, 0.0, 0.0, sigma).signal(np.zeros((100_000, 1)),
                                                                         Random(np, 0, 3, 9))
    assert abs(white.std() - sigma) < 0.01 and abs(np.corrcoef(white[:-1, 0], white[1:, 0])[0, 1]) < 0.02


@pytest.mark.parametrize("tau", [0.0, 20.0])
def test_neuromodulator_noise_does_not_depend_on_dt(tau):
    """The noise is defined in continuous time: its mean over 30 ms windows has the same
    standard deviation at dt = 1 and 0.25 ms — for white noise (tau_M = 0) sigma sqrt(1 ms / T)."""
    T, ch, sigma = 30.0, 400, 0.7
    stds = []
    for dt in (1.0, 0.25):
        n = int(round(T / dt))
        nm = Neuromodulator(np, np.float64, ch, dt, 0.0, tau, sigma)
        M = nm.signal(np.zeros((n * 50, ch)), Random(np, 9, 4, int(dt * 4)))
        w = M.reshape(50, n, ch).mean(axis=1)[5:]  # window means (after the OU's onset)
        stds.append(w.std())
    se = stds[0] * math.sqrt(2.0 / (45 * ch))  # relative error of a sample std
    assert abs(stds[0] - stds[1]) < 5 * se * math.sqrt(2)
    if tau == 0.0:
        assert abs(stds[1] - sigma * math.sqrt(1.0 / T)) < 5 * se


def test_crosstalk_matrix():
    K, chi = 10, 0.3
    C = mix(np.eye(K), chi)
    assert np.allclose(np.diag(C), 1 - chi)
    assert np.allclose(C[~np.eye(K, dtype=bool)], chi / (K - 1))
    e = np.random.default_rng(0).standard_normal((5, K))
    assert np.allclose(mix(e, chi).sum(axis=1), e.sum(axis=1))  # the total is conserved
    assert mix(e, 0.0) is e


@pytest.mark.parametrize("tau", [0.0, 3.0, 50.0])
def test_eligibility_reordering_is_exact(tau):
    """Σ_k dt M_k E_k with E_k = a E_{k-1} + (1 - a) c_k equals Σ_j c_j m_j + a dt S_0 E_{-1}, and
    the carried trace is a^L E_{-1} + Σ_j v_j c_j."""
    rng = np.random.default_rng(1)
    L, dt = 300, 0.5
    M = rng.standard_normal((L, 2))
    c = rng.standard_normal(L)
    E0 = 0.7
    el = Eligibility(dt, tau)
    a = el.a
    E, direct = E0, np.zeros(2)
    for k in range(L):
        E = a * E + (1 - a) * c[k]
        direct += dt * M[k] * E
    m, v, s0 = el.weights(M)
    got = (c[:, None] * m).sum(axis=0)
    if v is not None:
        got += a * dt * s0 * E0
        np.testing.assert_allclose(el.carried_decay(L) * E0 + (v * c).sum(), E, atol=1e-12)
    np.testing.assert_allclose(got, direct, atol=1e-10)


@pytest.mark.parametrize("tau_ref", [0.0, 0.4, 2.5])
def test_lif_crossings_by_mask_equal_by_index(tau_ref):
    """The GPU's way (masks over every neuron, a static bound on crossings per step) gives the
    CPU's spikes and states, also with several spikes per step."""
    rng = np.random.default_rng(4)
    drive = rng.uniform(-0.5, 30.0, size=(2, 40, 300))  # excess over the rheobase, up to ~3 kHz
    out = []
    for masks in (False, True):
        u, rho = np.ones(300), np.zeros(300)
        out.append((lif(drive, u, rho, 0.01, tau_ref * 1e-3, 1e-3, 40, masks=masks), u, rho))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert out[0][0].max() >= 2 or tau_ref >= 1.0  # several spikes in a step are exercised
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-12)
    np.testing.assert_allclose(out[0][2], out[1][2], atol=1e-15)
