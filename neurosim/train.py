"""The training loop: epochs, evaluation, checkpoints, early stop, resume, divergence guard.

``Run(protocol).train()`` is the whole job behind ``neurosim run``: the protocol is assembled
into an :class:`~neurosim.experiment.Experiment` (:mod:`neurosim.experiment`), and this module
only loops over it and hands records to the store.  Randomness is keyed by (seed, stream,
epoch), so a resumed run replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import experiment
from .core.backend import array_module
from .recording import Recorder, StoreError, prepare_store
from .recording.observers import StepContext

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
    stopped: str
    seconds: float
    history: list = field(default_factory=list)
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


class Run:
    """The training loop over one experiment, recording into one store."""

    def __init__(self, protocol: dict, out: str | None = None, device: str | None = None,
                 progress=None, arrays=None):
        self.protocol = protocol
        self.out = out or protocol["recording"]["out"]
        self.progress = progress
        self.exp = experiment.build(protocol, device, phase=getattr(progress, "phase", None),
                                    arrays=arrays)
        self.recorder = Recorder(self.out)
        # loop position
        self.epoch = 0  # completed epochs
        self.batch = 0  # completed batches of the current epoch
        self.step = 0
        self.loss_sum = 0.0
        self.loss_n = 0
        self.stopped = None  # reason the loop ended early (early stop, max_steps)
        self.t_start = time.time()
        self.elapsed0 = 0.0
        self._stop_signal = None

    # ------------------------------------------------------------------
    def info(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                "loss_sum": float(self.loss_sum), "loss_n": self.loss_n, "stopped": self.stopped,
                "elapsed": self.elapsed0 + time.time() - self.t_start}

    def restore(self) -> bool:
        """Continue from the store's committed checkpoint; False if it has none."""
        cut = self.recorder.repair()
        state, info = self.recorder.load_checkpoint()
        if state is None:
            return False
        self.exp.load_state(state)
        self.epoch, self.batch, self.step = info["epoch"], info["batch"], info["step"]
        self.loss_sum, self.loss_n = info["loss_sum"], info["loss_n"]
        self.stopped = info.get("stopped")
        self.elapsed0 = info.get("elapsed", 0.0)
        self.repaired = cut
        return True

    # ------------------------------------------------------------------
    def _stop_during_first_evaluation(self) -> None:
        if self._stop_signal is not None:
            raise Interrupted(f"stopped by signal {self._stop_signal} during the first evaluation, "
                              f"before any training step")

    def evaluate(self, interruptible: bool = False) -> dict:
        exp = self.exp
        bs = exp.eval_batch_size
        n = exp.eval_train_examples
        out = {}
        for split, x, y in (("train", exp.x_train[:n], exp.y_train[:n]),
                            ("test", exp.x_test, exp.y_test)):
            logits = exp.realization.predict(
                x, bs, self._stop_during_first_evaluation if interruptible else None)
            loss, _ = exp.loss_fn(logits, y)
            out[f"{split}_error"] = error_rate(logits, y)
            out[f"{split}_loss"] = float(loss)
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

    def checkpoint(self) -> None:
        self._check_weights()  # never commit non-finite weights
        ctx = self._context()
        for obs in self.exp.observers:  # observers that buffer records write them now
            for ds, dim in obs.flush(self.exp, ctx) or ():
                self.recorder.append(ds, dim)
        self.recorder.commit_checkpoint(self.exp.state(), self.info())

    # ------------------------------------------------------------------
    def _guard(self, loss: float, result=None) -> None:
        """Divergence guard (after every step): a non-finite loss stops the run.

        The message names the step, the first non-finite quantity of the
        forward pass that produced the loss (layer, pre-activation h or
        activation a) and the parameters that are non-finite after the update:
        ``non-finite loss (nan) at step S (epoch E, batch B): first non-finite
        value in layer L pre-activation h; non-finite parameters after the
        update: layer 0 W``.
        """
        if math.isfinite(loss):
            return
        xp = self.exp.backend.xp
        where = None
        for i, st in enumerate(getattr(result, "states", None) or ()):
            for q, label in (("h", "pre-activation h"), ("a", "activation a")):
                v = getattr(st, q, None)
                if v is not None and not bool(xp.isfinite(v).all()):
                    where = f"layer {i} {label}"
                    break
            if where:
                break
        where = where or "the loss (the forward pass is finite)"
        params = [f"layer {i} {name}" for i, name, p in self.exp.net.parameters()
                  if not bool(xp.isfinite(p).all())]
        raise DivergenceError(
            f"non-finite loss ({loss}) at step {self.step} (epoch {self.epoch + 1}, batch "
            f"{self.batch}): first non-finite value in {where}; non-finite parameters after the "
            f"update: {', '.join(params) or 'none'}")

    def _first_nonfinite_parameter(self):
        xp = self.exp.backend.xp
        params = list(self.exp.net.parameters())
        if not params:
            return None
        # one read from the device for all parameters (on a GPU each read is a sync)
        finite = xp.stack([xp.isfinite(p).all() for _, _, p in params])
        if bool(finite.all()):
            return None
        for (i, name, _), ok in zip(params, finite.tolist()):
            if not ok:
                return f"layer {i} parameter {name}"
        return None

    def _before_update(self, result) -> None:
        ctx = self._context(result)
        for obs in self.exp.observers:
            if obs.due(ctx.step):
                for ds, dim in obs.observe(self.exp, ctx) or ():
                    self.recorder.append(ds, dim)

    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:  # second Ctrl-C: stop now, the last commit stays
            raise KeyboardInterrupt
        self._stop_signal = signum
        msg = (f"signal {signum}: stopping after this step and writing a checkpoint "
               f"(press Ctrl-C again to stop at once)")
        if hasattr(self.progress, "write"):  # on its own line, not glued to a progress bar
            self.progress.write(msg)
        else:
            sys.stderr.write(f"\n{msg}\n")

    def train(self, resume: bool = False, overwrite: bool = False) -> RunSummary:
        with self.recorder.lock():  # one writer per store (StoreError otherwise)
            return self._train(resume, overwrite)

    def _train(self, resume: bool, overwrite: bool = False) -> RunSummary:
        tr = self.exp.training
        main = threading.current_thread() is threading.main_thread()
        sigs = (signal.SIGINT, signal.SIGTERM) if main else ()
        old = {s: signal.signal(s, self._on_signal) for s in sigs}
        try:
            mode = prepare_store(self.recorder.path, resume=resume, overwrite=overwrite,
                                 check=lambda rec: check_resumable(self.protocol, rec))
            if mode == "resume":  # a verified store with a committed checkpoint
                extended = check_resumable(self.protocol, self.recorder)
                names = {p.name for p in Path(self.recorder.path).iterdir() if p.is_dir()}
                for obs in self.exp.observers:  # records the store holds that they can extend
                    obs.check_store(names, self.recorder.path)
                self.restore()
                attrs = {"status": "running"}
                if extended:  # a longer schedule: record it, and lift a max_steps stop
                    attrs.update(protocol=json.dumps(self.protocol),
                                 extended=", ".join(extended))
                    mx = tr.max_steps
                    if str(self.stopped).startswith("max_steps") and (not mx or mx > self.step):
                        self.stopped = None
                self.recorder.set_attrs(**attrs)
            else:  # "create", or "replace" a store with nothing committed / under --overwrite
                self.recorder.create(self.exp.attrs(), replace=mode == "replace")
            if self.exp.eval_train_note():
                self._note(self.exp.eval_train_note())
            if self.recorder.records("epoch") == 0 and self.step == 0:
                self._say("first evaluation (epoch 0)")
                first = self.evaluate(interruptible=True)
                self.record(first)
                self._evaluated(0.0, first)
                self.checkpoint()
        except BaseException:
            for s, h in old.items():
                signal.signal(s, h)
            raise
        exp = self.exp
        n = exp.n_train
        bs = tr.batch_size
        n_batches = (n + bs - 1) // bs
        last = None
        if self.epoch < tr.epochs and not self.stopped:
            self._plan_recording(n_batches)
            self._say("training")
        try:
            while self.epoch < tr.epochs and not self.stopped:
                if tr.shuffle:
                    perm = self.exp.backend.rng("data", self.epoch).permutation(n)
                else:
                    perm = np.arange(n)
                perm = self.exp.backend.xp.asarray(perm)
                while self.batch < n_batches:
                    idx = perm[self.batch * bs : (self.batch + 1) * bs]
                    self.exp.net.begin_step(self.step + 1, self.epoch)  # training mode (dropout)
                    xb = exp.x_train[idx]
                    if tr.input_noise:
                        xb = corrupt(xb, tr.input_noise, exp.backend, self.step + 1)
                    res = exp.realization.step(xb, exp.y_train[idx],
                                               self._before_update if exp.observers else None)
                    self.exp.net.end_step()
                    self.step += 1
                    self.batch += 1
                    self.loss_sum += res.loss
                    self.loss_n += 1
                    if not self.exp.backend.is_gpu:
                        self._guard(float(res.loss), res)
                    elif self.step % GUARD_EVERY == 0 or self.batch >= n_batches:
                        # GPU: the loss stays on the device; NaN/Inf propagate into
                        # the running sum, checked (one sync) every GUARD_EVERY steps
                        self._guard(float(self.loss_sum), res)
                    if self.progress:
                        self.progress(self.epoch + 1, self.batch, n_batches, res.loss)
                    if self._stop_signal is not None:
                        self.checkpoint()
                        raise Interrupted(f"stopped by signal {self._stop_signal} at epoch "
                                          f"{self.epoch + 1}/{tr['epochs']} batch {self.batch}/"
                                          f"{n_batches}; checkpoint written")
                    if tr.max_steps and self.step >= tr.max_steps:
                        break
                if self.batch >= n_batches:
                    self.epoch += 1
                    self.batch = 0
                done_steps = tr.max_steps and self.step >= tr.max_steps
                if self.epoch % tr.eval_every == 0 or self.epoch >= tr.epochs or done_steps:
                    self._check_weights()
                    last = self.evaluate()
                    self.record(last)
                    self._evaluated(self.epoch_position(), last)
                    self.loss_sum, self.loss_n = 0.0, 0
                    if tr.early_stop and last["train_error"] == 0.0:
                        self.stopped = "early stop (zero train error)"
                    elif done_steps:
                        self.stopped = f"max_steps {tr['max_steps']}"
                    self.checkpoint()  # the stop reason goes with it: a resume does not go on
        except DivergenceError as exc:
            self.recorder.set_attrs(status="diverged", failure=str(exc), failed_step=self.step)
            raise
        except (Interrupted, KeyboardInterrupt):
            self.recorder.set_attrs(status="interrupted")
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        seconds = self.elapsed0 + time.time() - self.t_start
        if last is None:  # nothing trained now (a resume of a finished run): no time added
            last, seconds = self._last_record(), self.elapsed0
        stopped = self.stopped or "epochs"
        self.recorder.finish(status="finished", stopped=stopped)  # keeps the committed slot only
        return RunSummary(str(self.out), self.epoch, self.step, last["train_error"],
                          last["test_error"], stopped, seconds, position=self.epoch_position(),
                          n_epochs=tr.epochs, steps_per_epoch=exp.steps_per_epoch)

    def _last_record(self) -> dict:
        """The errors of the store's last committed evaluation."""
        from .recording import open_store

        ds = open_store(self.out)
        return {k: float(ds[k].values[-1]) for k in ("train_error", "test_error")}

    def _note(self, text: str) -> None:
        if hasattr(self.progress, "write"):
            self.progress.write(text)

    def _plan_recording(self, n_batches: int) -> None:
        """Tell the observers the run's length; a recording cadence longer than the run is
        said in one line (those records are taken at the run's last step instead)."""
        tr = self.exp.training
        n_steps = tr.epochs * n_batches
        if tr.max_steps:
            n_steps = min(n_steps, tr.max_steps)
        long = [f"{key} = {every}" for obs in self.exp.observers for key, every in obs.plan(n_steps)]
        if long:
            self._note(f"note: this run takes {n_steps} optimizer steps, fewer than "
                       f"{', '.join(long)}: recorded at its last step ({n_steps}) instead")

    def _say(self, text: str) -> None:
        if hasattr(self.progress, "phase"):
            self.progress.phase(text)

    def _evaluated(self, epoch: float, metrics: dict) -> None:
        if hasattr(self.progress, "evaluated"):
            self.progress.evaluated(epoch, metrics)

    def _check_weights(self):
        where = self._first_nonfinite_parameter()
        if where is not None:
            raise DivergenceError(f"non-finite parameter at step {self.step} (epoch {self.epoch}, "
                                  f"batch {self.batch}): first non-finite value in {where}")


