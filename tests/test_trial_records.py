"""Trial records of the circuits in time (``trial_*``, :mod:`neurosim.realizations.dynamics.recording`).

* The recorded M(t) and E(t) are those the plasticity uses: over one trial,
  ``Σ_k dt M(t_k) E(t_k)`` of every sampled synapse equals the engine's update of that synapse
  for the example as a mini-batch of one from a fresh state (float64) — an independent
  check, since the record steps each trace forward in time while the engine weights every
  coincidence by a backward filter of M.
* The whole trial is recorded: presentation, replay, rest; the delayed neuromodulator is
  recorded where it meets the traces.
* Every recorded variable is declared in :mod:`neurosim.recording.trial`.
"""

from __future__ import annotations

import numpy as np
import pytest

from neurosim.train import Run

from .test_dynamics_circuits import proto as circuit_protocol

DYN = {"dt_ms": 1.0, "presentation_ms": 4.0, "settle_ms": 1.0, "interval_ms": 12.0,
       "neurons": {"model": "rate", "tau_m_ms": 2.0}, "code": {"baseline_hz": 20.0, "gain_hz": 10.0},
       "gating": {"tau_inh_ms": 1.5}, "eligibility": {"tau_e_ms": 6.0},
       "neuromodulator": {"delay_ms": 5.0, "tau_ms": 3.0, "noise": 0.0, "crosstalk": 0.2}}


def proto(realization, dyn=DYN, out="unused.zarr", traj=None, **train):
    return circuit_protocol({**realization, "dynamics": dyn}, layers=(6, 4), out=out, traj=traj, **train)


