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
from functools import partial

import numpy as np

from . import experiment
from .core.finite import DivergenceError, check_parameters, diverged  # noqa: F401 - (as before)
from .core.progress import watch
from .core.signals import Interrupted, StopSignals  # noqa: F401 - (as before)
from .data.noise import corrupt
from .losses import error_rate
from .protocol import declared_default
from .recording.observers import StepContext, plan_note, records
from .recording.session import RunSession, Stop

#: on the GPU the divergence check (a device sync) runs every this many steps
GUARD_EVERY = 50


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


def evaluate(exp, train_batch_loss: float, check=None) -> dict:
    """Error (%) and loss of ``exp`` on its training subset and its test set, with the mean
    mini-batch loss since the last evaluation; ``check()`` runs between evaluation batches."""
    out = {}
    n = exp.eval_train_examples
    for split, x, y in (("train", exp.x_train[:n], exp.y_train[:n]), ("test", exp.x_test, exp.y_test)):
        logits = exp.realization.predict(x, exp.eval_batch_size, check)
        out[f"{split}_error"] = error_rate(logits, y)
        out[f"{split}_loss"] = float(exp.loss_fn(logits, y)[0])
    out["train_batch_loss"] = train_batch_loss
    return out


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
                "elapsed": self._elapsed()}

    def _elapsed(self) -> float:
        return self.elapsed0 + time.time() - self.t_start

    def evaluate(self, interruptible: bool = False) -> dict:
        mean = float(self.loss_sum) / self.loss_n if self.loss_n else float("nan")
        where = "during the first evaluation, before any training step"
        return evaluate(self.exp, mean, partial(self.signals.stop_now, where) if interruptible else None)

    def record(self, metrics: dict) -> dict:
        """Append an evaluation's record to the store and show it."""
        self.session.append_epoch(self.exp.epoch_records.record(
            metrics, self.step, self._elapsed(), self.epoch_position(), self.recorder.records("epoch")))
        self.progress.evaluated(self.epoch_position(), metrics)
        return metrics

    def epoch_position(self) -> float:
        """Epochs completed, with the fraction of a cut-short epoch (max_steps)."""
        return float(self.epoch + self.batch / self.exp.steps_per_epoch)

    def _before_update(self, result=None, flush: bool = False) -> None:
        """Append the observers' records due before this step's update (``result``: the
        realization's hook), or with ``flush`` those they buffered."""
        ctx = StepContext(self.step + 1, self.epoch, self.batch, self.exp.steps_per_epoch, result,
                          self.recorder.records)
        for ds, dim in records(self.exp.observers, self.exp, ctx, flush):
            self.recorder.append(ds, dim)

    def checkpoint(self) -> None:
        self._check_weights()  # never commit non-finite weights
        self._before_update(flush=True)
        self.session.commit(self.exp.state(), self.info())

    def _guard(self, loss: float, result=None) -> None:
        """Divergence guard (after every step): a non-finite loss stops the run."""
        if not math.isfinite(loss):
            raise diverged(self.exp.backend.xp, loss, getattr(result, "states", None) or (),
                           self.exp.net.parameters(),
                           f"step {self.step} (epoch {self.epoch + 1}, batch {self.batch})")

    def _check_weights(self) -> None:
        check_parameters(self.exp.backend.xp, self.exp.net.parameters(),
                         f"step {self.step} (epoch {self.epoch}, batch {self.batch})")

    def train(self, resume: bool = False, overwrite: bool = False) -> RunSummary:
        with self.session.lock():  # one writer per store (StoreError otherwise)
            with self.signals:
                self.session.prepare(resume, overwrite)
                self._start()
                with self.session.failures(lambda: self.step):  # the store: diverged, interrupted
                    last = self._loop()
            seconds = self._elapsed()
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
            self.record(self.evaluate(interruptible=True))
            self.checkpoint()

    def _loop(self) -> dict | None:
        tr = self.exp.training
        n_batches = (self.exp.n_train + tr["batch_size"] - 1) // tr["batch_size"]
        last = None
        if self.epoch < tr["epochs"] and not self.stopped:
            n_steps = min(tr["epochs"] * n_batches, tr["max_steps"] or tr["epochs"] * n_batches)
            note = plan_note(self.exp.observers, n_steps)
            if note:
                self.progress.write(note)
            self.progress.phase("training")
        while self.epoch < tr["epochs"] and not self.stopped:
            self._epoch(n_batches)
            if self.batch >= n_batches:
                self.epoch, self.batch = self.epoch + 1, 0
            done_steps = tr["max_steps"] and self.step >= tr["max_steps"]
            if self.epoch % tr["eval_every"] == 0 or self.epoch >= tr["epochs"] or done_steps:
                self._check_weights()
                last = self.record(self.evaluate())
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
                self.signals.stop_now(f"at epoch {self.epoch + 1}/{tr['epochs']} batch {self.batch}/"
                                      f"{n_batches}; checkpoint written")
            if tr["max_steps"] and self.step >= tr["max_steps"]:
                break


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
