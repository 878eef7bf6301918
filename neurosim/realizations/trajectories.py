"""Trajectory recording of the explicit circuits (``recording.trajectories``).

One observer (:class:`TrajectoryObserver`) per run of a ``grouped`` or ``temporal``
realization, in the manner of a Brian2 ``StateMonitor(..., record=[...])``: the same
examples and the same units are followed for the whole run, so a trace is comparable from
record to record.

*Probe set.*  A fixed set of test examples (``probe``: their indices in the test set; by
default the first ``samples``) is presented to the circuit at every ``every``-th optimizer
step, with the weights of that step before its update.  The circuit runs forward on them
without plasticity (:meth:`~neurosim.realizations.grouped.Grouped.probe`), with the error
vectors of their own labels; the learning step is not disturbed (a run with trajectories has
the weights of a run without them, bit for bit).  Recorded per probe example and time bin,
for ``units`` units per layer (``unit_indices``, else a seeded random choice, stream
``record``; the readout's one vector unit always):

* ``circuit_h_<l>`` — pre-activation h (grouped: one neuron per component μ of each group;
  temporal: one neuron per vector unit, component μ in bin μ),
* ``circuit_activity_<l>`` — activity a = G·h, the signed vector component a_iμ = Φ(h)_iμ
  (eq. 7-8); it is not a firing rate (it is negative wherever h is and the gate is open),
* ``circuit_gate_<l>`` — the gate G of each group / neuron (1 = not inhibited),
* ``neuromodulator`` (sim_step, probe, time_bin, channel) — the third factor reaching the
  K target populations of synapses: grouped circuits carry e_μ on channel μ in every bin
  (spatially heterogeneous, temporally uniform), temporal circuits broadcast e_μ to every
  site in bin μ (temporally heterogeneous, spatially uniform).  Values are per example,
  e = ∂L/∂a^L of that example (cross-entropy: softmax − onehot),
* ``neuromod_spatial_var`` / ``neuromod_temporal_var`` — the variance of that signal across
  channels (within a bin) and across bins (within a channel), mean over the probe set.

On the training batch of the step (not the probe set):

* ``update_cosine`` (sim_step, circuit_layer) — cosine between the circuit's update and the
  batched GEVB update of the network on the same batch,
* ``update_cosine_own_error`` (sim_step, circuit_layer) — the same against batched GEVB
  given the circuit's own error vector (decoded from its readout; in time, from spikes),
  so that errors of decoding and of plasticity are told apart,
* ``synapse_spread`` (sim_step, circuit_layer) — rms over synapse pairs of the std of the K
  synapses of a pair, relative to the rms weight (0 = exact weight sharing; always 0 in the
  temporal circuit; NaN for the first layer, whose K synapses are distinct parameters).

Every ``snapshot_every`` steps it records ``synapse_weight_<l>`` (snapshot, synapse_<l>
[, component]): ``synapses`` sampled synapses of layer l (grouped: all K synapses of each
sampled pair; temporal: the shared weight; first layer: all K input populations), with the
coordinates ``synapse_<l>_post`` / ``synapse_<l>_pre`` (indices of the neurons it connects).

One layer numbering: ``<l>`` and ``circuit_layer`` are the network's layer index (as in the
store's ``layers`` attr).  Append dimensions are ``sim_step`` and ``snapshot`` (coordinates:
the optimizer step, and ``sim_step_epoch`` / ``snapshot_epoch``, the epochs completed after
that step).  Records are buffered and written ``chunk`` at a time, and at every checkpoint
(``flush``), so recording does not dominate run time.  Every variable and coordinate carries
``long_name`` and ``units``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.options import ConfigError, Field, Section
from ..recording.observers import Observer
from ..recording.store import StoreError
from ..recording.trial import LEGACY
from .circuit import GEVBReference, cosine

KEY = "recording.trajectories"

#: index dimensions of the records and what an index means
INDEX_DIMS = {
    "time_bin": "time bin of the example's presentation",
    "channel": "neuromodulatory target population (the synapses of component μ)",
    "component": "vector component μ (neuron μ of a group; input population ν of layer 0)",
}


def _distinct(values: dict, key: str) -> None:
    for name in ("probe", "unit_indices"):
        v = values[name]
        if len(set(v)) != len(v):
            dup = sorted({x for x in v if v.count(x) > 1})
            raise ConfigError(f"indices must be distinct; repeated: {dup}",
                              key=f"{key}.{name}" if key else name)


class TrajectoryObserver(Observer):
    #: the protocol's ``recording.trajectories`` section
    OPTIONS = Section({
        "every": Field(int, default=0, min=0, units="step",
                       doc="steps between trajectory records (0 = off)"),
        "probe": Field(list, default=[], item=Field(int, min=0), units="example",
                       doc="indices in the test set of the probe examples presented at every "
                           "record (empty = the first `samples` test examples)"),
        "samples": Field(int, default=4, min=1, units="example",
                         doc="probe examples when `probe` is empty"),
        "unit_indices": Field(list, default=[], item=Field(int, min=0), units="unit",
                              doc="indices of the units recorded in every hidden layer (empty = "
                                  "`units` units chosen at random, stream `record`); the "
                                  "readout's one vector unit is always recorded"),
        "units": Field(int, default=16, min=1, units="unit",
                       doc="units recorded per layer when `unit_indices` is empty"),
        "synapses": Field(int, default=64, min=1, units="synapse",
                          doc="synapses (grouped: synapse pairs) per layer in snapshots"),
        "snapshot_every": Field(int, default=0, min=0, units="step",
                                doc="steps between synapse snapshots (0 = off)"),
        "chunk": Field(int, default=10, min=1, units="record", doc="records buffered per write"),
        "agreement": Field(bool, default=True,
                           doc="record the cosine with the batched GEVB update on the training "
                               "batch (one batched GEVB step per record)"),
    }, doc="activity and synapse trajectories of the explicit circuits", checks=(_distinct,))

    def __init__(self, exp, realization, spec: dict):
        net, backend = exp.net, exp.backend
        self.real = realization
        self.backend = backend
        self.every = int(spec.every)
        self.snapshot_every = int(spec.snapshot_every)
        self.chunk = int(spec.chunk)
        self.agreement = bool(spec.agreement)
        self.layers = list(net.weight_layers)
        self.reference = None  # batched GEVB on the same batch (update_cosine), built when first used
        # the probe set: fixed test examples, on the device
        n_test = int(exp.x_test.shape[0])
        probe = list(spec.probe) or list(range(min(int(spec.samples), n_test)))
        bad = [i for i in probe if i >= n_test]
        if bad:
            raise ConfigError(f"probe indices {bad} are outside the test set ({n_test} examples, "
                              f"indices 0..{n_test - 1})", key=f"{KEY}.probe")
        self.probe = np.asarray(probe, dtype=np.int64)
        sel = backend.xp.asarray(self.probe)
        self.px, self.py = exp.x_test[sel], exp.y_test[sel]
        self.probe_label = backend.to_host(self.py).astype(np.int64)
        # the recorded units: chosen, else seeded (the readout has one vector unit)
        rng = backend.rng("record", 0)
        chosen = list(spec.unit_indices)
        self.units = {}
        for i in self.layers:
            n = net.layers[i].n_units
            if chosen and i != net.readout:
                bad = [u for u in chosen if u >= n]
                if bad:
                    raise ConfigError(f"unit indices {bad} are outside layer {i} ({n} units, "
                                      f"indices 0..{n - 1})", key=f"{KEY}.unit_indices")
                self.units[i] = np.asarray(chosen, dtype=np.int64)
            else:
                k = min(int(spec.units), n)
                self.units[i] = np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)
        rng = backend.rng("record", 1)  # the sampled synapses, whatever the units
        self.syn = {}
        for i in self.layers:
            L = net.layers[i]
            k = int(spec.synapses)
            self.syn[i] = (rng.integers(0, L.n_units, size=k), rng.integers(0, L.n_in, size=k))
        self.buf = {"sim_step": [], "snapshot": []}
        self.steps = {"sim_step": [], "snapshot": []}
        self.epochs = {"sim_step": [], "snapshot": []}
        self._coords_written = set()
        self.final = {}  # {dim: the run's last step} when a cadence exceeds the run (plan)

    # ------------------------------------------------------------------
    def plan(self, n_steps: int) -> list:
        """A run shorter than a cadence records its last step instead (see Observer.plan)."""
        notes = []
        self.final = {}
        for dim, every, key in (("sim_step", self.every, f"{KEY}.every"),
                                ("snapshot", self.snapshot_every, f"{KEY}.snapshot_every")):
            if every > n_steps:
                self.final[dim] = n_steps
                notes.append((key, every))
        return notes

    def check_store(self, names: set, path) -> None:
        """A store recorded before the trial records holds the former names (``dyn_*``,
        ``neuromodulator``) along ``sim_step``: new records cannot extend them."""
        former = sorted(n for n in names if n in LEGACY or n.startswith("dyn_"))
        if self.every > 0 and former:
            raise StoreError(
                f"cannot resume {path}: its trajectory records were written by an earlier neurosim "
                f"under former names ({', '.join(former[:3])}{', ...' if len(former) > 3 else ''}); "
                f"this version records whole trials under new names (docs/store.md) and one store "
                f"cannot hold both. Write a new store (--out), or resume with the neurosim version "
                f"that made it.")

    def _due(self, dim: str, step: int) -> bool:
        every = self.every if dim == "sim_step" else self.snapshot_every
        return (every > 0 and step % every == 0) or step == self.final.get(dim)

    def due(self, step: int) -> bool:
        return self._due("sim_step", step) or self._due("snapshot", step)

    def observe(self, exp, ctx):
        step = ctx.step
        if self._due("sim_step", step):
            self._keep("sim_step", self._trajectory(exp, ctx.result), ctx)
        if self._due("snapshot", step):
            self._keep("snapshot", self.real.synapse_snapshot(self.syn), ctx)
        return self._emit(ctx, force=False)

    def flush(self, exp, ctx):
        return self._emit(ctx, force=True)

    def _keep(self, dim, rec, ctx) -> None:
        self.buf[dim].append(rec)
        self.steps[dim].append(ctx.step)
        self.epochs[dim].append(ctx.epoch_after_step)

    # ------------------------------------------------------------------
    def _trajectory(self, exp, result) -> dict:
        rec = self.real.trajectory(self.px, self.py, self.units)
        nm = rec["neuromodulator_bin_mean"][1]  # (probe, time_bin, channel)
        rec["neuromod_spatial_var"] = ((), np.asarray(nm.var(axis=2).mean()), {
            "long_name": "variance of the neuromodulator across channels within a time bin "
                         "(mean over probe examples and bins)", "units": "1"})
        rec["neuromod_temporal_var"] = ((), np.asarray(nm.var(axis=1).mean()), {
            "long_name": "variance of the neuromodulator across time bins within a channel "
                         "(mean over probe examples and channels)", "units": "1"})
        if self.agreement:
            if self.reference is None:
                self.reference = GEVBReference(exp.net, self.backend, exp.loss_fn)
            x, y = self.real.last_batch
            cos = cosine(result.grads, self.reference(x, y), self.layers)
            cos_own = cosine(result.grads, self.reference(x, y, result.e), self.layers)
        else:
            cos = cos_own = np.full(len(self.layers), np.nan)
        rec["update_cosine"] = (("circuit_layer",), cos, {
            "long_name": "cosine between the circuit's update and the batched GEVB update on "
                         "the step's training batch (per weight layer, W and b together)",
            "units": "1"})
        rec["update_cosine_own_error"] = (("circuit_layer",), cos_own, {
            "long_name": "cosine between the circuit's update and the batched GEVB update on "
                         "the step's training batch given the circuit's own (decoded) error "
                         "vector instead of the network's noise-free one: plasticity alone, "
                         "without decoding (per weight layer, W and b together)",
            "units": "1"})
        spread = np.full(len(self.layers), np.nan)
        spread[1:] = self.real.synapse_spread()
        rec["synapse_spread"] = (("circuit_layer",), spread, {
            "long_name": "rms std of the K synapses of a group pair / rms weight (0 = exact "
                         "vectorized weight sharing; NaN for the first layer, whose K synapses "
                         "are distinct parameters)", "units": "1"})
        return rec

    def _emit(self, ctx, force: bool) -> list:
        out = []
        for dim in ("sim_step", "snapshot"):
            recs = self.buf[dim]
            if not recs or (len(recs) < self.chunk and not force):
                continue
            data = {}
            for name, (dims, _, attrs) in recs[0].items():
                arr = np.stack([np.asarray(r[name][1]) for r in recs])
                data[name] = ((dim,) + tuple(dims), arr, attrs)
            what = "trajectory record" if dim == "sim_step" else "synapse snapshot"
            coords = {
                dim: (dim, np.asarray(self.steps[dim], dtype=np.int64),
                      {"long_name": f"optimizer step (1-based) of the {what}, taken before the "
                                    f"step's update", "units": "step"}),
                f"{dim}_epoch": (dim, np.asarray(self.epochs[dim], dtype=np.float64),
                                 {"long_name": f"epochs completed after the step of the {what}",
                                  "units": "epoch"}),
            }
            if dim not in self._coords_written:  # static coordinates: first write only
                if not ctx.records(dim):  # (a resumed run has them already)
                    coords.update(self._coords(dim))
                    if dim == "sim_step":  # the realization's own (dynamics: time in ms, ...)
                        coords.update(self.real.trajectory_coords())
                    for dims, arr, _ in recs[0].values():
                        for d, size in zip(dims, np.shape(arr)):
                            if d in INDEX_DIMS and d not in coords:
                                coords[d] = (d, np.arange(size, dtype=np.int64),
                                             {"long_name": INDEX_DIMS[d], "units": "1"})
                self._coords_written.add(dim)
            out.append((xr.Dataset(data, coords=coords), dim))
            self.buf[dim], self.steps[dim], self.epochs[dim] = [], [], []
        return out

    def _coords(self, dim) -> dict:
        c = {}
        if dim == "sim_step":
            c["circuit_layer"] = ("circuit_layer", np.asarray(self.layers, dtype=np.int64), {
                "long_name": "index of the weight layer in the network", "units": "1"})
            c["probe"] = ("probe", self.probe, {
                "long_name": "index in the test set of the probe example", "units": "1"})
            c["probe_label"] = ("probe", self.probe_label, {
                "long_name": "class label of the probe example", "units": "1"})
            for i, u in self.units.items():
                c[f"traj_unit_{i}"] = (f"traj_unit_{i}", u, {
                    "long_name": f"index of the recorded unit in layer {i}", "units": "1"})
        else:
            for i, (post, pre) in self.syn.items():
                d = f"synapse_{i}"
                c[d] = (d, np.arange(post.size, dtype=np.int64), {
                    "long_name": f"sampled synapse of layer {i} (position in the sample)",
                    "units": "1"})
                c[f"{d}_post"] = (d, post.astype(np.int64), {
                    "long_name": f"postsynaptic unit of the sampled synapse (index in layer {i})",
                    "units": "1"})
                c[f"{d}_pre"] = (d, pre.astype(np.int64), {
                    "long_name": f"presynaptic unit of the sampled synapse (index in the input "
                                 f"of layer {i})", "units": "1"})
        return c


def build(exp, realization):
    spec = exp.recording.trajectories
    if spec.every <= 0 and spec.snapshot_every <= 0:
        return []
    return [TrajectoryObserver(exp, realization, spec)]
