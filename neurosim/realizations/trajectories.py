"""Trajectory recording of the explicit circuits (``recording.trajectories``).

One observer (:class:`TrajectoryObserver`) per run of a ``grouped`` or
``temporal`` realization.  At every ``every``-th optimizer step it records,
for the first ``samples`` examples of the batch and ``units`` units per
layer (a fixed random subset, stream ``record``), per time bin:

* ``circuit_h_<l>``, ``circuit_rate_<l>`` — pre-activations and rates
  (grouped: one neuron per component μ of each group; temporal: one neuron),
* ``circuit_gate_<l>`` — the gate state G of each group / neuron,
* ``neuromodulator`` (sim_step, traj_sample, time_bin, channel) — the third factor
  seen by the K target populations of synapses: grouped circuits carry e_μ on
  channel μ in every bin (spatially heterogeneous, temporally uniform),
  temporal circuits broadcast e_μ to every site in bin μ (temporally
  heterogeneous, spatially uniform).  Values are per example (B·e);
* ``neuromod_spatial_var`` / ``neuromod_temporal_var`` — the variance of that
  signal across channels (within a bin) and across bins (within a channel),
* ``update_cosine`` (sim_step, circuit_layer) — cosine between the circuit's
  update and the batched GEVB update of the network on the same batch,
* ``synapse_spread`` (sim_step, shared_layer) — rms over synapse pairs of the
  std of the K synapses of a pair, relative to the rms weight (0 = exact
  weight sharing; always 0 in the temporal circuit).

Every ``snapshot_every`` steps it records subsampled synapses
``synapse_<l>`` along ``snapshot`` (grouped: all K synapses of each sampled
pair; temporal: the shared weight; first layer: all K input populations).

Append dimensions are ``sim_step`` and ``snapshot`` (coordinates: the
optimizer step); the other dimensions are named so that they cannot clash
with other recordings in the same store (``traj_sample``, ``traj_unit_<l>``,
``time_bin``, ``channel``, ``component``, ``circuit_layer``,
``shared_layer``, ``synapse_<l>``); ``traj_label`` holds the labels of the
recorded examples.  Records are buffered and written ``chunk`` at a time, and
at every checkpoint (``flush``), so recording does not dominate run time.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.options import Field, Section
from ..recording.observers import Observer
from .circuit import GEVBReference, cosine

#: index dimensions of the records and what an index means
INDEX_DIMS = {
    "traj_sample": "recorded example (position in the mini-batch)",
    "time_bin": "time bin of the example's presentation",
    "channel": "neuromodulatory target population (the synapses of component μ)",
    "component": "vector component μ (neuron μ of a group; input population ν of layer 1)",
}


class TrajectoryObserver(Observer):
    #: the protocol's ``recording.trajectories`` section
    OPTIONS = Section({
        "every": Field(int, default=0, min=0, units="step", doc="steps between trajectory records (0 = off)"),
        "samples": Field(int, default=4, min=1, units="example", doc="examples of the batch recorded"),
        "units": Field(int, default=16, min=1, doc="units recorded per layer"),
        "synapses": Field(int, default=64, min=1, doc="synapses per layer in snapshots"),
        "snapshot_every": Field(int, default=0, min=0, units="step", doc="steps between weight snapshots"),
        "chunk": Field(int, default=10, min=1, doc="records buffered per write"),
        "agreement": Field(bool, default=True, doc="record the cosine with batched GEVB"),
    }, doc="activity and synapse trajectories of the explicit circuits")

    def __init__(self, net, backend, realization, spec: dict):
        self.real = realization
        self.every = int(spec["every"])
        self.snapshot_every = int(spec["snapshot_every"])
        self.chunk = int(spec["chunk"])
        self.n_samples = int(spec["samples"])
        self.agreement = bool(spec["agreement"])
        self.layers = list(net.weight_layers)
        self.shared = self.layers[1:]
        rng = backend.rng("record", 0)
        self.backend = backend
        self.reference = None  # batched GEVB on the same batch (update_cosine), built when first used
        self.units = {}
        for i in self.layers:
            n = net.layers[i].n_units
            k = min(int(spec["units"]), n)
            self.units[i] = np.sort(rng.choice(n, size=k, replace=False))
        self.syn = {}
        for i in self.layers:
            L = net.layers[i]
            k = int(spec["synapses"])
            self.syn[i] = (rng.integers(0, L.n_units, size=k), rng.integers(0, L.n_in, size=k))
        self.buf = {"sim_step": [], "snapshot": []}
        self.steps = {"sim_step": [], "snapshot": []}
        self._coords_written = set()

    # ------------------------------------------------------------------
    def due(self, step: int) -> bool:
        return ((self.every > 0 and step % self.every == 0)
                or (self.snapshot_every > 0 and step % self.snapshot_every == 0))

    def observe(self, exp, ctx):
        step = ctx.step
        if self.every > 0 and step % self.every == 0:
            self.buf["sim_step"].append(self._trajectory(exp, ctx.result))
            self.steps["sim_step"].append(step)
        if self.snapshot_every > 0 and step % self.snapshot_every == 0:
            self.buf["snapshot"].append(self.real.synapse_snapshot(self.syn))
            self.steps["snapshot"].append(step)
        return self._emit(ctx, force=False)

    def flush(self, exp, ctx):
        return self._emit(ctx, force=True)

    # ------------------------------------------------------------------
    def _trajectory(self, exp, result) -> dict:
        x, y = self.real.last_batch
        B = x.shape[0]
        samples = np.arange(min(self.n_samples, B))
        rec = self.real.trajectory(samples, self.units)
        nm = rec["neuromodulator"][1]  # (sample, time_bin, channel)
        rec["neuromod_spatial_var"] = ((), np.asarray(nm.var(axis=2).mean()), {
            "long_name": "variance of the neuromodulator across channels within a time bin"})
        rec["neuromod_temporal_var"] = ((), np.asarray(nm.var(axis=1).mean()), {
            "long_name": "variance of the neuromodulator across time bins within a channel"})
        rec["traj_label"] = (("traj_sample",), self.backend.to_host(y)[samples].astype(np.int64),
                        {"long_name": "class label of the recorded example"})
        if self.agreement:
            if self.reference is None:
                self.reference = GEVBReference(exp.net, self.backend, exp.loss_fn)
            ref = self.reference(x, y)
            cos = cosine(result.grads, ref, self.layers)
        else:
            cos = np.full(len(self.layers), np.nan)
        rec["update_cosine"] = (("circuit_layer",), cos, {
            "long_name": "cosine between the circuit's update and the batched GEVB update "
                         "on the same batch (per weight layer, W and b together)"})
        rec["synapse_spread"] = (("shared_layer",), self.real.synapse_spread(), {
            "long_name": "rms std of the K synapses of a group pair / rms weight "
                         "(0 = exact vectorized weight sharing)"})
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
            coords = {dim: (dim, np.asarray(self.steps[dim], dtype=np.int64),
                            {"long_name": "optimizer step of the record", "units": "step"})}
            if dim not in self._coords_written:  # static coordinates: first write only
                if not ctx.records(dim):  # (a resumed run has them already)
                    coords.update(self._coords(dim))
                    for dims, arr, _ in recs[0].values():
                        for d, size in zip(dims, np.shape(arr)):
                            if d in INDEX_DIMS and d not in coords:
                                coords[d] = (d, np.arange(size), {"long_name": INDEX_DIMS[d]})
                self._coords_written.add(dim)
            out.append((xr.Dataset(data, coords=coords), dim))
            self.buf[dim], self.steps[dim] = [], []
        return out

    def _coords(self, dim) -> dict:
        c = {}
        if dim == "sim_step":
            c["circuit_layer"] = ("circuit_layer", np.asarray(self.layers))
            c["shared_layer"] = ("shared_layer", np.asarray(self.shared, dtype=np.int64))
            for i, u in self.units.items():
                c[f"traj_unit_{i}"] = (f"traj_unit_{i}", u.astype(np.int64),
                                       {"long_name": f"index of the recorded unit of layer {i}"})
        else:
            for i, (post, pre) in self.syn.items():
                c[f"synapse_{i}_post"] = (f"synapse_{i}", post.astype(np.int64))
                c[f"synapse_{i}_pre"] = (f"synapse_{i}", pre.astype(np.int64))
        return c


def build(exp, realization):
    spec = exp.recording["trajectories"]
    if spec["every"] <= 0 and spec["snapshot_every"] <= 0:
        return []
    return [TrajectoryObserver(exp.net, exp.backend, realization, spec)]
