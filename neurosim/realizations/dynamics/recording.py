"""Trial records of the circuit dynamics: each probe example over one whole trial.

Added to the explicit circuits' trajectory records (see
:mod:`neurosim.realizations.trajectories`) when a ``dynamics:`` section is present.  Each
probe example is presented as a trial of its own from a fresh state
(:meth:`~.engine.CircuitDynamics.probe`: no plasticity, a fresh neuromodulator, traces
starting at 0, a stream of its own), and recorded from its onset to the next example's onset
— the presentation, the replay and the rest interval, in which the delayed and filtered
neuromodulator meets the eligibility traces — along ``trial_time`` (ms, end of each step)
with the phase, time bin and decoding window of each step as coordinates.

The variables, their dims, units and long names are declared in
:mod:`neurosim.recording.trial`; populations are named ``input``, ``hidden_1``, ...,
``readout``:

* ``trial_rate_<pop>`` (Hz) and, for spiking neurons, ``trial_spikes_<pop>``; at rest the
  neurons are at baseline (not simulated: spikes NaN).  The input population's rate is the
  stimulus' rate code ``r0 + g x`` (temporal circuit: population μ in bin μ) — with
  ``input_spikes`` the Poisson rate of its spikes;
* ``trial_gate_<pop>`` — the inhibitory gate of the hidden populations;
* ``trial_command``, ``trial_neuromodulator`` — the command ε_μ(t) and M_μ(t) at the synapses;
* ``trial_eligibility_to_<pop>`` — E(t) of sampled synapses onto ``<pop>`` (activity units);
  the first layer's are sampled among the input neurons the probe examples drive.

The recorded M and E are those the plasticity uses: over the trial,
``Σ_k dt M_μ(t_k) E(t_k)`` of a sampled synapse is its update for that example as a
mini-batch of one from a fresh state, times the command window (and K for the later layers
of a grouped circuit with ``compensate_k``).  ``mean_rate`` and ``zero_rate_fraction`` (per
weight layer: its postsynaptic population) summarise the decoding windows.
"""

from __future__ import annotations

import numpy as np

from ...core.backend import to_host
from ...recording.trial import PHASES, coordinate, populations, variable
from .timeline import scan

#: sampled synapses per layer for eligibility records
N_SYNAPSES = 8


def population_of(dyn) -> dict:
    """{weight layer: the population it projects onto}."""
    names = populations(len(dyn.layers))
    return {i: names[pos + 1] for pos, i in enumerate(dyn.layers)}


def synapses(dyn) -> dict:
    """Sampled synapses {layer: (post, pre, component)} (fixed per run, stream ``record``); the
    first layer's presynaptic neurons among the input neurons the probe examples drive above
    the background (MNIST: the pixels of the digits, not the black surround)."""
    if dyn.record_synapses is None:
        out = {}
        x = None if dyn.last_probe is None else to_host(dyn.last_probe["x"])
        for i in dyn.layers:
            L = dyn.net.layers[i]
            rng = dyn.backend.rng("record", 17, i)
            k = N_SYNAPSES
            post = rng.integers(0, L.n_units, k)
            # input neurons some probe example drives above the stimuli's background (their minimum)
            active = np.flatnonzero(x.max(axis=0) > x.min()) if (i == dyn.first and x is not None) \
                else np.zeros(0, dtype=np.int64)
            pre = active[rng.integers(0, active.size, k)] if active.size else rng.integers(0, L.n_in, k)
            out[i] = (post, pre, rng.integers(0, dyn.K, k))
        dyn.record_synapses = out
    return dyn.record_synapses


def input_units(dyn) -> np.ndarray:
    """Recorded input neurons: the presynaptic neurons of the first layer's sampled synapses."""
    return np.unique(synapses(dyn)[dyn.first][1]).astype(np.int64)


