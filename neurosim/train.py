"""The training loop: epochs, evaluation, checkpoints, early stop, divergence guard.

``Run(protocol).train()`` is the whole job behind ``neurosim run``: the protocol is assembled
into an :class:`~neurosim.experiment.Experiment` (:mod:`neurosim.experiment`), the store's life
(create, resume, commit, final status) is a :class:`~neurosim.recording.session.RunSession`,
and this module only loops.  Randomness is keyed by (seed, stream, epoch), so a resumed run
replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from . import experiment
from .core.backend import array_module
from .core.finite import nonfinite
from .core.options import default_at
from .core.progress import watch
from .core.signals import StopSignals
from .recording.observers import StepContext
from .recording.session import RunSession, Stop

#: on the GPU the divergence check (a device sync) runs every this many steps
GUARD_EVERY = 50
#: sub-stream tag of the "noise" stream for ``training.input_noise``
INPUT_NOISE_STREAM = 3


class DivergenceError(RuntimeError):
    """NaN/Inf in the loss or the weights."""


class Interrupted(RuntimeError):
    """SIGINT/SIGTERM: the run stopped after writing a checkpoint."""


@dataclass
class RunSummary:
    store: str
    epochs: int
    steps: int
    train_error: float
    test_error: float
    stopped: str  #: :class:`~neurosim.recording.session.Stop`'s text
    seconds: float
    position: float | None = None  #: epochs completed, with the fraction of a cut-short one
    n_epochs: int | None = None  #: ``training.epochs``
    steps_per_epoch: int | None = None

    def line(self) -> str:
        return (f"{self.store}: epoch {self.epochs}, {self.steps} steps, train error "
                f"{self.train_error:.2f}%, test error {self.test_error:.2f}% ({self.stopped}, "
                f"{self.seconds:.1f} s)")


def error_rate(logits, y) -> float:
    """Classification error in percent (NaN for regression targets, e.g. an
    autoencoder's ``target: input``)."""
    if getattr(y, "ndim", 1) > 1:
        return float("nan")
    xp = array_module(logits)
    return float((xp.argmax(logits, axis=1) != y).mean()) * 100.0


def corrupt(x, sigma: float, backend, step: int):
    """The training inputs of step ``step`` with Gaussian noise added, x̃ = x + σξ,
    ξ ~ N(0, I) (the denoising autoencoder's corruption, Vincent et al. 2008; Lansdell
    et al. 2020, appendix C.2, σ = 0.3).  ξ is drawn on the run's device from
    ``backend.device_rng("noise", 3, step)`` (on the CPU: ``backend.rng``'s numbers; sub-stream
    3 of the noise stream: node perturbation uses 1, dropout 2), keyed by the step, so a
    resumed run draws the same noise.  ``x`` is not modified."""
    rng = backend.device_rng("noise", INPUT_NOISE_STREAM, step)  # no host draw per step
    return x + backend.asarray(sigma * rng.standard_normal(x.shape))


def declared_default(key: str):
    """The protocol schema's default of a dotted key: a store made before the key existed
    resumes under a protocol that has it at this value."""
    from .protocol import schema

    return default_at(schema(), key)


class Run:
    """The training loop over one experiment, recording into one store (its ``session``)."""

    def __init__(self, protocol: dict, out: str | None = None, device: str | None = None,
                 progress=None, arrays=None, session: RunSession | None = None):
        self.protocol = protocol
        self.out = out or protocol["recording"]["out"]
        self.session = session or RunSession(self.out, protocol, declared_default)
        self.recorder = self.session.recorder
        self.progress = watch(progress)
        self.exp = experiment.build(protocol, device, phase=self.progress.phase, arrays=arrays)
        self.epoch = self.batch = self.step = 0  # completed epochs, batches of this epoch, steps
        self.loss_sum, self.loss_n = 0.0, 0
        self.stopped = None  # Stop's text once the loop ends early (early stop, max_steps)
        self.t_start, self.elapsed0 = time.time(), 0.0
        self.signals = StopSignals(self.progress.warn)

    def info(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                "loss_sum": float(self.loss_sum), "loss_n": self.loss_n, "stopped": self.stopped,
                "elapsed": self.elapsed0 + time.time() - self.t_start}

    def _stop_during_first_evaluation(self) -> None:
        if self.signals.received is not None:
            raise Interrupted(f"stopped by signal {self.signals.received} during the first "
                              f"evaluation, before any training step")

    def evaluate(self, interruptible: bool = False) -> dict:
        exp, out = self.exp, {}
        n = exp.eval_train_examples
        for split, x, y in (("train", exp.x_train[:n], exp.y_train[:n]),
                            ("test", exp.x_test, exp.y_test)):
            logits = exp.realization.predict(
                x, exp.eval_batch_size, self._stop_during_first_evaluation if interruptible else None)
            out[f"{split}_error"] = error_rate(logits, y)
            out[f"{split}_loss"] = float(exp.loss_fn(logits, y)[0])
        out["train_batch_loss"] = float(self.loss_sum) / self.loss_n if self.loss_n else float("nan")
        return out

    def record(self, metrics: dict) -> None:
        n_prev = self.recorder.records("epoch")
        ds = self.exp.epoch_records.record(metrics, self.step, self.elapsed0 + time.time() - self.t_start,
                                           self.epoch_position(), n_prev)
        if n_prev:  # a store keeps the snapshots it was made with: an older one has no b_<l>
            ds = ds.drop_vars([n for n in ds.data_vars if not self.recorder.has(str(n))])
        self.recorder.append(ds, "epoch")

    def epoch_position(self) -> float:
        """Epochs completed, with the fraction of a cut-short epoch (max_steps)."""
        return float(self.epoch + self.batch / self.exp.steps_per_epoch)

    def _context(self, result=None) -> StepContext:
        return StepContext(self.step + 1, self.epoch, self.batch, self.exp.steps_per_epoch, result,
                           self.recorder.records)

    def _observe(self, ctx, flush: bool = False) -> None:
        for obs in self.exp.observers:  # observers that buffer records write them on flush
            records = obs.flush(self.exp, ctx) if flush else obs.due(ctx.step) and obs.observe(self.exp, ctx)
            for ds, dim in records or ():
                self.recorder.append(ds, dim)

    def _before_update(self, result) -> None:
        self._observe(self._context(result))

    def checkpoint(self) -> None:
        self._check_weights()  # never commit non-finite weights
        self._observe(self._context(), flush=True)
        self.session.commit(self.exp.state(), self.info())

    def _guard(self, loss: float, result=None) -> None:
        """Divergence guard (after every step): a non-finite loss stops the run, naming the
        step, the first non-finite quantity of the forward pass that produced it and the
        parameters that are non-finite after the update."""
        if math.isfinite(loss):
            return
        xp, states = self.exp.backend.xp, getattr(result, "states", None) or ()
        where = nonfinite(xp, [(f"layer {i} {label}", getattr(st, q, None)) for i, st in enumerate(states)
                               for q, label in (("h", "pre-activation h"), ("a", "activation a"))])
        params = [f"layer {i} {name}" for i, name in nonfinite(xp, self._parameters())]
        where = where[0] if where else "the loss (the forward pass is finite)"
        raise DivergenceError(
            f"non-finite loss ({loss}) at step {self.step} (epoch {self.epoch + 1}, batch "
            f"{self.batch}): first non-finite value in {where}; non-finite parameters after the "
            f"update: {', '.join(params) or 'none'}")

    def _check_weights(self) -> None:
        bad = nonfinite(self.exp.backend.xp, self._parameters())
        if bad:
            raise DivergenceError(f"non-finite parameter at step {self.step} (epoch {self.epoch}, "
                                  f"batch {self.batch}): first non-finite value in layer "
                                  f"{bad[0][0]} parameter {bad[0][1]}")

    def _parameters(self) -> list:
        return [((i, name), p) for i, name, p in self.exp.net.parameters()]

    def train(self, resume: bool = False, overwrite: bool = False) -> RunSummary:
        with self.session.lock(), self.signals:  # one writer per store (StoreError otherwise)
            self.session.prepare(resume, overwrite)
            self._start()
            try:
                last = self._loop()
            except DivergenceError as exc:
                self.session.diverged(exc, self.step)
                raise
            except (Interrupted, KeyboardInterrupt):
                self.session.interrupted()
                raise
        seconds = self.elapsed0 + time.time() - self.t_start
        if last is None:  # nothing trained now (a resume of a finished run): no time added
            last, seconds = self.session.last_errors(), self.elapsed0
        stopped = self.stopped or Stop.EPOCHS.text()
        self.session.finish(stopped)  # keeps the committed slot only
        return RunSummary(str(self.out), self.epoch, self.step, last["train_error"], last["test_error"],
                          stopped, seconds, position=self.epoch_position(),
                          n_epochs=self.exp.training["epochs"], steps_per_epoch=self.exp.steps_per_epoch)

    def _start(self) -> None:
        """Create the store or continue from its checkpoint; evaluate before the first step."""
        info = self.session.open(self.exp.attrs, self.exp.observers, self.exp.load_state)
        if info is not None:
            self.epoch, self.batch, self.step = info["epoch"], info["batch"], info["step"]
            self.loss_sum, self.loss_n = info["loss_sum"], info["loss_n"]
            self.stopped, self.elapsed0 = info.get("stopped"), info.get("elapsed", 0.0)
        if self.exp.eval_train_note():
            self.progress.write(self.exp.eval_train_note())
        if self.recorder.records("epoch") == 0 and self.step == 0:
            self.progress.phase("first evaluation (epoch 0)")
            self._evaluated(self.evaluate(interruptible=True))
            self.checkpoint()

    def _evaluated(self, metrics: dict) -> dict:
        self.record(metrics)
        self.progress.evaluated(self.epoch_position(), metrics)
        return metrics

    def _loop(self) -> dict | None:
        tr = self.exp.training
        n_batches = (self.exp.n_train + tr["batch_size"] - 1) // tr["batch_size"]
        last = None
        if self.epoch < tr["epochs"] and not self.stopped:
            self._plan_recording(n_batches)
            self.progress.phase("training")
        while self.epoch < tr["epochs"] and not self.stopped:
            self._epoch(n_batches)
            if self.batch >= n_batches:
                self.epoch, self.batch = self.epoch + 1, 0
            done_steps = tr["max_steps"] and self.step >= tr["max_steps"]
            if self.epoch % tr["eval_every"] == 0 or self.epoch >= tr["epochs"] or done_steps:
                self._check_weights()
                last = self._evaluated(self.evaluate())
                self.loss_sum, self.loss_n = 0.0, 0
                if tr["early_stop"] and last["train_error"] == 0.0:
                    self.stopped = Stop.EARLY_STOP.text()
                elif done_steps:
                    self.stopped = Stop.MAX_STEPS.text(tr["max_steps"])
                self.checkpoint()  # the stop reason goes with it: a resume does not go on
        return last

    def _epoch(self, n_batches: int) -> None:
        """The rest of the current epoch's batches (up to max_steps, or a signal)."""
        exp, tr = self.exp, self.exp.training
        bs, n = tr["batch_size"], exp.n_train
        perm = exp.backend.rng("data", self.epoch).permutation(n) if tr["shuffle"] else np.arange(n)
        perm = exp.backend.xp.asarray(perm)
        while self.batch < n_batches:
            idx = perm[self.batch * bs : (self.batch + 1) * bs]
            exp.net.begin_step(self.step + 1, self.epoch)  # training mode (dropout)
            xb = corrupt(exp.x_train[idx], tr["input_noise"], exp.backend, self.step + 1) \
                if tr["input_noise"] else exp.x_train[idx]
            res = exp.realization.step(xb, exp.y_train[idx], self._before_update if exp.observers else None)
            exp.net.end_step()
            self.step, self.batch = self.step + 1, self.batch + 1
            self.loss_sum, self.loss_n = self.loss_sum + res.loss, self.loss_n + 1
            if not exp.backend.is_gpu:
                self._guard(float(res.loss), res)
            elif self.step % GUARD_EVERY == 0 or self.batch >= n_batches:
                # GPU: the loss stays on the device; NaN/Inf propagate into
                # the running sum, checked (one sync) every GUARD_EVERY steps
                self._guard(float(self.loss_sum), res)
            self.progress.step(self.epoch + 1, self.batch, n_batches, res.loss)
            if self.signals.received is not None:
                self.checkpoint()
                raise Interrupted(f"stopped by signal {self.signals.received} at epoch {self.epoch + 1}/"
                                  f"{tr['epochs']} batch {self.batch}/{n_batches}; checkpoint written")
            if tr["max_steps"] and self.step >= tr["max_steps"]:
                break

    def _plan_recording(self, n_batches: int) -> None:
        """Tell the observers the run's length; a recording cadence longer than the run is
        said in one line (those records are taken at the run's last step instead)."""
        tr = self.exp.training
        n_steps = min(tr["epochs"] * n_batches, tr["max_steps"] or tr["epochs"] * n_batches)
        long = [f"{key} = {every}" for obs in self.exp.observers for key, every in obs.plan(n_steps)]
        if long:
            self.progress.write(f"note: this run takes {n_steps} optimizer steps, fewer than "
                                f"{', '.join(long)}: recorded at its last step ({n_steps}) instead")


def run_protocol(protocol: dict, out=None, device=None, resume=False, overwrite=False,
                 progress=None, arrays=None) -> RunSummary:
    """Convenience: build a :class:`Run` and train it.

    An existing store is continued only with ``resume`` (same protocol) and
    replaced only with ``overwrite`` (and only if it is a neurosim store:
    :func:`~neurosim.recording.store.prepare_store`); the store's lock is held
    throughout, so a second writer is refused before anything is touched.
    """
    out = out or protocol["recording"]["out"]
    session = RunSession(out, protocol, declared_default)
    with session.lock():
        session.prepare(resume, overwrite)  # refused here, before data and network are built
        r = Run(protocol, out=out, device=device, progress=progress, arrays=arrays, session=session)
        return r.train()
