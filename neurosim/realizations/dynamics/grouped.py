"""Dynamics of the grouped circuit (paper §7, first implementation).

Activity arrays are ``(1, steps, K, B, n)``: one segment (the presentation),
neuron μ of group i on axis 2; gates are per group, ``(1, steps, B, n)``.

* Input currents: neuron μ of group i receives ``Σ_j w[μ, i, j] pre_jμ + b_μi``
  (first layer: ``W1[μ, i, j] x_j`` from the one input population).
* Gate: an inhibitory population reads the group's input currents weighted
  by the gating vector and silences the group when ``t · I_i < 0``; its
  effect relaxes toward ``Θ(t · I_i(t))`` with tau_inh.
* Neuromodulator: K channels; channel μ carries the error component ε_μ
  during the replay's counting window ("spatially heterogeneous, temporally
  uniform") and reaches the component-μ synapses only.
* Coincidences: synapse ``w[μ, i, j]`` sees ``pre_jμ(t) G_i(t)``; its update
  is ``∫ M_μ E dt``.  The first-layer synapses W1[μ, i, j] of the K neurons of
  group i share presynaptic neuron j and gate G_i, so their eligibility
  traces are equal (one trace per (i, j) is kept); likewise the biases.
"""

from __future__ import annotations

import numpy as np

from ...core.backend import to_host
from .engine import CircuitDynamics
from .neurons import poisson


