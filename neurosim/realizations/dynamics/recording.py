"""Time-resolved trajectory records of the circuit dynamics (real units).

Added to the explicit circuits' trajectory records (see
:mod:`neurosim.realizations.trajectories`) when a ``dynamics:`` section is
present, for the probe examples and the recorded units.  The probe examples are
presented as trials of a stream of their own, without plasticity
(:meth:`~.engine.CircuitDynamics.probe`): a fresh neuromodulator and traces
starting at 0, so that the records are comparable from record to record and
the training stream is not disturbed.

* ``dyn_rate_<l>`` (Hz) — firing rate of each recorded neuron (grouped: the K
  neurons of a group); spiking neurons: the rate of the Poisson process, or
  the synaptically filtered spike train of LIF neurons;
* ``dyn_spikes_<l>`` (spikes) — spike count of each step (spiking models);
* ``dyn_gate_<l>`` (1) — the inhibitory gate G(t) (1 = not inhibited);
* ``dyn_neuromodulator`` (1, units of the per-example error) — M(t) at the
  synapses: grouped per channel, temporal the one broadcast signal;
* ``dyn_eligibility_<l>`` (1) — eligibility traces E(t) of sampled synapses
  (coordinates ``dyn_synapse_<l>_post``, ``_pre``, ``_component``);
* ``dyn_zero_rate_fraction``, ``dyn_mean_rate`` (per weight layer, over the
  probe examples' decoding windows).

Time runs along ``dyn_time`` (ms since the trial's onset, end of each
integration step) over the presentation and the replay (``dyn_phase``);
during a replay without activity (``replay: false``) neurons are at rest
(baseline rate, gates open, no spikes).  The legacy ``neuromodulator``
record holds M averaged over each command window.
"""

from __future__ import annotations

import numpy as np

from ...core.backend import to_host
from .timeline import scan

#: sampled synapses per layer for eligibility records
N_SYNAPSES = 8


def synapses(dyn) -> dict:
    """Sampled synapses {layer: (post, pre, component)} (fixed per run, stream ``record``)."""
    if getattr(dyn, "_rec_syn", None) is None:
        out = {}
        for i in dyn.layers:
            L = dyn.net.layers[i]
            rng = dyn.backend.rng("record", 17, i)
            k = N_SYNAPSES
            out[i] = (rng.integers(0, L.n_units, k), rng.integers(0, L.n_in, k), rng.integers(0, dyn.K, k))
        dyn._rec_syn = out
    return dyn._rec_syn


def coords(dyn) -> dict:
    tl = dyn.tl
    c = {
        "dyn_time": (("dyn_time",), tl.times_ms(), {
            "units": "ms", "long_name": "time since the trial's onset (end of each integration step)"}),
        "dyn_phase": (("dyn_time",), np.repeat(np.arange(tl.n_phase), tl.phase_steps).astype(np.int64), {
            "units": "1", "long_name": "phase of the trial: 0 presentation, 1 replay"}),
    }
    for i, (post, pre, comp) in synapses(dyn).items():
        d = (f"dyn_synapse_{i}",)
        c[d[0]] = (d, np.arange(post.size, dtype=np.int64), {
            "long_name": f"sampled synapse of layer {i} for eligibility records (position in the sample)",
            "units": "1"})
        c[f"{d[0]}_post"] = (d, post.astype(np.int64), {
            "long_name": f"postsynaptic unit of the sampled synapse (index in layer {i})", "units": "1"})
        c[f"{d[0]}_pre"] = (d, pre.astype(np.int64), {
            "long_name": f"presynaptic unit of the sampled synapse (index in the input of layer {i})",
            "units": "1"})
        if _has_component(dyn, i):
            c[f"{d[0]}_component"] = (d, comp.astype(np.int64), {
                "long_name": "component μ of the synapse (grouped: neuron μ of the groups; "
                             "temporal first layer: input population μ)", "units": "1"})
    return c


