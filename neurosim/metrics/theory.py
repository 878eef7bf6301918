"""Eq. 15 at initialisation: r^ℓ measured vs the recurrence of appendix F.

    r^{L−1} = σ_{w^L}/μ_{w^L},
    r^ℓ     = sqrt(2/n_{ℓ+1}) (σ_{w^{ℓ+1}}/μ_{w^{ℓ+1}}) sqrt(1 + (r^{ℓ+1})²)

with μ_w, σ_w the empirical mean and standard deviation of the entries of
W^{ℓ+1}.  The derivation assumes i.i.d. weights with μ_w > 0 and gates that
are on with probability ½ independently of the weights; the paper's ON/OFF
initialisation is "qualitatively similar to i.i.d. weights with σ_w/μ_w ~ 1"
(§4).  The recurrence is defined for a dense layer ℓ+1 that directly follows
ℓ (n_{ℓ+1} = its number of units); elsewhere the prediction is NaN.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.backend import to_host
from .alignment import delta_hat, gevb_angle, relative_std


def weight_cv(W) -> float:
    """σ_w/μ_w of the entries of W (population std)."""
    W = np.asarray(to_host(W), dtype=np.float64)
    m = W.mean()
    return float(W.std() / m) if m != 0 else math.nan


def eq15_prediction(net) -> dict:
    """{hidden weight layer: predicted r^ℓ} from the network's weights (eq. 15)."""
    hidden = net.hidden_weight_layers
    out = {}
    r_next = None
    nxt = net.readout
    for i in reversed(hidden):
        L1 = net.layers[nxt]
        adjacent = nxt == i + 1 and L1.kind == "dense"
        cv = weight_cv(L1.params["W"])
        if not adjacent:
            r = math.nan
        elif nxt == net.readout:
            r = cv
        else:
            r = math.sqrt(2.0 / L1.n_units) * cv * math.sqrt(1.0 + r_next**2)
        out[i] = r
        r_next, nxt = r, i
    return out


def measure_at_init(net, x) -> list[dict]:
    """Per hidden layer: measured r (batch mean of per-example r), GEVB angle
    (batch mean, from δ̂ by eq. A4), eq.-15 prediction and its angle."""
    _, states = net.forward(x)
    dh = delta_hat(net, states)
    pred = eq15_prediction(net)
    rows = []
    for depth, i in enumerate(net.hidden_weight_layers):
        r = to_host(relative_std(dh[i])).astype(np.float64)
        th = to_host(gevb_angle(dh[i])).astype(np.float64)
        nxt = net.weight_layers[net.weight_layers.index(i) + 1]
        rows.append({
            "layer": i,
            "hidden_layer": depth + 1,
            "n": net.layers[i].n_units,
            "n_next": net.layers[nxt].n_units,
            "cv_next": weight_cv(net.layers[nxt].params["W"]),
            "r_measured": float(np.nanmean(r)),
            "r_measured_std": float(np.nanstd(r)),
            "r_predicted": pred[i],
            "theta_measured": float(np.nanmean(th)),
            "theta_predicted": float(np.degrees(np.arctan(pred[i]))),
        })
    return rows


def iid_nonnegative(net, rng, scale: float = 1.0) -> None:
    """Replace the weights of every layer after the first by i.i.d. half-normal
    |N(0, (scale²·2/fan_in))| entries (σ_w/μ_w = sqrt(π/2 − 1) ≈ 0.76): the
    setting in which eq. 15 is derived."""
    for i in net.weight_layers[1:]:
        L = net.layers[i]
        W = L.params["W"]
        std = scale * math.sqrt(2.0 / L.fan_in)
        L.params["W"] = net.backend.asarray(np.abs(rng.standard_normal(W.shape)) * std)


def with_width(circuit: dict, width: int) -> dict:
    """A copy of a circuit spec with every hidden layer's ``units`` (dense) or
    ``channels`` (conv / locally connected) set to ``width``."""
    from ..core.options import plain

    c = plain(circuit)
    for ls in c["layers"]:
        for key in ("units", "channels"):
            if key in ls:
                ls[key] = int(width)
    return c
