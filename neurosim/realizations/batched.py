"""The batched realization: learning as whole-layer array operations."""

from __future__ import annotations

from .base import Realization


class Batched(Realization):
    name = "batched"

    def step(self, x, y):
        result = self.rule.step(self.net, x, y, self.loss_fn)
        self.optimizer.step(result.grads)
        return result
