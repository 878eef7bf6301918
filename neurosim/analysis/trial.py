"""One recorded trial of a circuit in time, read from a run store (``neurosim plot trial``).

:func:`load_trial` picks one trajectory record (by optimizer step, or by position) and one
probe example and returns a :class:`Trial`: every population's rates (and spikes), the
gates, the neuromodulator command and M(t) per channel, the eligibility traces E(t) of the
sampled synapses, on one ms axis with the phase of each step.  Stores written before the
trial records (``dyn_*`` variables: the presentation and the replay only, no input
population) are read too, under the same names.

Bad input raises :class:`TrialError` (a ``ValueError``) with one line for the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..realizations.dynamics import DYNAMICS
from ..recording.trial import LEGACY, PHASES, populations


class TrialError(ValueError):
    """The store has no trial to show, or the record / probe / population asked for is not
    in it."""


@dataclass
class Population:
    name: str
    rate: np.ndarray  # (T, neurons) Hz
    spikes: np.ndarray | None = None  # (T, neurons) spikes per step (NaN: not simulated)
    gate: np.ndarray | None = None  # (T, units) of the groups / neurons


@dataclass
class Trial:
    label: str  # the store's name
    realization: str  # grouped | temporal
    model: str  # rate | poisson | lif
    step: int  # optimizer step of the record
    probe: int  # index of the probe example in the test set
    probe_label: int
    t: np.ndarray  # (T,) ms, end of each step
    phase: np.ndarray  # (T,) 0 presentation, 1 replay, 2 rest
    tbin: np.ndarray  # (T,) time bin of the phase, -1 at rest
    pops: list = field(default_factory=list)  # [Population]
    command: np.ndarray | None = None  # (T, channels)
    M: np.ndarray | None = None  # (T, channels)
    eligibility: dict = field(default_factory=dict)  # {population: (T, synapses)}
    synapse_channel: dict = field(default_factory=dict)  # {population: (synapses,) channel of each}
    whole_trial: bool = True  # False: a store recorded before the trial records

    @property
    def dt(self) -> float:
        return float(self.t[1] - self.t[0]) if self.t.size > 1 else float(self.t[0])


def _pick_record(ds, step, record) -> int:
    steps = [int(s) for s in ds["sim_step"].values]
    if step is not None:
        if step not in steps:
            shown = ", ".join(map(str, steps[:12])) + (" ..." if len(steps) > 12 else "")
            raise TrialError(f"no trajectory record at step {step}; the records are at steps {shown}")
        return steps.index(step)
    n = len(steps)
    if not -n <= record < n:
        raise TrialError(f"record {record} does not exist: the store has {n} trajectory record(s) "
                         f"(0..{n - 1}, or -1 for the last)")
    return record % n


def _pick_probe(ds, probe) -> int:
    probes = [int(p) for p in ds["probe"].values]
    if probe is None:
        return 0
    if probe not in probes:
        raise TrialError(f"test example {probe} is not in the probe set; the probe examples are "
                         f"{', '.join(map(str, probes))} (recording.trajectories.probe)")
    return probes.index(probe)


def _flat(a, n_lead):
    """(T, ...) -> (T, neurons): the trailing axes flattened."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(a.shape[0], -1) if a.ndim > n_lead else a[:, None]


