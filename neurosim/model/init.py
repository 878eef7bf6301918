"""Weight initialisation: He (mixed sign) and ON/OFF (paper eq. 16).

Scales follow the paper's published code (SPEC §7):

* mixed sign: N(0, 2/fan_in); the first layer N(0, 1/fan_in);
* ON/OFF: first-layer rows in pairs (W̃, −W̃) with W̃ ~ N(0, 1/fan_in); hidden
  layers ``[[W̃]+, [−W̃]+; [−W̃]+, [W̃]+]`` with W̃ ~ N(0, 4/fan_in) (He for the
  half-width network); the output ``[[W̃]+, [−W̃]+]``;
* vectorized networks multiply the first-layer scale by √K, where the
  first layer's fan-in is that of the K-fold expanded input of appendix B
  (K·n_in): per component the std is 1/√n_in, as in a conventional network.

Pairs are interleaved (unit 2i is ON, unit 2i+1 its OFF partner), matching
the interleaved gating vectors of :mod:`neurosim.model.gating`.  With these
weights, paired units carry equal and opposite activations and the ON half
computes exactly a half-width mixed-sign network with weights W̃ (eq. 16).
"""

from __future__ import annotations

import numpy as np


def scale(role: str, scheme: str, fan_in: int, K: int = 1) -> float:
    """Standard deviation of the Gaussian a weight is drawn from."""
    if scheme == "he":
        s = np.sqrt((1.0 if role == "first" else 2.0) / fan_in)
    elif scheme == "on_off":
        s = np.sqrt((1.0 if role == "first" else 4.0) / fan_in)
    else:
        raise ValueError(f"unknown init scheme {scheme!r} (he | on_off)")
    if role == "first":
        s *= np.sqrt(K)
    return float(s)


def he_init(rng: np.random.Generator, shape, std: float) -> np.ndarray:
    """i.i.d. N(0, std²) weights (He et al. with the caller's std)."""
    return rng.standard_normal(shape) * std


def on_off_init(rng: np.random.Generator, shape, post_axis: int | None, pre_axis: int | None,
                std: float) -> np.ndarray:
    """ON/OFF weights (eq. 16) of ``shape``, paired along the given axes.

    ``post_axis`` pairs output units (or channels); ``pre_axis`` pairs input
    units.  First layer: post only → rows (W̃, −W̃).  Output layer: pre only →
    columns ([W̃]+, [−W̃]+).  Hidden layers: both → the 2×2 block structure.
    """
    shape = tuple(int(s) for s in shape)
    axes = [a for a in (post_axis, pre_axis) if a is not None]
    for a in axes:
        if shape[a] % 2:
            raise ValueError(f"on_off init needs an even number of units/channels, got {shape[a]}")
    half = list(shape)
    for a in axes:
        half[a] //= 2
    Wt = rng.standard_normal(half) * std
    pos, neg = np.maximum(Wt, 0.0), np.maximum(-Wt, 0.0)
    if post_axis is not None and pre_axis is None:  # first layer: (W̃, −W̃)
        return _interleave(Wt, -Wt, post_axis)
    if post_axis is None and pre_axis is not None:  # output: ([W̃]+, [−W̃]+)
        return _interleave(pos, neg, pre_axis)
    on_row = _interleave(pos, neg, pre_axis)   # ON unit:  [W̃]+ from ON, [−W̃]+ from OFF
    off_row = _interleave(neg, pos, pre_axis)  # OFF unit: [−W̃]+ from ON, [W̃]+ from OFF
    return _interleave(on_row, off_row, post_axis)


def _interleave(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Stack a and b so that index 2i comes from a[i] and 2i+1 from b[i]."""
    st = np.stack([a, b], axis=axis + 1)
    shape = list(a.shape)
    shape[axis] *= 2
    return st.reshape(shape)
