"""Feedback-matrix metrics of Lansdell et al. (2020, fig. 2 and 4).

For rules with feedback matrices (:meth:`~neurosim.rules.base.Rule.feedback_matrices`:
FA, DFA, node perturbation, IFA, sign symmetry), per layer:

* ``fb_relative_error``  ‖W_eff − B‖_F / ‖W_eff‖_F,
* ``fb_sign_congruence`` fraction of entries where sign(B) = sign(W_eff),
* ``fb_signal_angle``    angle (degrees) between the rule's estimate of
  ∂L/∂a and the true ∂L/∂a, per example, averaged over the batch (the
  "angle between true gradient and synthetic gradient estimate",
  ∝ eᵀ W Bᵀ ẽ; no derivative-of-nonlinearity term, as SPEC §5),
* ``fb_update_angle``    angle (degrees) between the rule's batch update of
  W and the true batch gradient ∂L/∂W (any rule).

Feedback of kind ``backward`` (FA, node perturbation ``style: fa``, sign
symmetry) is reported at the weight layer ℓ whose W^ℓ it replaces
(W_eff = W^ℓ; the signal is ∂L/∂a at layer ℓ's input, carried by B^ℓ from the
rule's learning signal g^ℓ).  Feedback of kind ``direct`` (DFA, node
perturbation ``style: dfa``, IFA) is reported at the hidden layer ℓ it reaches
(the signal is the rule's δ^ℓ = e B^ℓ against ∂L/∂a^ℓ); W_eff = W^L ⋯ W^{ℓ+1},
the product of the downstream weights (the linear-network target of
corollary 1), defined when only dense layers follow ℓ (NaN otherwise).

Everything here is a pure function of the network, the rule's declared
signals and matrices, the forward states and the error vector; recording is
:mod:`neurosim.recording.feedback`.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.backend import array_module, to_host
from ..rules.base import backward_pass, weight_grads
from .alignment import angle, example_angles

#: the metrics :func:`feedback_metrics` returns
METRICS = ("fb_relative_error", "fb_sign_congruence", "fb_signal_angle", "fb_update_angle")


def relative_error(W, B) -> float:
    """‖W − B‖_F / ‖W‖_F."""
    xp = array_module(W)
    return float(xp.linalg.norm(W - B) / xp.linalg.norm(W))


def sign_congruence(W, B) -> float:
    """Fraction of entries where sign(B) = sign(W)."""
    xp = array_module(W)
    return float(xp.mean(xp.sign(W) == xp.sign(B)))


def mean_example_angle(u, v) -> float:
    """Per-example angle (degrees) between u[b] and v[b], averaged over the
    examples where neither is zero (NaN if there are none)."""
    th = to_host(example_angles(u, v))
    ok = np.isfinite(th)
    return float(th[ok].mean()) if ok.any() else math.nan


def downstream_product(net, i):
    """W^L ⋯ W^{i+1} (n_out × n_i) when only dense layers follow layer i, else None."""
    W = None
    for j in range(i + 1, len(net.layers)):
        L = net.layers[j]
        if L.kind != "dense" or L.first:
            return None
        W = L.params["W"] if W is None else L.params["W"] @ W
    return W


def feedback_metrics(net, rule, states, e, grads=None) -> dict:
    """``{metric: {layer: value}}`` for one batch (see the module docstring).

    ``grads`` (the rule's update of this batch) adds ``fb_update_angle``; the
    other metrics cover the layers of ``rule.feedback_matrices()``.
    """
    g_true, da_true = backward_pass(net, states, e)
    out = {k: {} for k in METRICS}
    if grads is not None:
        tg = weight_grads(net, states, g_true)
        for i in net.weight_layers:
            if (i, "W") in grads:
                out["fb_update_angle"][i] = angle(grads[(i, "W")], tg[(i, "W")])
    fb = rule.feedback_matrices()
    backward = {i: f.matrix for i, f in fb.items() if f.kind == "backward"}
    direct = {i: f.matrix for i, f in fb.items() if f.kind == "direct"}
    if backward:
        g = rule.learning_signals(net, states, e)
        for i, B in backward.items():
            L = net.layers[i]
            W = L.params["W"]
            out["fb_relative_error"][i] = relative_error(W, B)
            out["fb_sign_congruence"][i] = sign_congruence(W, B)
            out["fb_signal_angle"][i] = mean_example_angle(L.vjp(g[i], B, a=states[i].a_in),
                                                           da_true[i - 1])
    if direct:
        delta = rule.error_signals(net, states, e)
        for i, D in direct.items():
            out["fb_signal_angle"][i] = mean_example_angle(delta[i], da_true[i])
            P = downstream_product(net, i)
            if P is not None and P.shape == D.shape:
                out["fb_relative_error"][i] = relative_error(P, D)
                out["fb_sign_congruence"][i] = sign_congruence(P, D)
    return out
