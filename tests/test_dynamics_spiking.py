"""Spiking circuits in time: their mean dynamics are the rate circuit's.

* LIF neurons at rest (no stimulus, no bias) fire at the baseline r0 in every layer;
* at initialisation the mean rate of every layer of a Poisson or LIF circuit equals the
  rate circuit's within the spike count's sampling error, and the decoded logits are
  unbiased (rates are rectified after the membrane, whose filter averages the synaptic
  noise first);
* an LIF circuit learns.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurosim.protocol import validate_protocol
from neurosim.train import Run


def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return out


def circuit(dyn, layers=(12, 8), real="grouped", n_train=64, lr=0.05, epochs=1, seed=3, noise=1.0, opt="sgd"):
    raw = {
        "name": "t",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": n} for n in layers]},
        "realization": {"type": real, "dynamics": dyn},
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic",
                 "options": {"n_train": n_train, "n_test": 64, "shape": [1, 4, 4], "noise": noise}},
        "optimizer": {"name": opt, "lr": lr},
        "training": {"epochs": epochs, "batch_size": 16, "eval_every": 1},
        "seed": seed,
        "dtype": "float64",
        "recording": {"out": "unused.zarr"},
    }
    return Run(validate_protocol(raw))


def window_counts(dyn, run):
    """Spikes per neuron over the counting window, (n_seg, ..., B, n)."""
    c = np.flatnonzero(dyn.tl.counting())
    return run.counts[:, c].sum(axis=1)


def test_lif_at_rest_fires_at_the_baseline():
    """No stimulus and no bias: every LIF neuron is at its rest state, the stationary firing at
    r0 with a random phase; layer 1 receives exactly zero current, the later layers only the
    (weak) fluctuations of the spikes below.  Mean rate per layer = r0 within the Poisson
    error (an LIF neuron is more regular than that)."""
    dyn = {"presentation_ms": 60.0, "settle_ms": 20.0, "neurons": {"model": "lif"}}
    r = circuit(dyn)
    d = r.exp.realization.dynamics
    for i in d.layers:
        d.real.b(i)[...] = 0.0
        d.real.w(i)[...] *= 0.05  # quiet later layers: fluctuations << r0/g
    B = 64
    x = np.zeros((B,) + tuple(r.exp.x_train.shape[1:]))
    runs = d.simulate(x, (3, 1, 0), keep=B)
    T = d.tl.count_ms * 1e-3
    for run in runs:
        n = window_counts(d, run)
        expect = 20.0 * T
        se = math.sqrt(expect / n.size)
        assert abs(n.mean() - expect) < 4 * se, (n.mean() / T, 20.0)


SPIKING = {"presentation_ms": 250.0, "settle_ms": 150.0,
           "neurons": {"tau_m_ms": 50.0, "tau_syn_ms": 1.0, "tau_ref_ms": 2.0},
           "code": {"baseline_hz": 50.0, "gain_hz": 10.0}, "gating": {"tau_inh_ms": 5.0}}


@pytest.mark.parametrize("model", ["poisson", "lif"])
def test_spiking_mean_rates_and_decoded_logits_are_the_rate_circuits(model):
    """Synaptic noise is large (1 ms synaptic filter: the presynaptic activity fluctuates by
    ~7 units, beyond the -r0/g = -5 at which rates rectify), the membrane (50 ms) averages it
    before the rate is rectified: the mean rates of every layer and the decoded logits equal
    the rate circuit's within the spike count's sampling error."""
    B = 48
    rate = circuit(merge(SPIKING, {"neurons": {"model": "rate"}}))
    spk = circuit(merge(SPIKING, {"neurons": {"model": model}}))
    x = rate.exp.x_train[:B]
    dr, ds = rate.exp.realization.dynamics, spk.exp.realization.dynamics
    runs_r = dr.simulate(x, (3, 1, 0), keep=B)
    runs_s = ds.simulate(x, (3, 1, 0), keep=B)
    T = ds.tl.count_ms * 1e-3
    for rr, rs in zip(runs_r, runs_s):
        n = window_counts(ds, rs)
        expect = float(rr.mean_rate) * T
        se = math.sqrt(expect / n.size)
        assert abs(n.mean() - expect) < 4 * se, (n.mean() / T, float(rr.mean_rate))
    zr, zs = dr.decode(runs_r[-1]), ds.decode(runs_s[-1])
    diff = zs - zr
    # a Poisson count's error in activity units: sqrt(r T) / (T g) per logit
    se = math.sqrt(float(np.mean(10.0 * zr + 50.0)) * T) / (T * 10.0) / math.sqrt(diff.size)
    assert abs(diff.mean()) < 4 * se, (diff.mean(), se)


@pytest.mark.slow  # ~6 s of CPU
def test_an_lif_circuit_learns():
    """The default LIF circuit (Adam, the plausible neuromodulator: 100 ms delay, 50 ms filter,
    500 ms eligibility traces) learns a blob task: the test error of its own decoded readout
    falls from chance to well below it."""
    r = circuit({"presentation_ms": 30.0, "settle_ms": 10.0, "neurons": {"model": "lif"}},
                layers=(32, 16), n_train=128, noise=0.3, opt="adam", lr=0.01)
    real = r.exp.realization
    x, y = r.exp.x_test, r.exp.y_test

    def error():
        return float((np.argmax(real.logits(x), axis=1) != y).mean())

    before = error()
    rng = np.random.default_rng(0)
    for _ in range(4):
        perm = rng.permutation(128)
        for s in range(0, 128, 16):
            real.step(r.exp.x_train[perm[s:s + 16]], r.exp.y_train[perm[s:s + 16]])
    after = error()
    assert before > 0.8 and after < 0.7, (before, after)  # chance: 0.9 (64 test examples)


def test_update_cosine_against_gevb_given_the_circuits_own_error(tmp_path):
    """Poisson spikes, everything else ideal: the first layer's update (stimulus x gate x
    neuromodulator) is GEVB's given the circuit's own decoded error — cosine 1 — while the
    spike noise of the decoded error turns it away from GEVB given the noise-free error."""
    import xarray as xr

    from neurosim.train import run_protocol

    ideal = {"dt_ms": 1.0, "presentation_ms": 10.0, "settle_ms": 0.0, "interval_ms": 0.0,
             "neurons": {"model": "poisson", "tau_m_ms": 0.0, "tau_syn_ms": 0.0}, "code": {"rectify": True},
             "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
             "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0}}
    raw = {
        "name": "t",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": 12}, {"type": "dense", "units": 8}]},
        "realization": {"type": "grouped", "dynamics": ideal},
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 32, "n_test": 16, "shape": [1, 4, 4]}},
        "optimizer": {"name": "sgd", "lr": 0.05},
        "training": {"epochs": 1, "batch_size": 16, "eval_every": 1},
        "seed": 3, "dtype": "float64",
        "recording": {"out": str(tmp_path / "s.zarr"),
                      "trajectories": {"every": 1, "samples": 2, "units": 3, "snapshot_every": 0,
                                       "chunk": 4, "synapses": 2}},
    }
    run_protocol(validate_protocol(raw))
    ds = xr.open_zarr(str(tmp_path / "s.zarr"))
    own, clean = ds["update_cosine_own_error"], ds["update_cosine"]
    assert own.dims == ("sim_step", "circuit_layer") and own.attrs["units"] == "1"
    assert "own" in own.attrs["long_name"]
    np.testing.assert_allclose(own.values[:, 0], 1.0, atol=1e-12)
    assert float(clean.values[:, 0].max()) < 0.999


IDEAL = {"presentation_ms": 10.0, "settle_ms": 0.0, "interval_ms": 0.0,
         "neurons": {"model": "rate", "tau_m_ms": 0.0}, "code": {"rectify": False},
         "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
         "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0}}


@pytest.mark.parametrize("tau_M", [0.0, 4.0])
def test_update_noise_does_not_depend_on_dt(tau_M):
    """The same circuit at dt = 1 and 0.25 ms with a noisy neuromodulator: the noise part of the
    update (with noise minus without) has the same standard deviation within its error."""
    x = y = None
    stds = []
    for dt in (1.0, 0.25):
        clean = circuit(merge(IDEAL, {"dt_ms": dt}))
        noisy = circuit(merge(IDEAL, {"dt_ms": dt, "neuromodulator": {"noise": 1.0, "tau_ms": tau_M}}))
        if x is None:
            x, y = clean.exp.x_train[:16], clean.exp.y_train[:16]
        dc, dn = clean.exp.realization.dynamics, noisy.exp.realization.dynamics
        r = dc.net.readout
        g0 = dc.trial(x, y)[4][(r, "b")]
        samples = [dn.trial(x, y)[4][(r, "b")] - g0 for _ in range(60)]
        stds.append(np.std(samples))
    se = stds[0] * math.sqrt(1.0 / (60 * 10 - 1))  # sample std of 600 values (K = 10 channels)
    assert abs(stds[0] - stds[1]) < 5 * se * math.sqrt(2), stds


def test_the_realization_says_whether_its_update_is_exact():
    """The circuits' own account of their agreement with batched GEVB (what ``compare`` shows):
    any departure from the ideal dynamics, spiking input included, makes them approximate."""
    from neurosim.analysis.compare import RunData, agreement_note
    from neurosim.realizations import REALIZATIONS

    G, T = REALIZATIONS["grouped"], REALIZATIONS["temporal"]
    assert G.agreement({}).startswith("exact") and T.agreement({}).startswith("exact")
    assert G.agreement({"dynamics": IDEAL}).startswith("exact")
    for change in ({"neurons": {"model": "lif", "tau_m_ms": 10.0}, "code": {"rectify": True}},
                   {"neurons": {"input_spikes": True}, "code": {"rectify": True}},
                   {"neuromodulator": {"noise": 0.1}}, {"eligibility": {"tau_e_ms": 5.0}}):
        assert G.agreement({"dynamics": merge(IDEAL, change)}).startswith("approximate"), change
    assert T.agreement({"gating": "first_bin"}).startswith("approximate")
    assert "every 3 steps" in G.agreement({"relaxation": {"schedule": "every_n", "every": 3}})
    run = RunData("x", "x", "temporal", "", np.zeros(0), np.zeros(0), np.zeros(0),
                  realization_options={"gating": "external", "dynamics": None})
    assert agreement_note(run) == T.agreement({"gating": "external"})
    run.realization_options = {"gating": "sideways"}
    assert agreement_note(run).startswith("unknown")


@pytest.mark.parametrize("dyn, key", [
    ({"dt_ms": 1e-7}, "realization.dynamics.dt_ms"),
    ({"presentation_ms": 1e8}, "realization.dynamics.presentation_ms"),
    ({"neuromodulator": {"delay_ms": 1e12}}, "realization.dynamics.neuromodulator.delay_ms"),
    ({"dt_ms": 5e-324}, "realization.dynamics.presentation_ms"),
    ({"presentation_ms": 200.0}, "realization.dynamics.presentation_ms"),
])
def test_the_memory_estimate_includes_the_time_course(dyn, key):
    """A plausible circuit (512/256 units, batch 512, 200 ms presentations) and extreme durations
    are refused at validation with the estimate, naming the key, within a 4 GiB budget; the
    same circuit at 50 ms fits."""
    from neurosim.core.options import ConfigError

    def raw(d):
        return {"name": "t", "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                                         "layers": [{"type": "dense", "units": 512},
                                                    {"type": "dense", "units": 256}]},
                "realization": {"type": "grouped", "dynamics": d}, "rule": {"name": "gevb"},
                "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32,
                                                             "shape": [1, 28, 28]}},
                "training": {"batch_size": 512, "memory_gib": 4}, "recording": {"out": "unused.zarr"}}

    with pytest.raises(ConfigError) as exc:
        validate_protocol(raw(dyn))
    assert exc.value.key == key, str(exc.value)
    assert "GiB" in str(exc.value) or "steps of dt_ms" in str(exc.value)
    validate_protocol(raw({"presentation_ms": 50.0, "dt_ms": 1.0}))


def test_a_refractory_period_between_steps_is_exact():
    """tau_ref 2.5 ms at dt 1 ms is accepted and not rounded: the circuit's LIF neurons fire at
    the f-I curve's rate for tau_ref = 2.5 ms, not 2 or 3 ms."""
    from neurosim.realizations.dynamics.neurons import lif_drive, lif_rate

    dyn = {"presentation_ms": 400.0, "settle_ms": 100.0,
           "neurons": {"model": "lif", "tau_ref_ms": 2.5, "tau_m_ms": 10.0},
           "code": {"baseline_hz": 200.0, "gain_hz": 10.0}}
    d = circuit(dyn).exp.realization.dynamics
    for i in d.layers:
        d.real.b(i)[...] = 0.0
        d.real.w(i)[...] = 0.0  # every neuron at its rest drive: 200 Hz
    runs = d.simulate(np.zeros((8, 1, 4, 4)), (3, 1, 0), keep=8)
    n = window_counts(d, runs[0])
    rate = n.mean() / (d.tl.count_ms * 1e-3)
    assert abs(rate - 200.0) < 4 * math.sqrt(200.0 * d.tl.count_ms * 1e-3 / n.size) / (d.tl.count_ms * 1e-3)
    # (the drive of 200 Hz at 2.5 ms fires at 222 Hz with 2 ms, at 182 Hz with 3 ms)
    drive = lif_drive(np.array([200.0]), 0.01, 0.0025)
    assert float(lif_rate(drive, 0.01, 0.002)[0]) > 215 and float(lif_rate(drive, 0.01, 0.003)[0]) < 185
