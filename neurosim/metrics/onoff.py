"""Drift of weights away from the ON/OFF structure of eq. 16.

At ON/OFF initialisation (paper §5, interleaved pairs: unit 2i is ON, 2i+1
its OFF partner)

* first layer: rows in pairs ``(W̃, −W̃)`` along the post axis;
* hidden layers: 2×2 blocks ``[[w⁺, w⁻], [w⁻, w⁺]]`` with ``w⁺ = [w̃]+``,
  ``w⁻ = [−w̃]+`` (so one of the two is zero);
* the readout: columns in pairs ``(w⁺, w⁻)`` along the pre axis.

"During training, the ON/OFF structure of the weights degrades" (§5).  The
drift of a weight array W is ``‖W − Π(W)‖_F / ‖W‖_F`` where Π(W) is the
nearest (Frobenius) array of exactly that structure for some W̃; it is 0 at
initialisation and grows as training breaks the pairing.  The projection is
in closed form: with p, q the means of the matching entries (e.g. for a
hidden block p = (W[2i,2j] + W[2i+1,2j+1])/2, q = (W[2i,2j+1] + W[2i+1,2j])/2),
w̃ ≥ 0 costs 2(max(p,0)−p)² + 2q² and w̃ ≤ 0 costs 2p² + 2(min(q,0))²; the
cheaper branch is taken per entry.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.backend import to_host


def _pairs(W, axis):
    """Split ``W`` along ``axis`` into its even (ON) and odd (OFF) halves."""
    n = W.shape[axis]
    if n % 2:
        raise ValueError(f"ON/OFF structure needs an even size along axis {axis}, got {n}")
    shape = W.shape[:axis] + (n // 2, 2) + W.shape[axis + 1:]
    Wp = W.reshape(shape)
    return np.take(Wp, 0, axis=axis + 1), np.take(Wp, 1, axis=axis + 1)


def _rect_cost(p, q):
    """Per-entry squared distance of (p, q) to (w⁺, w⁻) for the best w̃ (see module doc)."""
    c_pos = (np.maximum(p, 0) - p) ** 2 + q**2
    c_neg = p**2 + np.minimum(q, 0) ** 2
    return np.minimum(c_pos, c_neg)


def on_off_residual(W, post_axis: int | None, pre_axis: int | None) -> float:
    """Squared Frobenius distance from ``W`` to the nearest eq.-16 array."""
    W = np.asarray(W)
    if post_axis is not None and pre_axis is None:  # first layer: (W̃, −W̃)
        on, off = _pairs(W, post_axis)
        return float(0.5 * ((on + off) ** 2).sum())
    if post_axis is None and pre_axis is not None:  # readout: (w⁺, w⁻)
        on, off = _pairs(W, pre_axis)
        return float(_rect_cost(on, off).sum())
    if post_axis is None:
        raise ValueError("ON/OFF structure needs a post or a pre axis")
    on_r, off_r = _pairs(W, post_axis)
    # taking one element of each pair along post_axis leaves the other axes in place
    a, b = _pairs(on_r, pre_axis)   # ON row: (w⁺ from ON, w⁻ from OFF)
    c, d = _pairs(off_r, pre_axis)  # OFF row: (w⁻ from ON, w⁺ from OFF)
    p, q = (a + d) / 2, (b + c) / 2
    spread = ((a - p) ** 2 + (d - p) ** 2 + (b - q) ** 2 + (c - q) ** 2).sum()
    return float(spread + 2 * _rect_cost(p, q).sum())


def on_off_drift(W, post_axis: int | None, pre_axis: int | None) -> float:
    """‖W − Π(W)‖_F / ‖W‖_F (0 = exact ON/OFF structure); NaN for W = 0."""
    W = np.asarray(W)
    norm2 = float(np.dot(W.ravel(), W.ravel()))
    if norm2 == 0:
        return math.nan
    return math.sqrt(on_off_residual(W, post_axis, pre_axis) / norm2)


def layer_on_off_axes(net, i):
    """(array view shape or None, post_axis, pre_axis) of weight layer ``i``: the layer's
    own account (:meth:`neurosim.model.layers.Layer.on_off_axes`; dense layers follow
    :meth:`neurosim.model.layers.Dense.initialize`)."""
    return net.layers[i].on_off_axes(readout=i == net.readout)


def network_on_off_drift(net) -> np.ndarray:
    """Drift of every weight layer (``net.weight_layers`` order); NaN where
    the structure does not apply (odd sizes, unknown layout)."""
    out = []
    for i in net.weight_layers:
        try:
            view, post, pre = layer_on_off_axes(net, i)
            W = to_host(net.layers[i].params["W"])
            if view is not None:
                W = W.reshape(view)
            out.append(on_off_drift(W, post, pre))
        except (ValueError, IndexError):
            out.append(math.nan)
    return np.asarray(out, dtype=np.float64)
