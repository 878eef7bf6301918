"""Backpropagation: exact gradients by a hand-written backward pass (eq. 3)."""

from __future__ import annotations

from .base import BackwardRule


class BP(BackwardRule):
    """g^ℓ = ∂L/∂h^ℓ through the layers' own transposes; no feedback matrices."""

    name = "bp"
    exact_gradient = True
