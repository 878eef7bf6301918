"""Convolutional and locally connected layers (appendix G, H).

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

Pooling and ``flatten`` are in :mod:`.pool`.

Gating vectors are shared per channel (appendix G: "the same gating vector t
for all units in the same channel"), ``gating_shape = (C_out, 1, 1)``.

GEVB (appendix H): the weight update is the ordinary convolution
weight-gradient with the presynaptic signal replaced by the inner products
``P[b] = Σ_μ a[b,μ] e[b,μ]`` (shape (B, C, H, W)) and the postsynaptic signal
replaced by the binary gate mask ``G`` (B, C_out, H_out, W_out).  Shared
layers compute exactly that (:meth:`Conv2d.gevb_grads`), never the
(B, K, C_out, H_out, W_out) learning signal.

Implementation: im2col (:mod:`.im2col`) in channel-last memory, one matrix
product per block of examples; weight matrices are (M, kh·kw·C) in this
order.
"""

from __future__ import annotations

from ..core import kernels
from ..core.backend import array_module
from ..core.options import Field, Section
from . import init as initmod
from .im2col import Geometry, channel_last_view, from_channel_last, to_channel_last
from .layers import Layer, register


# ---------------------------------------------------------------------------
# convolution and locally connected kernels, channel-last
# ---------------------------------------------------------------------------
def _conv_cols(geo: Geometry, xpad):
    """im2col of a padded channel-last block (n, Hp, Wp, C): (n·P, kh·kw·C), a copy in
    the order of :func:`conv_weight_matrix`."""
    n = xpad.shape[0]
    return geo.windows(xpad, True).transpose(0, 1, 2, 4, 5, 3).reshape(n * geo.P, geo.CKK)


class _ConvCols:
    """The im2col matrices of a channel-last input ``x`` (N, H, W, C), block by block:
    ``cols(sl)`` is :func:`_conv_cols` of the padded block ``sl``.  A NumPy float input is
    copied by :func:`neurosim.core.kernels.im2col_nhwc` (padding included, on all cores;
    a non-contiguous one is first made contiguous); any other (CuPy, Numba off) is padded
    once, as a whole, and its windows copied."""

    def __init__(self, geo: Geometry, x):
        self.geo = geo
        self.direct = kernels.im2col_nhwc_takes(x)
        self.x = array_module(x).ascontiguousarray(x) if self.direct else x
        self.xpad = None if self.direct else geo.pad(x, True)

    def _args(self):
        g = self.geo
        return (g.kh, g.kw), (g.sh, g.sw), (g.ph, g.pw)

    def __call__(self, sl):
        if self.direct:
            return kernels.im2col_nhwc(self.x[sl], *self._args())
        return _conv_cols(self.geo, self.xpad[sl])


def conv_weight_matrix(W):
    """(M, C, kh, kw) -> (M, kh·kw·C), the channel-last weight matrix."""
    xp = array_module(W)
    M = W.shape[0]
    return xp.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(M, -1)


def conv_weight_unmatrix(geo: Geometry, Wm):
    """Inverse of :func:`conv_weight_matrix`."""
    xp = array_module(Wm)
    M = Wm.shape[0]
    return xp.ascontiguousarray(Wm.reshape(M, geo.kh, geo.kw, geo.C).transpose(0, 3, 1, 2))


def conv_forward(geo: Geometry, x, Wm):
    """x (N, H, W, C) channel-last, Wm (M, kh·kw·C) -> (N, Ho, Wo, M)."""
    xp = array_module(x)
    N, M = x.shape[0], Wm.shape[0]
    cols = _ConvCols(geo, x)
    out = xp.empty((N * geo.P, M), dtype=x.dtype)
    WT = Wm.T
    for sl in geo.blocks(N, geo.P * geo.CKK):
        xp.matmul(cols(sl), WT, out=out[sl.start * geo.P:sl.stop * geo.P])
    return out.reshape(N, geo.Ho, geo.Wo, M)