def load_trial(path, step=None, record: int = -1, probe=None, select=None) -> Trial:
    """The trial of probe example ``probe`` (test-set index; default the first) at trajectory
    record ``step`` (optimizer step) or ``record`` (position, -1 = the last); ``select``: the
    populations to keep (default all)."""
    from .reader import open_run, options

    run = open_run(path)
    ds = run.ds
    new = "trial_time" in ds.variables
    old = {v: k for k, v in LEGACY.items()}  # the names in stores from before the trial records

    def name(n):
        return n if new else old[n]

    if not new and old["trial_time"] not in ds.variables:
        if "sim_step" in ds.dims:
            raise TrialError(f"{path} has trajectory records but no circuit in time: its protocol "
                             f"has no realization.dynamics section")
        raise TrialError(f"{path} has no trajectory records (recording.trajectories.every is 0, "
                         f"or the run stopped before its first record)")
    k = _pick_record(ds, step, record)
    p = _pick_probe(ds, probe)
    one = ds.isel(sim_step=k, probe=p)

    def val(name):
        return np.asarray(one[name].values, dtype=np.float64)

    dyn = options(run).realization.get("dynamics") or DYNAMICS.view({})  # typed, with its defaults
    tr = Trial(label=run.label, realization=str(run.attrs.get("realization", "?")),
               model=str(dyn.neurons.model),
               step=int(ds["sim_step"].values[k]), probe=int(ds["probe"].values[p]),
               probe_label=int(ds["probe_label"].values[p]) if "probe_label" in ds.variables else -1,
               t=np.asarray(ds[name("trial_time")].values, dtype=np.float64),
               phase=np.asarray(ds[name("trial_phase")].values, dtype=np.int64),
               tbin=np.asarray(ds["trial_bin"].values if new else
                               np.full(ds.sizes[name("trial_time")], -1), dtype=np.int64),
               whole_trial=new)
    if new:
        names = [n[len("trial_rate_"):] for n in ds.data_vars if n.startswith("trial_rate_")]
        order = {n: i for i, n in enumerate(populations(len(names) - 1))}
        names.sort(key=lambda n: order.get(n, len(order)))
        src = {n: (f"trial_rate_{n}", f"trial_spikes_{n}", f"trial_gate_{n}",
                   f"trial_eligibility_to_{n}", f"synapse_to_{n}_component") for n in names}
        M_name, cmd_name = "trial_neuromodulator", "trial_command"
    else:  # dyn_<kind>_<weight layer>: layer l projects onto population pos + 1
        layers = sorted(int(n[len("dyn_rate_"):]) for n in ds.data_vars if n.startswith("dyn_rate_"))
        names = populations(len(layers))[1:]
        src = {n: (f"dyn_rate_{i}", f"dyn_spikes_{i}", f"dyn_gate_{i}", f"dyn_eligibility_{i}",
                   f"dyn_synapse_{i}_component") for n, i in zip(names, layers)}
        M_name, cmd_name = name("trial_neuromodulator"), None
    if select:
        bad = [s for s in select if s not in names]
        if bad:
            raise TrialError(f"no population {', '.join(bad)} in {path}; its populations are "
                             f"{', '.join(names)}")
        names = [n for n in names if n in select]
    T = tr.t.size
    for n in names:
        rate, spikes, gate, elig, comp = src[n]
        pop = Population(n, _flat(val(rate), 1))
        if spikes in ds.variables:
            pop.spikes = _flat(val(spikes), 1)
        if gate in ds.variables:
            pop.gate = _flat(val(gate), 1)
        tr.pops.append(pop)
        if elig in ds.variables:
            tr.eligibility[n] = _flat(val(elig), 1)
            tr.synapse_channel[n] = (np.asarray(ds[comp].values, dtype=np.int64)
                                     if comp in ds.variables and tr.realization == "grouped"
                                     else np.zeros(tr.eligibility[n].shape[1], dtype=np.int64))
    if M_name in ds.variables:
        tr.M = _flat(val(M_name), 1)[:T]
    if cmd_name and cmd_name in ds.variables:
        tr.command = _flat(val(cmd_name), 1)
    return tr


def phase_spans(tr: Trial) -> list:
    """[(name, t_start, t_end)] of the trial's phases, in ms."""
    out = []
    dt = tr.dt
    for code, name in enumerate(PHASES):
        idx = np.flatnonzero(tr.phase == code)
        if idx.size:
            out.append((name, float(tr.t[idx[0]] - dt), float(tr.t[idx[-1]])))
    return out
