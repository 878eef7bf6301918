"""One trial of a circuit in time: simulate, decode, broadcast the error, learn.

:class:`CircuitDynamics` holds what the grouped and temporal circuits share;
:mod:`.grouped` and :mod:`.temporal` say how their neurons are wired (input
currents, gates, readout, where the error is commanded, how coincidences
reach which synapses).  A mini-batch step is

1. **presentation** — every layer in turn (the network is feed-forward, so a
   layer's whole time course depends only on the one below): input currents
   ``I = W pre + b`` for all time steps in one matrix product, the inhibitory
   gate relaxing toward its target with tau_inh, the rate (or membrane)
   relaxing with tau_m, spikes and synaptic filters;
2. the readout is **decoded** over the counting window (after settling) into
   logits, and the loss gives the per-example error vector ε = B e;
3. the **neuromodulator** is commanded with ε on the example stream
   (:mod:`.neuromodulator`), during the replay — a second presentation of
   the same stimulus from rest, which reuses the presentation's activity when
   the neurons are deterministic (rate neurons) and is simulated afresh with
   new spikes otherwise;
4. **plasticity** (:mod:`.plasticity`): every coincidence is weighted by the
   neuromodulator that will meet its eligibility trace, and each layer's
   update is one matrix product over (time step, example) rows, divided by
   B times the command window, so that the ideal limit is the circuit's
   update without dynamics.

Every presentation and replay starts from rest (activity 0, gates open,
synaptic filters at baseline); examples of a mini-batch are independent
copies of the circuit in their neural activity, and follow each other on one
stream of time in their plasticity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .neuromodulator import Neuromodulator, mix
from .neurons import EVAL_STREAM, MODELS, PROBE_STREAM, TRAIN_STREAM, Random, synaptic
from .plasticity import Eligibility
from .timeline import Timeline, decay, relax


@dataclass
class LayerRun:
    """One layer's time course in one phase (arrays (n_seg, 1 | n_bin, ..., B, n))."""

    pre: object  # the presynaptic signal it received (activity units)
    G: object  # gate (None: readout)
    out: object  # signal sent on (activity units: rate deviation or filtered spikes)
    rate: object  # firing rate (Hz) of the first ``keep`` examples
    counts: object  # spikes per step of the first ``keep`` examples (None: rate neurons)
    h_mean: object  # input current, mean over the counting windows (per segment)
    zero_fraction: object  # fraction of neuron-steps driven to (or below) zero rate
    mean_rate: object  # mean rate over the counting windows (Hz)
    decoded: object = None  # readout only: activity per segment (counts or filtered, see decode)