def _has_component(dyn, i) -> bool:
    return dyn.name == "grouped" or i == dyn.first


def _time(arr, nb):
    """(S, 1|nb, ...) -> (S * nb, ...) on the host."""
    a = to_host(arr)
    a = np.broadcast_to(a, (a.shape[0], nb) + a.shape[2:])
    return a.reshape((-1,) + a.shape[2:])


def _phases(dyn, last, get, rest):
    """Concatenate a quantity over the trial's phases: presentation, then the replay (its own
    activity, the presentation's when it repeats it exactly, or ``rest``)."""
    nb = dyn.tl.n_bin
    parts = [_time(get(last["pres"]), nb)]
    if dyn.tl.n_phase == 2:
        if last["replay"] is not None:
            parts.append(_time(get(last["replay"]), nb))
        elif dyn.replay_active():
            parts.append(parts[0])
        else:
            parts.append(np.full_like(parts[0], rest))
    return np.concatenate(parts, axis=0)


def records(dyn, units) -> dict:
    """{name: (dims, values, attrs)} of the last probe (:meth:`~.engine.CircuitDynamics.probe`)."""
    last = dyn.last_probe
    tl = dyn.tl
    s = np.arange(last["x"].shape[0])
    T = tl.n_phase * tl.phase_steps
    rec = {}
    grouped = dyn.name == "grouped"
    zero, mean_rate = [], []
    for pos, i in enumerate(dyn.layers):
        u = np.asarray(units[i])
        du = f"traj_unit_{i}"

        def rate(runs, pos=pos):
            return runs[pos].rate

        r = _phases(dyn, last, rate, dyn.r0)[..., s, :][..., u]  # (T, [K,] s, u)
        r = np.moveaxis(r, -2, 0)  # (s, T, [K,] u)
        dims = ("probe", "dyn_time") + (("component",) if grouped else ()) + (du,)
        rec[f"dyn_rate_{i}"] = (dims, r, {"units": "Hz", "long_name": f"firing rate, layer {i}", "layer": i})
        if last["pres"][pos].counts is not None:
            def cnt(runs, pos=pos):
                return runs[pos].counts

            c = np.moveaxis(_phases(dyn, last, cnt, 0.0)[..., s, :][..., u], -2, 0)
            rec[f"dyn_spikes_{i}"] = (dims, c, {"units": "spikes", "layer": i,
                                                "long_name": f"spikes per integration step, layer {i}"})
        if last["pres"][pos].G is not None:
            def gate(runs, pos=pos):
                return runs[pos].G

            g = np.moveaxis(_phases(dyn, last, gate, 1.0)[..., s, :][..., u], -2, 0)  # (s, T, u)
            rec[f"dyn_gate_{i}"] = (("probe", "dyn_time", du), g, {
                "units": "1", "long_name": f"inhibitory gate G (1 = not inhibited), layer {i}", "layer": i})
        rec[f"dyn_eligibility_{i}"] = (("probe", "dyn_time", f"dyn_synapse_{i}"),
                                       _eligibility(dyn, last, pos, i, s), {
            "units": "1", "long_name": f"eligibility trace E of sampled synapses, layer {i}",
            "layer": i})
        zero.append(float(to_host(last["pres"][pos].zero_fraction)))
        mean_rate.append(float(to_host(last["pres"][pos].mean_rate)))
    M = to_host(last["M"])[s, :T]  # (s, T, ch)
    if grouped:
        rec["dyn_neuromodulator"] = (("probe", "dyn_time", "channel"), M, {
            "units": "1", "long_name": "neuromodulator M_μ(t) at the synapses of channel μ "
                                       "(per-example error units)"})
    else:
        rec["dyn_neuromodulator"] = (("probe", "dyn_time"), M[:, :, 0], {
            "units": "1", "long_name": "neuromodulator M(t) broadcast to every synapse "
                                       "(per-example error units)"})
    rec["dyn_zero_rate_fraction"] = (("circuit_layer",), np.asarray(zero), {
        "units": "1", "long_name": "fraction of neuron-steps of the decoding windows driven to zero "
                                   "rate (activity below -baseline/gain), probe examples"})
    rec["dyn_mean_rate"] = (("circuit_layer",), np.asarray(mean_rate), {
        "units": "Hz", "long_name": "mean firing rate over the decoding windows, probe examples"})
    rec["neuromodulator"] = _legacy_neuromodulator(dyn, M, len(s))
    return rec


