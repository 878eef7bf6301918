"""Dynamics of the temporal circuit (paper §7, second implementation).

Activity arrays are ``(K, steps, B, n)``: segment μ is time bin μ, in which
input population μ is active and the network produces output component μ;
one neuron per vector unit.  Bins follow each other without reset.

* Input currents: in bin μ neuron i receives ``Σ_j W1[μ, i, j] x_j + b_μi``
  (first layer; the other populations sit at baseline) and
  ``Σ_j W[i, j] pre_j(t) + b_μi`` in later layers (one set of weights).
* Gate (the realization's ``gating``): ``first_bin`` — the inhibition
  follows ``Θ(t_0 I_i(t))`` during bin 0 and holds the decision taken over
  bin 0's counting window for the later bins; ``external`` — it follows
  ``Θ(r_i · x)``, driven by the stimulus itself; ``full`` — the acausal
  ``Θ(Σ_μ t_μ Ī_iμ)`` from the bins' mean currents, known from the onset.
  In every case the inhibition relaxes toward its target with tau_inh.
* Neuromodulator: one signal broadcast to every synapse ("spatially
  uniform"), commanded with ε_μ during bin μ ("temporally heterogeneous") of
  the replay (``error_timing: replay``) or of the presentation itself
  (``mse_online``: ε_μ = z_μ − y_μ of bin μ).  Delay and filtering smear bin
  μ's error into the following bins — the temporal circuit's leakage between
  bins; ``crosstalk`` mixes the components of ε across bins explicitly.
* Coincidences: synapse ``W[i, j]`` sees ``pre_j(t) G_i(t)`` in every bin;
  the first-layer synapse ``W1[ν, i, j]`` only while population ν is active
  (bin ν), and the bias ``b_μi`` in bin μ.
"""

from __future__ import annotations

import numpy as np

from ...core.backend import to_host
from .engine import CircuitDynamics


