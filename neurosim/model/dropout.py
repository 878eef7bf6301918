"""Dropout (Srivastava et al. 2014) as a layer kind: ``{type: dropout, p: 0.5}``.

Inverted dropout: in training mode every unit is kept with probability
1 − p and scaled by 1/(1 − p); in evaluation mode the layer is the identity,
so ``predict`` needs no rescaling.  In a vectorized network a vector unit is
dropped as a whole (one mask value shared by its K components).

Training mode is entered by :meth:`Network.begin_step` (the training loop
calls it before each optimizer step and :meth:`Network.end_step` after).  The
mask is drawn once per step, on the run's device, from
``backend.device_rng("noise", 2, step, layer)`` and reused by every forward
pass and the backward pass of that step, so a rule that runs extra forward
passes (node perturbation's perturbed pass) sees the same mask, and a resumed
run draws the same masks.
"""

from __future__ import annotations

from ..core.options import Field, Section
from .layers import Layer, register

#: sub-stream tag of the "noise" stream (node perturbation uses 1)
DROPOUT_STREAM = 2


class Dropout(Layer):
    kind = "dropout"
    OPTIONS = Section({"p": Field(float, default=0.5, min=0, max=1, exclusive_max=True,
                                  doc="probability that a unit is dropped during training")})

    def __init__(self, in_shape, K, first=False, p: float = 0.5):
        super().__init__(in_shape, K, False)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = float(p)
        self.training = False
        self._backend = None
        self._key = None
        self._mask = None

    def describe(self) -> str:
        return f"dropout p={self.p} {self.in_shape}"

    def set_mode(self, training: bool, backend=None, key=None) -> None:
        """Training mode with the step's noise key, or evaluation mode."""
        self.training = bool(training)
        self._backend, self._key, self._mask = backend, key, None

    def _active(self) -> bool:
        return self.training and self.p > 0.0 and self._backend is not None

    def mask(self, a):
        """The step's mask for activations shaped like ``a`` (kept / (1 − p))."""
        if a.ndim == len(self.in_shape) + 2:  # (B, K, *units): share over components
            shape = (a.shape[0], 1) + tuple(a.shape[2:])
        else:  # network input (B, *in) before the first weight layer
            shape = tuple(a.shape)
        if self._mask is None or tuple(self._mask.shape) != shape:
            rng = self._backend.device_rng("noise", DROPOUT_STREAM, *self._key)  # on the device
            keep = rng.random(shape) >= self.p
            self._mask = self._backend.asarray(keep / (1.0 - self.p))
        return self._mask

    def forward(self, a):
        return a * self.mask(a) if self._active() else a

    def vjp(self, g, W=None, a=None):
        return g * self.mask(g) if self._active() else g


register("dropout", Dropout)
