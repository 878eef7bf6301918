"""Recording credit-assignment metrics during training (protocol ``metrics:``).

::

    metrics:
      every: 100          # 0 = off; else steps 1, N, 2N, ... are metric steps
      alignment: true     # alignment_angle(_std), update_angle
      delta_hat: true     # r (= std δ̂ / mean δ̂) and predicted_angle = atan r (VNNs)
      sign_match: true    # sign_match_batch, sign_match_example
      on_off_drift: true  # drift from the eq.-16 structure (ON/OFF-initialised nets)
      sign_match_weights: 4096  # W entries sampled per dense layer for the per-example
                          # sign match (all examples; 0 = every entry)
      examples: 8         # examples for per_example angles and the per-example sign
                          # match of non-dense layers
      per_example: false  # also record alignment_angle_example (step, layer, sample)

On a metric step the observer (called before the optimizer step) computes
the true gradient with one exact backward pass (and, for δ̂, a second one
with a unit error vector) and appends one record along ``step`` with a
``layer`` dimension over the weight layers (its attr ``layer_kinds`` lists
their kinds); the coordinates ``readout`` (else hidden) and ``exact`` (the rule's update of that
layer *is* the gradient: the readout for every rule, every layer for BP)
say what each index is.  Other steps cost nothing: the observer is not
called (``due`` is False).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.options import Field, Section
from ..metrics.alignment import step_metrics
from ..metrics.onoff import network_on_off_drift
from .observers import Observer

VARIABLES = {
    "alignment_angle": ("deg", "angle between the rule's learning signal and the backpropagated "
                        "dL/da (no derivative-of-nonlinearity term), per example, batch mean "
                        "(appendix E)"),
    "alignment_angle_std": ("deg", "standard deviation over the batch of the per-example angle"),
    "update_angle": ("deg", "angle between the rule's batch weight update and the batch gradient"),
    "r": ("1", "relative standard deviation std(δ̂)/mean(δ̂) over units, batch mean (eq. A5)"),
    "predicted_angle": ("deg", "atan(r) per example, batch mean (eq. A8; = GEVB angle)"),
    "sign_match_batch": ("1", "fraction of weights with nonzero gradient whose batch update has "
                         "the gradient's sign"),
    "sign_match_example": ("1", "the same per example, mean over examples (dense layers: on "
                           "sampled weight entries)"),
    "on_off_drift": ("1", "‖W − Π(W)‖/‖W‖, Π = nearest eq.-16 ON/OFF-structured weights"),
    "alignment_angle_example": ("deg", "per-example alignment angle of the first examples"),
}


class MetricsObserver(Observer):
    """Per-layer credit-assignment metrics every ``every`` steps (and step 1)."""

    #: the protocol's ``metrics:`` section
    OPTIONS = Section({
        "every": Field(int, default=0, min=0, units="step",
                       doc="metrics every N optimizer steps, and at step 1 (0 = off)"),
        "alignment": Field(bool, default=True, doc="angle between the rule's update and the gradient"),
        "delta_hat": Field(bool, default=True, doc="statistics of δ̂ (eq. 15)"),
        "sign_match": Field(bool, default=True, doc="sign agreement of the update with the gradient"),
        "on_off_drift": Field(bool, default=True, doc="how far ON/OFF pairs drift from mirror images"),
        "examples": Field(int, default=8, min=1, units="example", doc="examples for per-example records"),
        "sign_match_weights": Field(int, default=4096, min=0, doc="W entries sampled (0 = all)"),
        "per_example": Field(bool, default=False, doc="also record per-example values"),
    }, doc="credit-assignment metrics recorded during training")

    def __init__(self, net, rule, cfg: dict, on_off: bool):
        self.cfg = cfg
        self.every = int(cfg["every"])
        self.layers = list(net.weight_layers)
        exact_all = rule.exact_gradient
        kinds = [net.layers[i].kind for i in self.layers]
        self.coords = {
            "layer": ("layer", np.asarray(self.layers, dtype=np.int64),
                      {"long_name": "index of the weight layer in the network",
                       "layer_kinds": " ".join(kinds)}),
            "readout": ("layer", np.asarray([i == net.readout for i in self.layers]),
                        {"long_name": "the layer is the readout (else a hidden layer)"}),
            "exact": ("layer", np.asarray([exact_all or i == net.readout for i in self.layers]),
                      {"long_name": "the rule's update of this layer is the true gradient"}),
        }
        self.on_off = bool(cfg["on_off_drift"]) and on_off

    every_key = "metrics.every"

    def due(self, step: int) -> bool:
        return self.every > 0 and (step == 1 or step % self.every == 0 or step == self.final_step)

    def observe(self, exp, ctx):
        c = self.cfg
        m = step_metrics(exp.net, exp.rule, ctx.result, alignment=c["alignment"],
                         delta_hat_stats=c["delta_hat"], sign_match_on=c["sign_match"],
                         examples=c["examples"], per_example=c["per_example"],
                         sign_match_weights=c["sign_match_weights"])
        if self.on_off:
            m["on_off_drift"] = network_on_off_drift(exp.net)
        data = {}
        for k, v in m.items():
            units, desc = VARIABLES[k]
            attrs = {"long_name": desc, "units": units}
            if v.ndim == 2:
                data[k] = (("step", "layer", "sample"), v[None], attrs)
            else:
                data[k] = (("step", "layer"), v[None], attrs)
        data["epoch_at_step"] = ("step", [ctx.epoch_after_step],
                                 {"long_name": "epochs completed after this step", "units": "epoch"})
        coords = dict(self.coords)
        coords["step"] = ("step", [int(ctx.step)], {"long_name": "optimizer step (1-based) the metrics "
                                                    "were taken at, before its update"})
        return [(xr.Dataset(data, coords=coords), "step")]


def metrics_factory(exp):
    """Observer factory (see :data:`neurosim.recording.registry.FACTORIES`)."""
    cfg = exp.metrics
    if not cfg.get("every"):
        return None
    return MetricsObserver(exp.net, exp.rule, cfg, on_off=exp.circuit.get("init") == "on_off")
