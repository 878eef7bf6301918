"""The grouped circuit (paper §7, first implementation).

Each vector unit i is a *group* of K neurons; neuron μ of group j projects
only to neuron μ of group i through its own synapse ``w[μ, i, j]`` — K
synapses per group pair, no weight sharing (arrays of shape (K, n, n_in),
initialised identical to the network's shared W).  The first layer is
already per component (W1[μ, i, j], appendix B) and has no copies.

* Gating: an inhibitory circuit silences group i when t·h_i < 0,
  G_i = Θ(Σ_μ t_μ h_iμ) (eq. 7-8).
* Neuromodulation: K channels; channel μ carries e_μ and reaches the
  component-μ synapses only (spatially heterogeneous, temporally uniform).
* Plasticity, per synapse (three-factor rule):
  ``Δw[μ,i,j] = −η e_μ a[μ,j] G_i``, summed over the batch (eq. 9 per μ).
  With ``compensate_k`` (default) the update of the K-copy synapses is
  multiplied by K, so that relaxing the K synapses to their mean leaves
  exactly the GEVB update ``−η Σ_μ e_μ a_jμ G_i`` at the protocol's rate.
  The update feeds the protocol's optimizer (per synapse; SGD reproduces
  GEVB exactly, Adam is Adam per synapse).
* Relaxation ("sleep", [42] in the paper): after plasticity the K synapses
  of every pair move toward their mean, ``w ← w + ρ (w̄ − w)``, on a schedule
  (``every_step``, ``every_n`` steps, ``per_epoch``, ``never``).  ρ = 1 every
  step is batched GEVB exactly (tested to 1e-10).
* Nonnegativity per synapse (layers ℓ > 1) is applied at the end of the step
  (after the relaxation of that step, so complete relaxation is exact).

Time: an example is presented for ``time_bins`` bins with constant input.
This is a rate model without leak, so the circuit's state is the same in
every bin; it is computed once and the plasticity of each bin (1/T of the
example's) is integrated, which is the same sum.  Recordings are per bin.  A
``dynamics:`` section puts the circuit in time (leaky or spiking neurons,
inhibitory gating, eligibility traces, a late and noisy neuromodulator; see
:mod:`neurosim.realizations.dynamics`); its ideal limit is this circuit.

The batched network (``Experiment.net``) keeps the *mean* synapse w̄ of every pair
(what relaxation pulls toward); it is what checkpoints' ``net.*`` and weight
snapshots along ``epoch`` hold.  ``predict`` runs the circuit itself, with the
per-component synapses.  Checkpoints store the synapses (``real.syn.*``) and
the per-synapse optimizer state (``real.opt.*``).
"""

from __future__ import annotations

import numpy as np

from ..core.backend import array_module
from ..core.options import ConfigError, Field, Section
from ..recording.trial import variable as trial_variable
from ..rules.base import StepResult
from . import dynamics
from .base import Realization
from .circuit import (
    SynapseSet,
    build_synapse_optimizer,
    check_network,
    check_protocol,
    clamp_,
    engine_states,
)


