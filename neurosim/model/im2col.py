"""Sliding-window geometry and im2col of the 2-D layers (:mod:`.conv`, :mod:`.pool`).

One im2col, :meth:`Geometry.windows` (a strided view of the padded input, NumPy and CuPy
alike, for channel-last and channel-first blocks), is copied into a matrix and multiplied in
one large matrix product per block of examples.  Blocks bound the im2col buffer to
``NEUROSIM_CONV_BLOCK`` elements (default 2**22, cache-sized), so that memory stays flat for
large batches; within a block everything is array operations.  Its transpose,
:meth:`Geometry.col2im`, loops over the kh·kw kernel offsets, never over positions or
examples.
"""

from __future__ import annotations

import os

from ..core.backend import array_module

_BLOCK = int(os.environ.get("NEUROSIM_CONV_BLOCK", str(2 ** 22)))


def _pair(v, name):
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        out = (int(v[0]), int(v[1]))
    else:
        out = (int(v), int(v))
    return out


class Geometry:
    """Kernel (kh, kw), stride s, zero padding p of a 2-D sliding window."""

    def __init__(self, in_shape, kernel, stride, padding):
        if len(in_shape) != 3:
            raise ValueError(f"a 2-D layer needs (C, H, W) inputs, got shape {tuple(in_shape)}; "
                             "put it before any dense layer")
        self.C, self.H, self.W = (int(s) for s in in_shape)
        self.kh, self.kw = _pair(kernel, "kernel")
        self.sh, self.sw = _pair(stride, "stride")
        self.ph, self.pw = _pair(padding, "padding")
        if min(self.kh, self.kw, self.sh, self.sw) < 1 or min(self.ph, self.pw) < 0:
            raise ValueError("kernel and stride must be >= 1 and padding >= 0")
        self.Ho = (self.H + 2 * self.ph - self.kh) // self.sh + 1
        self.Wo = (self.W + 2 * self.pw - self.kw) // self.sw + 1
        if self.Ho < 1 or self.Wo < 1:
            raise ValueError(f"kernel {self.kh}x{self.kw} does not fit the input {self.H}x{self.W} "
                             f"with padding {self.ph},{self.pw}")
        self.P = self.Ho * self.Wo
        self.CKK = self.C * self.kh * self.kw

    # The spatial axes of an activation block: (n, H, W, C) channel-last or (n, C, H, W).
    @staticmethod
    def _spatial_axes(channel_last: bool) -> tuple:
        return (1, 2) if channel_last else (2, 3)

    def pad(self, x, channel_last: bool):
        """Zero-padded C-contiguous copy of a block ``x`` (n, H, W, C) or (n, C, H, W)
        of any strides (layout change and padding in one pass)."""
        xp = array_module(x)
        if not (self.ph or self.pw):
            return xp.ascontiguousarray(x)
        ah, aw = self._spatial_axes(channel_last)
        shape = list(x.shape)
        shape[ah] += 2 * self.ph
        shape[aw] += 2 * self.pw
        out = xp.zeros(tuple(shape), dtype=x.dtype)
        inner = [slice(None)] * 4
        inner[ah], inner[aw] = slice(self.ph, self.ph + self.H), slice(self.pw, self.pw + self.W)
        out[tuple(inner)] = x
        return out

    def crop(self, xpad, channel_last: bool):
        """The unpadded part of a padded block (a view): inverse of :meth:`pad`."""
        ah, aw = self._spatial_axes(channel_last)
        inner = [slice(None)] * 4
        inner[ah], inner[aw] = slice(self.ph, self.ph + self.H), slice(self.pw, self.pw + self.W)
        return xpad[tuple(inner)]

    def windows(self, xpad, channel_last: bool):
        """im2col as a strided view (no copy) of a padded block: every kh×kw window
        at every output position.  (n, Hp, Wp, C) -> (n, Ho, Wo, C, kh, kw);
        (n, C, Hp, Wp) -> (n, C, Ho, Wo, kh, kw).

        The view is ``sliding_window_view(xpad, (kh, kw), axis=spatial)`` taken every
        (sh, sw) positions, with the same shape and strides; it is built with
        ``as_strided`` because that is the cheaper constructor (the copy that reads
        the view costs the same either way), and the tests check it against
        ``sliding_window_view``.
        """
        xp = array_module(xpad)
        ah, aw = self._spatial_axes(channel_last)
        st = xpad.strides
        shape, strides = list(xpad.shape), list(st)
        shape[ah], shape[aw] = self.Ho, self.Wo
        strides[ah], strides[aw] = st[ah] * self.sh, st[aw] * self.sw
        return xp.lib.stride_tricks.as_strided(xpad, shape=tuple(shape) + (self.kh, self.kw),
                                               strides=tuple(strides) + (st[ah], st[aw]))

    def col2im(self, dcols, out, channel_last: bool):
        """Transpose of :meth:`windows`: add ``dcols`` (the windows' shape, any
        strides) into the padded block ``out`` in place; returns ``out``.  Loops over
        the kh·kw kernel offsets only, never over positions or examples."""
        ah, aw = self._spatial_axes(channel_last)
        he = self.sh * (self.Ho - 1) + 1
        we = self.sw * (self.Wo - 1) + 1
        at = [slice(None)] * 4
        for dy in range(self.kh):
            for dx in range(self.kw):
                at[ah], at[aw] = slice(dy, dy + he, self.sh), slice(dx, dx + we, self.sw)
                out[tuple(at)] += dcols[..., dy, dx]
        return out

    def blocks(self, N, per_item):
        """Slices of the leading axis so that a block holds <= _BLOCK elements."""
        n = max(1, _BLOCK // max(1, per_item))
        return [slice(s, min(N, s + n)) for s in range(0, N, n)]


# ---------------------------------------------------------------------------
# channel-last layout
# ---------------------------------------------------------------------------
# The convolution works on channel-last ("NHWC") memory: im2col then copies
# contiguous runs of C values (fast) and the outputs come out channel-last,
# which the layers hand on as (…, C, H, W)-shaped *views* (NumPy/CuPy
# operations are layout-agnostic; the next conv layer gets its channel-last
# input for free).
def to_channel_last(a):
    """(…, C, H, W) -> contiguous (…, H, W, C) (free when a is a channel-last view)."""
    xp = array_module(a)
    n = a.ndim
    return xp.ascontiguousarray(a.transpose(tuple(range(n - 3)) + (n - 2, n - 1, n - 3)))


def channel_last_view(a):
    """(…, C, H, W) -> (…, H, W, C) view (no copy)."""
    n = a.ndim
    return a.transpose(tuple(range(n - 3)) + (n - 2, n - 1, n - 3))


def from_channel_last(a):
    """(…, H, W, C) -> (…, C, H, W) view."""
    n = a.ndim
    return a.transpose(tuple(range(n - 3)) + (n - 1, n - 3, n - 2))
