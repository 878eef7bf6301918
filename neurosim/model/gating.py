"""Gating vectors t ∈ {−1, +1}^K (paper eq. 8), sampled once and frozen.

Units (or channels, in convolutional layers) come in ON/OFF pairs that are
*interleaved*: unit 2i has gating vector t, unit 2i+1 has −t (as in the
paper's published code).  With ON/OFF initialisation (eq. 16) paired units
then carry equal and opposite activations.  Conventional networks are the
K = 1 case, where pairs alternate t = +1, −1.
"""

from __future__ import annotations

import numpy as np


def gating_vectors(rng: np.random.Generator, K: int, n: int, mode: str = "paired") -> np.ndarray:
    """Gating vectors of ``n`` units (or channels), shape (K, n).

    mode ``paired``: interleaved ON/OFF pairs (t, −t); for K = 1 this is
    the alternating +1, −1 of conventional networks.  ``random``: i.i.d. ±1.
    ``first_bin``: like ``paired`` but only component 0 is non-zero, the
    causal gating of the temporal realization (paper §7).
    """
    if mode == "random":
        return rng.choice(np.array([-1.0, 1.0]), size=(K, n))
    if mode not in ("paired", "first_bin"):
        raise ValueError(f"unknown gating mode {mode!r}")
    n_pairs = (n + 1) // 2
    if K == 1:
        base = np.ones((1, n_pairs))
    else:
        base = rng.choice(np.array([-1.0, 1.0]), size=(K, n_pairs))
    t = np.empty((K, 2 * n_pairs))
    t[:, 0::2] = base
    t[:, 1::2] = -base
    t = t[:, :n]
    if mode == "first_bin":
        t[1:] = 0.0
        t[0] = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    return t
