"""The temporal circuit (paper §7, second implementation; appendix B).

Each vector unit is ONE neuron with one set of weights; an example is
presented over K time bins.  In bin μ only input population μ is active
(appendix B: the K·n0 vector input units a0[(ν,j), μ] = δ_μν x_j, so the
first-layer synapse from population ν is W1[ν, i, j]) and the network
produces output component μ.  Weights are shared across bins automatically.
The state of every neuron is simulated per bin: h[μ, b, i], a[μ, b, i].

Gating (``gating``):

* ``full`` — G_i = Θ(Σ_μ t_μ h_iμ): exact and acausal; the simulator buffers
  all K bins of a layer before gating it (= batched GEVB, tested to 1e-10);
* ``first_bin`` — causal: G_i = Θ(t_0i h_i0), decided in bin 0 and held.  This
  is the network whose gating vectors are (t_0, 0, …, 0) (circuit option
  ``gating: first_bin``; tested against the batched network with it);
* ``external`` — a gating signal independent of the pre-activations: fixed
  random half-space gates on the *input*, G_i = Θ(r_i · x) with r_i ~ N(0, I)
  drawn once per layer from the ``gating`` stream, in ON/OFF pairs (unit 2k
  uses r_k, unit 2k+1 uses −r_k, so exactly one of each pair is active, like
  the paired gating vectors).  An inhibitory population driven by the
  stimulus, known before bin 0 (causal).

Error timing (``error_timing``): the neuromodulator broadcasts e_μ in bin μ.

* ``replay`` — the error vector needs all K outputs (cross-entropy), so the
  example is presented once (K bins), e is computed, and the K bins are
  replayed with the neuromodulator on (plasticity happens in the replay).
  With end-of-example plasticity the replayed activity equals the buffered
  activity of the presentation (rate model, same weights) and is reused;
* ``mse_online`` — causal per bin: e_μ = z_μ − y_μ (MSE error) at the end of
  bin μ.  With a cross-entropy protocol the circuit then *learns* with MSE
  (the reported training loss is MSE too; evaluation is unchanged).

Plasticity (``plasticity``): in bin μ each synapse changes by
``−η e_μ a[j, μ] G_i`` (three-factor rule); over the K bins this integrates
to GEVB (eq. 9).

* ``end_of_example`` — the changes are accumulated (an eligibility
  ``P_j = Σ_μ e_μ a_jμ`` per presynaptic neuron, times the held gate G_i) and
  applied after the example through the protocol's optimizer, like the
  batched rule;
* ``per_bin`` — applied at the end of every bin, so later bins (and their
  replay) see the changed weights.  This is plain three-factor SGD at
  ``optimizer.lr`` (needs ``optimizer.name: sgd``); the gates stay those of
  the example's presentation.

A ``dynamics:`` section puts the circuit in time (bins of ``presentation_ms``,
leaky or spiking neurons, inhibitory gating, eligibility traces, a late and
filtered neuromodulator leaking between bins; see
:mod:`neurosim.realizations.dynamics`); its ideal limit is this circuit.

Batches are simulated in parallel (summed plasticity = mini-batch).  Bins are
vectorized where the dependency structure allows (all modes with
end-of-example plasticity: the gates depend only on the input, on bin 0, or
on the buffered bins) and simulated one after another with per-bin plasticity.
"""

from __future__ import annotations

import numpy as np

from ..core.backend import array_module
from ..core.options import ConfigError, Field, Section
from ..losses import mse
from ..recording.trial import variable as trial_variable
from ..rules.base import StepResult
from . import dynamics
from .base import Realization
from .circuit import check_network, check_protocol, clamp_, engine_states


