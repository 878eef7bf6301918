"""Synaptic updates and simulated time of one training step: the one definition that
``python -m benchmarks`` and ``benchmarks/realizations.py`` both report.

*Synaptic updates per second* = synapse updates per example × examples per second, where a
synapse update is one synapse receiving one example's contribution to its change:

* batched: every weight of the network once per example (a shared weight or a convolution
  kernel counts once; biases are not synapses);
* grouped circuit: K·n·n_in synapses per layer (K synapses per group pair; the first layer
  W1[μ,i,j]), in each of its ``time_bins`` bins;
* temporal circuit: per bin n1·n0 first-layer synapses (the one active input population μ)
  plus n·n_in per later layer, in each of its K bins;
* with ``dynamics``: the eligibility trace of every synapse counted above (per bin) is
  updated at every counting step (after settling) of every phase with activity
  (presentation, and replay when it carries activity).

*Simulated seconds per step* (circuits with ``dynamics`` only): each example of the stream
lasts one trial (presentation, replay, interval), and a step simulates B of them.
"""

from __future__ import annotations


def synapse_updates_per_example(net, realization) -> int:
    """Synapse updates of one example in one training step of ``realization`` on ``net``."""
    if realization.name not in ("grouped", "temporal"):  # batched: each weight once
        return sum(int(net.layers[i].params["W"].size) for i in net.weight_layers)
    per_bin = 0
    for i in net.weight_layers:
        L = net.layers[i]
        if realization.name == "grouped":
            per_bin += net.K * L.n_units * L.n_in
        else:  # temporal: one population of the first layer is active per bin
            per_bin += L.n_units * L.n_in
    dyn = getattr(realization, "dynamics", None)
    if dyn is not None:  # every counting step of every phase with activity
        tl = dyn.tl
        phases = tl.n_phase if dyn.replay_active() else 1
        return per_bin * phases * tl.n_seg * (tl.n_bin - tl.n_settle)
    bins = realization.T if realization.name == "grouped" else net.K
    return per_bin * bins


def simulated_seconds_per_step(realization, batch: int) -> float | None:
    """Biological time one step of ``batch`` examples simulates (s); None without dynamics."""
    dyn = getattr(realization, "dynamics", None)
    return None if dyn is None else batch * dyn.tl.slot * dyn.tl.dt * 1e-3