class GroupedDynamics(CircuitDynamics):
    name = "grouped"
    component_groups = True

    def __init__(self, real, options):
        self.channels = real.net.K
        super().__init__(real, options)
        self.compensate = real.compensate

    def n_segments(self) -> int:
        return 1

    # ---- wiring ----------------------------------------------------------------
    def input_pre(self, x2, rnd_for):
        if not self.input_spikes:
            return x2[None, None]  # (1, 1, B, n0): the stimulus as rates
        xp = self.xp
        r = xp.maximum(x2 * self.g + self.r0, 0.0)
        lam = xp.broadcast_to(r[None, None] * (self.dt * 1e-3), (1, self.tl.n_bin) + r.shape)
        return self._spike_train(poisson(lam, rnd_for(0)))

    def drive(self, i, pre, x2):
        xp = self.xp
        W, b = self.real.w(i), self.real.b(i)
        K = self.K
        S, N = pre.shape[:2]
        if i == self.first:  # (S, N, B, n0) -> (S, N, K, B, n): one GEMM for all components
            B = pre.shape[2]
            h = (pre.reshape(-1, W.shape[2]) @ W.reshape(-1, W.shape[2]).T).reshape(S, N, B, K, -1)
            h = xp.moveaxis(h, 3, 2)
        else:  # neuron μ of group j -> neuron μ of group i, own synapse w[μ]
            B = pre.shape[3]
            h = xp.empty((S, N, K, B, W.shape[1]), dtype=pre.dtype)
            for mu in range(K):
                h[:, :, mu] = (pre[:, :, mu].reshape(-1, W.shape[2]) @ W[mu].T).reshape(S, N, B, -1)
        h += b[:, None, :]
        return h

    def gate_target(self, i, I, x2):
        t = self.net.t[i].reshape(self.K, -1)
        return ((I * t[:, None, :]).sum(axis=2) >= 0).astype(I.dtype)

    def apply_gate(self, G, I):
        return I * G[:, :, None]

    def readout_segments(self, arr):
        return self.xp.ascontiguousarray(arr[0, :, :, 0].T)  # (1, K, B, 1) -> (B, K)

    def command(self, eps, B):
        """Channel μ carries ε_μ during the replay's counting window."""
        xp = self.xp
        tl = self.tl
        u = xp.zeros((B, tl.slot, self.K), dtype=self.dtype)
        steps = slice(tl.phase_start(1) + tl.n_settle, tl.phase_start(1) + tl.n_bin)
        u[:, steps, :] = eps[:, None, :].astype(self.dtype)
        return u

    # ---- plasticity --------------------------------------------------------------
    def _post(self, w, G, static_pre: bool):
        """Post-side row weights w_μ G: (S, 1|steps, B, K, n); summed over steps for a static pre."""
        xp = self.xp
        Gs = xp.ones((1, 1, 1, 1), dtype=w.dtype) if G is None else G  # readout: not gated
        if not static_pre:
            return w[..., :, None] * Gs[..., None, :]
        if Gs.shape[1] == 1:
            return w.sum(axis=1, keepdims=True)[..., :, None] * Gs[..., None, :]
        # Σ_k w[s,k,b,μ] G[s,k,b,i] per (s, b): batched matmul over b
        out = xp.matmul(xp.moveaxis(w, 1, 3), xp.moveaxis(Gs, 1, 2))  # (S, B, K, n)
        return out[:, None]

    def contract(self, i, pre, G, w):
        xp = self.xp
        K = self.K
        static = pre.shape[1] == 1
        if w.ndim == 3:  # the eligibility trace: the same weight for every channel
            return self._trace(i, pre, G, w, static)
        # K-copy synapse updates x K (compensate_k), applied before the product as without dynamics
        kscale = K if (self.compensate and i != self.first) else 1
        if i != self.first and static and (G is None or G.shape[1] == 1):
            return self._static(pre[:, 0], None if G is None else G[:, 0], w, kscale)
        pw = self._post(w, G, static)  # (S, R, B, K, n)
        n = pw.shape[-1]
        R = pw.shape[0] * pw.shape[1] * pw.shape[2]
        gb = pw.sum(axis=(0, 1, 2))  # (K, n)
        if i == self.first:  # Δw1[μ,i,j] ∝ Σ w_μ G_i x_j: one product over (μ, i)
            n0 = pre.shape[-1]
            preb = xp.broadcast_to(pre, pw.shape[:3] + (n0,)).reshape(R, n0)
            return (pw.reshape(R, K * n).T @ preb).reshape(K, n, n0), gb
        n_in = pre.shape[-1]
        preb = xp.broadcast_to(pre, pw.shape[:2] + (K,) + pw.shape[2:3] + (n_in,))
        gW = xp.empty((K, n, n_in), dtype=pw.dtype)
        for mu in range(K):  # channel μ reaches the component-μ synapses only
            lhs = pw[..., mu, :].reshape(R, n)
            if kscale != 1:
                lhs = lhs * kscale
            xp.matmul(lhs.T, preb[:, :, mu].reshape(R, n_in), out=gW[mu])
        return gW, gb

    def _trace(self, i, pre, G, v, static):
        """Coincidences weighted by v: first layer (n, n0) (shared by the K synapses of a pair of
        neurons), later layers (K, n, n_in); biases (n,)."""
        xp = self.xp
        Gs = xp.ones((1, 1, 1, 1), dtype=v.dtype) if G is None else G
        pv = v[..., None] * Gs  # (S, steps, B, n)
        if static:
            pv = pv.sum(axis=1, keepdims=True)
        n = pv.shape[-1]
        R = pv.shape[0] * pv.shape[1] * pv.shape[2]
        lhs = pv.reshape(R, n)
        if i == self.first:
            preb = xp.broadcast_to(pre, pv.shape[:3] + pre.shape[-1:]).reshape(R, -1)
            return lhs.T @ preb, lhs.sum(axis=0)
        K, n_in = self.K, pre.shape[-1]
        preb = xp.broadcast_to(pre, pv.shape[:2] + (K,) + pv.shape[2:3] + (n_in,))
        preb = xp.moveaxis(preb, 2, 3).reshape(R, K * n_in)
        return xp.moveaxis((lhs.T @ preb).reshape(n, K, n_in), 1, 0), lhs.sum(axis=0)

    def _static(self, a, G, w, kscale):
        """Update of a later layer for pre a (S, K, B, n_in) and gate G (S, B, n) constant in time:
        each example's weight is the sum of its neuromodulator weights (eq. 9 per μ)."""
        xp = self.xp
        K = self.K
        gW = gb = None
        for s in range(a.shape[0]):
            wsT = w[s].sum(axis=0).T  # (K, B): channel μ's weight of each example
            ge = wsT[:, :, None] if G is None else wsT[:, :, None] * G[s][None]  # (K, B, n)
            gs = ge * kscale if kscale != 1 else ge
            dW = xp.empty((K, ge.shape[2], a.shape[3]), dtype=ge.dtype)
            for mu in range(K):  # channel μ reaches the component-μ synapses only
                xp.matmul(gs[mu].T, a[s, mu], out=dW[mu])
            gW = dW if gW is None else gW + dW
            gb = ge.sum(axis=1) if gb is None else gb + ge.sum(axis=1)
        return gW, gb

    def carry(self, i, dW, db, s0, E):
        c = self.elig.a * self.dt
        sw = (s0 * c).astype(dW.dtype)
        EW, Eb = E[(i, "W")], E[(i, "b")]
        kscale = self.K if (self.compensate and i != self.first) else 1
        dW += (sw * kscale)[:, None, None] * (EW[None] if EW.ndim == 2 else EW)
        db += sw[:, None] * Eb[None]

    def zero_eligibility(self) -> dict:
        xp = self.xp
        E = {}
        for i in self.layers:
            W = self.real.w(i)
            shape = W.shape[1:] if i == self.first else W.shape
            E[(i, "W")] = xp.zeros(shape, dtype=self.dtype)
            E[(i, "b")] = xp.zeros(W.shape[1:2], dtype=self.dtype)
        return E

    # ---- trial records -----------------------------------------------------------
    def record_input_rate(self, r, shown, tbin):
        # one input population, on while the stimulus is shown
        return np.where(shown[None, :, None], r[:, None, :], self.r0)

    def record_bin_mean(self, M, cnt):
        steps = self.tl.phase_start(1) + cnt
        return M[:, steps].mean(axis=1)[:, None, :]  # (s, 1, K)

    def record_presynaptic(self, run, i, n, pre, comp, x):
        if i == self.first:
            return to_host(run.pre[..., :n, :])[..., pre]  # (S, Np, n, syn)
        a = to_host(run.pre[..., :n, :])[:, :, comp]  # (S, Np, syn, n, n_in)
        a = np.take_along_axis(a, pre[None, None, :, None, None], axis=-1)[..., 0]
        return np.moveaxis(a, 2, 3)  # (S, Np, n, syn)

    # ---- states for observers ------------------------------------------------------
    def mean_gate(self, G):
        return G[0]

    def state_inputs(self, x2, h_means, outs, Gs):
        states = []
        a_in = x2
        for h, a, G in zip(h_means, outs, Gs):
            h0, a0 = h[0], a[0]  # (K, B, n)
            states.append((a_in, h0, a0, G))
            a_in = a0
        return states
