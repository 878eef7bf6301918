"""Declared variables of the trial records: the circuits in time over one whole trial.

A circuit in time (``realization.dynamics``) records, at every trajectory record, each probe
example as one trial from its onset to the next example's onset: the presentation, the
replay, and the rest interval in which the delayed, filtered neuromodulator meets the
eligibility traces.  Every variable and coordinate is declared here once — name, dims, units,
a short long_name (it labels plot axes) and a full description — as the epoch records
(:mod:`.epoch`) and metrics (:mod:`.metrics`) are; the realization fills in values through
:func:`variable` and :func:`coordinate`, which refuse a name that is not declared.

Populations are named as in a circuit diagram (:func:`populations`): ``input``,
``hidden_1`` ... ``hidden_{L-1}``, ``readout``; the weight layer ``l`` of the network (its
index in the store's ``layers`` attr) projects onto population ``populations(...)[pos + 1]``.
Templates ``{pop}`` in a name stand for a population.

Units: rates in Hz, times in ms; *activity* is the signed activity of the rate code,
``(r - r0) / g`` (rate deviation from the baseline ``code.baseline_hz`` divided by the gain
``code.gain_hz``: one activity unit is ``gain_hz`` Hz above baseline); the neuromodulator in
units of the per-example error ``e = ∂L/∂a`` (dimensionless, ``1``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: phases of a trial, codes of ``trial_phase``
PHASES = ("presentation", "replay", "rest")

#: the unit string of signed activity (see the module docstring)
ACTIVITY = "activity"
ACTIVITY_NOTE = ("activity = (r - r0) / g: rate deviation from the baseline r0 "
                 "(code.baseline_hz) divided by the gain g (code.gain_hz)")


@dataclass(frozen=True)
class Declared:
    dims: tuple  #: dimension names; ``{pop}`` templates; ``component``, ``channel``: see variable
    units: str
    long_name: str  #: short (it labels plot axes)
    description: str = ""  #: what it is, in full (attr ``description``)


#: coordinates along the trial (records share them; written once per store)
COORDINATES = {
    "trial_time": Declared(("trial_time",), "ms", "time in the trial",
                           "time since the trial's onset, at the end of each integration step"),
    "trial_phase": Declared(("trial_time",), "1", "trial phase",
                            "phase of the trial: 0 presentation, 1 replay, 2 rest"),
    "trial_bin": Declared(("trial_time",), "1", "time bin",
                          "time bin μ of the phase (temporal circuit: input population μ "
                          "active, output component μ; grouped: 0); -1 at rest"),
    "trial_counting": Declared(("trial_time",), "1", "decoding window",
                               "1 in the decoding / plasticity window of a bin (after the "
                               "settling period), else 0"),
    "unit_{pop}": Declared(("unit_{pop}",), "1", "neuron of {pop}",
                           "index of the recorded neuron (grouped: of the group) in population "
                           "{pop}"),
    "synapse_to_{pop}": Declared(("synapse_to_{pop}",), "1", "synapse onto {pop}",
                                 "sampled synapse onto population {pop} (position in the sample)"),
    "synapse_to_{pop}_post": Declared(("synapse_to_{pop}",), "1", "postsynaptic neuron",
                                      "postsynaptic neuron of the sampled synapse (index in "
                                      "population {pop})"),
    "synapse_to_{pop}_pre": Declared(("synapse_to_{pop}",), "1", "presynaptic neuron",
                                     "presynaptic neuron of the sampled synapse (index in the "
                                     "population before {pop})"),
    "synapse_to_{pop}_component": Declared(("synapse_to_{pop}",), "1", "component μ",
                                           "component μ of the synapse (grouped: neuron μ of "
                                           "the groups, neuromodulator channel μ; temporal "
                                           "first layer: input population μ)"),
}

#: variables of one trajectory record (the observer prepends ``sim_step``)
VARIABLES = {
    "trial_rate_{pop}": Declared(
        ("probe", "trial_time", "component", "unit_{pop}"), "Hz", "firing rate, {pop}",
        "firing rate of population {pop} (spiking neurons: the rate of the Poisson process, or "
        "the synaptically filtered spike train of LIF neurons; at rest: the baseline)"),
    "trial_spikes_{pop}": Declared(
        ("probe", "trial_time", "component", "unit_{pop}"), "spikes", "spikes per step, {pop}",
        "spikes of population {pop} per integration step (NaN at rest: not simulated)"),
    "trial_gate_{pop}": Declared(
        ("probe", "trial_time", "unit_{pop}"), "1", "inhibitory gate, {pop}",
        "inhibitory gate G of population {pop} (1 = not inhibited, 0 = silenced)"),
    "trial_command": Declared(
        ("probe", "trial_time", "channel"), "1", "neuromodulator command",
        "neuromodulator command: the error component ε_μ the circuit sends on channel μ "
        "(temporal: on the one broadcast channel, ε_μ in bin μ), before delay and filter "
        "(per-example error units)"),
    "trial_neuromodulator": Declared(
        ("probe", "trial_time", "channel"), "1", "neuromodulator M(t)",
        "neuromodulator M_μ(t) at the synapses of channel μ (temporal: one signal broadcast "
        "to every synapse): the command delayed, filtered, with noise (per-example error "
        "units); the M the plasticity uses"),
    "trial_eligibility_to_{pop}": Declared(
        ("probe", "trial_time", "synapse_to_{pop}"), ACTIVITY, "eligibility trace E(t) onto {pop}",
        "eligibility trace E(t) of sampled synapses onto population {pop}: presynaptic "
        "activity x postsynaptic gate, filtered with tau_e (the E the plasticity uses)"),
    "mean_rate": Declared(
        ("circuit_layer",), "Hz", "mean firing rate",
        "mean firing rate of the population a weight layer projects onto, over the probe "
        "examples' decoding windows"),
    "zero_rate_fraction": Declared(
        ("circuit_layer",), "1", "fraction at zero rate",
        "fraction of neuron-steps of the probe examples' decoding windows driven to zero rate "
        "(activity below -baseline/gain), per population a weight layer projects onto"),
    "neuromodulator_bin_mean": Declared(
        ("probe", "time_bin", "channel"), "1", "neuromodulator per time bin",
        "neuromodulator at the synapses of channel μ, mean over each time bin's command window "
        "delayed by the neuromodulator's delay (where that command arrives), per probe example "
        "(per-example error units; without dynamics it is the error e_μ "
        "itself: grouped, channel μ carries e_μ in every bin; temporal, every channel carries "
        "e_μ in bin μ)"),
}

#: names of stores written before the trial records (read by :mod:`neurosim.analysis.trial`)
LEGACY = {
    "neuromodulator": "neuromodulator_bin_mean",
    "dyn_neuromodulator": "trial_neuromodulator",
    "dyn_mean_rate": "mean_rate",
    "dyn_zero_rate_fraction": "zero_rate_fraction",
    "dyn_time": "trial_time",
    "dyn_phase": "trial_phase",
}


def populations(n_weight_layers: int) -> list:
    """``["input", "hidden_1", ..., "readout"]`` for a feed-forward network of weight layers."""
    return ["input"] + [f"hidden_{k}" for k in range(1, n_weight_layers)] + ["readout"]


def _lookup(table: dict, name: str, fmt: dict):
    decl = table.get(name)
    if decl is None:
        raise KeyError(f"trial record {name!r} is not declared in neurosim.recording.trial")
    return decl


def variable(name: str, values, drop: tuple = (), **fmt) -> tuple:
    """``(filled name, (dims, values, attrs))`` of a declared variable; ``drop``: dimensions a
    circuit does not have (``component``: a neuron per vector unit; ``channel``: one broadcast
    neuromodulator); ``fmt`` fills ``{pop}``."""
    decl = _lookup(VARIABLES, name, fmt)
    dims = tuple(d.format(**fmt) for d in decl.dims if d not in drop)
    if len(dims) != len(getattr(values, "shape", ())):
        raise ValueError(f"{name}: values of shape {values.shape} for dims {dims}")
    attrs = {"units": decl.units, "long_name": decl.long_name.format(**fmt),
             "description": decl.description.format(**fmt)}
    if decl.units == ACTIVITY:
        attrs["units_note"] = ACTIVITY_NOTE
    if "pop" in fmt:
        attrs["population"] = fmt["pop"]
    return name.format(**fmt), (dims, values, attrs)


def coordinate(name: str, values, **extra) -> tuple:
    """``(filled name, (dims, values, attrs))`` of a declared coordinate; ``extra``: ``pop``
    for templates, other keys become attrs."""
    fmt = {k: v for k, v in extra.items() if k == "pop"}
    attrs_extra = {k: v for k, v in extra.items() if k != "pop"}
    decl = _lookup(COORDINATES, name, fmt)
    dims = tuple(d.format(**fmt) for d in decl.dims)
    attrs = {"units": decl.units, "long_name": decl.long_name.format(**fmt),
             "description": decl.description.format(**fmt), **attrs_extra}
    return name.format(**fmt), (dims, values, attrs)
