"""Recording the feedback-matrix metrics of Lansdell et al. (2020) during training.

The metrics (``fb_relative_error``, ``fb_sign_congruence``, ``fb_signal_angle``,
``fb_update_angle``) are :func:`neurosim.metrics.feedback.feedback_metrics`,
for rules that declare feedback matrices
(:meth:`~neurosim.rules.base.Rule.feedback_matrices`: FA, DFA, node
perturbation, IFA, sign symmetry).

Recorded by :class:`FeedbackObserver` along the dim ``feedback_step`` with
coordinate ``feedback_layer`` (weight-layer indices) every
``metrics.feedback_every`` steps (default 200; 0 = off).
"""

from __future__ import annotations

import numpy as np

from ..core.options import Field, Section
from ..metrics.feedback import feedback_metrics
from .observers import Observer


class FeedbackObserver(Observer):
    """Records :func:`feedback_metrics` along ``feedback_step``."""

    #: joins the protocol's ``metrics:`` section
    OPTIONS = Section({
        "feedback_every": Field(int, default=200, min=0, units="step",
                                doc="feedback-matrix metrics (FA, DFA, IFA, node perturbation) every "
                                    "N steps (0 = off)"),
    })

    every_key = "metrics.feedback_every"

    def __init__(self, every: int):
        self.every = int(every)

    def observe(self, exp, ctx):
        import xarray as xr

        net, result = exp.net, ctx.result
        m = feedback_metrics(net, exp.rule, result.states, result.e, result.grads)
        layers = list(net.weight_layers)
        attrs = {
            "fb_relative_error": {"long_name": "relative error ||W - B||_F / ||W||_F of the "
                                               "feedback matrix", "units": "1"},
            "fb_sign_congruence": {"long_name": "fraction of entries with sign(B) = sign(W)",
                                   "units": "1"},
            "fb_signal_angle": {"long_name": "angle between synthetic and true dL/da, per "
                                             "example, batch mean", "units": "degree"},
            "fb_update_angle": {"long_name": "angle between the rule's weight update and the "
                                             "true gradient", "units": "degree"},
        }
        data = {k: (("feedback_step", "feedback_layer"),
                    np.array([[v.get(i, np.nan) for i in layers]], dtype=np.float64), attrs[k])
                for k, v in m.items()}
        ds = xr.Dataset(data, coords={
            "feedback_step": ("feedback_step", [int(ctx.step)], {"long_name": "optimizer step"}),
            "feedback_layer": ("feedback_layer", layers, {"long_name": "weight layer index"}),
        })
        return [(ds, "feedback_step")]


def factory(exp):
    """Observer factory (registered in :data:`neurosim.recording.registry.FACTORIES`)."""
    if not exp.rule.feedback_matrices():
        return None
    every = exp.metrics["feedback_every"]
    return FeedbackObserver(every) if every > 0 else None
