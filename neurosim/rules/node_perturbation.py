"""Node perturbation with learned feedback (Lansdell, Prakash & Kording 2020).

Every step runs the clean forward pass and one *perturbed* pass in which
Gaussian noise is added to hidden activations (§2.2),

    ã = φ(h) + c·ξ,   ξ ~ N(0, I),   c = ``noise`` (its standard deviation).

The perturbed loss of each example gives the node-perturbation estimate of
∂L/∂a (eq. 2),

    λ̂ = (L̃ − L) ξ / c  =  (L̃ − L) η / c²   with η = c·ξ the added noise.

Which normalisation is right: to first order L̃ − L = Σ_j ∂L/∂a_j c ξ_j, so
E[(L̃ − L) ξ_j] = c ∂L/∂a_j (E[ξ_j ξ_k] = δ_jk).  Dividing by c gives an
unbiased (to first order) estimate of ∂L/∂a — eq. 2 of the paper, "/c" in
SPEC §3.  SPEC §7's "/σ²" is the same formula written with the *added* noise
η = σξ (the released code divides ``xi·(L̃ − L)`` by ``var_xi`` twice, its
``xi`` having std ``var_xi``).  "/c²" with unit-variance ξ would be wrong by a
factor 1/c.  Tests check E[λ̂] = ∂L/∂a by Monte Carlo.

L̃ and L are per-example losses (the examples of a batch are independent
perturbation experiments).  Noise goes into all perturbed layers in the same
pass; the other layers' noise only adds zero-mean variance to each estimate.

Feedback matrices B are fitted to λ̂ by least squares (eq. 3, 9):

* ``style: fa`` — layer to layer, g_FA = B ẽ (§3, theorems 1–2): B^ℓ has W^ℓ's
  shape and replaces W^ℓ in BP's backward pass exactly as in feedback
  alignment; ẽ^ℓ is the synthetic ∂L/∂h^ℓ of layer ℓ and λ̂ the estimate at
  layer ℓ's input.  B → W as c → 0 (W fixed).
* ``style: dfa`` — output to every hidden layer, g_DFA = B e (§4.3, corollary
  1): D^ℓ (n_out × n_ℓ) maps the output error to ∂L/∂a^ℓ; for a linear
  network D^ℓ → W^L ⋯ W^{ℓ+1}.

``solver: sgd`` descends ½ Σ_b ‖B ẽ_b − λ̂_b‖² (summed over the batch, as the
released code) with its own learning rate ``feedback_lr``: ΔB = −η_B Σ_b
(B ẽ_b − λ̂_b) ẽ_bᵀ (SPEC §7).  ``solver: ridge`` (appendix C.3) sets B after
every step to the online ridge solution B = (Σ λ̂ ẽᵀ)(γI + Σ ẽ ẽᵀ)⁻¹ over all
examples seen (dense layers; ``gamma`` = γ).  ẽ is the per-example error (the
batch's 1/B removed).  W is trained with the synthetic errors ẽ; the readout
gets its true gradient.  ``warmup_epochs``: train only B during the first
epochs (W frozen).  SGD on B is stable only while feedback_lr × batch × ‖ẽ‖² < 2
(the curvature of the batch-sum objective): small for classification
(‖e‖² ≲ 1), but ~1e-5 for an MNIST autoencoder (‖e‖² ≈ 80).

Noise is drawn on the run's device from ``backend.device_rng("noise", 1, t)`` (on the CPU:
the host stream ``backend.rng("noise", 1, t)``) with ``t`` the
rule's step counter, which is checkpointed with B (and the ridge sums), so a
resumed run is identical to an uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from .. import losses
from ..core.options import Field, Section
from ..model import init as initmod
from .base import (
    Feedback,
    Rule,
    StepResult,
    backward_pass,
    direct_errors,
    hidden_learning_signals,
    weight_grads,
)
from .feedback import feedback_sign, uniform

#: sub-stream tag of the "noise" stream (dropout uses 2)
NOISE_STREAM = 1


class NodePerturbation(Rule):
    """Options (protocol ``rule:``): ``noise`` c (std of the perturbation),
    ``feedback_lr`` (SGD step of B), ``style`` (fa | dfa), ``solver``
    (sgd | ridge), ``gamma`` (ridge regulariser), ``warmup_epochs`` (B only),
    ``init_scale`` (initial B = init_scale × the FA/DFA random feedback; 0
    starts from zero), ``sign`` (auto | mixed | nonnegative, of the initial
    DFA-style matrices, as in DFA)."""

    name = "node_perturbation"
    OPTIONS = Section({
        "noise": Field(float, default=0.01, min=0, exclusive_min=True,
                       doc="c: standard deviation of the node perturbation"),
        "feedback_lr": Field(float, default=5e-4, min=0, doc="SGD step of the feedback matrices B"),
        "style": Field(str, default="fa", choices=("fa", "dfa"),
                       doc="fa: layer-to-layer feedback; dfa: output error to every hidden layer"),
        "solver": Field(str, default="sgd", choices=("sgd", "ridge"),
                        doc="how B is fitted to the perturbation estimates (eq. 3, 9)"),
        "gamma": Field(float, default=0.1, min=0, exclusive_min=True, doc="ridge regulariser γ"),
        "warmup_epochs": Field(int, default=0, min=0, units="epoch",
                               doc="epochs that train only B (W frozen)"),
        "init_scale": Field(float, default=1.0, min=0,
                            doc="initial B = init_scale x the FA/DFA random feedback (0: zeros)"),
        "sign": Field(str, default="auto", choices=("auto", "mixed", "nonnegative"),
                      doc="sign of the fixed random feedback (auto: nonnegative for a nonnegative network)"),
    })

    def __init__(self, net, backend, noise: float = 0.01, feedback_lr: float = 5e-4,
                 style: str = "fa", solver: str = "sgd", gamma: float = 0.1,
                 warmup_epochs: int = 0, init_scale: float = 1.0, sign: str = "auto"):
        super().__init__(net, backend)
        if not float(noise) > 0:
            raise ValueError(f"rule.noise must be > 0, got {noise}")
        if not float(feedback_lr) >= 0:
            raise ValueError(f"rule.feedback_lr must be >= 0, got {feedback_lr}")
        if style not in ("fa", "dfa"):
            raise ValueError(f"rule.style must be 'fa' or 'dfa', not {style!r}")
        if solver not in ("sgd", "ridge"):
            raise ValueError(f"rule.solver must be 'sgd' or 'ridge', not {solver!r}")
        if not float(gamma) > 0:
            raise ValueError(f"rule.gamma must be > 0, got {gamma}")
        if int(warmup_epochs) < 0:
            raise ValueError(f"rule.warmup_epochs must be >= 0, got {warmup_epochs}")
        self.backend = backend
        self.noise = float(noise)
        self.feedback_lr = float(feedback_lr)
        self.style = style
        self.solver = solver
        self.gamma = float(gamma)
        self.warmup_epochs = int(warmup_epochs)
        self.sign = feedback_sign(net, sign)
        self.t = 0  # steps taken (noise key)
        rng = backend.rng("feedback")
        self.feedback = {}
        if style == "fa":
            # the same draws as FA, so that feedback_lr = 0 is exactly FA
            for i in net.weight_layers[1:]:
                L = net.layers[i]
                F = rng.standard_normal(L.params["W"].shape) * initmod.scale("hidden", "he", L.fan_in)
                if self.sign == "nonnegative":
                    F = np.abs(F)
                self.feedback[i] = backend.asarray(init_scale * F)
            # noise at the input of every feedback layer = output of the layer below
            self.targets = {i: i - 1 for i in self.feedback}
        else:
            # the same matrix as DFA (sliced per layer), so feedback_lr = 0 is exactly DFA
            hidden = net.hidden_weight_layers
            n_max = max((net.layers[i].n_units for i in hidden), default=0)
            big = uniform(rng, (net.n_out, n_max), self.sign)
            for i in hidden:
                self.feedback[i] = backend.asarray(init_scale * big[:, : net.layers[i].n_units])
            self.targets = {i: i for i in self.feedback}
        if solver == "ridge":
            for i in self.feedback:
                if style == "fa" and net.layers[i].kind != "dense":
                    raise ValueError(f"rule.solver ridge needs dense feedback layers (layer {i} is "
                                     f"{net.layers[i].kind}); use solver: sgd")
            xp = backend.xp
            self.S = {i: xp.zeros_like(B) for i, B in self.feedback.items()}
            self.V = {i: xp.zeros((B.shape[0], B.shape[0]), dtype=B.dtype)
                      for i, B in self.feedback.items()}
        else:
            self.S, self.V = {}, {}

    # ------------------------------------------------------------------
    def draw_noise(self, states, key):
        """{layer: c·ξ} for the perturbed layers, from the step's noise stream."""
        rng = self.backend.device_rng("noise", NOISE_STREAM, *key)  # drawn on the device
        out = {}
        for k in sorted(set(self.targets.values())):
            shape = states[k].a.shape
            out[k] = self.backend.asarray(self.noise * rng.standard_normal(shape))
        return out

    def estimates(self, net, x, y, loss_fn, states, logits, key):
        """Node-perturbation estimates λ̂ of ∂L_b/∂a (per example, eq. 2):
        {feedback layer i: λ̂ at its perturbed layer}."""
        eta = self.draw_noise(states, key)
        noisy, _ = net.forward(x, perturb=eta)
        dL = losses.per_example(loss_fn, noisy, y) - losses.per_example(loss_fn, logits, y)
        c2 = self.noise * self.noise
        out = {}
        for i, k in self.targets.items():
            n = eta[k]
            out[i] = n * (dL.reshape((-1,) + (1,) * (n.ndim - 1)) / c2)
        return out

    def learning_signals(self, net, states, e):
        """Synthetic learning signals ẽ^ℓ ≈ ∂L/∂h^ℓ (with the batch's 1/B)."""
        if self.style == "fa":
            g, _ = backward_pass(net, states, e, self.feedback)
            return {i: g[i] for i in net.weight_layers}
        return hidden_learning_signals(net, states, e, self.error_signals(net, states, e))

    def error_signals(self, net, states, e):
        """The synthetic ∂L/∂a^ℓ: the backward pass through B (``fa``) or e D^ℓ (``dfa``)."""
        if self.style == "fa":
            _, da = backward_pass(net, states, e, self.feedback)
            return {i: da[i] for i in net.hidden_weight_layers}
        return direct_errors(net, e, self.feedback)

    def feedback_matrices(self):
        """B (``style: fa``, kind ``backward``) or D (``style: dfa``, kind
        ``direct``).  A step updates them in place after computing its weight
        update, so what is seen after :meth:`step` (e.g. by the metric
        observers) is B after that step's feedback update."""
        kind = "backward" if self.style == "fa" else "direct"
        return {i: Feedback(B, kind) for i, B in self.feedback.items()}

    def feedback_regression(self, net, states, e, sig, lam):
        """Per layer (ẽ rows, λ̂ rows, gradient of ½Σ‖Bẽ − λ̂‖² w.r.t. B)."""
        Bsz = e.shape[0]
        out = {}
        for i, F in self.feedback.items():
            if self.style == "fa":
                L = net.layers[i]
                et = sig[i] * Bsz  # per-example synthetic error at layer i
                resid = L.vjp(et, F) - lam[i]
                gB = L.grads(resid, et)["W"]
                out[i] = (et, lam[i], gB)
            else:
                eo = e.reshape(-1, net.n_out) * Bsz
                lr = lam[i].reshape(eo.shape[0], -1)
                gB = eo.T @ (eo @ F - lr)
                out[i] = (eo, lr, gB)
        return out

    def update_feedback(self, net, states, e, sig, lam) -> None:
        xp = self.backend.xp
        for i, (et, lr, gB) in self.feedback_regression(net, states, e, sig, lam).items():
            if self.solver == "sgd":
                self.feedback[i] -= self.feedback_lr * gB
            else:
                E = et.reshape(-1, self.V[i].shape[0])
                self.V[i] += E.T @ E
                self.S[i] += E.T @ lr.reshape(E.shape[0], -1)
                A = self.V[i] + self.gamma * xp.eye(self.V[i].shape[0], dtype=self.V[i].dtype)
                self.feedback[i][...] = xp.linalg.solve(A, self.S[i])

    # ------------------------------------------------------------------
    def step(self, net, x, y, loss_fn) -> StepResult:
        self.t += 1
        logits, states = net.forward(x)
        loss, e = loss_fn(logits, y)
        sig = self.learning_signals(net, states, e)  # before the perturbed pass (layers may cache)
        lam = self.estimates(net, x, y, loss_fn, states, logits, (self.t,))
        grads = {} if net.epoch < self.warmup_epochs else weight_grads(net, states, sig)
        self.update_feedback(net, states, e, sig, lam)
        return StepResult(loss, logits, grads, states, e)

    def state_dict(self):
        h = self.backend.to_host
        d = {"t": np.asarray(self.t)}
        d.update({f"B{i}": h(F) for i, F in self.feedback.items()})
        d.update({f"S{i}": h(S) for i, S in self.S.items()})
        d.update({f"V{i}": h(V) for i, V in self.V.items()})
        return d

    def load_state_dict(self, state):
        if "t" in state:
            self.t = int(np.asarray(state["t"]).reshape(-1)[0])
        for name, store in (("B", self.feedback), ("S", self.S), ("V", self.V)):
            for i in store:
                if f"{name}{i}" in state:
                    store[i][...] = self.backend.asarray(state[f"{name}{i}"])
