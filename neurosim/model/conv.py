"""Convolutional, locally connected, pooling and flatten layers (appendix G, H).

Activations are ``(B, K, C, H, W)`` (batch, vector component, channel, row,
column); conventional networks are K = 1.  As for dense layers (paper §3.1),
the *first* weight layer maps the input ``(B, C, H, W)`` to K components with
separate mixed-sign weights per component, and later layers share one weight
across the K components (vectorized weight sharing).

Layers and parameter shapes (registered in :data:`~neurosim.model.layers.LAYERS`):

* ``conv2d`` (channels, kernel, stride, padding):
  ``W`` (C_out, C_in, kh, kw), first layer (K, C_out, C_in, kh, kw);
  bias ``b`` (K, C_out, 1, 1) — one bias per channel per component (as the
  paper's published code).
* ``locally_connected2d``: the same receptive fields with separate weights
  per output position, stored position-major:
  ``W`` (H_out, W_out, C_out, C_in, kh, kw), first layer
  (H_out, W_out, K, C_out, C_in, kh, kw); bias (K, C_out, H_out, W_out).
* ``avg_pool2d`` / ``max_pool2d`` (size; stride = size, trailing rows and
  columns that do not fill a window are dropped) and ``flatten``.

Gating vectors are shared per channel (appendix G: "the same gating vector t
for all units in the same channel"), ``gating_shape = (C_out, 1, 1)``.

GEVB (appendix H): the weight update is the ordinary convolution
weight-gradient with the presynaptic signal replaced by the inner products
``P[b] = Σ_μ a[b,μ] e[b,μ]`` (shape (B, C, H, W)) and the postsynaptic signal
replaced by the binary gate mask ``G`` (B, C_out, H_out, W_out).  Shared
layers compute exactly that (:meth:`Conv2d.gevb_grads`), never the
(B, K, C_out, H_out, W_out) learning signal.

Implementation: im2col through strided views (``as_strided``, NumPy and
CuPy alike) and one large matrix product per block of examples.  Blocks
bound the im2col buffer to ``NEUROSIM_CONV_BLOCK`` elements (default 2**24)
so that memory stays flat for large batches; within a block everything is
array operations.  ``col2im`` (the transpose) loops over the kh·kw kernel
offsets, never over positions or examples.
"""

from __future__ import annotations

import math
import os

from ..backend import array_module
from . import init as initmod
from .layers import Layer, register

_BLOCK = int(os.environ.get("NEUROSIM_CONV_BLOCK", str(2 ** 24)))


