"""Fixed random feedback matrices shared by FA and DFA."""

from __future__ import annotations

import numpy as np


def feedback_sign(net, option: str) -> str:
    if option == "auto":
        return "nonnegative" if net.sign == "nonnegative" else "mixed"
    if option not in ("mixed", "nonnegative"):
        raise ValueError(f"feedback sign must be auto, mixed or nonnegative, not {option!r}")
    return option


def uniform(rng: np.random.Generator, shape, sign: str) -> np.ndarray:
    """U[−1, 1) for mixed-sign networks, U[0, 1) for nonnegative ones (appendix J)."""
    low = -1.0 if sign == "mixed" else 0.0
    return rng.uniform(low, 1.0, size=shape)
