"""The same dense networks and rules written in plain PyTorch (benchmark baseline).

Built from a neurosim :class:`~neurosim.model.network.Network` so that both
sides start from identical weights, gating vectors and feedback matrices:

* forward: first layer W1 (K, n, n0) (VNN) or (n, n0) (conventional),
  shared later layers, vector gate a = Θ(Σ_μ t_μ h_μ) h (eq. 7-8);
* ``bp``: PyTorch autograd (what a PyTorch user writes; the paper's code does);
* ``gevb``: eq. 9 by hand (no backward pass): ∂W1 = (e⊗G)ᵀx, ∂W = Gᵀ(Σ_μ e_μ a_μ);
* ``dfa``: δ = (e B)⊙G (eq. 5) by hand;
* ``torch.optim.Adam`` with its defaults for the device, then the nonnegativity
  clamp of layers ℓ > 1 (appendix I).

torch is an optional, benchmarks-only dependency (``pip install neurosim[bench]``);
the suite times these mirrors in a child process (:mod:`benchmarks.torch_child`).
"""

from __future__ import annotations

import numpy as np


def _gate(torch, h, t, a_in, keep):
    """The vector gate a = Θ(Σ_μ t_μ h_μ) h (eq. 7-8) with ∂a/∂h = G (the mask is
    computed without gradient); appends (layer input, G) to ``keep``, returns a.
    ``t`` None: no gate (the readout)."""
    if t is None:
        keep.append((a_in, None))
        return h
    with torch.no_grad():
        G = ((h * t).sum(dim=1, keepdim=True) >= 0).to(h.dtype)
    keep.append((a_in, G))
    return h * G


def _adam(torch, params, rule_name: str, lr: float):
    """torch.optim.Adam over ``params`` (autograd on them for ``bp``)."""
    if rule_name == "bp":
        for p in params:
            p.requires_grad_(True)
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def _error_vector(torch, logits, y):
    """e = (softmax(logits) − onehot(y)) / B, neurosim's cross-entropy error vector."""
    B = logits.shape[0]
    e = torch.softmax(logits, dim=1)
    e[torch.arange(B, device=e.device), y] -= 1
    return e / B


def _readout_grads(e, a_in, K: int) -> dict:
    """The readout's true gradient {"W", "b"} from e (B, K·n_out) and its input."""
    B = e.shape[0]
    g = e.reshape(B * K, -1)
    return {"W": g.T @ a_in.reshape(B * K, -1), "b": g.reshape(B, K, -1).sum(dim=0)}


