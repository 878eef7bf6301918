"""neurosim's circuits in time against Brian2, from the same weights and inputs.

The Brian2 side (``benchmarks/brian2_side.py``) is written by hand in Brian2's own terms
(equations, ``exact`` integration, summed variables, linked variables, refractoriness, a
stochastic threshold) and runs in Brian2's own environment (``benchmarks/brian2_env.py``,
created on first use from the package index: the tests skip only when the index is
unreachable), one Brian2 process for the tasks of this module (``brian2_env.Session``).  The
neurosim side uses the engine's own pieces: the filters of ``realizations/dynamics/timeline.py``,
the LIF integrator and the Poisson sampler of ``neurons.py``, the neuromodulator of
``neuromodulator.py`` and the eligibility weights of ``plasticity.py``.  Brian2 runs with its
``numpy`` code-generation target (no compilation, the fastest to start for networks this small).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import brian2_env
from neurosim.realizations.dynamics.neuromodulator import Neuromodulator
from neurosim.realizations.dynamics.neurons import Random, lif, poisson
from neurosim.realizations.dynamics.plasticity import Eligibility
from neurosim.realizations.dynamics.timeline import decay, relax


@pytest.fixture(scope="module")
def brian2():
    """Run a task of the Brian2 side (the environment is created once, then cached), every
    task of this module in one Brian2 process (Brian2 imported once)."""
    try:
        brian2_env.ensure()
    except brian2_env.Unavailable as exc:
        pytest.skip(str(exc))
    with brian2_env.Session() as session:
        yield session.run


def _piecewise(rng, T, n, hold, lo=-1.0, hi=1.0):
    """(T, n) values held for ``hold`` steps at a time."""
    v = rng.uniform(lo, hi, (-(-T // hold), n))
    return np.repeat(v, hold, axis=0)[:T]


# ---------------------------------------------------------------------------------------------
# a leaky rate cascade with gating


def neurosim_cascade(x, Ws, bs, ts, thr, dt, tau_m, tau_inh):
    """The grouped circuit's layers in neurosim's terms (realizations/dynamics/grouped.py):
    I = W pre + b; the gate relaxes toward Theta(t . I) (from 1, open); the membrane relaxes
    toward G I (from 0) and the rate sent on is rectified after it, max(a, thr).  Arrays
    (1 segment, T steps, K, n)."""
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
        m = relax(v, a_m, 0.0, T)
        clipped += int((m < thr).sum())
        a = np.maximum(m, thr)
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
    60 and 2000 Hz, 150 ms at dt 0.5 ms: the same spike count per neuron, every spike in the same
    step or one step apart.

    neurosim's LIF is exact in continuous time (spike times within the step, the refractory
    period from the crossing), so Brian2, which detects crossings at the end of its steps, runs
    the same drive at dt / 400 (1.25 us), with the same refractory period (its interval at
    2000 Hz is then within its dt of the exact 2.5129 ms).  Brian2's spikes drift from the
    exact times by about 10 of its steps per spike under this changing drive (measured: within
    one neurosim step over 150 ms at dt / 400 and over 300 ms at dt / 1000, not at dt / 200;
    neurosim itself gives the same spike steps at dt and dt / 50).
    """
    rng = np.random.default_rng(1)
    dt, tau_m, tau_ref, T, N, F = 0.5, 10.0, 2.0, 300, 40, 400
    mu = _piecewise(rng, T, N, 20, 60.0, 2000.0)
    u, rho = np.ones(N), np.zeros(N)
    counts = lif(tau_m * 1e-3 * mu[None] - 1.0, u, rho, tau_m * 1e-3, tau_ref * 1e-3, dt * 1e-3, T)[0]
    out = brian2("lif", {"mu": np.repeat(mu, F, axis=0), "dt_ms": dt / F, "tau_m_ms": tau_m,
                         "refractory_ms": tau_ref})
    # (Brian2's spikes drift from the exact times: a spike of the last steps may fall on the
    # other side of the end)
    ours = [s[s < T - 2] for s in _spike_steps(counts)]
    theirs = [(lambda s: s[s < T - 2])(np.sort(out["step"][out["i"] == k]) // F) for k in range(N)]
    n_ours = np.array([len(s) for s in ours])
    n_theirs = np.array([len(s) for s in theirs])
    np.testing.assert_array_equal(n_ours, n_theirs, err_msg="spike counts per neuron")
    for k in range(N):
        assert np.abs(ours[k] - theirs[k]).max(initial=0) <= 1, f"neuron {k}: spike times"
    # the comparison is not empty: most neurons fire, some are silent part of the time (drive below
    # 1 / tau_m) and the refractory period shapes the intervals at the strongest drive
    assert n_ours.sum() > 500 and (n_ours > 0).mean() > 0.9
    isi = np.concatenate([np.diff(s) for s in ours])
    x = tau_m * 1e-3 * 2000.0  # 2000 Hz: an interval of tau_ref + tau_m ln(x / (x - 1)) = 2.51 ms
    assert isi.min() == int((tau_ref + tau_m * np.log(x / (x - 1))) // dt)


# ---------------------------------------------------------------------------------------------
# the neuromodulator and the eligibility traces


def test_neuromodulator_and_eligibility_equal_brian2(brian2):
    """The neuromodulator (3 channels commanded in windows, delay 30 ms, low-pass 20 ms) and the
    eligibility traces (tau_e 200 ms) of 6 x 5 synapses whose presynaptic rates and postsynaptic
    gates change every 25 ms, 600 ms at dt 1 ms.  Brian2 integrates every trace step by step and
    accumulates sum_k dt M_k E_k per synapse; neurosim never forms the traces: it weights each
    coincidence by the backward-filtered neuromodulator (plasticity.py), in two mini-batches
    with the trace carried from the first into the second.  M(t), E(t), the accumulated products
    and the trace left at the end are equal to 1e-6."""
    rng = np.random.default_rng(2)
    dt, T, ch, n_pre, n_post = 1.0, 600, 3, 6, 5
    delay, tau_M, tau_e = 30.0, 20.0, 200.0
    u = np.zeros((T, ch))
    for c in range(ch):  # command windows of 30 ms at different moments
        s = 60 + 150 * c
        u[s:s + 30, c] = rng.normal(0, 1)
        u[s + 300:s + 330, c] = rng.normal(0, 1)
    pre = _piecewise(rng, T, n_pre, 25)
    post = _piecewise(rng, T, n_post, 25, 0.0, 1.0)
    chan = np.arange(n_post) % ch
    out = brian2("trace", {"u": u, "pre": pre, "post": post, "chan": chan, "dt_ms": dt,
                           "delay_ms": delay, "tau_M_ms": tau_M, "sigma": 0.0, "tau_e_ms": tau_e})
    # the neuromodulator: delay line and filter, across two mini-batches of the stream
    nm = Neuromodulator(np, np.float64, ch, dt, delay, tau_M, 0.0)
    M = np.concatenate([nm.signal(u[:T // 2]), nm.signal(u[T // 2:])])
    np.testing.assert_allclose(M, out["M"], rtol=1e-6, atol=1e-9, err_msg="M(t)")
    assert np.flatnonzero(M[:, 0])[0] == 60 + int(delay / dt)  # the delay is in the comparison
    # the traces themselves, by neurosim's filter (synapse s: pre syn_pre[s] -> post syn_post[s])
    c = pre[:, out["syn_pre"]] * post[:, out["syn_post"]]
    E = relax(c[None], decay(dt, tau_e), 0.0, T)[0]
    np.testing.assert_allclose(E, out["E"], rtol=1e-6, atol=1e-9, err_msg="E(t)")
    # the update: coincidences weighted by the neuromodulator that will meet their trace
    el = Eligibility(dt, tau_e)
    acc = np.zeros((n_pre, n_post))
    E_carried = np.zeros((n_pre, n_post))
    for half in (slice(0, T // 2), slice(T // 2, T)):
        m, v, s0 = el.weights(M[half])
        acc += pre[half].T @ (post[half] * m[:, chan])  # sum_j c_j m_j
        acc += el.a * dt * s0[chan] * E_carried  # the carried trace meets this batch's M
        E_carried = E_carried * el.carried_decay(T // 2) + pre[half].T @ (post[half] * v[:, None])
    ref = np.zeros((n_pre, n_post))
    ref[out["syn_pre"], out["syn_post"]] = out["acc"]
    np.testing.assert_allclose(acc, ref, rtol=1e-6, atol=1e-9 * np.abs(ref).max(), err_msg="sum dt M E")
    np.testing.assert_allclose(E_carried[out["syn_pre"], out["syn_post"]], out["E"][-1], rtol=1e-6,
                               atol=1e-12, err_msg="the trace carried on")
    assert np.abs(ref).min() > 0  # every synapse met the neuromodulator


def test_neuromodulator_noise_statistics_agree_with_brian2(brian2):
    """The neuromodulator's noise (sigma 0.7, correlation time 10 ms) on 400 channels for 1 s at
    dt 0.2 ms: stationary variance and autocorrelation at lags tau_M / 2, tau_M and 2 tau_M
    agree with Brian2's Ornstein-Uhlenbeck process within their sampling error (about 1 %
    for the variance, 0.01 for the autocorrelation).  Brian2 integrates it by Euler-Maruyama,
    whose variance is sigma^2 / (1 - dt / 2 tau) (+1 % here); neurosim's update is exact."""
    dt, T, ch, tau_M, sigma = 0.2, 5_000, 400, 10.0, 0.7
    u = np.zeros((T, ch))
    out = brian2("trace", {"u": u, "dt_ms": dt, "delay_ms": 0.0, "tau_M_ms": tau_M, "sigma": sigma,
                           "seed": 3})
    nm = Neuromodulator(np, np.float64, ch, dt, 0.0, tau_M, sigma)
    rnd = Random(np, 3, 7)
    # the stationary process: the first 10 tau_M (from 0) dropped on both sides
    ours, theirs = (x[500:] for x in (nm.signal(u, rnd), out["M"]))

    def stats(x):
        var = x.var()
        lags = [int(round(f * tau_M / dt)) for f in (0.5, 1.0, 2.0)]
        ac = [np.mean(x[:-L] * x[L:]) / var for L in lags]
        return var, np.array(ac)

    v_ns, ac_ns = stats(ours)
    v_b2, ac_b2 = stats(theirs)
    assert abs(v_ns / v_b2 - 1) < 0.04, (v_ns, v_b2)
    assert abs(v_ns / sigma**2 - 1) < 0.04
    np.testing.assert_allclose(ac_ns, ac_b2, atol=0.04)
    np.testing.assert_allclose(ac_ns, np.exp(-np.array([0.5, 1.0, 2.0])), atol=0.04)


# ---------------------------------------------------------------------------------------------
# Poisson neurons


def test_poisson_neurons_rates_and_fano_agree_with_brian2(brian2):
    """2 x 2000 rate neurons (tau_m 10 ms, r = 20 Hz + 10 Hz x activity) whose drive steps at
    50 and 150 ms, 250 ms at dt 0.1 ms, emitting Poisson spikes: the population rate in every
    5 ms bin (the transients after each step included) and the Fano factor of the counts over
    the last 100 ms agree with Brian2's within their sampling error.  Brian2's stochastic
    threshold emits at most one spike per step (probability r dt <= 0.005 here, so its Fano
    factor is below 1 by at most 0.005); neurosim draws Poisson counts."""
    dt, T, n, tau_m, r0, g = 0.1, 2500, 2000, 10.0, 20.0, 10.0
    levels = np.array([[0.0, 3.0, -1.0], [1.0, -1.5, 2.0]])  # per pattern, 0-50, 50-150, 150-250 ms
    edges = np.array([0, 500, 1500, T])
    drive = np.empty((T, 2 * n))
    for p in range(2):
        for s in range(3):
            drive[edges[s]:edges[s + 1], p * n:(p + 1) * n] = levels[p, s]
    win = 50  # 5 ms bins
    out = brian2("poisson", {"drive": drive, "dt_ms": dt, "tau_m_ms": tau_m, "r0": r0, "g": g,
                             "window": win, "seed": 4})
    # every neuron of a pattern has the same rate: one filter per pattern
    a = np.concatenate([relax(drive[None, :, p * n:p * n + 1], decay(dt, tau_m), 0.0, T)[0]
                        for p in range(2)], axis=1)
    lam = np.repeat((r0 + g * a) * (dt * 1e-3), n, axis=1)  # (T, 2n)
    counts = poisson(lam[None], Random(np, 4, 11))[0]
    ours = counts.reshape(T // win, win, 2 * n).sum(axis=1)
    theirs = out["counts"]
    for p in range(2):  # population rate per 5 ms bin: z-scores of the differences
        x, y = ours[:, p * n:(p + 1) * n], theirs[:, p * n:(p + 1) * n]
        z = (x.mean(axis=1) - y.mean(axis=1)) / np.sqrt((x.var(axis=1) + y.var(axis=1)) / n)
        assert np.abs(z).max() < 4.5 and (z**2).mean() < 2.0, (p, np.round(z, 1))
    # Fano factors of the counts in the last 100 ms (constant rate)
    tail = slice((T - 1000) // win, T // win)
    for p in range(2):
        f_ns = _fano(ours[tail, p * n:(p + 1) * n].sum(axis=0))
        f_b2 = _fano(theirs[tail, p * n:(p + 1) * n].sum(axis=0))
        se = np.sqrt(2.0 / (n - 1))
        assert abs(f_ns - f_b2) < 4 * np.sqrt(2) * se, (p, f_ns, f_b2)
        assert abs(f_ns - 1) < 4 * se


def _fano(c):
    return c.var(ddof=1) / c.mean()


# ---------------------------------------------------------------------------------------------
# the Brian2 column of python -m benchmarks


@pytest.mark.parametrize("target", ["numpy", pytest.param("cpp_standalone", marks=pytest.mark.slow)])
def test_brian2_column_runs_and_reports(brian2, monkeypatch, target):
    """The benchmark's Brian2 column on a tiny grouped circuit in time (784-6-4-1, K = 10, trials
    of 26 steps): it builds the network neurosim just timed, simulates it and reports trials/s,
    simulated s/wall s (their ratio is the trial's duration), every synapse it simulated and
    the speed ratio; with Poisson neurons, the Brian2 side alone.  With Brian2's numpy code
    generation, and (-m slow: a few minutes of C++ compilation on first use) with the
    benchmark's default, the whole network as one compiled C++ program."""
    import dataclasses

    from benchmarks import core

    def data(name, n_train, seed=0):
        x = np.random.default_rng(seed).uniform(-1, 1, (16, 1, 28, 28)).astype(np.float32)
        return x, np.arange(16) % 10, "synthetic"

    monkeypatch.setattr(core, "_dataset", data)
    if target == "numpy":  # in this module's Brian2 process (test_benchmarks.py starts its own)
        monkeypatch.setattr(brian2_env, "run", brian2)

    def tiny(name):
        w = next(x for x in core.WORKLOADS if x.name == name)
        dyn = {**w.realization["dynamics"], "dt_ms": 1.0, "presentation_ms": 10.0, "settle_ms": 4.0,
               "interval_ms": 6.0}
        return dataclasses.replace(w, circuit_overrides={"layers": [{"type": "dense", "units": 6},
                                                                    {"type": "dense", "units": 4}]},
                                   realization={**w.realization, "dynamics": dyn}, batch_size=4)

    res = core.run_workload(tiny("dynamics_grouped_rate"), steps=1, warmup=0, use_torch=False,
                            brian2={"trials": 1, "target": target})
    b = res["brian2"]
    assert b["target"] == target and b["brian2_version"] == brian2_env.BRIAN2_VERSION
    assert b["trials"] == 1 and b["run_s"] > 0 and b["trials_per_s"] == pytest.approx(1 / b["run_s"])
    assert b["sim_s_per_wall_s"] == pytest.approx(b["trials_per_s"] * 0.026)  # 2 x 10 + 6 steps of 1 ms
    assert b["n_synapses"] == 10 * (784 * 6 + 6 * 4 + 4 * 1)
    assert res["ratio_trials_neurosim_over_brian2"] == pytest.approx(
        res["neurosim"]["examples_per_s"] / b["trials_per_s"])
    # Poisson neurons: the Brian2 side alone, on the same tiny circuit
    from benchmarks import brian2_column

    *_, real, x, _, _ = core.build(tiny("dynamics_grouped_poisson"))
    p = brian2_column.run(real, x, trials=1, target=target)
    assert p["n_synapses"] == b["n_synapses"] and p["trials_per_s"] > 0
    # temporal circuits and LIF neurons have no Brian2 model (yet): said, not run
    assert "grouped" in brian2_column.supported(next(x for x in core.WORKLOADS
                                                     if x.name == "dynamics_temporal_rate"))


def test_a_failed_task_is_reported_and_the_next_one_runs(brian2):
    """The module's Brian2 process outlives a failed task: the failure is one error naming it
    and its cause, and the next task runs (1 LIF neuron driven at 500 Hz for 10 ms: spikes at
    2.23 and 6.46 ms, tau_m ln(x / (x - 1)) after the start and after each refractory period)."""
    with pytest.raises(brian2_env.Brian2Error, match=r"lif failed: KeyError: 'dt_ms'"):
        brian2("lif", {"mu": np.full((4, 1), 500.0)})
    out = brian2("lif", {"mu": np.full((100, 1), 500.0), "dt_ms": 0.1, "tau_m_ms": 10.0,
                         "refractory_ms": 2.0})
    np.testing.assert_array_equal(out["i"], [0, 0])
    np.testing.assert_allclose(out["step"], [22, 64], atol=1)