CASES = {
    "grouped": {"type": "grouped", "compensate_k": True},
    "grouped_no_replay": {"type": "grouped", "compensate_k": False, "_replay": False},
    "temporal": {"type": "temporal", "gating": "first_bin"},
    "temporal_online": {"type": "temporal", "error_timing": "mse_online"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_recorded_M_times_E_is_the_update(case):
    from neurosim.realizations.dynamics.recording import population_of, synapses

    real_spec = dict(CASES[case])
    dyn_opts = dict(DYN, replay=real_spec.pop("_replay", True))
    run = Run(proto(real_spec, dyn_opts))
    real = run.exp.realization
    dyn = real.dynamics
    n = 3
    x, y = run.exp.x_test[:n], run.exp.y_test[:n]
    units = {i: np.arange(1 if i == run.exp.net.readout else 2) for i in dyn.layers}
    rec = real.trajectory(x, y, units)
    grouped = dyn.name == "grouped"
    M = rec["trial_neuromodulator"][1]  # (probe, T, ch) | (probe, T)
    if not grouped:
        M = M[..., None]
    assert M.shape[1] == dyn.tl.slot
    pops = population_of(dyn)
    checked = 0
    for b in range(n):
        fresh = type(dyn)(real, dyn.opts)  # a fresh state: no carried trace, a fresh neuromodulator
        grads = fresh.trial(x[b:b + 1], y[b:b + 1])[4]
        for i in dyn.layers:
            post, pre, comp = synapses(dyn)[i]
            E = rec[f"trial_eligibility_to_{pops[i]}"][1][b]  # (T, syn)
            ch = comp if grouped else np.zeros_like(comp)
            integral = dyn.dt * (M[b][:, ch] * E).sum(axis=0)  # ∫ M E dt per synapse
            kscale = dyn.K if (grouped and dyn.compensate and i != dyn.first) else 1
            expected = integral * kscale / dyn.tl.count_ms
            W = np.asarray(grads[(i, "W")])
            got = W[comp, post, pre] if W.ndim == 3 else W[post, pre]
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-14 * np.abs(W).max())
            checked += int((np.abs(expected) > 1e-8).sum())
    assert checked > 3 * n  # most sampled synapses see a nonzero update


def test_whole_trial_and_declared_names():
    from neurosim.recording.trial import COORDINATES, VARIABLES

    run = Run(proto({"type": "grouped"}, dict(DYN, neurons={"model": "poisson", "tau_m_ms": 2.0})))
    real = run.exp.realization
    dyn = real.dynamics
    units = {i: np.arange(1 if i == run.exp.net.readout else 2) for i in dyn.layers}
    rec = real.trajectory(run.exp.x_test[:2], run.exp.y_test[:2], units)
    coords = real.trajectory_coords()
    templates = [t for t in list(VARIABLES) + list(COORDINATES)]

    def declared(name):
        pops = ("input", "hidden_1", "hidden_2", "readout")
        return any(t.format(pop=p) == name for t in templates for p in pops)

    for name in list(rec) + list(coords):
        if name.startswith(("trial_", "unit_", "synapse_to_")) or name in ("mean_rate", "zero_rate_fraction",
                                                                         "neuromodulator_bin_mean"):
            assert declared(name), name
            attrs = (rec.get(name) or coords[name])[2]
            assert attrs["units"] and attrs["long_name"], name
    assert not [k for k in rec if k.startswith("dyn_")]
    phase = coords["trial_phase"][1]
    tl = dyn.tl
    assert list(np.bincount(phase)) == [tl.phase_steps, tl.phase_steps, tl.n_interval]
    t = coords["trial_time"][1]
    np.testing.assert_allclose(t, np.arange(1, tl.slot + 1) * tl.dt)
    # the neuromodulator arrives after the command (delay 5 ms) and meets the traces
    u, M = rec["trial_command"][1], rec["trial_neuromodulator"][1]
    first_cmd = np.flatnonzero(np.abs(u).sum(axis=(0, 2)) > 0)[0]
    first_M = np.flatnonzero(np.abs(M).sum(axis=(0, 2)) > 0)[0]
    assert first_M == first_cmd + 5
    E = rec["trial_eligibility_to_hidden_1"][1]
    meet = np.abs(M).max(axis=2)[:, :, None] * np.abs(E)  # (probe, T, syn)
    assert (meet.max(axis=(1, 2)) > 0).all()  # for every probe example
    assert (np.abs(M[:, phase == 2]).max(axis=(1, 2)) > 0).all()  # M's tail during the rest
    # the input population: the stimulus' rate code while it is shown, the baseline at rest
    r_in = rec["trial_rate_input"][1]  # (probe, T, unit)
    assert (r_in[:, phase == 2] == 20.0).all()
    # spikes where simulated, NaN at rest
    sp = rec["trial_spikes_hidden_1"][1]
    assert np.isnan(sp[:, phase == 2]).all() and np.isfinite(sp[:, phase < 2]).all()


def test_short_run_records_its_last_step_and_says_so(tmp_path):
    """A cadence longer than the run: one line at the start, the record at the last step."""
    import xarray as xr

    from neurosim.train import run_protocol

    class Notes:
        def __init__(self):
            self.lines = []

        def write(self, text):
            self.lines.append(text)

        def __call__(self, *a):
            pass

    out = tmp_path / "short.zarr"
    notes = Notes()
    traj = {"every": 50, "snapshot_every": 3, "samples": 2, "units": 2}  # (snapshots: reached)
    run_protocol(proto({"type": "grouped"}, out=str(out), traj=traj, max_steps=3), progress=notes)
    ds = xr.open_zarr(str(out))
    assert list(ds["sim_step"].values) == [3] and list(ds["snapshot"].values) == [3]
    assert "trial_neuromodulator" in ds
    said = [ln for ln in notes.lines if ln.startswith("note:")]
    assert len(said) == 1, notes.lines
    assert "3 optimizer steps" in said[0] and "recording.trajectories.every = 50" in said[0], said[0]
    assert "snapshot_every" not in said[0]  # a cadence the run reaches is not mentioned


# ---- neurosim plot trial ----------------------------------------------------------------
@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A grouped Poisson store with trajectories, and one without."""
    from neurosim.train import run_protocol

    d = tmp_path_factory.mktemp("plot")
    traj = {"every": 2, "samples": 2, "units": 3}
    spiking = dict(DYN, neurons={"model": "poisson", "tau_m_ms": 2.0})
    run_protocol(proto({"type": "grouped"}, spiking, out=str(d / "g.zarr"), traj=traj, max_steps=4))
    run_protocol(proto({"type": "grouped"}, out=str(d / "none.zarr"), max_steps=2))
    return d


def _cli(*args):
    from click.testing import CliRunner

    from neurosim.cli import main

    return CliRunner().invoke(main, ["plot", "trial", *map(str, args)])


def test_plot_trial_writes_the_figure(stores, tmp_path):
    from neurosim.analysis.trial import load_trial

    out = tmp_path / "trial.png"
    res = _cli(stores / "g.zarr", "--step", 2, "--probe", 1, "--out", out)
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 20_000 and out.read_bytes()[:4] == b"\x89PNG"
    tr = load_trial(stores / "g.zarr", step=2, probe=1)
    assert (tr.step, tr.probe) == (2, 1)
    assert [p.name for p in tr.pops] == ["input", "hidden_1", "hidden_2", "readout"]
    assert tr.pops[1].spikes is not None and tr.pops[0].spikes is None
    assert tr.M.shape == (tr.t.size, 10) and tr.t.size == 20
    assert load_trial(stores / "g.zarr").step == 4  # the last record by default
    tr = load_trial(stores / "g.zarr", record=0, select=["hidden_2"])
    assert [p.name for p in tr.pops] == ["hidden_2"] and tr.step == 2


@pytest.mark.parametrize("args, words", [
    (("{d}/nothere.zarr",), "not a neurosim store"),
    (("{d}",), "not a neurosim store"),
    (("{d}/none.zarr",), "no trajectory records"),
    (("{d}/g.zarr", "--step", "3"), "no trajectory record at step 3"),
    (("{d}/g.zarr", "--record", "5"), "record 5 does not exist"),
    (("{d}/g.zarr", "--probe", "7"), "not in the probe set"),
    (("{d}/g.zarr", "--populations", "hidden_9"), "no population hidden_9"),
    (("{d}/g.zarr", "--out", "{d}/x.txt"), "unknown figure type"),
])
def test_plot_trial_bad_input_is_one_line(stores, args, words):
    res = _cli(*[a.format(d=stores) for a in args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], res.output


def test_plot_trial_reads_stores_from_before_the_trial_records(stores, tmp_path):
    """A store with the former ``dyn_*`` records (presentation and replay only, per weight-layer
    index, no input population) is read under the population names."""
    import xarray as xr

    from neurosim.analysis.trial import load_trial

    new = xr.open_zarr(str(stores / "g.zarr"))
    shown = new.isel(trial_time=new["trial_phase"].values < 2)
    ren = {"trial_time": "dyn_time", "trial_phase": "dyn_phase",
           "trial_neuromodulator": "dyn_neuromodulator", "neuromodulator_bin_mean": "neuromodulator"}
    for layer, pop in enumerate(("hidden_1", "hidden_2", "readout")):
        for kind in ("rate", "spikes", "gate"):
            if f"trial_{kind}_{pop}" in shown:
                ren[f"trial_{kind}_{pop}"] = f"dyn_{kind}_{layer}"
        ren[f"trial_eligibility_to_{pop}"] = f"dyn_eligibility_{layer}"
    keep = [k for k in ren if k in shown.data_vars] + ["probe_label"]
    old = shown[keep].rename(ren).drop_vars([c for c in shown.coords if c.startswith(("trial_", "synapse_to"))
                                             and c not in ren], errors="ignore")
    old.attrs = {k: v for k, v in new.attrs.items() if k != "neurosim_commit"}
    path = tmp_path / "old.zarr"
    old.to_zarr(str(path), zarr_format=3, consolidated=False)
    tr = load_trial(path, probe=1)
    assert not tr.whole_trial and tr.t.size == 8
    assert [p.name for p in tr.pops] == ["hidden_1", "hidden_2", "readout"]
    ref = load_trial(stores / "g.zarr", probe=1)
    np.testing.assert_array_equal(tr.pops[1].rate, ref.pops[2].rate[:8])
    np.testing.assert_array_equal(tr.M, ref.M[:8])
    res = _cli(path, "--out", tmp_path / "old.png")
    assert res.exit_code == 0 and (tmp_path / "old.png").exists(), res.output


@pytest.mark.parametrize("case", ["grouped", "temporal"])
def test_bin_mean_is_the_delayed_command(case):
    """Without a filter or noise M is the command delayed: its mean over each delayed command
    window is the (mixed) error component of that window, even when the delay is longer than
    the rest interval (the command then arrives after the trial's end)."""
    nm = {"delay_ms": 16.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.2}
    run = Run(proto(CASES[case], dict(DYN, neuromodulator=nm)))
    real, dyn = run.exp.realization, run.exp.realization.dynamics
    assert 16 > dyn.tl.n_interval  # beyond the trial
    units = {i: np.arange(1) for i in dyn.layers}
    rec = real.trajectory(run.exp.x_test[:2], run.exp.y_test[:2], units)
    bm = rec["neuromodulator_bin_mean"][1]  # (probe, time_bin, channel)
    u = rec["trial_command"][1]
    if case == "grouped":
        eps = u.max(axis=1) + u.min(axis=1)  # the one value each channel is commanded with
        np.testing.assert_allclose(bm[:, 0, :], eps, rtol=1e-12)
    else:  # bin μ's window carries ε_μ
        tl = dyn.tl
        p = tl.phase_start(1)
        eps = np.stack([u[:, p + m * tl.n_bin + tl.n_settle] for m in range(dyn.K)], axis=1)
        np.testing.assert_allclose(bm[:, :, 0], eps, rtol=1e-12)
    assert np.abs(eps).max() > 1e-3


def test_resume_of_a_store_with_former_names_is_refused(tmp_path):
    """A store whose trajectory records carry the names of an earlier neurosim is refused
    before anything is written (new records cannot extend them)."""
    import shutil

    from neurosim.recording import StoreError
    from neurosim.recording.store import Recorder
    from neurosim.train import run_protocol

    out = tmp_path / "former.zarr"
    traj = {"every": 1, "samples": 1, "units": 1}
    run_protocol(proto({"type": "grouped"}, out=str(out), traj=traj, max_steps=1, epochs=2))
    shutil.copytree(out / "neuromodulator_bin_mean", out / "neuromodulator")  # an earlier version's name
    before = Recorder(out).attrs
    with pytest.raises(StoreError, match="earlier neurosim under former names \\(neuromodulator\\)"):
        run_protocol(proto({"type": "grouped"}, out=str(out), traj=traj, max_steps=2, epochs=2),
                     resume=True)
    after = Recorder(out).attrs
    assert after["status"] == before["status"] == "finished"
    assert not (out / "trial_command" / "c" / "1").exists()  # no record appended