class TorchDenseNet:
    """A neurosim dense network (and rule) mirrored in PyTorch."""

    def __init__(self, net, rule, rule_name: str, device: str = "cpu", lr: float = 3e-4):
        import torch

        from neurosim.core.backend import to_host

        if any(L.kind != "dense" for L in net.layers):
            raise NotImplementedError("the PyTorch reference covers dense networks only")
        self.torch = torch
        self.dev = torch.device("cuda" if device == "gpu" else "cpu")
        self.rule = rule_name
        self.K, self.n_out, self.B_fb = net.K, net.n_out, None
        dt = torch.float64 if net.backend.dtype == "float64" else torch.float32
        self.dtype = dt

        def T(a):
            return torch.tensor(np.ascontiguousarray(to_host(a)), dtype=dt, device=self.dev)

        self.W = [T(net.layers[i].params["W"]) for i in net.weight_layers]
        self.b = [T(net.layers[i].params["b"]) for i in net.weight_layers]
        self.t = [None if net.t[i] is None else T(net.t[i]) for i in net.weight_layers]
        self.gated = [net.nonlins[i] is not None and net.nonlins[i].gating for i in net.weight_layers]
        self.clamp = [net.clamped(i) for i in net.weight_layers]
        if rule_name == "dfa":
            self.B_fb = [T(rule.feedback[i]) for i in net.hidden_weight_layers]
        self.opt = _adam(torch, self.W + self.b, rule_name, lr)

    # ---------------------------------------------------------------
    def forward(self, x):
        """Logits and per-layer (input, G) for the hand-written rules."""
        torch = self.torch
        B = x.shape[0]
        a = x.reshape(B, -1)
        keep = []
        for li, (W, b) in enumerate(zip(self.W, self.b)):
            if li == 0:
                h = (a @ W.reshape(-1, W.shape[-1]).T).reshape(B, self.K, -1) + b
            else:
                h = a @ W.T + b  # a (B, K, n_in) -> (B, K, n)
            a = _gate(torch, h, self.t[li] if self.gated[li] else None, a, keep)
        return a.reshape(B, -1), keep

    def gradients(self, x, y):
        """{(layer position, "W"|"b"): grad} of the rule for one batch (no update)."""
        torch = self.torch
        if self.rule == "bp":
            for p in self.W + self.b:
                p.grad = None
            logits, _ = self.forward(x)
            torch.nn.functional.cross_entropy(logits, y).backward()
            return {(li, k): (self.W[li] if k == "W" else self.b[li]).grad
                    for li in range(len(self.W)) for k in ("W", "b")}
        with torch.no_grad():
            logits, keep = self.forward(x)
            B = x.shape[0]
            e = _error_vector(torch, logits, y)
            K, L = self.K, len(self.W)
            out = {}
            for li in range(L - 1):
                a_in, G = keep[li]
                G2 = G.reshape(B, -1)
                if self.rule == "gevb":
                    if li == 0:
                        g = e[:, :, None] * G2[:, None, :]
                        out[(li, "W")] = (g.reshape(B, -1).T @ a_in).reshape(self.W[0].shape)
                    else:
                        P = torch.einsum("bk,bkj->bj", e, a_in)
                        out[(li, "W")] = G2.T @ P
                    out[(li, "b")] = e.T @ G2
                else:  # dfa
                    d = (e.reshape(B * K, self.n_out) @ self.B_fb[li]).reshape(B, K, -1) * G
                    if li == 0:
                        out[(li, "W")] = (d.reshape(B, -1).T @ a_in).reshape(self.W[0].shape)
                    else:
                        out[(li, "W")] = d.reshape(B * K, -1).T @ a_in.reshape(B * K, -1)
                    out[(li, "b")] = d.sum(dim=0)
            for k, g in _readout_grads(e, keep[L - 1][0], K).items():
                out[(L - 1, k)] = g
            return out

    def step(self, x, y):
        grads = self.gradients(x, y)
        if self.rule != "bp":
            for (li, k), g in grads.items():
                (self.W[li] if k == "W" else self.b[li]).grad = g
        self.opt.step()
        with self.torch.no_grad():
            for W, c in zip(self.W, self.clamp):
                if c:
                    W.clamp_(min=0)