def conv_weight_grad(geo: Geometry, x, g):
    """Σ_n Σ_p g[n,p,:] ⊗ cols[n,p,:]: x (N, H, W, C), g (N, Ho, Wo, M) -> (M, kh·kw·C)."""
    xp = array_module(x)
    N, M = x.shape[0], g.shape[-1]
    cols = _ConvCols(geo, x)
    g = g.reshape(N * geo.P, M)
    dW = xp.zeros((M, geo.CKK), dtype=x.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        dW += g[sl.start * geo.P:sl.stop * geo.P].T @ cols(sl)
    return dW


def conv_input_grad(geo: Geometry, g, Wm):
    """Transpose convolution: g (N, Ho, Wo, M), Wm (M, kh·kw·C) -> (N, H, W, C) (a view)."""
    xp = array_module(g)
    N, M = g.shape[0], g.shape[-1]
    g = g.reshape(N * geo.P, M)
    out = xp.zeros((N, geo.H + 2 * geo.ph, geo.W + 2 * geo.pw, geo.C), dtype=g.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        dcols = (g[sl.start * geo.P:sl.stop * geo.P] @ Wm).reshape(
            n, geo.Ho, geo.Wo, geo.kh, geo.kw, geo.C)
        geo.col2im(dcols.transpose(0, 1, 2, 5, 3, 4), out[sl], True)
    return geo.crop(out, True)


# ---- locally connected kernels (weight Wp: (P, M, CKK)) ----------------------
def _lc_cols(geo: Geometry, xpad):
    """im2col of a padded (n, C, Hp, Wp) block, position-major: (P, n, C·kh·kw), a copy."""
    n = xpad.shape[0]
    w = geo.windows(xpad, False)                                     # (n, C, Ho, Wo, kh, kw)
    return array_module(xpad).ascontiguousarray(w.transpose(2, 3, 0, 1, 4, 5)).reshape(
        geo.P, n, geo.CKK)


def lc_forward(geo: Geometry, x, Wp):
    """x (N, C, H, W), Wp (P, M, CKK) -> (N, M, Ho, Wo); one matmul batched over positions."""
    xp = array_module(x)
    N, M = x.shape[0], Wp.shape[1]
    out = xp.empty((N, M, geo.P), dtype=x.dtype)
    WpT = Wp.transpose(0, 2, 1)
    xpad = geo.pad(x, False)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        out[sl] = xp.matmul(_lc_cols(geo, xpad[sl]), WpT).transpose(1, 2, 0)   # (n, M, P)
    return out.reshape(N, M, geo.Ho, geo.Wo)


def lc_weight_grad(geo: Geometry, x, g):
    """dW[p] = Σ_n g[n,:,p] ⊗ cols[n,p,:]: -> (P, M, CKK)."""
    xp = array_module(x)
    N, M = x.shape[0], g.shape[1]
    dW = xp.zeros((geo.P, M, geo.CKK), dtype=x.dtype)
    g = g.reshape(N, M, geo.P)
    xpad = geo.pad(x, False)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        gP = xp.ascontiguousarray(g[sl].transpose(2, 1, 0))            # (P, M, n)
        dW += xp.matmul(gP, _lc_cols(geo, xpad[sl]))
    return dW


def lc_input_grad(geo: Geometry, g, Wp):
    """Transpose of :func:`lc_forward`: g (N, M, Ho, Wo) -> (N, C, H, W) (a view)."""
    xp = array_module(g)
    N, M = g.shape[0], g.shape[1]
    g = g.reshape(N, M, geo.P)
    out = xp.zeros((N, geo.C, geo.H + 2 * geo.ph, geo.W + 2 * geo.pw), dtype=g.dtype)
    for sl in geo.blocks(N, geo.P * geo.CKK):
        n = sl.stop - sl.start
        gP = xp.ascontiguousarray(g[sl].transpose(2, 0, 1))            # (P, n, M)
        dcols = xp.matmul(gP, Wp).reshape(geo.Ho, geo.Wo, n, geo.C, geo.kh, geo.kw)
        geo.col2im(dcols.transpose(2, 3, 0, 1, 4, 5), out[sl], False)
    return geo.crop(out, False)


def inner_with_error(a, e):
    """P[b,·] = Σ_μ a[b,μ,·] e[b,μ] (eq. 9), a (B, K, *units) -> (B, *units)."""
    xp = array_module(a)
    B, K = a.shape[:2]
    return xp.matmul(e[:, None, :], a.reshape(B, K, -1)).reshape((B,) + a.shape[2:])


# ---------------------------------------------------------------------------
# layers with weights
# ---------------------------------------------------------------------------
class _Local2d(Layer):
    OPTIONS = Section({
        "channels": Field(int, min=1, doc="output channels (vector channels of a VNN)"),
        "kernel": Field((int, list), default=3, item=Field(int, min=1), length=2, min=1,
                    doc="kernel size: an integer or [height, width]"),
        "stride": Field((int, list), default=1, item=Field(int, min=1), length=2, min=1,
                    doc="stride: an integer or [height, width]"),
        "padding": Field((int, list), default=0, item=Field(int, min=0), length=2, min=0,
                    doc="zero padding: an integer or [height, width]"),
    })
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
        std = self.init_std(scheme, role)  # first layer: per component 1/√(C·kh·kw)
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

    def vjp(self, g, W=None, a=None):
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
    Computed channel-last (see :func:`conv_forward`); outputs are views.
    """

    kind = "conv2d"
    _post_axis_first, _post_axis, _pre_axis = 1, 0, 1

    def __init__(self, in_shape, K, first=False, channels: int = None, kernel=3, stride=1,
                 padding=0):
        super().__init__(in_shape, K, first, channels, kernel, stride, padding)
        g = self.geo
        core = (self.C_out, g.C, g.kh, g.kw)
        self.params = {"W": ((K,) + core) if first else core, "b": (K, self.C_out, 1, 1)}

    def _Wm(self, W):
        return conv_weight_matrix(W.reshape((-1,) + W.shape[-3:]))

    def forward(self, a):
        W, b = self.params["W"], self.params["b"]
        B, g = a.shape[0], self.geo
        x = channel_last_view(a)                                           # padded copy made once below
        if self.first:
            out = conv_forward(g, x, self._Wm(W))                 # (B, Ho, Wo, K·C_out)
            h = out.reshape(B, g.Ho, g.Wo, self.K, self.C_out).transpose(0, 3, 4, 1, 2)
            bias_done = kernels.add_bias_cl(out.reshape(B, 1, -1, self.K * self.C_out),
                                            b.reshape(1, -1))
        else:
            K = a.shape[1]
            out = conv_forward(g, x.reshape((B * K,) + x.shape[2:]), self._Wm(W))
            h = from_channel_last(out.reshape(B, K, g.Ho, g.Wo, self.C_out))
            bias_done = kernels.add_bias_cl(out.reshape(B, K, -1, self.C_out),
                                            b.reshape(self.K, self.C_out))
        if not bias_done:
            h += b
        return h

    def vjp(self, g, W=None, a=None):
        if self.first:
            raise RuntimeError("the first layer has no input gradient to propagate")
        W = self.params["W"] if W is None else W
        B, K = g.shape[:2]
        gc = to_channel_last(g).reshape((B * K, self.geo.Ho, self.geo.Wo, self.C_out))
        da = conv_input_grad(self.geo, gc, self._Wm(W))
        return from_channel_last(da.reshape((B, K) + da.shape[1:]))

    def _unW(self, dWm):
        return conv_weight_unmatrix(self.geo, dWm).reshape(self.params["W"].shape)

    def grads(self, a, g):
        B, K = g.shape[:2]
        geo = self.geo
        if self.first:
            xp = array_module(g)
            gc = xp.ascontiguousarray(g.transpose(0, 3, 4, 1, 2))  # (B, Ho, Wo, K, C_out)
            gc = gc.reshape(B, geo.Ho, geo.Wo, K * self.C_out)
            dWm = conv_weight_grad(geo, channel_last_view(a), gc)
        else:
            gc = to_channel_last(g)                               # (B, K, Ho, Wo, C_out)
            x = channel_last_view(a)
            dWm = conv_weight_grad(geo, x.reshape((B * K,) + x.shape[2:]),
                                   gc.reshape(B * K, geo.Ho, geo.Wo, self.C_out))
        return {"W": self._unW(dWm), "b": g.sum(axis=(0, 3, 4))[..., None, None]}

    def gevb_update_flops(self, B: int) -> int:
        """As :meth:`Layer.gevb_update_flops`, except the first layer: the per-example
        weight gradients with output signal G (a pass without K, 1/K of one), then e over
        them, 2·B·K·C_out·fan_in (:meth:`gevb_grads`)."""
        if self.first:
            return self.pass_flops(B) // self.K + 2 * B * self.K * self.C_out * self.fan_in
        return super().gevb_update_flops(B)

    def gevb_grads(self, a, G, e):
        """Appendix H.  Shared layers: the conv weight gradient with input
        P = Σ_μ a e and output signal G.  First layer (input without K):
        ΔW1[μ] = Σ_b e[b,μ] Q[b] with Q[b] = the weight gradient of example b
        with output signal G[b] — K times fewer products than forming g."""
        xp = array_module(a)
        B, geo = a.shape[0], self.geo
        Gc = to_channel_last(G.reshape((B,) + self.unit_shape))   # (B, Ho, Wo, C_out)
        db = (e.T @ Gc.sum(axis=(1, 2)))[..., None, None]
        if self.first:
            cols_of = _ConvCols(geo, channel_last_view(a))
            Q = xp.empty((B, self.C_out, geo.CKK), dtype=a.dtype)
            for sl in geo.blocks(B, geo.P * geo.CKK):
                n = sl.stop - sl.start
                cols = cols_of(sl).reshape(n, geo.P, geo.CKK)
                xp.matmul(Gc[sl].reshape(n, geo.P, self.C_out).transpose(0, 2, 1), cols, out=Q[sl])
            dWm = (e.T @ Q.reshape(B, -1)).reshape(self.K * self.C_out, geo.CKK)
        else:
            K = a.shape[1]
            if a.flags.c_contiguous:                              # (B, K, C, H, W) memory
                P = xp.matmul(e[:, None, :], a.reshape(B, K, -1)).reshape((B,) + self.in_shape)
                P = channel_last_view(P)
            else:                                                 # channel-last memory
                ac = to_channel_last(a)
                P = xp.matmul(e[:, None, :], ac.reshape(B, K, -1)).reshape((B,) + ac.shape[2:])
            dWm = conv_weight_grad(geo, P, Gc)
        return {"W": self._unW(dWm), "b": db}


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


for _cls in (Conv2d, LocallyConnected2d):
    register(_cls.kind, _cls)
