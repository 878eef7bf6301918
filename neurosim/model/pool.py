"""Layers without weights of the 2-D networks: pooling and flatten.

* ``avg_pool2d`` / ``max_pool2d`` (size; stride = size, trailing rows and
  columns that do not fill a window are dropped);
* ``flatten``: (C, H, W) -> (H·W·C,), position-major.

They operate on the last three axes, (…, C, H, W), with any leading axes
(batch, vector component).
"""

from __future__ import annotations

import math

from ..core import kernels
from ..core.backend import array_module
from ..core.options import Field, Section
from .im2col import channel_last_view, from_channel_last
from .layers import Layer, register


class _Pool2d(Layer):
    OPTIONS = Section({"size": Field(int, default=2, min=1, doc="pooling window and stride")})
    kind = "pool"

    def __init__(self, in_shape, K, first=False, size: int = 2):
        super().__init__(in_shape, K, first)
        if len(self.in_shape) != 3:
            raise ValueError(f"{self.kind} needs (C, H, W) inputs, got {self.in_shape}")
        self.s = int(size)
        if self.s < 1:
            raise ValueError(f"{self.kind} size must be >= 1")
        C, H, W = self.in_shape
        self.Ho, self.Wo = H // self.s, W // self.s
        if self.Ho < 1 or self.Wo < 1:
            raise ValueError(f"{self.kind} size {self.s} is larger than the input {H}x{W}")
        self.unit_shape = (C, self.Ho, self.Wo)

    def _blocks(self, a):
        """View (..., C, Ho, s, Wo, s) of the cropped input."""
        s, Ho, Wo = self.s, self.Ho, self.Wo
        lead = a.shape[:-3]
        a = a[..., : Ho * s, : Wo * s]
        return a.reshape(lead + (self.in_shape[0], Ho, s, Wo, s))

    def _uncrop(self, da_c):
        """Place (..., C, Ho·s, Wo·s) into a zero (…, C, H, W) where cropped."""
        C, H, W = self.in_shape
        if da_c.shape[-2:] == (H, W):
            return da_c
        xp = array_module(da_c)
        out = xp.zeros(da_c.shape[:-2] + (H, W), dtype=da_c.dtype)
        out[..., : da_c.shape[-2], : da_c.shape[-1]] = da_c
        return out


class AvgPool2d(_Pool2d):
    """s×s average pooling with stride s: a fixed nonnegative linear map, so
    GEVB's sign guarantee (sec. 3.3) passes through it."""

    kind = "avg_pool2d"

    def _pool_cl(self, a):
        """Pool a channel-last view; the result stays channel-last (a view).  Contiguous
        channel-last NumPy memory is pooled by :func:`neurosim.core.kernels.avg_pool_cl` (on
        all cores, the same numbers)."""
        s, Ho, Wo = self.s, self.Ho, self.Wo
        pooled = self._pool_kernel(a)
        if pooled is not None:
            return pooled
        c = channel_last_view(a[..., : Ho * s, : Wo * s])                  # (..., H, W, C) view
        c = c.reshape(c.shape[:-3] + (Ho, s, Wo, s, c.shape[-1]))  # splitting axes: a view
        return from_channel_last(c.mean(axis=(-4, -2)))

    def _pool_kernel(self, a):
        """:func:`neurosim.core.kernels.avg_pool_cl` over the memory of ``a`` when it is
        C-contiguous (…, H, W, C) (a shared conv layer's output) or (B, H, W, K, C) (a first
        conv layer's); the result in the same layout, as NumPy's mean leaves it.  None
        otherwise."""
        full = channel_last_view(a)                                         # (..., H, W, C)
        if a.ndim >= 4 and full.flags.c_contiguous:
            out = kernels.avg_pool_cl(full.reshape((-1,) + full.shape[-3:]), self.s)
            return None if out is None else from_channel_last(
                out.reshape(full.shape[:-3] + out.shape[1:]))
        if a.ndim == 5:
            mem = a.transpose(0, 3, 4, 1, 2)                                # (B, H, W, K, C)
            if mem.flags.c_contiguous:
                B, H, W, K, C = mem.shape
                out = kernels.avg_pool_cl(mem.reshape(B, H, W, K * C), self.s)
                return None if out is None else out.reshape(
                    B, self.Ho, self.Wo, K, C).transpose(0, 3, 4, 1, 2)
        return None

    def forward(self, a):
        if a.ndim >= 3 and a.strides[-3] < a.strides[-1]:       # channel-last memory (conv output)
            return self._pool_cl(a)
        return self._blocks(a).mean(axis=(-3, -1))

    def vjp(self, g, W=None, a=None):
        xp = array_module(g)
        s = self.s
        if g.ndim >= 3 and g.strides[-3] < g.strides[-1] and g.shape[-3] > 1:
            c = channel_last_view(g) / (s * s)                             # (..., Ho, Wo, C)
            full = c.shape[:-3] + (self.Ho, s, self.Wo, s, c.shape[-1])
            e = xp.broadcast_to(c[..., :, None, :, None, :], full)
            e = e.reshape(c.shape[:-3] + (self.Ho * s, self.Wo * s, c.shape[-1]))
            return self._uncrop(from_channel_last(e))
        e = xp.broadcast_to((g / (s * s))[..., :, None, :, None], g.shape[:-2] + (self.Ho, s, self.Wo, s))
        return self._uncrop(e.reshape(g.shape[:-2] + (self.Ho * s, self.Wo * s)))