def _legacy_neuromodulator(dyn, M, n):
    """M averaged over each command window, in the legacy (probe, time_bin, channel) layout."""
    tl = dyn.tl
    cnt = np.flatnonzero(tl.counting())
    K = dyn.K
    if dyn.name == "grouped":
        steps = tl.phase_start(1) + cnt
        m = M[:, steps].mean(axis=1)  # (s, K)
        vals = m[:, None, :]
        ln = ("neuromodulator M_μ averaged over the replay's command window, channel μ "
              "(grouped: spatially heterogeneous, temporally uniform; with dynamics)")
    else:
        p = 1 if tl.n_phase == 2 else 0
        steps = tl.phase_start(p) + np.arange(K)[:, None] * tl.n_bin + cnt[None, :]
        m = M[:, steps, 0].mean(axis=2)  # (s, K bins)
        vals = np.repeat(m[:, :, None], K, axis=2)
        ln = ("neuromodulator M averaged over bin μ's command window, the same at every site "
              "(temporal: temporally heterogeneous, spatially uniform; with dynamics)")
    return (("probe", "time_bin", "channel"), vals, {"units": "1", "long_name": ln})


def _eligibility(dyn, last, pos, i, s):
    """E(t) of the sampled synapses of layer i over the probe's stream: (s, T, syn)."""
    xp = dyn.xp
    tl = dyn.tl
    post, pre, comp = synapses(dyn)[i]
    n = len(s)

    def coincidence(runs):
        run = runs[pos]
        G = 1.0 if run.G is None else to_host(run.G[..., :n, :])[..., post]  # (S, Ng, n, syn)
        if dyn.name == "grouped":
            if i == dyn.first:
                a = to_host(run.pre[..., :n, :])[..., pre]  # (S, Np, n, syn)
            else:
                a = to_host(run.pre[..., :n, :])[:, :, comp]  # (S, Np, syn, n, n_in)
                a = np.take_along_axis(a, pre[None, None, :, None, None], axis=-1)[..., 0]
                a = np.moveaxis(a, 2, 3)  # (S, Np, n, syn)
        elif i == dyn.first:  # population ν only in bin ν
            x = to_host(last["x"])[:n][:, pre]  # (n, syn)
            onbin = (np.arange(tl.n_seg)[:, None] == comp[None, :])  # (S, syn)
            a = onbin[:, None, None, :] * x[None, None]  # (S, 1, n, syn)
        else:
            a = to_host(run.pre[..., :n, :])[..., pre]
        c = np.broadcast_to(a * G, (tl.n_seg, tl.n_bin, n, len(post)))
        return c * tl.counting().reshape(1, -1, 1, 1)  # coincidences count after settling

    c = _phases(dyn, last, coincidence, 0.0)  # (T, n, syn)
    T = c.shape[0]
    stream = np.zeros((n, tl.slot, len(post)))
    stream[:, :T] = np.moveaxis(c, 1, 0)
    if dyn.elig.a > 0:  # the trace, from 0 (the probe's own stream) or what was carried in
        e0 = np.zeros(len(post))
        if last["E_old"] is not None:
            EW = to_host(last["E_old"][(i, "W")])
            e0 = EW[comp, post, pre] if EW.ndim == 3 else EW[post, pre]
        a = dyn.elig.a
        E = to_host(scan(xp.asarray(stream.reshape(n * tl.slot, -1) * (1.0 - a)), a, xp.asarray(e0)))
        stream = E.reshape(n, tl.slot, -1)
    return stream[:, :T]
