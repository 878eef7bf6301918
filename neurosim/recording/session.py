"""A run store's life: create or replace it, or resume it under the protocol that made it,
commit checkpoints, and say how the run ended.

:class:`RunSession` is the one place that decides what a run does with its store
(:func:`~neurosim.recording.store.prepare_store`, once, under the store's writer lock) and the
one place that writes the store's ``status`` (:class:`Status`) and ``stopped`` (:class:`Stop`).
The resume policy lives here too: a store is continued only under the protocol that made it
(:func:`protocol_differences`, :func:`check_resumable`), whose length of training may grow but
never shrink; :func:`run_is_done` says whether a sweep has nothing left to do for a run.

The texts written to stores are those of every earlier version (``status``: ``running``,
``finished``, ``diverged``, ``interrupted``; ``stopped``: ``epochs``, ``early stop (zero train
error)``, ``max_steps N``), so old stores read the same.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path

from ..core.finite import DivergenceError
from ..core.jsonable import jsonable
from ..core.signals import Interrupted
from .store import Recorder, StoreError, prepare_store


class Status(StrEnum):
    """The root attr ``status`` of a run store."""

    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"


class Stop(StrEnum):
    """Why a run's loop ended (root attr ``stopped`` of a finished store, ``stopped`` of its
    checkpoint): the value is the text's first words."""

    EPOCHS = "epochs"
    EARLY_STOP = "early stop"
    MAX_STEPS = "max_steps"

    def text(self, max_steps: int | None = None) -> str:
        """The text stores hold: ``epochs``, ``early stop (zero train error)``, ``max_steps N``."""
        if self is Stop.EARLY_STOP:
            return "early stop (zero train error)"
        return f"max_steps {max_steps}" if self is Stop.MAX_STEPS else self.value

    @classmethod
    def parse(cls, text) -> Stop | None:
        """The reason a stored text names (none or empty: all epochs); None for other text."""
        s = str(text or cls.EPOCHS.value)
        if s == cls.EPOCHS.value:
            return cls.EPOCHS
        return next((k for k in (cls.EARLY_STOP, cls.MAX_STEPS) if s.startswith(k.value)), None)

    @staticmethod
    def limit(text) -> str:
        """The ``N`` of ``max_steps N``."""
        return str(text).split()[-1]


class RunSession:
    """One run store's life, for one writer: hold :meth:`lock` around everything.

    :meth:`prepare` decides (once) to create, replace or resume, refusing before anything is
    written; :meth:`open` creates the store or resumes its checkpoint; :meth:`append_epoch`,
    :meth:`commit`, :meth:`failures` and :meth:`finish` write the rest of its life.
    ``default(key)`` is the declared default of a protocol key (a key newer than a store
    resumes it at that value)."""

    def __init__(self, path, protocol: dict, default=None):
        self.path = Path(path)
        self.protocol = protocol
        self.default = default
        self.recorder = Recorder(self.path)
        self.mode = None  # "create", "replace" or "resume", once prepared
        self.extended: list = []  # training keys a resume lengthens

    def lock(self):
        return self.recorder.lock()

    def check(self) -> list:
        """The resume policy for the store as it is (StoreError); the keys it lengthens."""
        self.extended = check_resumable(self.protocol, self.recorder, self.default)
        return self.extended

    def prepare(self, resume: bool = False, overwrite: bool = False) -> str:
        """What the run does with its store (StoreError before anything is written)."""
        if self.mode is None:
            self.mode = prepare_store(self.path, resume=resume, overwrite=overwrite,
                                      check=lambda rec: self.check())
        return self.mode

    def open(self, attrs, observers, load_state) -> dict | None:
        """Create (or replace) the store with root attrs ``attrs()``; or resume it: each
        observer checks the records it extends, ``load_state(state)`` takes the committed
        checkpoint, the store says ``running`` (and records a longer schedule, which lifts a
        ``max_steps`` stop).  Returns the checkpoint's loop position (None: a new store)."""
        rec = self.recorder
        if self.mode != "resume":
            rec.create({**attrs(), "status": Status.RUNNING.value}, replace=self.mode == "replace")
            return None
        names = {p.name for p in Path(rec.path).iterdir() if p.is_dir()}
        for obs in observers:  # records the store holds that they can extend
            obs.check_store(names, rec.path)
        rec.repair()
        state, info = rec.load_checkpoint()
        if state is not None:
            load_state(state)
            info = dict(info)
        new = {"status": Status.RUNNING.value}
        if self.extended:  # a longer schedule: record it, and lift a max_steps stop
            new.update(protocol=json.dumps(self.protocol), extended=", ".join(self.extended))
            mx = self.protocol["training"]["max_steps"]
            if (info and Stop.parse(info.get("stopped")) is Stop.MAX_STEPS
                    and (not mx or mx > info["step"])):
                info["stopped"] = None
        rec.set_attrs(**new)
        return info if state is not None else None

    def append_epoch(self, ds) -> None:
        """Append an evaluation's record; a store keeps the snapshots it was made with (an
        older one has no ``b_<l>``)."""
        rec = self.recorder
        if rec.records("epoch"):
            ds = ds.drop_vars([n for n in ds.data_vars if not rec.has(str(n))])
        rec.append(ds, "epoch")

    def commit(self, state: dict, info: dict) -> None:
        self.recorder.commit_checkpoint(state, info)

    @contextmanager
    def failures(self, step):
        """Around the training loop: a divergence (:class:`~neurosim.core.finite.DivergenceError`)
        leaves the store ``diverged`` with the message and ``step()``; a signal leaves it
        ``interrupted``.  The error goes on."""
        try:
            yield
        except DivergenceError as exc:
            self.recorder.set_attrs(status=Status.DIVERGED.value, failure=str(exc), failed_step=step())
            raise
        except (Interrupted, KeyboardInterrupt):
            self.recorder.set_attrs(status=Status.INTERRUPTED.value)
            raise

    def finish(self, stopped: str) -> None:
        """``finished``, with why (:class:`Stop`'s text); keeps the committed slot only."""
        self.recorder.finish(status=Status.FINISHED.value, stopped=stopped)

    def last_errors(self) -> dict:
        """The errors of the store's last committed evaluation."""
        from .store import open_store

        ds = open_store(self.path)
        return {k: float(ds[k].values[-1]) for k in ("train_error", "test_error")}