class TemporalDynamics(CircuitDynamics):
    name = "temporal"
    channels = 1

    def __init__(self, real, options):
        self.error_timing = real.error_timing
        super().__init__(real, options)
        self.gating = real.gating

    def n_segments(self) -> int:
        return self.real.net.K

    def n_phases(self) -> int:
        return 2 if self.error_timing == "replay" else 1

    def learn_loss(self, logits, y):
        return self.real.learn_loss(logits, y)

    # ---- wiring ----------------------------------------------------------------
    def input_pre(self, x2, rnd_for):
        return x2[None, None]  # the stimulus as rates; population μ carries it in bin μ

    def drive(self, i, pre, x2):
        W, b = self.net.layers[i].params["W"], self.net.layers[i].params["b"]
        K = self.K
        if i == self.first:  # bin μ: population μ active, synapses W1[μ] (one GEMM)
            B = x2.shape[0]
            h = (x2 @ W.reshape(-1, W.shape[2]).T).reshape(B, K, -1).transpose(1, 0, 2)
            h += b[:, None, :]
            return h[:, None]  # (K, 1, B, n): constant within each bin
        S, N, B = pre.shape[:3]
        h = (pre.reshape(-1, pre.shape[3]) @ W.T).reshape(S, N, B, -1)
        h += b[:, None, None, :]
        return h

    def gate_target(self, i, I, x2):
        xp = self.xp
        t = self.net.t[i].reshape(self.K, -1)
        dt = I.dtype
        if self.gating == "full":  # acausal: the bins' mean currents, known from the onset
            Ibar = self.seg_mean(I)
            G = ((Ibar * t[:, None, :]).sum(axis=0) >= 0).astype(dt)
            return xp.broadcast_to(G[None, None], (self.K, 1) + G.shape)
        if self.gating == "external":
            G = ((x2 @ self.real.R[i].T) >= 0).astype(dt)
            return xp.broadcast_to(G[None, None], (self.K, 1) + G.shape)
        # first_bin: follow the current in bin 0, then hold bin 0's decision
        latch = ((self.seg_mean(I[:1])[0] * t[0]) >= 0).astype(dt)
        tgt = xp.empty(I.shape, dtype=dt)
        tgt[0] = ((I[0] * t[0]) >= 0)
        tgt[1:] = latch
        return tgt

    def apply_gate(self, G, I):
        return I * G

    def readout_segments(self, arr):
        return self.xp.ascontiguousarray(arr[:, :, 0].T)  # (K, B, 1) -> (B, K)

    def command(self, eps, B):
        """The broadcast signal carries ε_μ during bin μ's counting window (of the replay, or of the
        presentation with mse_online)."""
        xp = self.xp
        tl = self.tl
        u = xp.zeros((B, tl.slot, 1), dtype=self.dtype)
        p = 1 if self.error_timing == "replay" else 0
        n_cnt = tl.n_bin - tl.n_settle  # the counting steps of each bin (built on the device)
        steps = (tl.phase_start(p) + xp.arange(self.K)[:, None] * tl.n_bin
                 + xp.arange(tl.n_settle, tl.n_bin)[None, :]).ravel()
        u[:, steps, 0] = xp.repeat(eps.astype(self.dtype), n_cnt, axis=1)
        return u

    def replay_active(self) -> bool:
        return self.error_timing == "replay" and bool(self.opts["replay"])

    # ---- plasticity --------------------------------------------------------------
    def contract(self, i, pre, G, w):
        """One synapse per (i, j) and one broadcast signal: the update and the carried trace share
        a layout (first layer W1[ν] (K, n, n0), later W (n, n_in), biases b_μ (K, n))."""
        xp = self.xp
        K = self.K
        if w.ndim == 4:
            w = w[..., 0]  # (S, steps, B)
        static = pre.shape[1] == 1
        if i != self.first and static and (G is None or (G.shape[1] == 1 and bool((G == G[:1]).all()))):
            return self._static_gate(pre[:, 0], None if G is None else G[0, 0], w)
        Gs = xp.ones((1, 1, 1, 1), dtype=w.dtype) if G is None else G
        pw = w[..., None] * Gs  # (S, steps, B, n)
        if static:
            pw = pw.sum(axis=1, keepdims=True)
        n = pw.shape[-1]
        gb = pw.sum(axis=(1, 2))  # bias b_μ: bin μ only, (K, n)
        if i == self.first:  # population ν only in bin ν: per-bin sums against x
            x2 = pre[0, 0]
            B, n0 = x2.shape
            lhs = pw[:, 0].transpose(1, 0, 2).reshape(B, K * n)
            return (lhs.T @ x2).reshape(K, n, n0), gb
        R = pw.shape[0] * pw.shape[1] * pw.shape[2]
        preb = xp.broadcast_to(pre, pw.shape[:3] + pre.shape[-1:]).reshape(R, -1)
        return pw.reshape(R, n).T @ preb, gb

    def _static_gate(self, a, G, w):
        """Pre a (K, B, n_in) constant within bins and gate G (B, n) the same in every bin: contract
        the bins first (the per-example eligibility P_j = Σ_μ w_μ a_jμ of eq. 9), then the gate."""
        ws = w.sum(axis=1)  # (K, B): the neuromodulator's weight of bin μ
        P = (ws[:, :, None] * a).sum(axis=0)  # (B, n_in)
        if G is None:  # readout: not gated
            return P.sum(axis=0)[None], ws.sum(axis=1)[:, None]
        return G.T @ P, ws @ G

    def carry(self, i, dW, db, s0, E):
        # on the device (a 0-d array: no host sync), rounded as the float64 product was
        c = (s0[0].astype(np.float64) * self.elig.a * self.dt).astype(dW.dtype)
        dW += c * E[(i, "W")]
        db += c * E[(i, "b")]

    def zero_eligibility(self) -> dict:
        xp = self.xp
        E = {}
        for i in self.layers:
            p = self.net.layers[i].params
            E[(i, "W")] = xp.zeros(p["W"].shape, dtype=self.dtype)
            E[(i, "b")] = xp.zeros(p["b"].shape, dtype=self.dtype)
        return E

    # ---- trial records -----------------------------------------------------------
    def record_input_rate(self, r, shown, tbin):
        # population μ carries the stimulus in bin μ
        on = shown[:, None] & (tbin[:, None] == np.arange(self.K)[None, :])  # (slot, K)
        return np.where(on[None, :, :, None], r[:, None, None, :], self.r0)

    def record_bin_mean(self, M, cnt):
        tl = self.tl
        p = 1 if tl.n_phase == 2 else 0
        steps = tl.phase_start(p) + np.arange(self.K)[:, None] * tl.n_bin + cnt[None, :]
        m = M[:, steps, 0].mean(axis=2)  # (s, K bins)
        return np.repeat(m[:, :, None], self.K, axis=2)  # one signal, shown per channel

    def record_presynaptic(self, run, i, n, pre, comp, x):
        if i == self.first:  # population ν only in bin ν
            xs = to_host(x)[:n][:, pre]  # (n, syn)
            onbin = (np.arange(self.tl.n_seg)[:, None] == comp[None, :])  # (S, syn)
            return onbin[:, None, None, :] * xs[None, None]  # (S, 1, n, syn)
        return to_host(run.pre[..., :n, :])[..., pre]

    # ---- states for observers ------------------------------------------------------
    def mean_gate(self, G):
        return G.mean(axis=0)

    def state_inputs(self, x2, h_means, outs, Gs):
        states = []
        a_in = x2
        for h, a, G in zip(h_means, outs, Gs):
            states.append((a_in, h, a, G))
            a_in = a
        return states
