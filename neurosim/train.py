"""The training loop: epochs, checkpoints, early stop, resume, divergence guard.

``Run(protocol).train()`` is the whole job behind ``neurosim run``:
protocol -> backend, data, network, rule, optimizer, realization -> loop ->
recorder.  Randomness is keyed by (seed, stream, epoch), so a resumed run
replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from . import losses
from .core.backend import Backend
from .data import load_dataset
from .model.network import build_network, load_state_dict, state_dict
from .optim import build_optimizer
from .realizations import REALIZATIONS
from .recording import Recorder, StoreError, versions
from .rules import build_rule

#: on the GPU the divergence check (a device sync) runs every this many steps
GUARD_EVERY = 50


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

    def line(self) -> str:
        return (f"{self.store}: epoch {self.epochs}, {self.steps} steps, train error "
                f"{self.train_error:.2f}%, test error {self.test_error:.2f}% ({self.stopped}, "
                f"{self.seconds:.1f} s)")


def error_rate(logits, y) -> float:
    """Classification error in percent (NaN for regression targets, e.g. an
    autoencoder's ``target: input``)."""
    if getattr(y, "ndim", 1) > 1:
        return float("nan")
    xp = type(logits).__module__.split(".")[0] == "cupy" and __import__("cupy") or np
    return float((xp.argmax(logits, axis=1) != y).mean()) * 100.0


class Run:
    """One training run of a validated protocol."""

    def __init__(self, protocol: dict, out: str | None = None, device: str | None = None,
                 progress=None):
        self.protocol = protocol
        p = protocol
        self.out = out or p["recording"]["out"]
        self.backend = Backend(device or p["device"], p["dtype"], p["seed"])
        self.progress = progress
        d = p["data"]
        self.data = load_dataset(d["dataset"], d["root"], d["train_subset"], d["test_subset"],
                                 **(d["options"] or {}))
        xp = self.backend.xp
        self.x_train = self.backend.asarray(self.data.x_train)
        self.y_train = xp.asarray(self.data.y_train)
        self.x_test = self.backend.asarray(self.data.x_test)
        self.y_test = xp.asarray(self.data.y_test)
        self.net = build_network(p["circuit"], self.backend, self.data.in_shape, self.data.n_classes)
        rule_opts = {k: v for k, v in p["rule"].items() if k != "name"}
        self.rule = build_rule(p["rule"]["name"], self.net, self.backend, **rule_opts)
        opt = dict(p["optimizer"])
        if opt["name"] == "sgd":
            opt.pop("betas"), opt.pop("eps")
        else:
            opt.pop("momentum")
        self.optimizer = build_optimizer(self.net, opt)
        self.loss_fn = losses.get(p["loss"])
        real = REALIZATIONS[p["realization"]["type"]]
        self.realization = real(p, self.backend, self.net, self.rule, self.optimizer, self.loss_fn)
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
        from .recording.observers import build_observers

        self.observers = build_observers(self)

    # ------------------------------------------------------------------
    def attrs(self) -> dict:
        return {
            "title": f"neurosim run {self.protocol['name']}",
            "protocol": json.dumps(self.protocol),
            "protocol_name": self.protocol["name"],
            "rule": self.protocol["rule"]["name"],
            "realization": self.protocol["realization"]["type"],
            "dataset": self.protocol["data"]["dataset"],
            "vectorized": int(self.net.vectorized),
            "sign": self.net.sign,
            "K": self.net.K,
            "seed": self.protocol["seed"],
            "backend": json.dumps(self.backend.describe()),
            "versions": json.dumps(versions()),
            "layers": json.dumps([{**r, "in": list(r["in"]), "units": list(r["units"])}
                                  for r in self.net.summary()]),
            "status": "running",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def state(self) -> dict:
        s = {f"net.{k}": v for k, v in state_dict(self.net).items()}
        s.update({f"opt.{k}": v for k, v in self.optimizer.state_dict().items()})
        s.update({f"rule.{k}": v for k, v in self.rule.state_dict().items()})
        s.update({f"real.{k}": v for k, v in self.realization.state_dict().items()})
        return s

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
        load_state_dict(self.net, {k[4:]: v for k, v in state.items() if k.startswith("net.")})
        self.optimizer.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("opt.")})
        self.rule.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("rule.")})
        self.realization.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("real.")})
        self.epoch, self.batch, self.step = info["epoch"], info["batch"], info["step"]
        self.loss_sum, self.loss_n = info["loss_sum"], info["loss_n"]
        self.stopped = info.get("stopped")
        self.elapsed0 = info.get("elapsed", 0.0)
        self.repaired = cut
        return True

    # ------------------------------------------------------------------
    def evaluate(self) -> dict:
        tr = self.protocol["training"]
        bs = tr["eval_batch_size"]
        n = tr["eval_train_subset"] or self.x_train.shape[0]
        out = {}
        for split, x, y in (("train", self.x_train[:n], self.y_train[:n]),
                            ("test", self.x_test, self.y_test)):
            logits = self.realization.predict(x, bs)
            loss, _ = self.loss_fn(logits, y)
            out[f"{split}_error"] = error_rate(logits, y)
            out[f"{split}_loss"] = float(loss)
        out["train_batch_loss"] = float(self.loss_sum) / self.loss_n if self.loss_n else float("nan")
        return out

    def record(self, metrics: dict) -> None:
        rec = self.protocol["recording"]
        data = {
            "train_error": ("epoch", [metrics["train_error"]], {"long_name": "training-set error",
                                                                  "units": "%"}),
            "test_error": ("epoch", [metrics["test_error"]], {"long_name": "test-set error",
                                                                "units": "%"}),
            "train_loss": ("epoch", [metrics["train_loss"]], {"long_name": "training-set loss"}),
            "test_loss": ("epoch", [metrics["test_loss"]], {"long_name": "test-set loss"}),
            "train_batch_loss": ("epoch", [metrics["train_batch_loss"]],
                                 {"long_name": "mean mini-batch loss since the previous checkpoint"}),
            "n_steps": ("epoch", [self.step], {"long_name": "optimizer steps so far"}),
            "wall_time": ("epoch", [self.elapsed0 + time.time() - self.t_start],
                          {"long_name": "wall-clock time", "units": "s"}),
        }
        n_prev = self.recorder.records("epoch")
        if rec["weights"]:
            # every record has every variable (else the store's variables disagree on the
            # length of epoch and it does not open); between snapshots W is NaN, which is
            # Zarr's fill value, so those chunks are not even written
            snap = n_prev % rec["weights_every"] == 0
            for i, name, p in self.net.parameters():
                if name != "W":
                    continue
                W = self.backend.to_host(p)
                W = W if snap else np.full_like(W, np.nan)
                if W.ndim == 3 and self.net.layers[i].first:
                    dims = ("epoch", "component", f"post_{i}", f"pre_{i}")
                else:
                    dims = ("epoch", f"post_{i}", f"pre_{i}") if W.ndim == 2 else \
                        ("epoch",) + tuple(f"w{i}_{k}" for k in range(W.ndim))
                data[f"W_{i}"] = (dims, W[None], {"long_name": f"weights of layer {i}"})
        ds = xr.Dataset({k: (d, np.asarray(v), a) for k, (d, v, a) in data.items()},
                        coords={"epoch": ("epoch", [self.epoch_position()],
                                          {"long_name": "training epochs completed", "units": "epoch"})})
        self.recorder.append(ds, "epoch")

    def epoch_position(self) -> float:
        """Epochs completed, with the fraction of a cut-short epoch (max_steps)."""
        bs = self.protocol["training"]["batch_size"]
        n_batches = -(-self.x_train.shape[0] // bs)
        return float(self.epoch + self.batch / n_batches)

    def checkpoint(self) -> None:
        self._check_weights()  # never commit non-finite weights
        for obs in self.observers:  # observers that buffer records write them now
            for ds, dim in getattr(obs, "flush", lambda run: ())(self) or ():
                self.recorder.append(ds, dim)
        self.recorder.commit_checkpoint(self.state(), self.info())

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
        xp = self.backend.xp
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
        params = [f"layer {i} {name}" for i, name, p in self.net.parameters()
                  if not bool(xp.isfinite(p).all())]
        raise DivergenceError(
            f"non-finite loss ({loss}) at step {self.step} (epoch {self.epoch + 1}, batch "
            f"{self.batch}): first non-finite value in {where}; non-finite parameters after the "
            f"update: {', '.join(params) or 'none'}")

    def _first_nonfinite_parameter(self):
        xp = self.backend.xp
        for i, name, p in self.net.parameters():
            if not bool(xp.isfinite(p).all()):
                return f"layer {i} parameter {name}"
        return None

    def _before_update(self, result) -> None:
        step = self.step + 1  # the step being taken (1-based)
        for obs in self.observers:
            if obs.due(step):
                for ds, dim in obs.observe(self, step, result) or ():
                    self.recorder.append(ds, dim)

    def _on_signal(self, signum, frame):
        if self._stop_signal is not None:  # second Ctrl-C: stop now, the last commit stays
            raise KeyboardInterrupt
        self._stop_signal = signum
        sys.stderr.write(f"\nsignal {signum}: stopping after this step and writing a checkpoint "
                         f"(press Ctrl-C again to stop at once)\n")

    def train(self, resume: bool = False) -> RunSummary:
        with self.recorder.lock():  # one writer per store (StoreError otherwise)
            return self._train(resume)

    def _train(self, resume: bool) -> RunSummary:
        tr = self.protocol["training"]
        main = threading.current_thread() is threading.main_thread()
        sigs = (signal.SIGINT, signal.SIGTERM) if main else ()
        old = {s: signal.signal(s, self._on_signal) for s in sigs}
        try:
            if resume and self.recorder.exists:
                extended = check_resumable(self.protocol, self.recorder)
                if self.restore():
                    attrs = {"status": "running"}
                    if extended:  # a longer schedule: record it, and lift a max_steps stop
                        attrs.update(protocol=json.dumps(self.protocol),
                                     extended=", ".join(extended))
                        mx = tr["max_steps"]
                        if str(self.stopped).startswith("max_steps") and (not mx or mx > self.step):
                            self.stopped = None
                    self.recorder.set_attrs(**attrs)
                else:  # killed before its first checkpoint: nothing to keep
                    shutil.rmtree(self.recorder.path)
                    self.recorder.create(self.attrs())
            else:
                self.recorder.create(self.attrs())
            if self.recorder.records("epoch") == 0 and self.step == 0:
                self.record(self.evaluate())
                self.checkpoint()
        except BaseException:
            for s, h in old.items():
                signal.signal(s, h)
            raise
        n = self.x_train.shape[0]
        bs = tr["batch_size"]
        n_batches = (n + bs - 1) // bs
        last = None
        try:
            while self.epoch < tr["epochs"] and not self.stopped:
                if tr["shuffle"]:
                    perm = self.backend.rng("data", self.epoch).permutation(n)
                else:
                    perm = np.arange(n)
                perm = self.backend.xp.asarray(perm)
                while self.batch < n_batches:
                    idx = perm[self.batch * bs : (self.batch + 1) * bs]
                    self.net.begin_step(self.step + 1, self.epoch)  # training mode (dropout)
                    res = self.realization.step(self.x_train[idx], self.y_train[idx],
                                                self._before_update if self.observers else None)
                    self.net.end_step()
                    self.step += 1
                    self.batch += 1
                    self.loss_sum += res.loss
                    self.loss_n += 1
                    if not self.backend.is_gpu:
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
                                          f"{self.epoch + 1}, batch {self.batch}; checkpoint written")
                    if tr["max_steps"] and self.step >= tr["max_steps"]:
                        break
                if self.batch >= n_batches:
                    self.epoch += 1
                    self.batch = 0
                done_steps = tr["max_steps"] and self.step >= tr["max_steps"]
                if self.epoch % tr["eval_every"] == 0 or self.epoch >= tr["epochs"] or done_steps:
                    self._check_weights()
                    last = self.evaluate()
                    self.record(last)
                    self.loss_sum, self.loss_n = 0.0, 0
                    if tr["early_stop"] and last["train_error"] == 0.0:
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
        if last is None:
            last = self.evaluate()
        stopped = self.stopped or "epochs"
        self.recorder.set_attrs(status="finished", stopped=stopped)
        return RunSummary(str(self.out), self.epoch, self.step, last["train_error"],
                          last["test_error"], stopped, self.elapsed0 + time.time() - self.t_start)

    def _check_weights(self):
        where = self._first_nonfinite_parameter()
        if where is not None:
            raise DivergenceError(f"non-finite parameter at step {self.step} (epoch {self.epoch}, "
                                  f"batch {self.batch}): first non-finite value in {where}")