# ---------------------------------------------------------------------------
# geometry and im2col helpers
# ---------------------------------------------------------------------------
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

    def pad(self, x):
        if not (self.ph or self.pw):
            return x
        xp = array_module(x)
        return xp.pad(x, ((0, 0), (0, 0), (self.ph, self.ph), (self.pw, self.pw)))

    def windows(self, x):
        """Strided view (N, Ho, Wo, C, kh, kw) of the padded input x (N, C, H, W)."""
        xp = array_module(x)
        xpd = xp.ascontiguousarray(self.pad(x))
        sN, sC, sH, sW = xpd.strides
        shape = (xpd.shape[0], self.Ho, self.Wo, self.C, self.kh, self.kw)
        strides = (sN, sH * self.sh, sW * self.sw, sC, sH, sW)
        return xp.lib.stride_tricks.as_strided(xpd, shape=shape, strides=strides)

    def col2im(self, dcols):
        """Transpose of :meth:`windows`: scatter-add dcols (N, Ho, Wo, C, kh, kw)
        (any strides) into an input gradient (N, C, H, W)."""
        xp = array_module(dcols)
        N = dcols.shape[0]
        Hp, Wp = self.H + 2 * self.ph, self.W + 2 * self.pw
        out = xp.zeros((N, self.C, Hp, Wp), dtype=dcols.dtype)
        he = self.sh * (self.Ho - 1) + 1
        we = self.sw * (self.Wo - 1) + 1
        for dy in range(self.kh):          # loop over kernel offsets only
            for dx in range(self.kw):
                out[:, :, dy:dy + he:self.sh, dx:dx + we:self.sw] += \
                    dcols[:, :, :, :, dy, dx].transpose(0, 3, 1, 2)
        return out[:, :, self.ph:self.ph + self.H, self.pw:self.pw + self.W]

    def blocks(self, N, per_item):
        """Slices of the leading axis so that a block holds <= _BLOCK elements."""
        n = max(1, _BLOCK // max(1, per_item))
        return [slice(s, min(N, s + n)) for s in range(0, N, n)]


# ---- convolution kernels (weight Wm: (M, C*kh*kw)) --------------------------
def conv_forward(geo: Geometry, x, Wm):
    """x (N, C, H, W), Wm (M, CKK) -> (N, M, Ho, Wo)."""
    xp = array_module(x)
    N, M = x.shape[0], Wm.shape[0]
    out = xp.empty((N, M, geo.P), dtype=x.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        cols = geo.windows(x[sl]).reshape(n * geo.P, geo.CKK)       # copy (im2col)
        out[sl] = (cols @ Wm.T).reshape(n, geo.P, M).transpose(0, 2, 1)
    return out.reshape(N, M, geo.Ho, geo.Wo)


def conv_weight_grad(geo: Geometry, x, g):
    """Σ_n Σ_p g[n,:,p] ⊗ cols[n,p,:]: x (N, C, H, W), g (N, M, Ho, Wo) -> (M, CKK)."""
    xp = array_module(x)
    N, M = x.shape[0], g.shape[1]
    dW = xp.zeros((M, geo.CKK), dtype=x.dtype)
    g = g.reshape(N, M, geo.P)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        cols = geo.windows(x[sl]).reshape(n * geo.P, geo.CKK)
        gT = xp.ascontiguousarray(g[sl].transpose(1, 0, 2)).reshape(M, n * geo.P)
        dW += gT @ cols
    return dW


def conv_input_grad(geo: Geometry, g, Wm):
    """Transpose convolution: g (N, M, Ho, Wo), Wm (M, CKK) -> (N, C, H, W)."""
    xp = array_module(g)
    N, M = g.shape[0], g.shape[1]
    g = g.reshape(N, M, geo.P)
    out = xp.empty((N, geo.C, geo.H, geo.W), dtype=g.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        gP = xp.ascontiguousarray(g[sl].transpose(0, 2, 1)).reshape(n * geo.P, M)
        dcols = (gP @ Wm).reshape(n, geo.Ho, geo.Wo, geo.C, geo.kh, geo.kw)
        out[sl] = geo.col2im(dcols)
    return out


# ---- locally connected kernels (weight Wp: (P, M, CKK)) ----------------------
def lc_forward(geo: Geometry, x, Wp):
    """x (N, C, H, W), Wp (P, M, CKK) -> (N, M, Ho, Wo); one matmul batched over positions."""
    xp = array_module(x)
    N, M = x.shape[0], Wp.shape[1]
    out = xp.empty((N, M, geo.P), dtype=x.dtype)
    WpT = Wp.transpose(0, 2, 1)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        w = geo.windows(x[sl]).reshape(n, geo.P, geo.CKK)
        cols = xp.ascontiguousarray(w.transpose(1, 0, 2))              # (P, n, CKK)
        out[sl] = xp.matmul(cols, WpT).transpose(1, 2, 0)               # (n, M, P)
    return out.reshape(N, M, geo.Ho, geo.Wo)


def lc_weight_grad(geo: Geometry, x, g):
    """dW[p] = Σ_n g[n,:,p] ⊗ cols[n,p,:]: -> (P, M, CKK)."""
    xp = array_module(x)
    N, M = x.shape[0], g.shape[1]
    dW = xp.zeros((geo.P, M, geo.CKK), dtype=x.dtype)
    g = g.reshape(N, M, geo.P)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        w = geo.windows(x[sl]).reshape(n, geo.P, geo.CKK)
        cols = xp.ascontiguousarray(w.transpose(1, 0, 2))              # (P, n, CKK)
        gP = xp.ascontiguousarray(g[sl].transpose(2, 1, 0))            # (P, M, n)
        dW += xp.matmul(gP, cols)
    return dW


def lc_input_grad(geo: Geometry, g, Wp):
    """Transpose of :func:`lc_forward`: g (N, M, Ho, Wo) -> (N, C, H, W)."""
    xp = array_module(g)
    N, M = g.shape[0], g.shape[1]
    g = g.reshape(N, M, geo.P)
    out = xp.empty((N, geo.C, geo.H, geo.W), dtype=g.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        gP = xp.ascontiguousarray(g[sl].transpose(2, 0, 1))            # (P, n, M)
        dcols = xp.matmul(gP, Wp)                                        # (P, n, CKK)
        dcols = dcols.reshape(geo.Ho, geo.Wo, n, geo.C, geo.kh, geo.kw).transpose(2, 0, 1, 3, 4, 5)
        out[sl] = geo.col2im(dcols)
    return out


def inner_with_error(a, e):
    """P[b,·] = Σ_μ a[b,μ,·] e[b,μ] (eq. 9), a (B, K, *units) -> (B, *units)."""
    xp = array_module(a)
    B, K = a.shape[:2]
    return xp.matmul(e[:, None, :], a.reshape(B, K, -1)).reshape((B,) + a.shape[2:])


# ---------------------------------------------------------------------------
# layers with weights
# ---------------------------------------------------------------------------
class _Local2d(Layer):
    """Shared machinery of conv2d and locally_connected2d."""

    has_weights = True

    def __init__(self, in_shape, K, first=False, channels: int = None, kernel=3, stride=1,
                 padding=0):
        super().__init__(in_shape, K, first)
        if channels is None or int(channels) < 1:
            raise ValueError(f"{self.kind} layer needs channels >= 1")
        self.geo = Geometry(self.in_shape, kernel, stride, padding)
        self.C_out = int(channels)
        self.unit_shape = (self.C_out, self.geo.Ho, self.geo.Wo)

    @property
    def fan_in(self) -> int:
        return self.geo.CKK

    @property
    def gating_shape(self) -> tuple:
        """One gating vector per channel (appendix G)."""
        return (self.C_out, 1, 1)

    def describe(self) -> str:
        g = self.geo
        return (f"{self.kind} {self.C_out}ch {g.kh}x{g.kw}/{g.sh} pad {g.ph} "
                f"{self.in_shape} -> {self.unit_shape}")

    # axes of W that ON/OFF init pairs: (post, pre) for first/hidden layers
    _post_axis_first = _post_axis = _pre_axis = None

    def initialize(self, rng, scheme, role):
        import numpy as np

        wshape = self.params["W"]
        # The published code initialises the first vectorized layer on the
        # K-fold expanded input (appendix B view, fan-in K·C·kh·kw) and then
        # multiplies by √K; per component that is std 1/√(C·kh·kw).
        fan = self.fan_in * (self.K if self.first else 1)
        std = initmod.scale(role, scheme, fan, self.K if self.first else 1)
        if scheme == "he":
            W = initmod.he_init(rng, wshape, std)
        else:
            if self.first:
                post, pre = self._post_axis_first, None
            else:
                post, pre = self._post_axis, self._pre_axis
            if role == "output":
                post = None
            W = initmod.on_off_init(rng, wshape, post, pre, std)
        self.params = {"W": W, "b": np.zeros(self.params["b"])}

    # subclasses: _fwd(x4, Wflat), _wgrad(x4, g4), _bwd(g4, Wflat), _flatW(W), _unflat(dW)
    def forward(self, a):
        W, b = self.params["W"], self.params["b"]
        B = a.shape[0]
        if self.first:
            h = self._fwd(a.reshape((B,) + self.in_shape), self._flatW(W))
            h = h.reshape((B, self.K) + self.unit_shape)
        else:
            K = a.shape[1]
            h = self._fwd(a.reshape((B * K,) + self.in_shape), self._flatW(W))
            h = h.reshape((B, K) + self.unit_shape)
        h += b
        return h

    def vjp(self, g, W=None):
        if self.first:
            raise RuntimeError("the first layer has no input gradient to propagate")
        W = self.params["W"] if W is None else W
        B, K = g.shape[:2]
        da = self._bwd(g.reshape((B * K,) + self.unit_shape), self._flatW(W))
        return da.reshape((B, K) + self.in_shape)

    def grads(self, a, g):
        B, K = g.shape[:2]
        if self.first:
            x = a.reshape((B,) + self.in_shape)
            g4 = g.reshape((B, K * self.C_out) + self.unit_shape[1:])
        else:
            x = a.reshape((B * K,) + self.in_shape)
            g4 = g.reshape((B * K,) + self.unit_shape)
        dW = self._unflat(self._wgrad(x, g4))
        return {"W": dW, "b": self._bias_grad(g)}

    def gevb_grads(self, a, G, e):
        """Appendix H: ordinary weight gradient with input P = Σ_μ a e and
        output signal the gate mask G (shared layers; the first layer uses
        the generic path g = e ⊗ G)."""
        if self.first:
            return super().gevb_grads(a, G, e)
        B = a.shape[0]
        P = inner_with_error(a, e)                                   # (B, C, H, W)
        G4 = G.reshape((B,) + self.unit_shape)
        dW = self._unflat(self._wgrad(P, G4))
        return {"W": dW, "b": self._gevb_bias(G4, e)}


class Conv2d(_Local2d):
    """2-D convolution, ``h[b,μ,o,y,x] = Σ_{c,dy,dx} W[o,c,dy,dx] a_pad[b,μ,c,sy+dy,sx+dx] + b[μ,o]``.

    First layer: ``W[μ]`` per component (K, C_out, C_in, kh, kw), mixed sign.
    """

    kind = "conv2d"
    _post_axis_first, _post_axis, _pre_axis = 1, 0, 1

    def __init__(self, in_shape, K, first=False, channels: int = None, kernel=3, stride=1,
                 padding=0):
        super().__init__(in_shape, K, first, channels, kernel, stride, padding)
        g = self.geo
        core = (self.C_out, g.C, g.kh, g.kw)
        self.params = {"W": ((K,) + core) if first else core, "b": (K, self.C_out, 1, 1)}

    def _flatW(self, W):
        return W.reshape(-1, self.geo.CKK)

    def _unflat(self, dW):
        return dW.reshape(self.params["W"].shape)

    def _fwd(self, x, Wm):
        return conv_forward(self.geo, x, Wm)

    def _wgrad(self, x, g):
        return conv_weight_grad(self.geo, x, g)

    def _bwd(self, g, Wm):
        return conv_input_grad(self.geo, g, Wm)

    def _bias_grad(self, g):
        return g.sum(axis=(0, 3, 4))[..., None, None]

    def _gevb_bias(self, G4, e):
        return (e.T @ G4.sum(axis=(2, 3)))[..., None, None]


class LocallyConnected2d(_Local2d):
    """Locally connected layer: conv2d's receptive fields, one weight per output
    position, ``W`` (H_out, W_out, C_out, C_in, kh, kw) — first layer
    (H_out, W_out, K, C_out, C_in, kh, kw); bias (K, C_out, H_out, W_out)."""

    kind = "locally_connected2d"
    _post_axis_first, _post_axis, _pre_axis = 3, 2, 3

    def __init__(self, in_shape, K, first=False, channels: int = None, kernel=3, stride=1,
                 padding=0):
        super().__init__(in_shape, K, first, channels, kernel, stride, padding)
        g = self.geo
        core = (self.C_out, g.C, g.kh, g.kw)
        self.params = {"W": (g.Ho, g.Wo) + ((K,) if first else ()) + core,
                       "b": (K, self.C_out, g.Ho, g.Wo)}

    def _flatW(self, W):
        return W.reshape(self.geo.P, -1, self.geo.CKK)

    def _unflat(self, dW):
        return dW.reshape(self.params["W"].shape)

    def _fwd(self, x, Wp):
        return lc_forward(self.geo, x, Wp)

    def _wgrad(self, x, g):
        return lc_weight_grad(self.geo, x, g)

    def _bwd(self, g, Wp):
        return lc_input_grad(self.geo, g, Wp)

    def _bias_grad(self, g):
        return g.sum(axis=0)

    def _gevb_bias(self, G4, e):
        B = G4.shape[0]
        return (e.T @ G4.reshape(B, -1)).reshape(self.params["b"].shape)


# ---------------------------------------------------------------------------
# layers without weights (operate on the last three axes; any leading axes)
# ---------------------------------------------------------------------------
class _Pool2d(Layer):
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

    def forward(self, a):
        return self._blocks(a).mean(axis=(-3, -1))

    def vjp(self, g, W=None):
        xp = array_module(g)
        s = self.s
        e = xp.broadcast_to((g / (s * s))[..., :, None, :, None], g.shape[:-2] + (self.Ho, s, self.Wo, s))
        return self._uncrop(e.reshape(g.shape[:-2] + (self.Ho * s, self.Wo * s)))


class MaxPool2d(_Pool2d):
    """s×s max pooling with stride s, per component (the gradient goes to the
    first maximum of each window).  ``vjp`` needs the pooled input: the
    network's backward pass passes it (``vjp_uses_input``); otherwise the
    window choice of the most recent ``forward`` is used."""

    kind = "max_pool2d"
    vjp_uses_input = True

    def _flat_windows(self, a):
        b = self._blocks(a)                                   # (..., C, Ho, s, Wo, s)
        n = b.ndim
        b = b.transpose(tuple(range(n - 4)) + (n - 4, n - 2, n - 3, n - 1))  # (..., Ho, Wo, s, s)
        return b.reshape(b.shape[:-2] + (self.s * self.s,))

    def forward(self, a):
        w = self._flat_windows(a)
        self._last_argmax = w.argmax(axis=-1)
        return w.max(axis=-1)

    def vjp(self, g, W=None, a=None):
        xp = array_module(g)
        idx = self._flat_windows(a).argmax(axis=-1) if a is not None else self._last_argmax
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

    def vjp(self, g, W=None):
        lead = g.shape[:-1]
        if len(self.in_shape) != 3:
            return g.reshape(lead + self.in_shape)
        C, H, W_ = self.in_shape
        n = len(lead)
        d = g.reshape(lead + (H, W_, C))
        return d.transpose(tuple(range(n)) + (n + 2, n, n + 1))


for _cls in (Conv2d, LocallyConnected2d, AvgPool2d, MaxPool2d, Flatten):
    register(_cls.kind, _cls)
