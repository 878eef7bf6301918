"""Backpropagation: exact gradients by a hand-written backward pass (eq. 3)."""

from __future__ import annotations

from .base import Rule, backward, weight_grads


class BP(Rule):
    name = "bp"

    def gradients(self, net, states, e):
        return weight_grads(net, states, backward(net, states, e))
