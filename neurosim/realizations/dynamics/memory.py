"""Memory of a circuit in time: its time-course arrays, estimated from the options alone.

Added to the run's memory estimate at validation (``Realization.memory_parts``), so that a
protocol whose trial cannot fit is refused with the estimate instead of failing mid-run.  The
parts (bytes; rough upper estimates of what :mod:`.engine` holds at its peak):

* ``time course`` — one phase of the training batch (the presentation, and a replay simulated
  afresh beside it when the neurons spike): for every layer the signal it sends on and its
  gate, plus the working arrays of the layer being simulated (input current, gated current,
  membrane, spikes, the plasticity's row weights), at every step of the phase; evaluation
  chunks of :data:`EVAL_CHUNK` examples when larger;
* ``neuromodulator stream`` — the command, delay line, filtered signal and row weights over
  the batch's stream of trials (B x slot steps, plus the delay) for every channel.
"""

from __future__ import annotations

#: examples per evaluation pass of a circuit in time (CircuitDynamics.logits)
EVAL_CHUNK = 128
#: arrays of a layer's time course held at once while the layer is simulated and learns
WORKING = 2
#: arrays per layer kept for the plasticity (signal sent on, gate)
KEPT = 2
#: arrays of the neuromodulator's stream held at once
STREAM = 6


def steps(value_ms: float, dt_ms: float) -> int:
    return int(round(value_ms / dt_ms))


def estimate(dyn: dict, layout: tuple, units: list, itemsize: int, batch_size: int) -> dict:
    """{part: (bytes, key to change)} of a validated ``dynamics`` section.  ``layout``: the
    realization's ``time_layout`` (steps of a phase, neurons per vector unit, neuromodulator
    channels, phases per trial); ``units``: neurons per vector unit of each weight layer (their
    ``unit_shape`` sizes)."""
    dt = dyn.dt_ms
    phase, per_unit, channels, n_phase = layout
    spiking = dyn.neurons.model != "rate" or dyn.neurons.input_spikes
    live = 2 if spiking and dyn.replay and n_phase == 2 else 1  # phases simulated and kept
    per_step = KEPT * sum(per_unit * n + n for n in units) + WORKING * per_unit * max(units)
    train = phase * batch_size * per_step * itemsize * live
    evaluate = phase * min(EVAL_CHUNK, batch_size) * per_step * itemsize
    slot = n_phase * phase + steps(dyn.interval_ms, dt)
    delay = steps(dyn.neuromodulator.delay_ms, dt)
    stream = STREAM * (batch_size * slot + delay) * channels * itemsize
    key = "realization.dynamics." + ("presentation_ms" if dt >= 0.1 else "dt_ms")
    nm_key = "realization.dynamics." + ("neuromodulator.delay_ms" if delay > batch_size * slot
                                        else "interval_ms")
    return {"time course": (max(train, evaluate), key), "neuromodulator stream": (stream, nm_key)}



def realization_parts(cls, protocol: dict, units: list, K: int, itemsize: int) -> dict:
    """``Realization.memory_parts`` of the grouped and temporal circuits: their time course
    when the protocol asks for dynamics, else nothing."""
    o = protocol.realization
    if o.dynamics is None:
        return {}
    n_bin = steps(o.dynamics.presentation_ms, o.dynamics.dt_ms)
    return estimate(o.dynamics, cls.time_layout(K, n_bin, o), units, itemsize,
                    protocol.training.batch_size)
