"""The training loop: epochs, checkpoints, early stop, resume, divergence guard.

``Run(protocol).train()`` is the whole job behind ``neurosim run``:
protocol -> backend, data, network, rule, optimizer, realization -> loop ->
recorder.  Randomness is keyed by (seed, stream, epoch), so a resumed run
replays exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from . import losses
from .backend import Backend
from .data import load_dataset
from .model.network import build_network, load_state_dict, state_dict
from .optim import build_optimizer
from .realizations import REALIZATIONS
from .recording import Recorder, StoreError, versions
from .rules import build_rule


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
    """Classification error in percent."""
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
        self.t_start = time.time()
        self.elapsed0 = 0.0
        self._stop_signal = None
        from .observers import build_observers

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
                "loss_sum": self.loss_sum, "loss_n": self.loss_n,
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
        self.elapsed0 = info.get("elapsed", 0.0)
        self.repaired = cut
        return True

    # ------------------------------------------------------------------
    def evaluate(self) -> dict:
        bs = self.protocol["training"]["eval_batch_size"]
        out = {}
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            logits = self.realization.predict(x, bs)
            loss, _ = self.loss_fn(logits, y)
            out[f"{split}_error"] = error_rate(logits, y)
            out[f"{split}_loss"] = loss
        out["train_batch_loss"] = self.loss_sum / self.loss_n if self.loss_n else float("nan")
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
        if rec["weights"] and n_prev % rec["weights_every"] == 0:
            for i, name, p in self.net.parameters():
                if name != "W":
                    continue
                W = self.backend.to_host(p)
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
        for obs in self.observers:  # observers that buffer records write them now
            for ds, dim in getattr(obs, "flush", lambda run: ())(self) or ():
                self.recorder.append(ds, dim)
        self.recorder.commit_checkpoint(self.state(), self.info())

    # ------------------------------------------------------------------
    def _guard(self, loss: float) -> None:
        if math.isfinite(loss):
            return
        where = "loss"
        xp = self.backend.xp
        for i, name, p in self.net.parameters():
            if not bool(xp.isfinite(p).all()):
                where = f"layer {i} parameter {name}"
                break
        raise DivergenceError(f"non-finite value (NaN/Inf) at step {self.step}, epoch "
                              f"{self.epoch + 1}: {where} (loss {loss})")

    def _before_update(self, result) -> None:
        step = self.step + 1  # the step being taken (1-based)
        for obs in self.observers:
            if obs.due(step):
                for ds, dim in obs.observe(self, step, result) or ():
                    self.recorder.append(ds, dim)

    def _on_signal(self, signum, frame):
        self._stop_signal = signum

    def train(self, resume: bool = False) -> RunSummary:
        tr = self.protocol["training"]
        if resume and self.recorder.exists:
            if not self.restore():
                self.recorder.set_attrs(status="running")
        else:
            self.recorder.create(self.attrs())
        if self.recorder.records("epoch") == 0 and self.step == 0:
            self.record(self.evaluate())
            self.checkpoint()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        stopped = "epochs"
        n = self.x_train.shape[0]
        bs = tr["batch_size"]
        n_batches = (n + bs - 1) // bs
        last = None
        try:
            while self.epoch < tr["epochs"]:
                if tr["shuffle"]:
                    perm = self.backend.rng("data", self.epoch).permutation(n)
                else:
                    perm = np.arange(n)
                perm = self.backend.xp.asarray(perm)
                while self.batch < n_batches:
                    idx = perm[self.batch * bs : (self.batch + 1) * bs]
                    res = self.realization.step(self.x_train[idx], self.y_train[idx],
                                                self._before_update if self.observers else None)
                    self.step += 1
                    self.batch += 1
                    self._guard(res.loss)
                    self.loss_sum += res.loss
                    self.loss_n += 1
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
                    last = self.evaluate()
                    self.record(last)
                    self.loss_sum, self.loss_n = 0.0, 0
                    self._check_weights()
                    self.checkpoint()
                    if tr["early_stop"] and last["train_error"] == 0.0:
                        stopped = "early stop (zero train error)"
                        break
                if done_steps:
                    stopped = f"max_steps {tr['max_steps']}"
                    break
        except DivergenceError as exc:
            self.recorder.set_attrs(status="diverged", failure=str(exc))
            raise
        except Interrupted:
            self.recorder.set_attrs(status="interrupted")
            raise
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if last is None:
            last = self.evaluate()
        self.recorder.set_attrs(status="finished", stopped=stopped)
        return RunSummary(str(self.out), self.epoch, self.step, last["train_error"],
                          last["test_error"], stopped, self.elapsed0 + time.time() - self.t_start)

    def _check_weights(self):
        xp = self.backend.xp
        for i, name, p in self.net.parameters():
            if not bool(xp.isfinite(p).all()):
                raise DivergenceError(f"non-finite value (NaN/Inf) at step {self.step}, epoch "
                                      f"{self.epoch}: layer {i} parameter {name}")


def run_protocol(protocol: dict, out=None, device=None, resume=False, overwrite=False,
                 progress=None) -> RunSummary:
    """Convenience: build a :class:`Run` and train it."""
    import shutil
    from pathlib import Path

    out = out or protocol["recording"]["out"]
    path = Path(out)
    if path.exists() and not resume:
        if not overwrite:
            raise StoreError(f"{path} already exists; use --resume to continue it or --overwrite "
                             f"to replace it")
        shutil.rmtree(path)
    r = Run(protocol, out=out, device=device, progress=progress)
    return r.train(resume=resume)
