"""The batched realization: learning as whole-layer array operations."""

from __future__ import annotations

from .base import Realization


class Batched(Realization):
    name = "batched"

    def step(self, x, y, before_update=None):
        result = self.rule.step(self.net, x, y, self.loss_fn)
        if before_update is not None:
            before_update(result)
        self.optimizer.step(result.grads)
        return result
