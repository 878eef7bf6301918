"""Feedback-alignment metrics of Lansdell et al. (2020, fig. 2 and 4).

For rules with feedback matrices (FA, DFA, node perturbation, IFA, sign
symmetry), per layer:

* ``fb_relative_error``  ‖W_eff − B‖_F / ‖W_eff‖_F,
* ``fb_sign_congruence`` fraction of entries where sign(B) = sign(W_eff),
* ``fb_signal_angle``    angle (degrees) between the rule's estimate of
  ∂L/∂a and the true ∂L/∂a, per example, averaged over the batch (the
  "angle between true gradient and synthetic gradient estimate",
  ∝ eᵀ W Bᵀ ẽ; no derivative-of-nonlinearity term, as SPEC §5),
* ``fb_update_angle``    angle (degrees) between the rule's batch update of
  W and the true batch gradient ∂L/∂W (any rule).

Layer-to-layer feedback (``feedback_kind == "fa"``: FA, NP ``style: fa``,
sign symmetry) is reported at the weight layer ℓ whose W^ℓ it replaces
(W_eff = W^ℓ; the signal is ∂L/∂a at layer ℓ's input).  Direct feedback
(``"dfa"``: DFA, NP ``style: dfa``, IFA) is reported at the hidden layer ℓ it
reaches (the signal is ∂L/∂a^ℓ); W_eff = W^L ⋯ W^{ℓ+1}, the product of the
downstream weights (the linear-network target of corollary 1), defined when
only dense layers follow ℓ (NaN otherwise).

Recorded by :class:`FeedbackObserver` along the dim ``feedback_step`` with
coordinate ``feedback_layer`` (weight-layer indices) every
``metrics.feedback_every`` steps (default 200; 0 = off).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.options import Field, Section
from ..rules.base import backward, weight_grads
from .observers import Observer


def feedback_kind(rule):
    """"fa", "dfa" or None: how the rule's ``feedback`` matrices are used."""
    kind = getattr(rule, "feedback_kind", None)
    if kind is None:
        kind = {"fa": "fa", "dfa": "dfa"}.get(getattr(rule, "name", None))
    return kind if getattr(rule, "feedback", None) is not None else None


def _f(x) -> float:
    return float(x.item() if hasattr(x, "item") else x)


def relative_error(W, B) -> float:
    xp = type(W).__module__.startswith("cupy") and __import__("cupy") or np
    return _f(xp.linalg.norm(W - B) / xp.linalg.norm(W))


def sign_congruence(W, B) -> float:
    xp = type(W).__module__.startswith("cupy") and __import__("cupy") or np
    return _f(xp.mean(xp.sign(W) == xp.sign(B)))


def angle(u, v) -> float:
    """Angle in degrees between two arrays (flattened)."""
    xp = type(u).__module__.startswith("cupy") and __import__("cupy") or np
    u, v = u.ravel(), v.ravel()
    c = _f(xp.dot(u, v)) / (_f(xp.linalg.norm(u)) * _f(xp.linalg.norm(v)) + 1e-300)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def mean_example_angle(u, v) -> float:
    """Per-example angle (degrees) between u[b] and v[b], averaged over b."""
    xp = type(u).__module__.startswith("cupy") and __import__("cupy") or np
    B = u.shape[0]
    u, v = u.reshape(B, -1), v.reshape(B, -1)
    den = xp.linalg.norm(u, axis=1) * xp.linalg.norm(v, axis=1)
    ok = den > 0
    if not bool(ok.any()):
        return float("nan")
    c = xp.clip((u * v).sum(axis=1)[ok] / den[ok], -1.0, 1.0)
    return _f(xp.degrees(xp.arccos(c)).mean())


def downstream_product(net, i):
    """W^L ⋯ W^{i+1} (n_out × n_i) when only dense layers follow layer i."""
    W = None
    for j in range(i + 1, len(net.layers)):
        L = net.layers[j]
        if L.kind != "dense" or L.first:
            return None
        W = L.params["W"] if W is None else L.params["W"] @ W
    return W


def feedback_metrics(net, rule, states, e, grads=None) -> dict:
    """{metric: {layer: value}} for one batch (see the module docstring)."""
    kind = feedback_kind(rule)
    true = backward(net, states, e)
    out = {"fb_relative_error": {}, "fb_sign_congruence": {}, "fb_signal_angle": {},
           "fb_update_angle": {}}
    if grads is not None:
        tg = weight_grads(net, states, true)
        for i in net.weight_layers:
            if (i, "W") in grads:
                out["fb_update_angle"][i] = angle(grads[(i, "W")], tg[(i, "W")])
    if kind is None:
        return out
    fb = rule.feedback
    if kind == "fa":
        sig = rule.signals(net, states, e) if hasattr(rule, "signals") else backward(net, states, e, fb)
        for i, B in fb.items():
            L = net.layers[i]
            W = L.params["W"]
            out["fb_relative_error"][i] = relative_error(W, B)
            out["fb_sign_congruence"][i] = sign_congruence(W, B)
            out["fb_signal_angle"][i] = mean_example_angle(L.vjp(sig[i], B, a=states[i].a_in),
                                                           L.vjp(true[i], a=states[i].a_in))
    else:
        Bsz, K = e.shape[0], net.K
        eo = e.reshape(Bsz * K, net.n_out)
        for i, D in fb.items():
            est = (eo @ D).reshape((Bsz, K) + net.layers[i].unit_shape)
            nxt = i + 1
            if nxt in true:
                Ln = net.layers[nxt]
                da = Ln.vjp(true[nxt], a=states[nxt].a_in)
                out["fb_signal_angle"][i] = mean_example_angle(est, da)
            P = downstream_product(net, i)
            if P is not None and P.shape == D.shape:
                out["fb_relative_error"][i] = relative_error(P, D)
                out["fb_sign_congruence"][i] = sign_congruence(P, D)
    return out


class FeedbackObserver(Observer):
    """Records :func:`feedback_metrics` along ``feedback_step``."""

    #: joins the protocol's ``metrics:`` section
    OPTIONS = Section({
        "feedback_every": Field(int, default=200, min=0, units="step",
                                doc="feedback-matrix metrics (FA, DFA, IFA, node perturbation) every "
                                    "N steps (0 = off)"),
    })

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
    if feedback_kind(exp.rule) is None:
        return None
    every = exp.metrics["feedback_every"]
    return FeedbackObserver(every) if every > 0 else None