class TorchConvNet:
    """A neurosim conv VNN (conv2d, avg_pool2d, dense layers) mirrored in PyTorch.

    Activations are (B, K, C, H, W) as in neurosim; the first conv runs as one
    ``conv2d`` with K·C_out output channels (a weight per component), later
    convs on the (B·K, C, H, W) stack with the shared weight.  Rules:

    * ``bp``: autograd (the gate mask is computed without gradient, ∂a/∂h = G);
    * ``gevb`` (eq. 9, appendix H) by hand with ``torch.nn.grad.conv2d_weight``:
      shared layers from P = Σ_μ e_μ a_μ and output signal G; the first layer
      from the learning signal e⊗G directly (what the equations say; neurosim
      factors it through per-example gradients, K times fewer products).
    """

    def __init__(self, net, rule, rule_name: str, device: str = "cpu", lr: float = 3e-4):
        import torch

        from neurosim.core.backend import to_host

        other = {L.kind for L in net.layers} - {"conv2d", "avg_pool2d", "dense"}
        if other:
            raise NotImplementedError(f"the PyTorch conv reference covers conv2d, avg_pool2d and "
                                      f"dense layers, not {sorted(other)}")
        if rule_name not in ("gevb", "bp"):
            raise NotImplementedError("the PyTorch conv reference implements gevb and bp")
        self.torch = torch
        self.dev = torch.device("cuda" if device == "gpu" else "cpu")
        self.rule = rule_name
        self.K = net.K
        dt = torch.float64 if net.backend.dtype == "float64" else torch.float32
        self.dtype = dt

        def T(a):
            return torch.tensor(np.ascontiguousarray(to_host(a)), dtype=dt, device=self.dev)

        self.layers = []  # per layer a dict: kind, first, t; conv geometry; W, b, clamp
        for i, L in enumerate(net.layers):
            gated = net.nonlins[i] is not None and net.nonlins[i].gating
            entry = {"kind": L.kind, "first": L.first, "t": T(net.t[i]) if gated else None}
            if L.kind == "conv2d":
                g = L.geo
                entry.update(stride=(g.sh, g.sw), padding=(g.ph, g.pw), M=L.C_out)
            if L.kind == "avg_pool2d":
                entry.update(size=L.s)
            if L.has_weights:
                entry.update(W=T(L.params["W"]), b=T(L.params["b"]), clamp=net.clamped(i))
            self.layers.append(entry)
        self.opt = _adam(torch, [ly[k] for ly in self.layers if "W" in ly for k in ("W", "b")],
                         rule_name, lr)

    def forward(self, x):
        """Logits and, per layer, (input, G)."""
        torch = self.torch
        F = torch.nn.functional
        B, K = x.shape[0], self.K
        a = x
        keep = []
        for ly in self.layers:
            kind = ly["kind"]
            if kind == "conv2d":
                W = ly["W"]
                if ly["first"]:
                    h = F.conv2d(a, W.reshape((-1,) + W.shape[2:]), stride=ly["stride"],
                                 padding=ly["padding"])
                    h = h.reshape((B, K, ly["M"]) + h.shape[2:])
                else:
                    h = F.conv2d(a.reshape((B * K,) + a.shape[2:]), W, stride=ly["stride"],
                                 padding=ly["padding"])
                    h = h.reshape((B, K) + h.shape[1:])
                h = h + ly["b"]
            elif kind == "avg_pool2d":
                h = F.avg_pool2d(a.reshape((B * K,) + a.shape[2:]), ly["size"])
                h = h.reshape((B, K) + h.shape[1:])
            else:  # dense, never first here (the conv VNN's first layer is a conv)
                h = a.reshape(B, K, -1) @ ly["W"].T + ly["b"]
            a = _gate(torch, h, ly["t"], a, keep)
        return a.reshape(B, -1), keep

    def gradients(self, x, y):
        """{(weight-layer position, "W"|"b"): grad} for one batch (no update)."""
        torch = self.torch
        wl = [ly for ly in self.layers if "W" in ly]
        if self.rule == "bp":
            for ly in wl:
                ly["W"].grad = ly["b"].grad = None
            logits, _ = self.forward(x)
            torch.nn.functional.cross_entropy(logits, y).backward()
            return {(p, k): wl[p][k].grad for p in range(len(wl)) for k in ("W", "b")}
        conv2d_weight = torch.nn.grad.conv2d_weight
        with torch.no_grad():
            logits, keep = self.forward(x)
            B, K = x.shape[0], self.K
            e = _error_vector(torch, logits, y)
            out, pos = {}, 0
            for ly, (a_in, G) in zip(self.layers, keep):
                if "W" not in ly:
                    continue
                W = ly["W"]
                if G is None:  # readout: its true gradient
                    for k, g in _readout_grads(e, a_in, K).items():
                        out[(pos, k)] = g
                elif ly["kind"] == "conv2d":
                    Gs = G[:, 0]                                     # (B, M, Ho, Wo)
                    if ly["first"]:
                        g = (e[:, :, None, None, None] * G).reshape((B, -1) + Gs.shape[2:])
                        dW = conv2d_weight(a_in, (W.shape[0] * W.shape[1],) + W.shape[2:], g,
                                           stride=ly["stride"], padding=ly["padding"])
                        out[(pos, "W")] = dW.reshape(W.shape)
                    else:
                        P = torch.einsum("bk,bkchw->bchw", e, a_in)
                        out[(pos, "W")] = conv2d_weight(P, W.shape, Gs, stride=ly["stride"],
                                                        padding=ly["padding"])
                    out[(pos, "b")] = (e.T @ Gs.sum(dim=(2, 3)))[..., None, None]
                else:  # hidden dense (shared)
                    G2 = G.reshape(B, -1)
                    P = torch.einsum("bk,bkj->bj", e, a_in.reshape(B, K, -1))
                    out[(pos, "W")] = G2.T @ P
                    out[(pos, "b")] = e.T @ G2
                pos += 1
            return out

    def step(self, x, y):
        wl = [ly for ly in self.layers if "W" in ly]
        grads = self.gradients(x, y)
        if self.rule != "bp":
            for (p, k), g in grads.items():
                wl[p][k].grad = g
        self.opt.step()
        with self.torch.no_grad():
            for ly in wl:
                if ly["clamp"]:
                    ly["W"].clamp_(min=0)


def reference_for(net, rule, rule_name: str, device: str = "cpu"):
    """The PyTorch mirror of ``net``: dense-only networks or conv VNNs."""
    if all(L.kind == "dense" for L in net.layers):
        return TorchDenseNet(net, rule, rule_name, device)
    return TorchConvNet(net, rule, rule_name, device)