class MaxPool2d(_Pool2d):
    """s×s max pooling with stride s, per component (the gradient goes to the
    first maximum of each window).  ``vjp`` needs the pooled input ``a``
    (every backward pass passes each layer's input)."""

    kind = "max_pool2d"

    def _flat_windows(self, a):
        b = self._blocks(a)                                   # (..., C, Ho, s, Wo, s)
        n = b.ndim
        b = b.transpose(tuple(range(n - 4)) + (n - 4, n - 2, n - 3, n - 1))  # (..., Ho, Wo, s, s)
        return b.reshape(b.shape[:-2] + (self.s * self.s,))

    def forward(self, a):
        return self._flat_windows(a).max(axis=-1)

    def vjp(self, g, W=None, a=None):
        xp = array_module(g)
        if a is None:
            raise ValueError("max_pool2d.vjp needs the layer's input a (the window maxima)")
        idx = self._flat_windows(a).argmax(axis=-1)
        s = self.s
        onehot = (xp.arange(s * s) == idx[..., None]).astype(g.dtype)
        d = (g[..., None] * onehot).reshape(g.shape + (s, s))   # (..., C, Ho, Wo, s, s)
        n = d.ndim
        d = d.transpose(tuple(range(n - 4)) + (n - 4, n - 2, n - 3, n - 1))  # (..., Ho, s, Wo, s)
        return self._uncrop(d.reshape(g.shape[:-2] + (self.Ho * s, self.Wo * s)))


class Flatten(Layer):
    """(C, H, W) -> (H·W·C,) in position-major, channel-minor order (as the
    published code), so that ON/OFF channel pairs stay adjacent unit pairs for
    the next dense layer.  Dense layers flatten their input themselves (and
    pair channels), so ``flatten`` is optional before them."""

    kind = "flatten"

    def __init__(self, in_shape, K, first=False):
        super().__init__(in_shape, K, first)
        self.unit_shape = (math.prod(self.in_shape),)

    def forward(self, a):
        lead = a.shape[: a.ndim - len(self.in_shape)]
        if len(self.in_shape) != 3:
            return a.reshape(lead + self.unit_shape)
        n = a.ndim
        return a.transpose(tuple(range(n - 3)) + (n - 2, n - 1, n - 3)).reshape(lead + self.unit_shape)

    def vjp(self, g, W=None, a=None):
        lead = g.shape[:-1]
        if len(self.in_shape) != 3:
            return g.reshape(lead + self.in_shape)
        C, H, W_ = self.in_shape
        n = len(lead)
        d = g.reshape(lead + (H, W_, C))
        return d.transpose(tuple(range(n)) + (n + 2, n, n + 1))


for _cls in (AvgPool2d, MaxPool2d, Flatten):
    register(_cls.kind, _cls)
