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

torch is an optional, benchmarks-only dependency (``pip install neurosim[bench]``).
"""

from __future__ import annotations

import numpy as np


def available() -> bool:
    """Whether torch is installed — without importing it: torch's thread pool
    must never start in the process that times neurosim (it shares the OpenMP
    runtime with Numba's pool; see :func:`main`)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


class TorchDenseNet:
    """A neurosim dense network (and rule) mirrored in PyTorch."""

    def __init__(self, net, rule, rule_name: str, device: str = "cpu", lr: float = 3e-4):
        import torch

        from neurosim.backend import to_host

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
        params = self.W + self.b
        if rule_name == "bp":
            for p in params:
                p.requires_grad_(True)
        self.opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)

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
            if self.gated[li]:
                with torch.no_grad():
                    G = ((h * self.t[li]).sum(dim=1, keepdim=True) >= 0).to(h.dtype)
                keep.append((a, G))
                a = h * G
            else:
                keep.append((a, None))
                a = h
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
            e = torch.softmax(logits, dim=1)
            e[torch.arange(B, device=e.device), y] -= 1
            e /= B
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
            a_in = keep[L - 1][0]
            g = e.reshape(B * K, self.n_out)
            out[(L - 1, "W")] = g.T @ a_in.reshape(B * K, -1)
            out[(L - 1, "b")] = g.reshape(B, K, self.n_out).sum(dim=0)
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


# ---------------------------------------------------------------------------
# child process: ``python -m benchmarks.torch_ref WORKLOAD ...`` prints one JSON line


def main(argv=None) -> int:
    """Time the PyTorch reference of one workload in this (fresh) process.

    torch is imported and its thread pool started *before* neurosim, so it runs
    under the OpenMP settings the user gave (neurosim's passive-wait default is
    for its own Numba pool, and a shared runtime would otherwise carry it over
    to torch, or torch's spinning threads over to neurosim).
    """
    import argparse
    import json
    import os
    import sys

    import torch

    torch.ones(64, 64) @ torch.ones(64, 64)  # start torch's pool under the user's settings

    ap = argparse.ArgumentParser(prog="python -m benchmarks.torch_ref")
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--peak", action="store_true", help="print torch's float32 matmul GFLOP/s only")
    a = ap.parse_args(argv)
    from . import core

    if a.peak:
        print(json.dumps({"torch_gflops": core.torch_matmul_gflops(a.device)}))
        return 0
    w = core.get_workloads([a.workload])[0]
    out = core.time_torch_reference(w, a.device, a.dtype, a.steps, a.warmup, a.epoch, a.n_train)
    out["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    out["torch_threads"] = torch.get_num_threads()
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