# ----------------------------------------------------------------------
# the resume policy
#: protocol keys that may differ between a store and the protocol resuming it
RESUME_IGNORES = ("name", "description", "caveat", "recording.out", "circuit.file",
                  "circuit.description")
#: keys a resume may change: training can be extended (more epochs or steps)
RESUME_EXTENDS = ("training.epochs", "training.max_steps")


def protocol_differences(a, b, prefix="", default=None) -> list:
    """Dotted keys whose values differ between two resolved protocols, the store's ``a`` and
    the given ``b``.  A key ``b`` has and ``a`` lacks is newer than the store: it differs only
    when its value is neither None nor ``default(key)``, its declared default (the value that
    behaves as before the key existed)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if key in RESUME_IGNORES:
                continue
            if k not in a and (b.get(k) is None or (default is not None and _equal(b[k], default(key)))):
                continue  # a key newer than the store, at the value that keeps the old behaviour
            if k not in a or k not in b:
                out.append(key)
            else:
                out.extend(protocol_differences(a[k], b[k], key, default))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        # element by element (e.g. circuit.layers), so a newer key inside an entry is seen too
        return [k for i, (x, y) in enumerate(zip(a, b))
                for k in protocol_differences(x, y, f"{prefix}[{i}]", default)]
    return [] if a == b else [prefix or "(protocol)"]


def _equal(value, declared) -> bool:
    try:
        return bool(value == declared)
    except Exception:  # noqa: BLE001 - values that do not compare are not the default
        return False


def check_resumable(protocol: dict, recorder, default=None) -> list:
    """Refuse to resume a store made by a different protocol (StoreError).

    Only the length of training (:data:`RESUME_EXTENDS`) may differ; the keys
    that do are returned (the run then continues to the new length and the
    store's ``protocol`` attr is updated)."""
    stored = recorder.attrs.get("protocol")
    if not isinstance(stored, str):
        raise StoreError(f"{recorder.path} is not a neurosim run store (no protocol attr); "
                         f"cannot resume it")
    old, new = json.loads(stored), jsonable(protocol)
    diff = protocol_differences(old, new, default=default)
    extended = [k for k in diff if k in RESUME_EXTENDS]
    diff = [k for k in diff if k not in RESUME_EXTENDS]
    if diff:
        lines = "; ".join(f"{k}: store has {_show(old, k)}, given {_show(new, k)}" for k in diff[:5])
        more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
        raise StoreError(f"cannot resume {recorder.path}: it was made by a different protocol "
                         f"({lines}{more}). Resume with the same protocol, or write a new store "
                         f"(--out) or replace it (--overwrite).")
    _refuse_shorter(recorder.path, old.get("training") or {}, new.get("training") or {})
    return extended


def _show(d, key: str) -> str:
    """The JSON of ``key`` (dotted, with list entries ``[i]``) in ``d``; ``(absent)``."""
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


def run_is_done(attrs: dict | None, protocol: dict, default=None) -> bool:
    """A run is done when its store (root ``attrs``) is finished, was made by the same
    protocol up to the length of training, and either stopped early or trained as long as
    asked for now (so a shortened sweep can later be extended).

    A finished store made by a different protocol is not done: its run is handed to a worker,
    which refuses to continue it (as ``neurosim run --resume`` does) and reports it failed."""
    if not attrs or attrs.get("status") != Status.FINISHED.value:
        return False
    try:
        had = json.loads(attrs["protocol"])
        had_tr = had["training"]
        had_epochs = had_tr["epochs"]
    except (KeyError, TypeError, ValueError):
        return True
    if [k for k in protocol_differences(had, jsonable(protocol), default=default)
            if k not in RESUME_EXTENDS]:
        return False
    tr = protocol["training"]
    stop = Stop.parse(attrs.get("stopped"))
    if stop is Stop.EARLY_STOP:
        return True
    if stop is Stop.MAX_STEPS:  # continued only when the step limit grew or went
        new, old = tr.get("max_steps"), had_tr.get("max_steps")
        if not new or (old and new > old):
            return False
    return had_epochs >= tr["epochs"]