class Temporal(Realization):
    name = "temporal"
    records_trajectories = True
    OPTIONS = Section({
        "gating": Field(str, default="full", choices=("full", "first_bin", "external"), doc=(
            "how a neuron's gate is decided: full, G = Θ(Σ_μ t_μ h_μ) over all K bins (exact, "
            "acausal: the bins are buffered; = batched GEVB); first_bin, Θ(t_0 h_0) decided in "
            "bin 0 and held (causal); external, fixed random half-spaces of the input, Θ(r·x) "
            "(causal, independent of h)")),
        "error_timing": Field(str, default="replay", choices=("replay", "mse_online"), doc=(
            "when the neuromodulator carries e_μ: replay, after all K bins (cross-entropy needs "
            "them all) while the K bins are presented again; mse_online, at the end of bin μ "
            "(causal; the circuit then learns with the MSE error z_μ − y_μ)")),
        "plasticity": Field(str, default="end_of_example", choices=("end_of_example", "per_bin"),
                            doc=("when the three-factor change −η e_μ a_jμ G_i is applied: "
                                 "end_of_example, summed over the K bins and applied through the "
                                 "optimizer after the example (integrates to GEVB, eq. 9); per_bin, "
                                 "at the end of every bin as plain SGD (needs optimizer.name: sgd)")),
        "dynamics": dynamics.DYNAMICS,
    })

    @classmethod
    def check_protocol(cls, protocol, hidden):
        check_protocol(protocol, hidden, "temporal")
        if protocol.realization.plasticity == "per_bin" and protocol.optimizer.name != "sgd":
            raise ConfigError("realization temporal with plasticity per_bin applies the three-factor "
                              "update inside the example as plain SGD; set optimizer.name: sgd "
                              "(or plasticity: end_of_example)", key="optimizer.name")
        o = protocol.realization
        dyn = o.dynamics
        if dyn is None:
            return
        if dyn.neurons.input_spikes:
            raise ConfigError("input spikes are simulated in the grouped circuit only (the temporal "
                              "circuit's K input populations would all fire at baseline in every bin)",
                              key="realization.dynamics.neurons.input_spikes")
        if o.plasticity != "end_of_example":
            raise ConfigError("the dynamics apply the plasticity of a whole mini-batch at its end; "
                              "set plasticity: end_of_example", key="realization.plasticity")
        dynamics.check_trace(dyn, replay=dyn.replay and o.error_timing == "replay",
                             online=o.error_timing == "mse_online")

    #: the time course of the circuit in time (:mod:`.dynamics.memory`)
    memory_parts = classmethod(dynamics.memory.realization_parts)

    @staticmethod
    def time_layout(K, n_bin, options):
        """(steps of a phase, neurons per vector unit, neuromodulator channels, phases per trial)
        of the circuit in time: K bins of ``n_bin`` steps, one neuron per vector unit, one error
        channel, and a replay only when the error comes by replay."""
        return K * n_bin, 1, 1, 2 if options.error_timing == "replay" else 1

    @staticmethod
    def dynamics_engine():
        """The class of this circuit in time (:func:`.dynamics.build`)."""
        from .dynamics.temporal import TemporalDynamics

        return TemporalDynamics

    @classmethod
    def agreement(cls, options):
        """Exact with the acausal ``gating: full`` (the network's gates), without dynamics or
        with the ideal dynamics."""
        o = cls.validated_options(options)
        in_time = dynamics.agreement(o.dynamics)
        if in_time:
            return in_time
        g = o.gating
        if g == "full":
            return "exact: gate from t·h over all K bins (acausal)"
        if g == "first_bin":
            return "approximate: gate decided in the first time bin (causal); gating full is exact"
        return f"approximate: gating {g} (independent of the pre-activations); gating full is exact"

    def __init__(self, options, backend, net, rule, optimizer, loss_fn, optimizer_options=None):
        super().__init__(options, backend, net, rule, optimizer, loss_fn, optimizer_options)
        check_network(net, "temporal")
        o = self.options
        self.gating, self.error_timing, self.plasticity = o.gating, o.error_timing, o.plasticity
        self.K = net.K
        self.layers = list(net.weight_layers)
        self.first = self.layers[0]
        self.learn_loss = mse if self.error_timing == "mse_online" else loss_fn
        self.R = {}
        if self.gating == "external":
            n0 = net.layers[self.first].n_in
            for i in net.hidden_weight_layers:
                n = net.layers[i].n_units
                r = backend.rng("gating", 1000 + i).standard_normal(((n + 1) // 2, n0))
                R = np.empty((2 * r.shape[0], n0))
                R[0::2], R[1::2] = r, -r
                self.R[i] = backend.asarray(R[:n])
        self.last_batch = None
        self.last = None
        self.dynamics = dynamics.build(self)  # None without a dynamics: section

    # ------------------------------------------------------------------
    def _params(self, i, name, params=None):
        return (params or {}).get((i, name), self.net.layers[i].params[name])

    def _gate(self, i, h, x2):
        t = self.net.t[i].reshape(self.K, -1)
        if self.gating == "full":  # buffered: all K bins of h
            return ((h * t[:, None, :]).sum(axis=0) >= 0).astype(h.dtype)
        if self.gating == "first_bin":  # decided in bin 0, held
            return ((h[0] * t[0]) >= 0).astype(h.dtype)
        return ((x2 @ self.R[i].T) >= 0).astype(h.dtype)

    def _present(self, x):
        """All K bins with the current weights; states (a_in, h, a, G), h in (K, B, n)."""
        xp = array_module(x)
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        states = []
        a = None
        for i in self.layers:
            W, b = self._params(i, "W"), self._params(i, "b")
            if i == self.first:  # bin μ: population μ active, synapses W1[μ] (one GEMM)
                h = (x2 @ W.reshape(-1, W.shape[2]).T).reshape(B, self.K, -1).transpose(1, 0, 2)
                a_in = x2
            else:
                a_in = a
                h = (a.reshape(-1, a.shape[2]) @ W.T).reshape(self.K, B, -1)
            h += b[:, None, :]
            if i == self.net.readout:
                G, a = None, h
            else:
                G = self._gate(i, h, x2)
                a = h * G[None]
            states.append((a_in, h, a, G))
        logits = xp.ascontiguousarray(a[:, :, 0].T)
        return logits, states

    def _accumulated_grads(self, states, e):
        """End-of-example plasticity: Σ over bins of e_μ a_jμ G_i (and the biases)."""
        eT = e.T  # (K, B): the neuromodulator of bin μ
        grads = {}
        for i, (a_in, _h, _a, G) in zip(self.layers, states):
            if i == self.first:  # bin μ updates the synapses of population μ
                ge = e[:, :, None] * G[:, None, :]  # (B, K, n)
                B = e.shape[0]
                grads[(i, "W")] = (ge.reshape(B, -1).T @ a_in).reshape(self.K, -1, a_in.shape[1])
                grads[(i, "b")] = ge.sum(axis=0)
                continue
            P = (eT[:, :, None] * a_in).sum(axis=0)  # eligibility Σ_μ e_μ a_jμ, (B, n_in)
            if G is None:  # readout: identity, every bin
                grads[(i, "W")] = P.sum(axis=0)[None]
                grads[(i, "b")] = eT.sum(axis=1)[:, None]
            else:
                grads[(i, "W")] = G.T @ P
                grads[(i, "b")] = eT @ G
        return grads

    def _per_bin(self, x, y, states, e_present):
        """Sequential bins with plasticity applied after each bin (plain SGD)."""
        xp = array_module(x)
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        lr = self.optimizer.lr
        work = {(i, n): p.copy() for i, n, p in self.net.parameters()}
        gates = {i: s[3] for i, s in zip(self.layers, states)}
        target = None
        if self.error_timing == "mse_online":
            target = xp.zeros((B, self.K), dtype=x2.dtype)
            target[xp.arange(B), y] = 1
        z_bins, e_bins = [], []
        for mu in range(self.K):
            a = x2
            acts = []
            for i in self.layers:
                W, b = work[(i, "W")], work[(i, "b")]
                Wm = W[mu] if i == self.first else W
                h = a @ Wm.T + b[mu]
                acts.append(a)
                a = h if gates[i] is None else h * gates[i]
            z = a[:, 0]
            z_bins.append(z)
            e_mu = (z - target[:, mu]) / B if target is not None else e_present[:, mu]
            e_bins.append(e_mu)
            for i, a_in in zip(self.layers, acts):
                G = gates[i]
                ge = e_mu[:, None] if G is None else e_mu[:, None] * G
                dW = ge.T @ a_in
                if i == self.first:
                    work[(i, "W")][mu] -= lr * dW
                else:
                    work[(i, "W")] -= lr * dW
                    if self.net.clamped(i):
                        clamp_(work[(i, "W")])
                work[(i, "b")][mu] -= lr * ge.sum(axis=0)
        e = xp.stack(e_bins, axis=1)
        grads = {k: (self._params(*k) - w) / lr for k, w in work.items()}
        return grads, work, e, xp.stack(z_bins, axis=1)

    # ------------------------------------------------------------------
    def step(self, x, y, before_update=None):
        work = None
        if self.dynamics is not None:  # the circuit in time (states: means over the decoding windows)
            logits, states, loss, e, grads = self.dynamics.trial(x, y)
        else:
            logits, states = self._present(x)
            loss, e = self.learn_loss(logits, y)
            if self.plasticity == "per_bin":
                grads, work, e, z = self._per_bin(x, y, states, e)
                if self.error_timing == "mse_online":
                    loss, _ = mse(z, y)
            else:
                grads = self._accumulated_grads(states, e)
        self.last_batch = (x, y)
        self.last = (states, e)
        result = StepResult(loss, logits, grads, engine_states(states), e)
        if before_update is not None:
            before_update(result)
        if work is None:
            self.optimizer.step(grads)
        else:
            for (i, n), w in work.items():
                self.net.layers[i].params[n][...] = w
            self.net.project()
        return result

    def logits(self, x):
        if self.dynamics is not None:
            return self.dynamics.logits(x)
        return self._present(x)[0]

    # recording ---------------------------------------------------------
    def observers(self, exp):
        from .trajectories import build

        return build(exp, self)

    def probe(self, x, y):
        """The circuit's response to examples ``(x, y)`` without plasticity (a probe): the
        states ``(a_in, h, a, G)`` per layer in (K, B, n) layout (bin first) and the
        per-example error vectors e of their labels as the neuromodulator carries them
        (``error_timing``), (B, K).  No weights change, so the learning is not disturbed."""
        if self.dynamics is not None:  # in time, on a stream of its own (see dynamics.probe)
            return self.dynamics.probe(x, y)
        logits, states = self._present(x)
        _, e = self.learn_loss(logits, y)
        return states, e * x.shape[0]  # the loss averages e over the batch

    def trajectory(self, x, y, units) -> dict:
        """Records of the probe examples ``(x, y)`` for the recorded ``units`` of every layer
        (see :mod:`neurosim.realizations.trajectories`): ``{name: (dims, values, attrs)}``."""
        h2 = self.backend.to_host
        states, e = self.probe(x, y)
        K = self.K
        rec = {}
        for i, (_a_in, h, a, G) in zip(self.layers, states):
            u = units[i]
            d = ("probe", "time_bin", f"traj_unit_{i}")
            rec[f"circuit_h_{i}"] = (d, h2(h)[:, :, u].transpose(1, 0, 2), {
                "long_name": f"pre-activation h of neuron i in time bin μ, layer {i}",
                "units": "1", "layer": i})
            rec[f"circuit_activity_{i}"] = (d, h2(a)[:, :, u].transpose(1, 0, 2), {
                "long_name": f"activity a = G·h of neuron i in time bin μ, layer {i} (the signed "
                             f"vector component a_iμ, eq. 7-8; not a firing rate)",
                "units": "1", "layer": i})
            if G is None:  # the readout is not gated
                continue
            gs = h2(G)[:, u]
            rec[f"circuit_gate_{i}"] = (d, np.repeat(gs[:, None], K, axis=1), {
                "long_name": f"gate G of neuron i (1 = not inhibited) in time bin μ, layer {i} "
                             f"(gating: {self.gating})", "units": "1", "layer": i})
        nm = np.repeat(h2(e)[:, :, None], K, axis=2)  # bin μ: e_μ at every site
        rec["neuromodulator_bin_mean"] = trial_variable("neuromodulator_bin_mean", nm)[1]
        if self.dynamics is not None:
            from .dynamics.recording import records

            rec.update(records(self.dynamics, units))
        return rec

    def trajectory_coords(self) -> dict:
        if self.dynamics is None:
            return {}
        from .dynamics.recording import coords

        return coords(self.dynamics)

    # checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        if self.dynamics is None:
            return {}
        return {f"dyn.{k}": v for k, v in self.dynamics.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        if self.dynamics is not None and state:
            self.dynamics.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("dyn.")})

    def synapse_spread(self) -> np.ndarray:
        return np.zeros(len(self.layers) - 1)  # weights are shared across bins exactly

    def synapse_snapshot(self, syn) -> dict:
        rec = {}
        for i, (post, pre) in syn.items():
            W = self.backend.to_host(self.net.layers[i].params["W"])
            if i == self.first:
                rec[f"synapse_weight_{i}"] = ((f"synapse_{i}", "component"), W[:, post, pre].T, {
                    "long_name": "weight of the sampled synapses W1[ν, post, pre] from input "
                                 "population ν", "units": "1", "layer": i})
            else:
                rec[f"synapse_weight_{i}"] = ((f"synapse_{i}",), W[post, pre], {
                    "long_name": f"weight of the sampled shared synapses W[post, pre] of layer "
                                 f"{i}", "units": "1", "layer": i})
        return rec
