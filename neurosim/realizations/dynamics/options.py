"""The ``realization.dynamics:`` section of the grouped and temporal circuits.

Declared once here (:data:`DYNAMICS`, a nullable section) and placed in ``Grouped.OPTIONS`` and
``Temporal.OPTIONS``: when the key is absent the validated options hold ``dynamics: None`` and
the circuit runs exactly as without this module; ``dynamics: {}`` switches the dynamics on
with the defaults below, which are the biologically plausible values (see
``docs/dynamics.md`` for the sources of each range).

Every time is in ms, every rate in Hz.  A time constant of 0 is the ideal limit of that
element (instantaneous); the *ideal dynamics* (every time constant, delay, noise and crosstalk
0, rate neurons, no rectification) reproduce the circuit without dynamics.

Field-level checks (types, ranges, finite numbers) are declared on the fields; the constraints
between the section's fields (``dt_ms`` no larger than any nonzero time constant, the durations of
the trial's layout -- presentation, settling, interval, delay -- whole numbers of steps,
spiking needs rectified rates, ...) are the section's check
:func:`check_section`; those that involve the realization's other options are checked by
each realization's ``check_protocol``, with :func:`check_trace` for the one they share.
"""

from __future__ import annotations

import math

from ...core.options import ConfigError, Field, Section
from .neuromodulator import CROSSTALK
from .neurons import MODELS

#: time constants (dotted key inside ``dynamics``) that must be 0 or >= dt
TIME_CONSTANTS = ("neurons.tau_m_ms", "neurons.tau_syn_ms", "gating.tau_inh_ms",
                  "eligibility.tau_e_ms", "neuromodulator.tau_ms")


def _get(options, dotted: str):
    """The option at ``dotted`` (``eligibility.tau_e_ms``) of typed options."""
    for p in dotted.split("."):
        options = getattr(options, p)
    return options


#: the most steps a duration may take (the memory estimate bounds what fits; this bounds the
#: arithmetic before it)
MAX_STEPS = 2 ** 40


def _steps(value: float, dt: float, key: str) -> int:
    n = value / dt
    if not math.isfinite(n) or n > MAX_STEPS:
        raise ConfigError(f"{value} ms is {n:g} steps of dt_ms = {dt} ms (at most {MAX_STEPS:g}); "
                          f"use a larger dt_ms or a shorter duration", key=key)
    if abs(n - round(n)) > 1e-6 * max(1.0, n):
        raise ConfigError(f"must be a whole number of dt_ms steps ({value} ms / {dt} ms = {n:g})", key=key)
    return int(round(n))


def check_section(dyn: dict, key: str) -> None:
    """Constraints between the fields of a validated ``dynamics`` section."""
    def k(name):
        return f"{key}.{name}" if key else name

    dt = dyn.dt_ms
    for name in TIME_CONSTANTS:
        tau = _get(dyn, name)
        if 0 < tau < dt:
            raise ConfigError(f"time constant {tau} ms is shorter than dt_ms = {dt} ms (use a smaller "
                              f"dt_ms, or 0 for the instantaneous limit)", key=k(name))
    n_pres = _steps(dyn.presentation_ms, dt, k("presentation_ms"))
    if _steps(dyn.settle_ms, dt, k("settle_ms")) >= n_pres:
        raise ConfigError(f"must be shorter than presentation_ms = {dyn['presentation_ms']} ms",
                          key=k("settle_ms"))
    _steps(dyn.interval_ms, dt, k("interval_ms"))
    _steps(dyn.neuromodulator.delay_ms, dt, k("neuromodulator.delay_ms"))
    neu = dyn.neurons
    if neu.input_spikes and not dyn.code.rectify:
        raise ConfigError("spiking input neurons need nonnegative rates: set code.rectify: true",
                          key=k("code.rectify"))
    MODELS[neu.model].check(dyn, k)