class CircuitDynamics:
    name = "base"
    #: neuromodulatory channels (grouped K, temporal 1)
    channels = 1
    #: whether the K components are groups of neurons in every population (grouped), rather
    #: than time bins of one population (temporal): the dims of the trial records follow it
    component_groups = False

    def __init__(self, real, options: dict):
        self.real = real
        self.net = real.net
        self.backend = real.backend
        self.xp = real.backend.xp
        self.dtype = real.backend.float
        self.K = real.net.K
        self.layers = list(real.layers)
        self.first = self.layers[0]
        self.opts = o = options
        dt = o["dt_ms"]
        self.dt = dt
        n_bin = int(round(o["presentation_ms"] / dt))
        self.tl = Timeline(dt, self.n_segments(), n_bin, int(round(o["settle_ms"] / dt)),
                           self.n_phases(), int(round(o["interval_ms"] / dt)))
        neu, code = o["neurons"], o["code"]
        self.neurons = MODELS[neu["model"]](dt, neu, code)
        self.input_spikes = neu["input_spikes"]
        self.readout_mode = neu["readout"]
        self.r0, self.g, self.rectify = code["baseline_hz"], code["gain_hz"], code["rectify"]
        self.a_syn = decay(dt, neu["tau_syn_ms"])
        self.a_inh = decay(dt, o["gating"]["tau_inh_ms"])
        nm = o["neuromodulator"]
        self.chi = nm["crosstalk"]
        self._nm_args = (self.xp, self.dtype, self.channels, dt, nm["delay_ms"], nm["tau_ms"], nm["noise"])
        self.nm = Neuromodulator(*self._nm_args)
        self.elig = Eligibility(dt, o["eligibility"]["tau_e_ms"])
        self.stochastic = self.neurons.spiking or self.input_spikes
        self.E = None  # carried eligibility {(layer, "W"|"b"): array}
        self.t = 0  # training trials (mini-batches) simulated
        self.n_eval = 0  # evaluation passes since training step _eval_at (keys their spikes)
        self._eval_at = -1
        self.last = None
        self.last_probe = None  # the time course of the last trajectory probe (recording)
        self.record_synapses = None  # {layer: (post, pre, component)} sampled once (recording)
        self.record_units = {}  # {layer: recorded units} of the last trial records (recording)

    # ---- circuit-specific --------------------------------------------------
    def n_segments(self) -> int:
        raise NotImplementedError

    def n_phases(self) -> int:
        return 2

    def replay_active(self) -> bool:
        """Whether the replay phase carries activity."""
        return bool(self.opts["replay"])

    def input_pre(self, x2, rnd_for):
        raise NotImplementedError

    def drive(self, i, pre, x2):
        raise NotImplementedError

    def gate_target(self, i, I, x2):
        raise NotImplementedError

    def apply_gate(self, G, I):
        raise NotImplementedError

    def readout_segments(self, arr):
        """Per-segment readout values (n_seg, ..., B, 1) -> logits (B, K)."""
        raise NotImplementedError

    def command(self, eps, B):
        raise NotImplementedError

    # ---- trial records (:mod:`.recording`) ---------------------------------------
    def record_input_rate(self, r, shown, tbin):
        """(probe, slot, [K,] unit) rates of the input population(s) over a trial from the
        recorded input neurons' rates ``r`` (probe, unit), the steps the stimulus is ``shown``
        and each step's time bin ``tbin`` (slot,)."""
        raise NotImplementedError

    def record_bin_mean(self, M, cnt):
        """The neuromodulator ``M`` (probe, slot, channel) averaged over each command window
        (its counting steps ``cnt``, delayed): (probe, time_bin, channel)."""
        raise NotImplementedError

    def record_presynaptic(self, run, i, n, pre, comp, x):
        """The presynaptic activity (S, Np, n, syn) of layer i's sampled synapses (``pre``,
        ``comp``) for the first n probe examples (stimuli ``x``) over a phase's ``run``."""
        raise NotImplementedError

    def contract(self, i, pre, G, w):
        """Σ over (segment, step, example) rows of w · G ⊗ pre for layer i: (dW, db).  ``w`` is
        (S, steps, B, channels) for the update, or (S, steps, B) for the eligibility trace left
        to the next mini-batch (in the layout of :meth:`zero_eligibility`)."""
        raise NotImplementedError

    def carry(self, i, dW, db, s0, E):
        raise NotImplementedError

    def learn_loss(self, logits, y):
        return self.real.loss_fn(logits, y)

    def mean_gate(self, G):
        """(n_seg, B, n) per-segment gate means -> (B, n)."""
        raise NotImplementedError

    def state_inputs(self, x2, h_means, outs, Gs):
        raise NotImplementedError

    # ---- helpers -------------------------------------------------------------
    def seg_mean(self, arr):
        """Mean over the counting window of each segment: (S, 1|n_bin, ...) -> (S, ...)."""
        if arr.shape[1] == 1:
            return arr[:, 0]
        c = self.tl.count_slice()
        return arr[:, c].mean(axis=1)

    def _count_mean(self, arr):
        """Scalar mean over segments and counting steps."""
        if arr.shape[1] == 1:
            return arr.mean()
        c = self.tl.count_slice()
        return arr[:, c].mean()

    def _rnd(self, stream, *keys):
        return Random(self.xp, self.backend.seed, stream, *keys)

    def _spike_train(self, counts):
        """Filtered spike train (Hz) -> activity units."""
        s = synaptic(counts, self.dt * 1e-3, self.a_syn, self.r0, self.tl.n_bin)
        return (s - self.r0) * (1.0 / self.g)

    # ---- simulation -----------------------------------------------------------
    def simulate(self, x, keys, keep: int = 0):
        """One phase from rest; ``keys`` (stream, ...) key its spikes; the time courses of the
        first ``keep`` examples are kept for recording.  Returns [LayerRun]."""
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        nb = self.tl.n_bin
        rnd_for = (lambda layer: self._rnd(*keys, layer))
        pre = self.input_pre(x2, rnd_for)
        thr = -self.r0 / self.g
        runs = []
        for i in self.layers:
            I = self.drive(i, pre, x2)
            if i == self.net.readout:
                G, v = None, I
            else:
                G = relax(self.gate_target(i, I, x2), self.a_inh, 1.0, nb)
                v = self.apply_gate(G, I)
            h_mean = self.seg_mean(I)
            del I
            model = self.neurons
            a = model.membrane(v, nb)
            del v
            zero = self._count_mean(a <= thr)
            counts = model.spikes(a, nb, rnd_for(i + 1))
            if counts is None:
                out = a
                mean_rate = self._count_mean(a) * self.g + self.r0
            else:
                out = self._spike_train(counts)
                mean_rate = self._count_mean(counts) / (self.dt * 1e-3)
            rate = model.recorded_rate(a[..., :keep, :], out[..., :keep, :])
            run = LayerRun(pre, G, out, rate, None if counts is None else counts[..., :keep, :],
                           h_mean, zero, mean_rate)
            if i == self.net.readout:
                run.decoded = self._decoded(out, counts)
            runs.append(run)
            pre = out
        return runs

    def _decoded(self, out, counts):
        """Readout activity per segment over the counting window: the mean rate deviation (rate
        neurons), the spike count of the window as a rate, (n / T - r0) / g (``readout: counts``),
        or the mean filtered spike train (``readout: filtered``)."""
        if counts is None or self.readout_mode == "filtered":
            return self.seg_mean(out)
        c = self.tl.count_slice()
        n = counts[:, c].sum(axis=1)
        return (n * (1.0 / (self.tl.count_ms * 1e-3)) - self.r0) * (1.0 / self.g)

    def decode(self, run: LayerRun):
        """Logits (B, K) decoded from the readout."""
        return self.readout_segments(run.decoded)

    # ---- a training step ----------------------------------------------------
    def trial(self, x, y):
        """(logits, engine states, loss, e, grads) of one mini-batch in time."""
        self.last = None
        self.t += 1
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        tl = self.tl
        pres = self.simulate(x, (TRAIN_STREAM, self.t, 0))
        logits = self.decode(pres[-1])
        loss, e = self.learn_loss(logits, y)
        eps = mix(e * B, self.chi)
        u = self.command(eps, B)  # (B, slot, ch)
        L = B * tl.slot
        M = self.nm.signal(u.reshape(L, self.channels), self._rnd(TRAIN_STREAM, self.t, 99))
        m, v, s0 = self.elig.weights(M)
        m = m.reshape(B, tl.slot, self.channels)
        v = None if v is None else v.reshape(B, tl.slot)
        sets = [(pres, self._rows(m, 0), self._rows(v, 0))]
        replay = None
        if tl.n_phase == 2 and self.replay_active():
            w1, v1 = self._rows(m, 1), self._rows(v, 1)
            if self.stochastic:
                replay = self.simulate(x, (TRAIN_STREAM, self.t, 1))
                sets.append((replay, w1, v1))
            else:  # the replay from rest repeats the presentation exactly
                w0, v0 = sets[0][1], sets[0][2]
                sets[0] = (pres, w0 + w1, None if v0 is None else v0 + v1)
        E_old = self.E
        if v is not None and E_old is None:
            E_old = self.zero_eligibility()
        b0 = self._carried_from(B) if v is not None else B
        grads, E_new = {}, {}
        scale = 1.0 / (B * tl.count_ms)
        keep = self.elig.carried_decay(L)
        for pos, i in enumerate(self.layers):
            dW = db = EW = Eb = None
            for runs, w, vv in sets:
                run = runs[pos]
                gW, gb = self.contract(i, *self._counting(run.pre, run.G, w))
                dW, db = _acc(dW, gW), _acc(db, gb)
                if vv is not None and b0 < B:  # the trace left for the next mini-batch
                    gE, gEb = self.contract(i, *self._counting(run.pre[..., b0:, :], None if run.G is None
                                                               else run.G[..., b0:, :], vv[..., b0:]))
                    EW, Eb = _acc(EW, gE), _acc(Eb, gEb)
            if v is not None:
                self.carry(i, dW, db, s0, E_old)
                EW = self.xp.zeros_like(E_old[(i, "W")]) if EW is None else EW
                Eb = self.xp.zeros_like(E_old[(i, "b")]) if Eb is None else Eb
                E_new[(i, "W")] = EW if keep == 0 else E_old[(i, "W")] * keep + EW
                E_new[(i, "b")] = Eb if keep == 0 else E_old[(i, "b")] * keep + Eb
            dW *= scale
            db *= scale
            grads[(i, "W")], grads[(i, "b")] = dW, db
        self.E = E_new if v is not None else None
        states = self.states(x2, pres)
        self.last = {"pres": pres, "replay": replay, "e": e}  # (released at the next step)
        return logits, states, loss, e, grads

    def _counting(self, pre, G, w):
        """Only the counting steps carry coincidences: drop the settling steps of time-resolved
        arrays (their weights are 0)."""
        tl = self.tl
        if tl.n_settle == 0:
            return pre, G, w
        c = tl.count_slice()
        sl = (lambda a: a if a is None or a.shape[1] == 1 else a[:, c])
        return sl(pre), sl(G), w[:, c]

    def _carried_from(self, B: int) -> int:
        """First example whose coincidences still weigh in the trace carried to the next mini-batch
        (weight a^age >= eps/16 of the newest: the older ones are below float rounding)."""
        a, tl = self.elig.a, self.tl
        if a == 0.0:
            return B
        age = (B - 1 - np.arange(B)) * tl.slot + tl.n_interval  # steps from an example's end to L
        cut = math.log(16.0 / np.finfo(self.dtype).eps)
        keep = age * -math.log(a) <= cut
        return int(np.argmax(keep)) if keep.any() else B

    def _rows(self, arr, phase: int):
        """Stream weights (B, slot[, ch]) -> the rows of one phase (S, n_bin, B[, ch]) (the settling
        steps are dropped by :meth:`_counting`)."""
        if arr is None:
            return None
        tl = self.tl
        s = tl.phase_start(phase)
        blk = arr[:, s:s + tl.phase_steps]
        blk = blk.reshape((blk.shape[0], tl.n_seg, tl.n_bin) + blk.shape[2:])
        return self.xp.moveaxis(blk, 0, 2)  # (S, n_bin, B[, ch])

    def states(self, x2, pres):
        h_means = [r.h_mean for r in pres]
        outs = [self.seg_mean(r.out) for r in pres]
        Gs = [None if r.G is None else self.mean_gate(self.seg_mean(r.G)) for r in pres]
        return self.state_inputs(x2, h_means, outs, Gs)

    def zero_eligibility(self) -> dict:
        raise NotImplementedError

    # ---- recording -------------------------------------------------------------
    def probe(self, x, y):
        """The probe examples ``(x, y)`` in time without plasticity (trajectory records).

        Each probe example is presented (and, with spiking neurons, replayed) as a trial of
        its own, from a fresh state: a fresh neuromodulator (commanded with its error, delayed,
        filtered, with its own noise) and eligibility traces starting at 0, so that its record
        over one trial holds the whole of what its plasticity would be as a mini-batch of one;
        spikes and noise are keyed by the training step on a stream of their own.  Nothing of
        the training stream changes.  Returns the engine states (means over the decoding
        windows) and the per-example errors (B, K); the time courses are kept for
        :mod:`.recording`.
        """
        B = x.shape[0]
        x2 = x.reshape(B, -1)
        tl = self.tl
        pres = self.simulate(x, (PROBE_STREAM, self.t, 0), keep=B)
        _, e = self.learn_loss(self.decode(pres[-1]), y)
        u = self.command(mix(e * B, self.chi), B)
        nm = Neuromodulator(*self._nm_args)
        # M over the trial and the delay after it (where a late command arrives; the steps
        # beyond the trial only enter the recorded neuromodulator_bin_mean)
        D = int(round(self.opts["neuromodulator"]["delay_ms"] / self.dt))
        u_ext = self.xp.concatenate([u, self.xp.zeros((B, D, self.channels), dtype=u.dtype)], axis=1)
        M = []
        for b in range(B):  # one trial each, from rest
            nm.reset()
            M.append(nm.signal(u_ext[b], self._rnd(PROBE_STREAM, self.t, 99, b)))
        M = self.xp.stack(M)
        replay = None
        if tl.n_phase == 2 and self.replay_active() and self.stochastic:
            replay = self.simulate(x, (PROBE_STREAM, self.t, 1), keep=B)
        self.last_probe = {"pres": pres, "replay": replay, "M": M[:, :tl.slot], "M_ext": M, "D": D,
                           "u": u, "e": e, "x": x2}
        return self.states(x2, pres), e * B

    # ---- evaluation ------------------------------------------------------------
    def logits(self, x, batch_size: int = 128):
        """Logits of the presentation (no plasticity), ``batch_size`` examples at a time (the
        memory of a time course grows with the number of steps, not with the evaluation batch)."""
        xp = self.xp
        # spikes keyed by (training step, pass since that step, chunk): the same after a resume
        self.n_eval = self.n_eval + 1 if self._eval_at == self.t else 0
        self._eval_at = self.t
        out = []
        for c, s in enumerate(range(0, x.shape[0], batch_size)):
            runs = self.simulate(x[s:s + batch_size], (EVAL_STREAM, self.t, self.n_eval, c))
            out.append(self.decode(runs[-1]))
        return xp.concatenate(out, axis=0)

    # ---- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict:
        h = self.backend.to_host
        d = {f"nm.{k}": v for k, v in self.nm.state_dict(h).items()}
        d["t"] = np.asarray(self.t)
        if self.E is not None:
            for (i, n), a in self.E.items():
                d[f"elig.L{i}.{n}"] = h(a)
        return d

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.nm.load_state_dict({k[3:]: v for k, v in state.items() if k.startswith("nm.")},
                                self.backend.asarray)
        self.t = int(state["t"])
        E = {}
        for k, v in state.items():
            if k.startswith("elig.L"):
                i, n = k[6:].split(".")
                E[(int(i), n)] = self.backend.asarray(v)
        self.E = E or None


def _acc(total, part):
    return part if total is None else total + part