#: protocol keys that may differ between a store and the protocol resuming it
RESUME_IGNORES = ("name", "description", "recording.out", "circuit.file", "circuit.description")


def protocol_differences(a, b, prefix="") -> list:
    """Dotted keys whose values differ between two resolved protocols."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if key in RESUME_IGNORES:
                continue
            if k not in a or k not in b:
                out.append(key)
            else:
                out.extend(protocol_differences(a[k], b[k], key))
        return out
    return [] if a == b else [prefix or "(protocol)"]


#: keys a resume may change: training can be extended (more epochs or steps)
RESUME_EXTENDS = ("training.epochs", "training.max_steps")


def check_resumable(protocol: dict, recorder) -> list:
    """Refuse to resume a store made by a different protocol (StoreError).

    Only the length of training (:data:`RESUME_EXTENDS`) may differ; the keys
    that do are returned (the run then continues to the new length and the
    store's ``protocol`` attr is updated)."""
    from .recording import _jsonable

    attrs = recorder.attrs
    stored = attrs.get("protocol")
    if not isinstance(stored, str):
        raise StoreError(f"{recorder.path} is not a neurosim run store (no protocol attr); "
                         f"cannot resume it")
    old, new = json.loads(stored), _jsonable(protocol)
    diff = protocol_differences(old, new)
    extended = [k for k in diff if k in RESUME_EXTENDS]
    diff = [k for k in diff if k not in RESUME_EXTENDS]
    if diff:
        def show(d, key):
            for part in key.split("."):
                if not isinstance(d, dict) or part not in d:
                    return "(absent)"
                d = d[part]
            return json.dumps(d)

        lines = "; ".join(f"{k}: store has {show(old, k)}, given {show(new, k)}" for k in diff[:5])
        more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
        raise StoreError(f"cannot resume {recorder.path}: it was made by a different protocol "
                         f"({lines}{more}). Resume with the same protocol, or write a new store "
                         f"(--out) or replace it (--overwrite).")
    return extended


def run_protocol(protocol: dict, out=None, device=None, resume=False, overwrite=False,
                 progress=None) -> RunSummary:
    """Convenience: build a :class:`Run` and train it.

    An existing store is continued only with ``resume`` (same protocol) and
    replaced only with ``overwrite``; the store's lock is held throughout, so
    a second writer is refused before anything is touched.
    """
    from pathlib import Path

    out = out or protocol["recording"]["out"]
    path = Path(out)
    rec = Recorder(path)
    with rec.lock():
        occupied = path.exists() and (not path.is_dir() or any(path.iterdir()))
        if resume and rec.exists:
            check_resumable(protocol, rec)
        elif occupied and not (resume and path.is_dir()):
            if not overwrite:
                raise StoreError(f"{path} already exists; use --resume to continue it or "
                                 f"--overwrite to replace it")
        elif occupied and resume:
            raise StoreError(f"{path} is not a neurosim store (no zarr.json); cannot resume it")
        r = Run(protocol, out=out, device=device, progress=progress)  # data, network: may fail
        if occupied and overwrite and not (resume and rec.exists):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return r.train(resume=resume)