#: protocol keys that may differ between a store and the protocol resuming it
RESUME_IGNORES = ("name", "description", "caveat", "recording.out", "circuit.file",
                  "circuit.description")


#: keys added after stores were written, with the value that behaves as before they existed:
#: a store without the key resumes under a protocol that has it at this value
RESUME_NEW_KEYS = {"training.input_noise": 0.0,
                   "realization.dynamics.neuromodulator.crosstalk_structure": "uniform",
                   "circuit.input_code": "identity"}


def protocol_differences(a, b, prefix="") -> list:
    """Dotted keys whose values differ between two resolved protocols."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if key in RESUME_IGNORES:
                continue
            if k not in a and (b.get(k) is None or
                               (key in RESUME_NEW_KEYS and b[k] == RESUME_NEW_KEYS[key])):
                continue  # a key newer than the store, at the value that keeps the old behaviour
            if k not in a or k not in b:
                out.append(key)
            else:
                out.extend(protocol_differences(a[k], b[k], key))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        # element by element (e.g. circuit.layers), so a newer key inside an entry is seen too
        return [k for i, (x, y) in enumerate(zip(a, b)) for k in protocol_differences(x, y, f"{prefix}[{i}]")]
    return [] if a == b else [prefix or "(protocol)"]


#: keys a resume may change: training can be extended (more epochs or steps)
RESUME_EXTENDS = ("training.epochs", "training.max_steps")


def check_resumable(protocol: dict, recorder) -> list:
    """Refuse to resume a store made by a different protocol (StoreError).

    Only the length of training (:data:`RESUME_EXTENDS`) may differ; the keys
    that do are returned (the run then continues to the new length and the
    store's ``protocol`` attr is updated)."""
    from .core.jsonable import jsonable

    attrs = recorder.attrs
    stored = attrs.get("protocol")
    if not isinstance(stored, str):
        raise StoreError(f"{recorder.path} is not a neurosim run store (no protocol attr); "
                         f"cannot resume it")
    old, new = json.loads(stored), jsonable(protocol)
    diff = protocol_differences(old, new)
    extended = [k for k in diff if k in RESUME_EXTENDS]
    diff = [k for k in diff if k not in RESUME_EXTENDS]
    if diff:
        def show(d, key):
            for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
                if part.startswith("["):  # a list entry, e.g. circuit.layers[1]
                    i = int(part[1:-1])
                    if not isinstance(d, list) or i >= len(d):
                        return "(absent)"
                    d = d[i]
                elif not isinstance(d, dict) or part not in d:
                    return "(absent)"
                else:
                    d = d[part]
            return json.dumps(d)

        lines = "; ".join(f"{k}: store has {show(old, k)}, given {show(new, k)}" for k in diff[:5])
        more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
        raise StoreError(f"cannot resume {recorder.path}: it was made by a different protocol "
                         f"({lines}{more}). Resume with the same protocol, or write a new store "
                         f"(--out) or replace it (--overwrite).")
    _refuse_shorter(recorder.path, old.get("training") or {}, new.get("training") or {})
    return extended


def _refuse_shorter(path, old: dict, new: dict) -> None:
    """A resume may lengthen training, never shorten it: the store's protocol must keep
    describing every record it holds (StoreError naming the key)."""
    def limit(v):  # max_steps: 0 or absent is no limit
        return float("inf") if not v else v

    cases = (("training.epochs", old.get("epochs"), new.get("epochs"), lambda v: v),
             ("training.max_steps", old.get("max_steps"), new.get("max_steps"), limit))
    for key, had, given, norm in cases:
        if key == "training.epochs" and (had is None or given is None):
            continue
        if norm(given) < norm(had):
            raise StoreError(
                f"cannot resume {path} with {key}={given}: the store was made with {key}="
                f"{had} and a resume can only lengthen training (its records and protocol must "
                f"agree); resume with {key} >= {had}, or write the shorter run to a new store "
                f"(--out)")


def run_protocol(protocol: dict, out=None, device=None, resume=False, overwrite=False,
                 progress=None, arrays=None) -> RunSummary:
    """Convenience: build a :class:`Run` and train it.

    An existing store is continued only with ``resume`` (same protocol) and
    replaced only with ``overwrite`` (and only if it is a neurosim store:
    :func:`~neurosim.recording.store.prepare_store`); the store's lock is held
    throughout, so a second writer is refused before anything is touched.
    """
    out = out or protocol["recording"]["out"]
    with Recorder(out).lock():
        # refused here, before data and network are built; the store changes in Run.train
        prepare_store(out, resume=resume, overwrite=overwrite,
                      check=lambda rec: check_resumable(protocol, rec))
        r = Run(protocol, out=out, device=device, progress=progress, arrays=arrays)  # may fail
        return r.train(resume=resume, overwrite=overwrite)