def _layout(tl):
    """(phase, bin, counting) of every step of a trial (the slot)."""
    T = tl.slot
    k = np.arange(T)
    in_phase = k < tl.n_phase * tl.phase_steps
    phase = np.where(in_phase, k // tl.phase_steps, 2)
    within = k % tl.phase_steps
    tbin = np.where(in_phase, within // tl.n_bin, -1)
    counting = in_phase & tl.counting()[within % tl.n_bin]
    return phase.astype(np.int64), tbin.astype(np.int64), counting.astype(np.int8)


def coords(dyn) -> dict:
    tl = dyn.tl
    phase, tbin, counting = _layout(tl)
    c = dict([
        coordinate("trial_time", (np.arange(tl.slot) + 1) * tl.dt),
        coordinate("trial_phase", phase, flag_meanings=" ".join(PHASES)),
        coordinate("trial_bin", tbin),
        coordinate("trial_counting", counting),
        coordinate("unit_{pop}", input_units(dyn), pop="input"),
    ])
    pops = population_of(dyn)
    for i, u in dyn.record_units.items():
        c.update([coordinate("unit_{pop}", np.asarray(u, dtype=np.int64), pop=pops[i])])
    for i, (post, pre, comp) in synapses(dyn).items():
        p = pops[i]
        c.update([coordinate("synapse_to_{pop}", np.arange(post.size, dtype=np.int64), pop=p),
                  coordinate("synapse_to_{pop}_post", post.astype(np.int64), pop=p),
                  coordinate("synapse_to_{pop}_pre", pre.astype(np.int64), pop=p)])
        if _has_component(dyn, i):
            c.update([coordinate("synapse_to_{pop}_component", comp.astype(np.int64), pop=p)])
    return c


def _has_component(dyn, i) -> bool:
    """Whether layer i's sampled synapses have a component: every layer's of a circuit of groups,
    the first layer's (from the K input populations) of the temporal circuit."""
    return dyn.component_groups or i == dyn.first


def _time(arr, nb):
    """(S, 1|nb, ...) -> (S * nb, ...) on the host."""
    a = to_host(arr)
    a = np.broadcast_to(a, (a.shape[0], nb) + a.shape[2:])
    return a.reshape((-1,) + a.shape[2:])


def _trial(dyn, last, get, rest):
    """A quantity over the whole trial (slot, ...): the presentation, then the replay (its own
    activity, the presentation's when it repeats it exactly, or ``rest``), then ``rest`` for
    the interval."""
    tl = dyn.tl
    nb = tl.n_bin
    parts = [_time(get(last["pres"]), nb)]
    if tl.n_phase == 2:
        if last["replay"] is not None:
            parts.append(_time(get(last["replay"]), nb))
        elif dyn.replay_active():
            parts.append(parts[0])
        else:
            parts.append(np.full_like(parts[0], rest))
    if tl.n_interval:
        parts.append(np.full((tl.n_interval,) + parts[0].shape[1:], rest, dtype=parts[0].dtype))
    return np.concatenate(parts, axis=0)


def _active_steps(dyn) -> np.ndarray:
    """(slot,) bool: the steps at which the stimulus is shown (presentation, active replay)."""
    phase, _, _ = _layout(dyn.tl)
    shown = phase == 0
    if dyn.tl.n_phase == 2 and dyn.replay_active():
        shown |= phase == 1
    return shown


def _input_rate(dyn, x, s):
    """(probe, slot, [K,] unit) rates of the recorded input neurons."""
    u = input_units(dyn)
    r = dyn.r0 + dyn.g * to_host(x)[s][:, u]  # (n, u)
    if dyn.rectify:
        r = np.maximum(r, 0.0)
    _, tbin, _ = _layout(dyn.tl)
    return dyn.record_input_rate(r, _active_steps(dyn), tbin)


def records(dyn, units) -> dict:
    """{name: (dims, values, attrs)} of the last probe (:meth:`~.engine.CircuitDynamics.probe`)."""
    last = dyn.last_probe
    dyn.record_units = {i: units[i] for i in dyn.layers}  # (their coordinates: :func:`coords`)
    s = np.arange(last["x"].shape[0])
    groups = dyn.component_groups
    pops = population_of(dyn)
    nodim = () if groups else ("component",)
    # the input population: one (grouped) or K (temporal: population μ in bin μ)
    rec = dict([variable("trial_rate_{pop}", _input_rate(dyn, last["x"], s),
                         drop=("component",) if groups else (), pop="input")])
    zero, mean_rate = [], []
    for pos, i in enumerate(dyn.layers):
        u = np.asarray(units[i])
        p = pops[i]

        def rate(runs, pos=pos):
            return runs[pos].rate

        r = _trial(dyn, last, rate, dyn.r0)[..., s, :][..., u]  # (T, [K,] s, u)
        rec.update([variable("trial_rate_{pop}", np.moveaxis(r, -2, 0), drop=nodim, pop=p)])
        if last["pres"][pos].counts is not None:
            def cnt(runs, pos=pos):
                return runs[pos].counts

            c = _trial(dyn, last, cnt, np.nan)[..., s, :][..., u]
            rec.update([variable("trial_spikes_{pop}", np.moveaxis(c, -2, 0), drop=nodim, pop=p)])
        if last["pres"][pos].G is not None:
            def gate(runs, pos=pos):
                return runs[pos].G

            g = _trial(dyn, last, gate, 1.0)[..., s, :][..., u]  # (T, s, u)
            rec.update([variable("trial_gate_{pop}", np.moveaxis(g, -2, 0), pop=p)])
        rec.update([variable("trial_eligibility_to_{pop}", _eligibility(dyn, last, pos, i, s), pop=p)])
        zero.append(float(to_host(last["pres"][pos].zero_fraction)))
        mean_rate.append(float(to_host(last["pres"][pos].mean_rate)))
    M = to_host(last["M"])[s]  # (s, T, ch)
    u_cmd = to_host(last["u"])[s]
    one = () if groups else ("channel",)  # temporal: one broadcast signal
    rec.update([variable("trial_command", u_cmd if groups else u_cmd[..., 0], drop=one),
                variable("trial_neuromodulator", M if groups else M[..., 0], drop=one)])
    names = " ".join(pops[i] for i in dyn.layers)
    for name, vals in (("zero_rate_fraction", zero), ("mean_rate", mean_rate)):
        k, (dims, v, attrs) = variable(name, np.asarray(vals))
        rec[k] = (dims, v, {**attrs, "populations": names})
    rec["neuromodulator_bin_mean"] = _bin_mean(dyn, to_host(last["M_ext"])[s], last["D"])
    return rec


def _bin_mean(dyn, M, D):
    """M averaged over each command window delayed by the neuromodulator's delay (the window in
    which that command reaches the synapses), (probe, time_bin, channel)."""
    cnt = np.flatnonzero(dyn.tl.counting()) + D
    return variable("neuromodulator_bin_mean", dyn.record_bin_mean(M, cnt))[1]


def _eligibility(dyn, last, pos, i, s):
    """E(t) of the sampled synapses of layer i over each probe example's trial, from 0:
    (s, T, syn)."""
    xp = dyn.xp
    tl = dyn.tl
    post, pre, comp = synapses(dyn)[i]
    n = len(s)

    def coincidence(runs):
        run = runs[pos]
        G = 1.0 if run.G is None else to_host(run.G[..., :n, :])[..., post]  # (S, Ng, n, syn)
        a = dyn.record_presynaptic(run, i, n, pre, comp, last["x"])  # (S, Np, n, syn)
        c = np.broadcast_to(a * G, (tl.n_seg, tl.n_bin, n, len(post)))
        return c * tl.counting().reshape(1, -1, 1, 1)  # coincidences count after settling

    c = _trial(dyn, last, coincidence, 0.0)  # (T, n, syn)
    if dyn.elig.a > 0:  # the trace from 0: E_k = a E_{k-1} + (1 - a) c_k
        a = dyn.elig.a
        c = to_host(scan(xp.asarray(c * (1.0 - a)), a))
    return np.moveaxis(c, 1, 0)
