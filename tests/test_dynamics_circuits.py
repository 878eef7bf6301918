"""Circuit dynamics (``realization.dynamics``) of the grouped and temporal circuits.

* The ideal limit reproduces the circuits without dynamics (float64, 1e-12).
* The plasticity of the engine (eligibility traces met by a delayed, filtered,
  mixed neuromodulator on the example stream, reordered into one product per
  layer) equals a brute-force reference that steps every synapse's trace
  through the stream, over two mini-batches (the carried trace and the late
  neuromodulator spilling into the next batch).
* Each non-ideality alone against its analytic expectation: the leaky
  integrator's exponential response, the inhibitory gate's relaxation, the
  eligibility decay over a delay, the fraction of neurons at zero rate.
* Checkpoints carry the dynamics' state (resume is exact); recordings are in
  ms and Hz with units and long_name on every variable.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurosim.core.options import ConfigError
from neurosim.protocol import validate_protocol
from neurosim.train import Run

IDEAL = {"dt_ms": 1.0, "presentation_ms": 5.0, "settle_ms": 0.0, "interval_ms": 0.0,
         "neurons": {"model": "rate", "tau_m_ms": 0.0}, "code": {"rectify": False},
         "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
         "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0}}


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def proto(realization, opt="sgd", lr=0.05, layers=(12, 8), batch=16, out="unused.zarr", traj=None, **train):
    raw = {
        "name": "t",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": n} for n in layers]},
        "realization": realization,
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": opt, "lr": lr},
        "training": {"epochs": 1, "batch_size": batch, "eval_every": 1, **train},
        "seed": 3,
        "dtype": "float64",
        "recording": {"out": out},
    }
    if traj is not None:
        raw["recording"]["trajectories"] = traj
    return validate_protocol(raw)


def train_steps(p, n_steps, batch=16):
    r = Run(p)
    rng = np.random.default_rng(0)
    for _ in range(n_steps):
        idx = rng.choice(r.exp.x_train.shape[0], batch, replace=False)
        r.exp.realization.step(r.exp.x_train[idx], r.exp.y_train[idx])
    return r


def max_diff(r1, r2):
    return max(float(np.abs(p1 - r2.exp.net.layers[i].params[n]).max())
               for i, n, p1 in r1.exp.net.parameters())


# ----------------------------------------------------------------------------
CIRCUITS = [{"type": "grouped"}, {"type": "grouped", "relaxation": {"schedule": "never"}},
            {"type": "temporal", "gating": "full"}, {"type": "temporal", "gating": "first_bin"},
            {"type": "temporal", "gating": "external"}, {"type": "temporal", "error_timing": "mse_online"}]


@pytest.mark.parametrize("real", CIRCUITS,
                         ids=lambda r: "-".join(f"{v}" for v in r.values() if isinstance(v, str)))
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_ideal_dynamics_are_the_circuit(real, opt):
    ref = train_steps(proto(real, opt=opt), 5)
    run = train_steps(proto({**real, "dynamics": IDEAL}, opt=opt), 5)
    assert max_diff(ref, run) < 1e-12
    assert run.exp.realization.dynamics is not None and ref.exp.realization.dynamics is None
    if real["type"] == "grouped":
        for i in ref.exp.realization.layers[1:]:
            assert np.abs(ref.exp.realization.w(i) - run.exp.realization.w(i)).max() < 1e-12
    diff = ref.exp.realization.predict(ref.exp.x_test, 10) - run.exp.realization.predict(run.exp.x_test, 10)
    assert np.abs(diff).max() < 1e-12


def test_absent_dynamics_change_nothing():
    for real in ({"type": "grouped"}, {"type": "temporal"}):
        p = proto(real)
        assert p["realization"]["dynamics"] is None  # absent stays absent (not the defaults)
        r = Run(p)
        assert r.exp.realization.dynamics is None
        assert not any(k.startswith("dyn.") for k in r.exp.realization.state_dict())
    # present but empty: the biologically plausible defaults
    p = proto({"type": "grouped", "dynamics": {}})
    assert p["realization"]["dynamics"]["eligibility"]["tau_e_ms"] == 500.0


# ----------------------------------------------------------------------------
# brute-force reference of the plasticity

def _activity(dyn, runs, pos, b, s, k):
    """pre (per synapse layout) and post gate of layer ``pos`` for example b, segment s, step k."""
    run = runs[pos]

    def at(a):
        return a[s, k if a.shape[1] > 1 else 0]

    G = np.ones(1) if run.G is None else at(run.G)[b]
    if dyn.name == "grouped":
        pre = at(run.pre)[b] if pos == 0 else at(run.pre)[:, b]  # (n0,) or (K, n_in)
    elif pos == 0:
        pre = run.pre[0, 0][b]  # the stimulus (n0,): population s carries it in bin s
    else:
        pre = at(run.pre)[b]  # (n_in,)
    return pre, G


def reference(dyn, batches):
    """Per-synapse traces stepped through the stream of all ``batches`` (list of (pres, replay,
    e)); returns the per-batch (dW, db) of every layer, normalised like the engine."""
    tl = dyn.tl
    K, dt = dyn.K, dyn.dt
    a_e = math.exp(-dt / dyn.opts["eligibility"]["tau_e_ms"]) if dyn.opts["eligibility"]["tau_e_ms"] else 0.0
    nm = dyn.opts["neuromodulator"]
    a_m = math.exp(-dt / nm["tau_ms"]) if nm["tau_ms"] else 0.0
    D = int(round(nm["delay_ms"] / dt))
    chi = nm["crosstalk"]
    if nm["crosstalk_structure"] == "neighbours":  # χ/2 to each adjacent index, open chain
        C = (1 - chi) * np.eye(K) + chi / 2 * (np.eye(K, k=1) + np.eye(K, k=-1))
    else:
        C = (1 - chi) * np.eye(K) + chi / (K - 1) * (1 - np.eye(K))
    grouped = dyn.name == "grouped"
    ch = K if grouped else 1
    # command on the whole stream
    cmds, acts = [], []
    for pres, replay, e in batches:
        B = e.shape[0]
        eps = (e * B) @ C.T
        for b in range(B):
            for j in range(tl.slot):
                u = np.zeros(ch)
                act = None
                p, r = divmod(j, tl.phase_steps)
                if p < tl.n_phase:
                    s, k = divmod(r, tl.n_bin)
                    counting = k >= tl.n_settle
                    runs = pres if p == 0 else (replay if replay is not None else
                                                (pres if dyn.replay_active() else None))
                    if runs is not None and counting:
                        act = (runs, b, s, k)
                    if counting:
                        if grouped and p == 1:
                            u[:] = eps[b]
                        if not grouped and p == (1 if dyn.error_timing == "replay" else 0):
                            u[0] = eps[b, s]
                cmds.append(u)
                acts.append(act)
    cmds = np.asarray(cmds)
    L = len(cmds)
    ud = np.concatenate([np.zeros((D, ch)), cmds])[:L]
    M = np.zeros((L, ch))
    m = np.zeros(ch)
    for j in range(L):
        m = a_m * m + (1 - a_m) * ud[j]
        M[j] = m
    # traces and updates
    out = []
    E = {}
    upd = {}
    j = 0
    for *_, e in batches:
        B = e.shape[0]
        upd = {}
        for _ in range(B * tl.slot):
            act = acts[j]
            for pos, i in enumerate(dyn.layers):
                W = dyn.net.layers[i].params["W"]
                if grouped:
                    shapeW = W.shape[1:] if pos == 0 else (K,) + W.shape
                    shapeB = (W.shape[-2],)
                else:
                    shapeW, shapeB = W.shape, dyn.net.layers[i].params["b"].shape
                cW = np.zeros(shapeW)
                cb = np.zeros(shapeB)
                if act is not None:
                    runs, b, s, k = act
                    pre, G = _activity(dyn, runs, pos, b, s, k)
                    if grouped:
                        cW = np.outer(G, pre) if pos == 0 else G[None, :, None] * pre[:, None, :]
                        cb = G * np.ones(shapeB)
                    else:
                        if pos == 0:
                            cW[s] = np.outer(G, pre)
                        else:
                            cW = np.outer(G, pre)
                        cb[s] = G
                EW = E.get((i, "W"), np.zeros(shapeW)) * a_e + (1 - a_e) * cW
                Eb = E.get((i, "b"), np.zeros(shapeB)) * a_e + (1 - a_e) * cb
                E[(i, "W")], E[(i, "b")] = EW, Eb
                if grouped:  # channel μ -> component-μ synapses
                    dW = dt * M[j][:, None, None] * (EW[None] if pos == 0 else EW)
                    db = dt * M[j][:, None] * Eb[None]
                else:
                    dW, db = dt * M[j, 0] * EW, dt * M[j, 0] * Eb
                upd[(i, "W")] = upd.get((i, "W"), 0) + dW
                upd[(i, "b")] = upd.get((i, "b"), 0) + db
            j += 1
        norm = 1.0 / (B * tl.count_ms)
        out.append({k: v * norm for k, v in upd.items()})
    return out


NONIDEAL = {"dt_ms": 1.0, "presentation_ms": 4.0, "settle_ms": 1.0, "interval_ms": 3.0,
            "neurons": {"model": "rate", "tau_m_ms": 2.0}, "code": {"baseline_hz": 20.0, "gain_hz": 10.0},
            "gating": {"tau_inh_ms": 1.5}, "eligibility": {"tau_e_ms": 6.0},
            "neuromodulator": {"delay_ms": 5.0, "tau_ms": 3.0, "noise": 0.0, "crosstalk": 0.2}}
NEIGHBOURS = {"neuromodulator": {"crosstalk": 0.6, "crosstalk_structure": "neighbours"}}


@pytest.mark.parametrize("real", [{"type": "grouped", "compensate_k": False},
                                  {"type": "temporal", "gating": "first_bin"},
                                  {"type": "temporal", "error_timing": "mse_online"}],
                         ids=["grouped", "temporal", "temporal-online"])
@pytest.mark.parametrize("variant", [{}, {"replay": False}, {"neurons": {"model": "poisson"}}, NEIGHBOURS],
                         ids=["rates", "no-replay", "poisson", "neighbours"])
def test_plasticity_equals_brute_force_traces(real, variant):
    if variant.get("replay") is False and real.get("error_timing") == "mse_online":
        pytest.skip("no replay in mse_online")
    dynopts = merge(NONIDEAL, variant)
    r = Run(proto({**real, "dynamics": dynopts}, layers=(6, 4), batch=3))
    dyn = r.exp.realization.dynamics
    got, batches = [], []
    for sl in (slice(0, 3), slice(3, 6)):  # two mini-batches, fixed weights
        x, y = r.exp.x_train[sl], r.exp.y_train[sl]
        _, _, _, e, grads = dyn.trial(x, y)
        got.append(grads)
        batches.append((dyn.last["pres"], dyn.last["replay"], e))
    ref = reference(dyn, batches)
    for g, rf in zip(got, ref):
        for key in rf:
            scale = np.abs(rf[key]).max()
            assert scale > 0, key
            np.testing.assert_allclose(g[key], rf[key], rtol=0, atol=1e-7 * scale, err_msg=str(key))
    # the second batch got something from the first (carried trace / late neuromodulator)
    assert dyn.E is not None


def test_late_neuromodulator_meets_the_next_examples():
    """With a delay longer than the trial, each example's error lands on the next example's
    coincidences: the update differs from the same examples trained one per batch in isolation."""
    d = merge(IDEAL, {"presentation_ms": 4.0, "interval_ms": 0.0, "eligibility": {"tau_e_ms": 0.0},
                      "neuromodulator": {"delay_ms": 8.0}})
    r = Run(proto({"type": "grouped", "dynamics": d}, layers=(6, 4), batch=2))
    dyn = r.exp.realization.dynamics
    _, _, _, e, g = dyn.trial(r.exp.x_train[:2], r.exp.y_train[:2])
    # slot = 8 steps; the command of example 0 (replay, steps 4-7) arrives at steps 12-15: the
    # replay of example 1 -- which then learns example 0's error with its own activity
    ideal = Run(proto({"type": "grouped", "dynamics": merge(IDEAL, {"presentation_ms": 4.0})},
                      layers=(6, 4), batch=2)).exp.realization
    logits, states = ideal._forward(r.exp.x_train[1:2])
    ref = ideal._grads(states, e[0:1])  # example 0's error, example 1's activity
    for key in ref:
        np.testing.assert_allclose(g[key], ref[key], atol=1e-12, err_msg=str(key))


# ----------------------------------------------------------------------------
# each non-ideality alone

def _first_layer(dyn_opts, real=None, n=5):
    r = Run(proto({**(real or {"type": "grouped"}), "dynamics": dyn_opts}))
    dyn = r.exp.realization.dynamics
    x = r.exp.x_train[:n]
    runs = dyn.simulate(x, (3, 1, 0), keep=n)
    return r, dyn, x, runs


def test_leaky_integrator_exact_exponential_response():
    tau = 4.0
    d = merge(IDEAL, {"presentation_ms": 12.0, "neurons": {"tau_m_ms": tau}})
    r, dyn, x, runs = _first_layer(d)
    _, states = r.exp.realization._forward(x)
    a_inf = states[0][2]  # (K, B, n): the circuit's steady rates G h
    t = (np.arange(12) + 1) * 1.0
    expect = a_inf[None] * (1 - np.exp(-t / tau))[:, None, None, None]
    np.testing.assert_allclose(runs[0].out[0], expect, atol=1e-12)
    # rates in Hz: r0 + g a
    np.testing.assert_allclose(runs[0].rate[0], 20.0 + 10.0 * expect, atol=1e-9)


def test_inhibitory_gate_relaxes_from_open():
    tau = 3.0
    d = merge(IDEAL, {"presentation_ms": 10.0, "gating": {"tau_inh_ms": tau}})
    r, dyn, x, runs = _first_layer(d)
    _, states = r.exp.realization._forward(x)
    target = states[0][3]  # (B, n) Θ(t·h)
    t = (np.arange(10) + 1.0)
    expect = target[None] + (1 - target[None]) * np.exp(-t / tau)[:, None, None]
    np.testing.assert_allclose(runs[0].G[0], expect, atol=1e-12)
    # the gated neurons are silenced only gradually: the rate follows G(t) h
    h = states[0][1]
    np.testing.assert_allclose(runs[0].out[0], expect[:, None] * h[None], atol=1e-12)


def test_temporal_first_bin_gate_follows_bin0_then_holds():
    d = merge(IDEAL, {"presentation_ms": 6.0, "gating": {"tau_inh_ms": 2.0}})
    r, dyn, x, runs = _first_layer(d, {"type": "temporal", "gating": "first_bin"})
    _, states = r.exp.realization._present(x)
    target = states[0][3]  # Θ(t_0 h_0), (B, n)
    G = runs[0].G  # (K bins, 6 steps, B, n), continuous across bins
    flat = G.reshape(-1, *G.shape[2:])
    t = np.arange(flat.shape[0]) + 1.0
    expect = target[None] + (1 - target[None]) * np.exp(-t / 2.0)[:, None, None]
    np.testing.assert_allclose(flat, expect, atol=1e-12)


def test_eligibility_decay_over_a_delay():
    """No replay: the trace of the presentation's coincidences (built over T_c, tau_e) decays
    over the delay until the neuromodulator arrives; the update is the ideal one times
    (1 - e^{-T_c/tau}) e^{-(settle + d)/tau} Σ_k e^{-k dt/tau} dt / T_c (exact on the grid)."""
    tau, N, settle, D, dt = 8.0, 6, 2, 5, 1.0
    d = merge(IDEAL, {"presentation_ms": N * dt, "settle_ms": settle * dt, "interval_ms": 20.0,
                      "replay": False, "eligibility": {"tau_e_ms": tau},
                      "neuromodulator": {"delay_ms": D * dt}})
    r = Run(proto({"type": "grouped", "dynamics": d}, batch=1))
    dyn = r.exp.realization.dynamics
    x, y = r.exp.x_train[:1], r.exp.y_train[:1]
    _, _, _, e, g = dyn.trial(x, y)
    ideal = Run(proto({"type": "grouped"}, batch=1)).exp.realization
    logits, states = ideal._forward(x)
    ref = ideal._grads(states, e)
    Nc = N - settle
    a = math.exp(-dt / tau)
    # trace at the end of the presentation: 1 - a^Nc; the command is on over the replay's
    # counting steps (N + settle .. 2N - 1), delayed by D; each step k after the end meets a^(k+1)
    steps = np.arange(N + settle, 2 * N) + D - (N - 1)
    # the continuous-time trace sampled on the grid: 1 - e^{-T_c/tau}, then e^{-t/tau}
    f = (1 - math.exp(-Nc * dt / tau)) * sum(math.exp(-s * dt / tau) for s in steps) * dt / (Nc * dt)
    assert 0 < f < 1 and abs(f - (1 - a ** Nc) * (a ** steps).sum() / Nc) < 1e-12
    for key in ref:
        np.testing.assert_allclose(g[key], f * ref[key], atol=1e-12, err_msg=str(key))


def test_zero_rate_fraction():
    """With r0 = 0 every negative (and every silenced) activity is at zero rate."""
    d = merge(IDEAL, {"code": {"baseline_hz": 0.0, "rectify": True}})
    r, dyn, x, runs = _first_layer(d, n=16)
    _, states = r.exp.realization._forward(x)
    a = states[0][2]
    assert float(runs[0].zero_fraction) == pytest.approx(float((a <= 0).mean()), abs=1e-12)
    assert float(runs[0].out.min()) == 0.0  # rectified
    # the ideal code never sits at zero rate when r0 is large
    d2 = merge(IDEAL, {"code": {"baseline_hz": 1e6, "rectify": True}})
    assert float(_first_layer(d2, n=16)[3][0].zero_fraction) == 0.0


# ----------------------------------------------------------------------------
def test_options_are_validated_with_the_key():
    def bad(dyn, key, real="grouped", **extra):
        with pytest.raises(ConfigError) as exc:
            proto({"type": real, "dynamics": dyn, **extra})
        assert exc.value.key == key, (exc.value.key, str(exc.value))

    bad({"dt_ms": 2.0, "neurons": {"tau_m_ms": 1.0}}, "realization.dynamics.neurons.tau_m_ms")
    bad({"dt_ms": 2.0, "eligibility": {"tau_e_ms": 1.0}}, "realization.dynamics.eligibility.tau_e_ms")
    bad({"neuromodulator": {"delay_ms": -1.0}}, "realization.dynamics.neuromodulator.delay_ms")
    bad({"neuromodulator": {"delay_ms": 0.5}}, "realization.dynamics.neuromodulator.delay_ms")
    bad({"neuromodulator": {"noise": float("nan")}}, "realization.dynamics.neuromodulator.noise")
    bad({"dt_ms": float("nan")}, "realization.dynamics.dt_ms")
    bad({"presentation_ms": float("inf")}, "realization.dynamics.presentation_ms")
    bad({"presentation_ms": 10.5}, "realization.dynamics.presentation_ms")
    bad({"settle_ms": 50.0}, "realization.dynamics.settle_ms")
    bad({"neuromodulator": {"crosstalk": 1.5}}, "realization.dynamics.neuromodulator.crosstalk")
    bad({"neurons": {"model": "poisson"}, "code": {"rectify": False}}, "realization.dynamics.code.rectify")
    bad({"neurons": {"model": "lif", "tau_m_ms": 0.0}}, "realization.dynamics.neurons.tau_m_ms")
    bad({"nuerons": {}}, "realization.dynamics.nuerons")
    bad({"replay": False, "eligibility": {"tau_e_ms": 0.0}}, "realization.dynamics.eligibility.tau_e_ms")
    bad({}, "realization.time_bins", time_bins=3)
    bad({}, "realization.plasticity", real="temporal", plasticity="per_bin")
    bad({"neurons": {"input_spikes": True}}, "realization.dynamics.neurons.input_spikes", real="temporal")


def test_bad_option_on_the_command_line_exits_2(tmp_path):
    import subprocess
    import sys

    import yaml

    raw = {"name": "t", "circuit": {"layers": [{"type": "dense", "units": 4}]},
           "realization": {"type": "grouped", "dynamics": {"dt_ms": 6.0}},
           "rule": {"name": "gevb"},
           "data": {"dataset": "synthetic", "options": {"n_train": 8, "n_test": 8, "shape": [1, 2, 2]}},
           "recording": {"out": str(tmp_path / "x.zarr")}}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(raw))
    res = subprocess.run([sys.executable, "-m", "neurosim.cli", "run", str(f)], capture_output=True,
                         text=True)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "realization.dynamics.neurons.tau_syn_ms" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "x.zarr").exists()


# ----------------------------------------------------------------------------
def test_checkpoint_resume_is_exact(tmp_path):
    import xarray as xr

    from neurosim.recording import Recorder
    from neurosim.train import run_protocol

    d = merge(NONIDEAL, {"neurons": {"model": "poisson"}, "neuromodulator": {"noise": 0.3}})
    real = {"type": "grouped", "relaxation": {"schedule": "never"}, "dynamics": d}
    tr = {"every": 2, "snapshot_every": 3, "chunk": 4, "samples": 2, "units": 3}
    kw = dict(opt="adam", lr=0.01, traj=tr, epochs=2, layers=(6, 4))
    full = tmp_path / "full.zarr"
    run_protocol(proto(real, out=str(full), max_steps=6, **kw))
    part = tmp_path / "part.zarr"
    run_protocol(proto(real, out=str(part), max_steps=3, **kw))
    run_protocol(proto(real, out=str(part), max_steps=6, **kw), resume=True)
    a, b = xr.open_zarr(str(full)), xr.open_zarr(str(part))
    for k in ("trial_neuromodulator", "trial_eligibility_to_hidden_2", "trial_rate_hidden_2",
              "trial_spikes_hidden_1"):
        assert np.array_equal(a[k].values, b[k].values, equal_nan=True), k
    for k in ("test_error", "train_error"):  # (the interrupted run also evaluated at its stop)
        assert a[k].values[-1] == b[k].values[-1], k
    s1, _ = Recorder(full).load_checkpoint()
    s2, _ = Recorder(part).load_checkpoint()
    assert any(k.startswith("real.dyn.elig") for k in s1)
    for k in s1:
        if k.startswith(("real.", "net.")):
            assert np.array_equal(s1[k], s2[k]), k


def test_recording_does_not_disturb_training(tmp_path):
    """The probe set runs on a stream of its own: spiking, noisy dynamics train to the same
    weights with and without trajectory records."""
    d = merge(NONIDEAL, {"neurons": {"model": "poisson"}, "neuromodulator": {"noise": 0.3}})
    real = {"type": "grouped", "relaxation": {"schedule": "never"}, "dynamics": d}
    kw = dict(opt="adam", lr=0.01, layers=(6, 4), max_steps=4)
    a = Run(proto(real, out=str(tmp_path / "a.zarr"), **kw))
    b = Run(proto(real, out=str(tmp_path / "b.zarr"), traj={"every": 1, "samples": 3, "units": 3}, **kw))
    a.train()
    b.train()
    assert b.exp.observers and not a.exp.observers
    for (i, n, p) in a.exp.net.parameters():
        assert np.array_equal(p, b.exp.net.layers[i].params[n]), (i, n)


def test_recordings_in_real_units(tmp_path):
    import xarray as xr

    from neurosim.train import run_protocol

    for real in ({"type": "grouped"}, {"type": "temporal", "gating": "first_bin"}):
        d = merge(NONIDEAL, {"neurons": {"model": "poisson"}})
        out = tmp_path / f"{real['type']}.zarr"
        run_protocol(proto({**real, "dynamics": d}, out=str(out), layers=(6, 4),
                           traj={"every": 2, "samples": 3, "units": 3, "chunk": 2}, max_steps=4))
        ds = xr.open_zarr(str(out))
        dyn_vars = [k for k in ds.data_vars if k.startswith("trial_")]
        assert {"trial_neuromodulator", "trial_command", "trial_rate_input", "trial_rate_hidden_1",
                "trial_gate_hidden_1", "trial_spikes_hidden_1", "trial_eligibility_to_hidden_1",
                "trial_rate_readout", "zero_rate_fraction", "mean_rate"} <= set(ds.data_vars)
        assert not [k for k in ds.variables if k.startswith("dyn_")]
        for k in dyn_vars + ["trial_time", "trial_phase", "trial_bin", "trial_counting"]:
            assert ds[k].attrs.get("units") and ds[k].attrs.get("long_name"), k
        assert ds["trial_time"].attrs["units"] == "ms"
        assert ds["trial_rate_hidden_2"].attrs["units"] == "Hz"
        assert ds["trial_eligibility_to_hidden_1"].attrs["units"] == "activity"
        K, S = 10, (1 if real["type"] == "grouped" else 10)
        # the whole trial: presentation, replay, rest
        np.testing.assert_allclose(ds["trial_time"].values, np.arange(1, 2 * S * 4 + 3 + 1) * 1.0)
        assert list(np.unique(ds["trial_phase"].values, return_counts=True)[1]) == [S * 4, S * 4, 3]
        rates = ds["trial_rate_hidden_1"].values
        assert np.all(rates >= 0)
        rest = ds["trial_phase"].values == 2
        assert np.all(rates[:, :, rest] == 20.0)  # at rest: the baseline
        assert np.isnan(ds["trial_spikes_hidden_1"].values[:, :, rest]).all()  # (not simulated)
        G = ds["trial_gate_hidden_1"].values
        assert np.all((G >= 0) & (G <= 1))
        M = ds["trial_neuromodulator"].values
        if real["type"] == "grouped":
            assert M.shape[-1] == K  # K channels
        else:
            assert M.ndim == 3  # one broadcast signal: (sim_step, probe, trial_time)
        assert ds["trial_rate_hidden_1"].dims[:3] == ("sim_step", "probe", "trial_time")
        assert np.abs(M).max() > 0
        # the probe set: the same test examples at every record, the trace starts at 0
        assert list(ds["probe"].values) == [0, 1, 2]
        E = ds["trial_eligibility_to_hidden_2"].values
        assert np.all(E[:, :, 0] == 0)  # no coincidence counts during settling
        # M averaged over the command windows
        assert ds["neuromodulator_bin_mean"].dims == ("sim_step", "probe", "time_bin", "channel")
        sub = ds[dyn_vars]
        sub.attrs = {}
        sub.to_netcdf(tmp_path / f"{real['type']}.nc")  # the variables and their attrs export


# ----------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("real", [{"type": "grouped"}, {"type": "temporal", "gating": "first_bin"}],
                         ids=["grouped", "temporal"])
def test_gpu_equals_cpu(real):
    """CuPy and NumPy give the same update for deterministic dynamics (float64); spiking runs on
    the GPU with its own random numbers."""
    from neurosim.core.backend import cupy_available, to_host

    if not cupy_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    p = proto({**real, "dynamics": NONIDEAL}, layers=(6, 4), batch=3)
    cpu, gpu = Run(p), Run(p, device="gpu")
    for sl in (slice(0, 3), slice(3, 6)):
        gc = cpu.exp.realization.dynamics.trial(cpu.exp.x_train[sl], cpu.exp.y_train[sl])[4]
        gg = gpu.exp.realization.dynamics.trial(gpu.exp.x_train[sl], gpu.exp.y_train[sl])[4]
        for k in gc:
            np.testing.assert_allclose(to_host(gg[k]), gc[k], rtol=1e-9, atol=1e-11, err_msg=str(k))
    spk = Run(proto({**real, "dynamics": merge(NONIDEAL, {"neurons": {"model": "poisson"}})},
                    layers=(6, 4), batch=3), device="gpu")
    g = spk.exp.realization.dynamics.trial(spk.exp.x_train[:3], spk.exp.y_train[:3])[4]
    assert all(np.isfinite(to_host(v)).all() for v in g.values())