DYNAMICS = Section({
    "dt_ms": Field(float, default=1.0, min=0, exclusive_min=True, units="ms",
                   doc="integration step; states advance by exact exponential (exponential-Euler) "
                       "updates, exact for inputs held constant over a step; must not exceed any "
                       "nonzero time constant"),
    "presentation_ms": Field(float, default=50.0, min=0, exclusive_min=True, units="ms",
                             doc="how long each stimulus is shown: grouped, the whole example; "
                                 "temporal, each of the K time bins (an example lasts K x presentation_ms); "
                                 "a whole number of dt_ms steps"),
    "settle_ms": Field(float, default=20.0, min=0, units="ms",
                       doc="settling period at the start of each presentation (grouped) or bin "
                           "(temporal): the readout is not decoded, coincidences do not enter the "
                           "eligibility trace and the neuromodulator command is off (< presentation_ms)"),
    "interval_ms": Field(float, default=200.0, min=0, units="ms",
                         doc="time between the end of one trial (presentation and replay) and the next "
                             "example's onset; the circuit is at rest in between, but eligibility "
                             "traces and the neuromodulator go on"),
    "replay": Field(bool, default=True,
                    doc="after the presentation the stimulus is presented again while the "
                        "neuromodulator carries the error (the activity meets the third factor); "
                        "false: the circuit is at rest after the presentation and only the "
                        "eligibility trace carries the coincidences to the neuromodulator "
                        "(temporal error_timing mse_online has no replay)"),
    "neurons": Section({
        "model": Field(str, default="rate", choices=tuple(MODELS),
                       doc="rate: leaky rate neurons; poisson: the same rate neurons emit Poisson "
                           "spikes at their rate; lif: leaky integrate-and-fire neurons"),
        "tau_m_ms": Field(float, default=10.0, min=0, units="ms",
                          doc="membrane / rate time constant (cortical 10-20 ms; 0 = instantaneous rates)"),
        "tau_ref_ms": Field(float, default=2.0, min=0, units="ms",
                            doc="LIF absolute refractory period (exact for any value: spike times "
                                "and the end of the refractory period fall within steps)"),
        "tau_syn_ms": Field(float, default=5.0, min=0, units="ms",
                            doc="synaptic current filter of spike trains (AMPA ~2-5 ms; "
                                "0 = spike counts per step)"),
        "input_spikes": Field(bool, default=False,
                              doc="input neurons spike (Poisson at their rate; grouped circuit only); "
                                  "false: the stimulus drives layer 1 as rates"),
        "readout": Field(str, default="counts", choices=("counts", "filtered"),
                         doc="spiking readout: logits from spike counts over the decoding window, "
                             "or from the synaptically filtered spike trains"),
    }, doc="neuron model, time constants, spiking input and readout"),
    "code": Section({
        "baseline_hz": Field(float, default=20.0, min=0, units="Hz",
                             doc="r0: rate of a neuron whose signed activity is 0"),
        "gain_hz": Field(float, default=10.0, min=0, exclusive_min=True, units="Hz",
                         doc="g: Hz per unit of signed activity, r = r0 + g a"),
        "rectify": Field(bool, default=True,
                         doc="rates cannot be negative: r = max(r0 + g a, 0) (false: the ideal signed code)"),
    }, doc="signed activity as a rate around a baseline"),
    "gating": Section({
        "tau_inh_ms": Field(float, default=5.0, min=0, units="ms",
                            doc="time constant of the inhibitory gate (GABA-A ~5-10 ms; "
                                "0 = instantaneous Θ)"),
    }, doc="gating as inhibition"),
    "eligibility": Section({
        "tau_e_ms": Field(float, default=500.0, min=0, units="ms",
                          doc="eligibility trace time constant (hundreds of ms to seconds; "
                              "0 = the instantaneous coincidence)"),
    }, doc="eligibility traces of pre x post-gate coincidences"),
    "neuromodulator": Section({
        "delay_ms": Field(float, default=100.0, min=0, units="ms",
                          doc="delay of the neuromodulator after its command (~100 ms)"),
        "tau_ms": Field(float, default=50.0, min=0, units="ms",
                        doc="low-pass filter of the neuromodulator (0 = none)"),
        "noise": Field(float, default=0.0, min=0,
                       doc="sigma_M: standard deviation of additive noise on M (units of the "
                           "per-example error), correlated over tau_ms (white per step if 0)"),
        "crosstalk": Field(float, default=0.0, min=0, max=1,
                           doc="fraction chi of error component mu delivered to the wrong place, spread "
                               "as crosstalk_structure says: grouped, to other channels; temporal, "
                               "into other bins"),
        "crosstalk_structure": Field(str, default="uniform", choices=CROSSTALK,
                                     doc="where the crosstalk goes: uniform, chi/(K-1) to each of the "
                                         "K-1 other channels or bins; neighbours, chi/2 to each "
                                         "adjacent index mu-1, mu+1 (an open chain: the first and "
                                         "last have one neighbour, the other chi/2 is lost)"),
    }, doc="the third factor: delay, low-pass, noise, crosstalk"),
}, nullable=True, checks=(check_section,),
    doc="time, spikes, inhibitory gating, eligibility traces and neuromodulator transport "
        "(absent: the circuit without dynamics; {}: the biologically plausible defaults)")


def is_ideal(dyn: dict) -> bool:
    """Whether a validated ``dynamics`` section is the ideal limit, which reproduces the circuit
    without dynamics: every time constant, delay, noise and crosstalk 0, rate neurons, the
    signed code (``code.rectify: false``)."""
    neu, nm = dyn.neurons, dyn.neuromodulator
    zero = (neu.tau_m_ms, dyn.gating.tau_inh_ms, dyn.eligibility.tau_e_ms,
            nm.delay_ms, nm.tau_ms, nm.noise, nm.crosstalk)
    return (all(v == 0 for v in zero) and neu.model == "rate" and not neu.input_spikes
            and not dyn.code.rectify)


#: why a circuit in time is not exact (:func:`agreement`)
IN_TIME = ("approximate: the circuit runs in time (realization.dynamics): leak, inhibition, "
           "eligibility traces and a late, filtered, noisy neuromodulator change its update")


def agreement(dyn) -> str | None:
    """The agreement note of a circuit's validated ``dynamics`` section, or None when it does not
    change the circuit's update (absent, or the ideal limit)."""
    if dyn is None or is_ideal(dyn):
        return None
    return IN_TIME


def check_trace(dyn, replay: bool, online: bool) -> None:
    """The constraint every circuit in time shares (each realization checks its own options and
    says whether its error meets the activity again, by ``replay``, or as it happens, ``online``):
    otherwise the activity is over when the neuromodulator arrives and an eligibility trace must
    carry it."""
    if not replay and not online and dyn.eligibility.tau_e_ms == 0:
        raise ConfigError("without replay the activity is over when the neuromodulator arrives; an "
                          "eligibility trace (tau_e_ms > 0) must carry it",
                          key="realization.dynamics.eligibility.tau_e_ms")