class Grouped(Realization):
    name = "grouped"
    records_trajectories = True
    OPTIONS = Section({
        "relaxation": Section({
            "rate": Field(float, default=1.0, min=0, max=1,
                          doc="ρ: fraction of the way to the mean per relaxation"),
            "schedule": Field(str, default="every_step",
                              choices=("every_step", "every_n", "per_epoch", "never"),
                              doc=("when the K synapses of every pair relax toward their mean "
                                   "(\"sleep\"): after every step, every `every` steps, after "
                                   "every epoch, or never (the K copies drift apart)")),
            "every": Field(int, default=10, min=1, doc="steps between relaxations (every_n)"),
        }, doc=("relaxation of the K synapses of each pair toward their mean, w ← w + ρ (w̄ − w); "
                "rate 1 every step is batched GEVB exactly")),
        "compensate_k": Field(bool, default=True,
                              doc="multiply the K-copy synapse updates by K (GEVB rate after relaxation)"),
        "time_bins": Field(int, default=1, min=1, doc="bins per example presentation"),
        "dynamics": dynamics.DYNAMICS,
    })

    @classmethod
    def check_protocol(cls, protocol, hidden):
        check_protocol(protocol, hidden, "grouped")
        o = protocol.realization
        if o.dynamics is None:
            return
        if o.time_bins != 1:
            raise ConfigError("time_bins has no effect with dynamics (time is set by dynamics.dt_ms "
                              "and presentation_ms); remove it", key="realization.time_bins")
        dynamics.check_trace(o.dynamics, replay=o.dynamics.replay, online=False)

    @classmethod
    def parameter_copies(cls, K):
        """K synapses per pair of groups (the first layer has no copies; counted as if it had)."""
        return K

    #: the time course of the circuit in time (:mod:`.dynamics.memory`)
    memory_parts = classmethod(dynamics.memory.realization_parts)

    @staticmethod
    def time_layout(K, n_bin, options):
        """(steps of a phase, neurons per vector unit, neuromodulator channels, phases per trial)
        of the circuit in time: a presentation of ``n_bin`` steps, one neuron per component, the
        error in K channels, presentation and replay."""
        return n_bin, K, K, 2

    @staticmethod
    def dynamics_engine():
        """The class of this circuit in time (:func:`.dynamics.build`)."""
        from .dynamics.grouped import GroupedDynamics

        return GroupedDynamics

    @classmethod
    def agreement(cls, options):
        """Exact with complete relaxation every step (each step is batched GEVB's update; the
        optimizer runs per synapse) and without dynamics or with the ideal dynamics."""
        o = cls.validated_options(options)
        in_time = dynamics.agreement(o.dynamics)
        if in_time:
            return in_time
        rel = o.relaxation
        if rel.schedule == "every_step" and rel.rate == 1.0:
            return "exact: complete relaxation every step"
        when = {"every_n": f"every {rel.every} steps", "per_epoch": "once per epoch",
                "never": "never"}[rel.schedule]
        return (f"approximate: the K synapses of a pair drift apart between relaxations "
                f"(relaxation {when}, rate {rel.rate}); every_step at rate 1 is exact")

    def __init__(self, options, backend, net, rule, optimizer, loss_fn, optimizer_options=None):
        super().__init__(options, backend, net, rule, optimizer, loss_fn, optimizer_options)
        check_network(net, "grouped")
        o, rel = self.options, self.options.relaxation
        self.rho, self.schedule, self.relax_every = rel.rate, rel.schedule, rel.every
        self.compensate, self.T = o.compensate_k, o.time_bins
        self.K = net.K
        xp = backend.xp
        self.layers = list(net.weight_layers)
        self.first = self.layers[0]
        # the circuit's synapses: first layer and biases alias the network's arrays,
        # later layers get K copies of the shared weight
        arrays = {}
        for i in self.layers:
            L = net.layers[i]
            if i == self.first:
                arrays[(i, "W")] = L.params["W"]
            else:
                arrays[(i, "W")] = xp.ascontiguousarray(
                    xp.broadcast_to(L.params["W"][None], (self.K,) + L.params["W"].shape))
            arrays[(i, "b")] = L.params["b"]
        self.synapses = SynapseSet(backend, arrays)
        self.syn_opt = build_synapse_optimizer(self.synapses, self.optimizer_options)
        self.t = 0  # steps taken
        self.steps_per_epoch = None
        self.last_batch = None
        self.last = None
        self.dynamics = dynamics.build(self)  # None without a dynamics: section

    # ------------------------------------------------------------------
    def w(self, i):
        return self.synapses.layers[i].params["W"]

    def b(self, i):
        return self.synapses.layers[i].params["b"]

    def _forward(self, x):
        """States in (K, B, n) layout: list of (a_in, h, a, G) per layer."""
        xp = array_module(x)
        net = self.net
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        a = None
        states = []
        for i in self.layers:
            W, b = self.w(i), self.b(i)  # W (K, n, n_in), b (K, n)
            if i == self.first:  # one GEMM for all K components, viewed as (K, B, n)
                h = (x2 @ W.reshape(-1, W.shape[2]).T).reshape(B, self.K, -1).transpose(1, 0, 2)
                a_in = x2
            else:  # neuron μ of group j -> neuron μ of group i, own synapse w[μ]
                h = xp.empty((self.K, B, W.shape[1]), dtype=a.dtype)
                for mu in range(self.K):
                    xp.matmul(a[mu], W[mu].T, out=h[mu])
                a_in = a
            h += b[:, None, :]
            if i == net.readout:
                G, a = None, h
            else:
                t = net.t[i].reshape(self.K, -1)
                G = ((h * t[:, None, :]).sum(axis=0) >= 0).astype(h.dtype)  # (B, n)
                a = h * G[None]
            states.append((a_in, h, a, G))
        logits = xp.ascontiguousarray(a[:, :, 0].T)
        return logits, states

    def _grads(self, states, e):
        """Per-synapse three-factor updates ∂ (descent directions), K-copy layers ×K."""
        xp = array_module(e)
        eT = e.T  # (K, B): channel μ carries e_μ
        grads = {}
        scale = self.K if self.compensate else 1
        B = e.shape[0]
        for i, (a_in, _h, _a, G) in zip(self.layers, states):
            if i == self.first:  # Δw1[μ,i,j] ∝ e_μ G_i x_j: one GEMM over (μ, i)
                ge = e[:, :, None] * G[:, None, :]  # (B, K, n)
                dW = (ge.reshape(B, -1).T @ a_in).reshape(self.K, -1, a_in.shape[1])
                grads[(i, "W")] = dW
                grads[(i, "b")] = ge.sum(axis=0)
                continue
            ge = eT[:, :, None] if G is None else eT[:, :, None] * G[None]  # (K, B, n)
            gs = ge * scale if scale != 1 else ge
            dW = xp.empty((self.K, ge.shape[2], a_in.shape[2]), dtype=a_in.dtype)
            for mu in range(self.K):  # channel μ reaches the component-μ synapses only
                xp.matmul(gs[mu].T, a_in[mu], out=dW[mu])
            grads[(i, "W")] = dW
            grads[(i, "b")] = ge.sum(axis=1)  # (K, n)
        return grads

    def _effective(self, grads) -> dict:
        """The update of the network's (mean) weights these synapse updates imply."""
        out = {}
        for (i, name), g in grads.items():
            if name == "W" and i != self.first:
                out[(i, name)] = g.mean(axis=0)
            else:
                out[(i, name)] = g
        return out

    def _relax_due(self) -> bool:
        if self.schedule == "every_step":
            return True
        if self.schedule == "every_n":
            return self.t % self.relax_every == 0
        if self.schedule == "per_epoch":
            if not self.steps_per_epoch:
                raise RuntimeError("grouped relaxation per_epoch needs steps_per_epoch "
                                   "(set by the training run)")
            return self.t % self.steps_per_epoch == 0
        return False

    def relax(self, rate=None) -> None:
        """Pull the K synapses of every pair toward their mean by ``rate``."""
        rho = self.rho if rate is None else rate
        for i in self.layers[1:]:
            w = self.w(i)
            m = w.mean(axis=0)
            if rho >= 1.0:
                w[...] = m[None]
            elif rho > 0:
                w += rho * (m[None] - w)

    def _sync(self) -> None:
        """Clamp synapses (nonnegative layers) and store their mean in the network."""
        if self.net.clamped(self.first):  # (the ON/OFF input code; its synapses alias the network's)
            clamp_(self.net.layers[self.first].params["W"])
        for i in self.layers[1:]:
            w = self.w(i)
            if self.net.clamped(i):
                clamp_(w)
            self.net.layers[i].params["W"][...] = w.mean(axis=0)

    # ------------------------------------------------------------------
    def step(self, x, y, before_update=None):
        if self.dynamics is None:
            logits, states = self._forward(x)
            loss, e = self.loss_fn(logits, y)
            grads = self._grads(states, e)
        else:  # the circuit in time (states: means over the decoding window)
            logits, states, loss, e, grads = self.dynamics.trial(x, y)
        self.last_batch = (x, y)
        self.last = (states, e)
        result = StepResult(loss, logits, self._effective(grads), engine_states(states), e)
        if before_update is not None:
            before_update(result)
        self.syn_opt.step(grads)
        self.t += 1
        if self._relax_due():
            self.relax()
        self._sync()
        return result

    def logits(self, x):
        if self.dynamics is not None:
            return self.dynamics.logits(x)
        return self._forward(x)[0]

    # recording ---------------------------------------------------------
    def observers(self, exp):
        from .trajectories import build

        self.steps_per_epoch = exp.steps_per_epoch
        return build(exp, self)

    def probe(self, x, y):
        """The circuit's response to examples ``(x, y)`` without plasticity (a probe): the
        states ``(a_in, h, a, G)`` per layer in (K, B, n) layout and the per-example error
        vectors e = ∂L/∂a^L of their labels, (B, K).  No synapse, optimizer or step state
        changes, so the learning is not disturbed."""
        if self.dynamics is not None:  # in time, on a stream of its own (see dynamics.probe)
            return self.dynamics.probe(x, y)
        logits, states = self._forward(x)
        _, e = self.loss_fn(logits, y)
        return states, e * x.shape[0]  # the loss averages e over the batch

    def trajectory(self, x, y, units) -> dict:
        """Records of the probe examples ``(x, y)`` for the recorded ``units`` of every layer
        (see :mod:`neurosim.realizations.trajectories`): ``{name: (dims, values, attrs)}``."""
        h2 = self.backend.to_host
        states, e = self.probe(x, y)
        T = self.T
        rec = {}
        for i, (_a_in, h, a, G) in zip(self.layers, states):
            u = units[i]
            hs = h2(h)[:, :, u].transpose(1, 0, 2)  # (probe, component, unit)
            acts = h2(a)[:, :, u].transpose(1, 0, 2)
            d = ("probe", "time_bin", "component", f"traj_unit_{i}")
            rec[f"circuit_h_{i}"] = (d, np.repeat(hs[:, None], T, axis=1), {
                "long_name": f"pre-activation h of neuron μ of group i, layer {i}",
                "units": "1", "layer": i})
            rec[f"circuit_activity_{i}"] = (d, np.repeat(acts[:, None], T, axis=1), {
                "long_name": f"activity a = G·h of neuron μ of group i, layer {i} (the signed "
                             f"vector component a_iμ, eq. 7-8; not a firing rate)",
                "units": "1", "layer": i})
            if G is not None:  # (the readout is not gated)
                gs = h2(G)[:, u]
                rec[f"circuit_gate_{i}"] = (("probe", "time_bin", f"traj_unit_{i}"),
                                            np.repeat(gs[:, None], T, axis=1), {
                    "long_name": f"gate G of group i (1 = not inhibited), layer {i}",
                    "units": "1", "layer": i})
        nm = np.repeat(h2(e)[:, None, :], T, axis=1)  # channel μ = e_μ in every bin
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

    def synapse_spread(self) -> np.ndarray:
        xp = self.backend.xp
        out = []
        for i in self.layers[1:]:
            w = self.w(i)
            m = w.mean(axis=0)
            num = float(xp.sqrt(((w - m[None]) ** 2).mean()))
            den = float(xp.sqrt((m * m).mean()))
            out.append(num / den if den > 0 else 0.0)
        return np.asarray(out)

    def synapse_snapshot(self, syn) -> dict:
        rec = {}
        for i, (post, pre) in syn.items():
            w = self.backend.to_host(self.w(i))  # (K, n, n_in)
            rec[f"synapse_weight_{i}"] = ((f"synapse_{i}", "component"), w[:, post, pre].T, {
                "long_name": f"weight of the sampled synapses w[μ, post, pre] of layer {i} "
                             f"(all K components)", "units": "1", "layer": i})
        return rec

    # checkpoints -------------------------------------------------------
    def state_dict(self) -> dict:
        h = self.backend.to_host
        d = {f"syn.L{i}.W": h(self.w(i)) for i in self.layers[1:]}
        d.update({f"opt.{k}": v for k, v in self.syn_opt.state_dict().items()})
        d["t"] = np.asarray(self.t)
        if self.dynamics is not None:
            d.update({f"dyn.{k}": v for k, v in self.dynamics.state_dict().items()})
        return d

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        for i in self.layers[1:]:
            self.w(i)[...] = self.backend.asarray(state[f"syn.L{i}.W"])
        self.syn_opt.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("opt.")})
        self.t = int(state["t"])
        if self.dynamics is not None:
            self.dynamics.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("dyn.")})
