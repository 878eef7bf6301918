"""Sweeps: one protocol, many runs — expansion, the sweep store, and execution on dask.distributed.

A *sweep protocol* is an ordinary protocol (see :mod:`neurosim.protocol`) with two more
top-level keys::

    sweep:
      optimizer.lr: [1.0e-4, 3.0e-4]                      # grid axis: one dotted key, a list of values
      circuit.sign, circuit.init: [[nonnegative, on_off],  # zipped axis: keys joined by ",",
                                   [mixed, he]]            #   a list of value tuples (taken together)
      cases:                                               # zipped axis of mappings: each case sets
        - {rule.name: gevb, circuit.vectorized: true}      #   its own dotted keys (cases may differ
        - {rule.name: dfa, circuit.vectorized: false, rule.scale: 1.0}  # in which keys they set)
    seeds: [0, 1, 2, 3, 4]

The runs are the Cartesian product of the axes (in the order written) times the seeds.  A
zipped axis keeps combinations that belong together (GEVB needs a vectorized circuit; a
nonnegative circuit uses the ON/OFF init), so the grid never contains invalid cells.  Every
expanded protocol is validated before anything runs; an error names the run and the key.

Run names are deterministic and readable: ``key=value`` for each swept key, joined by ``,``,
then ``seed=N`` — e.g. ``circuit=mnist_fc,vectorized=true,rule=gevb,sign=nonnegative,
init=on_off,seed=0``.  Keys are shortened to their last component (``rule.name`` -> ``rule``,
``circuit.file`` -> ``circuit``) unless that would be ambiguous; file values to their stem.
Runs are ordered seed-major, so a sweep completes a whole table for seed 0 before seed 1.

The *sweep store* is a Zarr root group (root attrs ``kind = "sweep"``, the sweep protocol and
``runs``: name -> status, error, overrides, summary) with each run's own store as a child group
``runs/<name>`` (a complete run store: ``xr.open_zarr(SWEEP/runs/<name>)``).  Only the driver
writes the root attrs; each worker writes only its run's store.  The root is not consolidated,
so its children never appear in (or go stale in) root metadata.

Re-running a sweep skips runs whose store says ``status: finished`` (unless the requested
epochs grew and the run did not stop early), resumes every other existing run from its last
checkpoint and starts the missing ones; failed runs are retried.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import itertools
import json
import os
import re
import shutil
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zarr

from .core.options import ConfigError, line_of
from .protocol import load_yaml, validate_protocol

SWEEP_KEYS = ("sweep", "seeds")
CASES = "cases"
KIND = "sweep"


# ---------------------------------------------------------------------------
# expansion
@dataclass
class Axis:
    """One sweep axis: its YAML key and its entries (each a mapping dotted key -> value)."""

    key: str
    entries: list

    @property
    def keys(self) -> list:
        out = []
        for e in self.entries:
            out += [k for k in e if k not in out]
        return out


@dataclass
class SweepRun:
    name: str
    overrides: dict  # dotted key -> value, in axis order, ending with "seed"
    protocol: dict  # validated, resolved protocol
    cell: str  # the name without the seed (runs of one cell differ only in seed)


@dataclass
class Sweep:
    name: str
    file: str | None
    raw: dict
    axes: list
    seeds: list
    runs: list = field(default_factory=list)
    n_total: int = 0  # runs in the whole grid (``runs`` may be a selection)

    def select(self, patterns) -> list:
        """Runs whose name matches any of ``patterns`` (fnmatch glob, or substring without
        glob characters); all runs when ``patterns`` is empty."""
        if not patterns:
            return list(self.runs)
        return [r for r in self.runs if any(_match(r.name, p) for p in patterns)]


def _match(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def is_sweep(raw: dict) -> bool:
    return isinstance(raw, dict) and any(k in raw for k in SWEEP_KEYS)


def parse_axes(spec, text: str = "", file=None) -> list[Axis]:
    """The ``sweep:`` mapping -> axes (grid, zipped ``"a, b"`` and ``cases``)."""
    if spec is None:
        return []
    if not isinstance(spec, dict):
        raise ConfigError(f"must be a mapping of dotted keys to value lists, got {type(spec).__name__}",
                          file=file, key="sweep", line=line_of(text, "sweep"))
    axes, seen = [], {}
    for key, values in spec.items():
        where = dict(file=file, key=f"sweep.{key}", line=line_of(text, f"sweep.{key}"))
        if not isinstance(key, str) or not key.strip():
            raise ConfigError("sweep keys must be dotted protocol keys", **where)
        if not isinstance(values, list) or not values:
            raise ConfigError("needs a non-empty list of values", **where)
        if key == CASES:
            entries = []
            for i, case in enumerate(values):
                if not isinstance(case, dict) or not case:
                    raise ConfigError(f"case {i} must be a non-empty mapping of dotted keys to values",
                                      **where)
                entries.append(dict(case))
        elif "," in key:
            keys = [k.strip() for k in key.split(",")]
            if any(not k for k in keys):
                raise ConfigError("empty key in a zipped axis", **where)
            entries = []
            for i, v in enumerate(values):
                if not isinstance(v, list) or len(v) != len(keys):
                    raise ConfigError(f"entry {i} must be a list of {len(keys)} values "
                                      f"({', '.join(keys)}), got {v!r}", **where)
                entries.append(dict(zip(keys, v)))
        else:
            entries = [{key.strip(): v} for v in values]
        axis = Axis(key, entries)
        for k in axis.keys:
            bad = _check_key(k)
            if bad:
                raise ConfigError(bad, **where)
            if k in seen:
                raise ConfigError(f"key {k!r} is swept twice (also in sweep.{seen[k]})", **where)
            seen[k] = key
        axes.append(axis)
    return axes


def _check_key(k: str) -> str | None:
    if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", k):
        return f"{k!r} is not a dotted protocol key (like optimizer.lr)"
    if k in ("seed",):
        return "sweep seeds with the top-level 'seeds:' list, not in 'sweep:'"
    if k.split(".")[0] in SWEEP_KEYS:
        return f"{k!r}: a sweep cannot sweep its own 'sweep'/'seeds' keys"
    return None


def set_dotted(d: dict, key: str, value) -> None:
    """``d["a"]["b"] = value`` for ``key = "a.b"``; a circuit given as a file name becomes
    ``{file: name}`` so that circuit overrides compose with it."""
    parts = key.split(".")
    node = d
    for i, p in enumerate(parts[:-1]):
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        elif isinstance(nxt, str) and p == "circuit" and i == 0:
            nxt = node[p] = {"file": nxt}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {key!r}: {'.'.join(parts[:i + 1])} is not a mapping", key=key)
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def _short_keys(keys: list) -> dict:
    """Dotted key -> short label for run names (last component; the parent for
    name/file/type; the full key where short labels would collide)."""
    def short(k):
        parts = k.split(".")
        if len(parts) > 1 and parts[-1] in ("name", "file", "type"):
            return parts[-2]
        return parts[-1]

    labels = {k: short(k) for k in keys}
    counts = {}
    for v in labels.values():
        counts[v] = counts.get(v, 0) + 1
    return {k: (v if counts[v] == 1 and v != "seed" else k) for k, v in labels.items()}


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        v = value.rstrip("/").split("/")[-1]
        for ext in (".yaml", ".yml"):
            if v.endswith(ext):
                v = v[: -len(ext)]
        return v
    if isinstance(value, (list, tuple)):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "-".join(f"{k}_{_fmt(v)}" for k, v in value.items())
    return str(value)


def sanitise(name: str, limit: int = 180) -> str:
    """A file/group-safe run name: ``[A-Za-z0-9._+=,-]`` kept, anything else -> ``_``."""
    s = re.sub(r"[^A-Za-z0-9._+=,-]", "_", name).strip(".") or "run"
    if len(s) > limit:
        s = s[: limit - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return s


def expand(raw: dict, file=None, text: str = "", overrides: dict | None = None, max_epochs=None,
           validate: bool = True, only=None) -> Sweep:
    """Expand a sweep protocol (raw YAML dict) into named, validated runs.

    ``overrides`` (nested, from ``--set``) apply to every run before the sweep's own values;
    ``max_epochs`` caps ``training.epochs`` of every run; ``only`` (patterns, see
    :meth:`Sweep.select`) keeps the matching runs (``Sweep.n_total`` counts all).  Every kept
    run is validated up front: :class:`ConfigError` names the run and the key.
    """
    from .protocol import merge

    path = Path(file) if file else None
    base = {k: v for k, v in raw.items() if k not in SWEEP_KEYS}
    if overrides:
        base = merge(base, overrides)
    axes = parse_axes(raw.get("sweep"), text, path)
    seeds = raw.get("seeds")
    if seeds is None:
        seeds = [base.get("seed", 0)]
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ConfigError("must be a non-empty list of nonnegative integers", file=path, key="seeds",
                          line=line_of(text, "seeds"))
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds repeat", file=path, key="seeds", line=line_of(text, "seeds"))
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
        raise ConfigError(f"--max-epochs must be a positive integer, got {max_epochs!r}")
    name = base.get("name") or (path.stem if path else "sweep")
    labels = _short_keys([k for a in axes for k in a.keys])
    sweep = Sweep(str(name), str(path) if path else None, raw, axes, list(seeds))
    combos = list(itertools.product(*[a.entries for a in axes]))
    used = set()
    for seed in seeds:  # seed-major: a whole table per seed first
        for combo in combos:
            over = {}
            for entry in combo:
                over.update(entry)
            cell = sanitise(",".join(f"{labels[k]}={_fmt(v)}" for k, v in over.items()) or "base")
            rname = sanitise(f"{cell},seed={seed}" if over else f"seed={seed}")
            n = 2
            while rname in used:  # distinct values with equal short forms
                rname = sanitise(f"{cell}_{n},seed={seed}")
                n += 1
            used.add(rname)
            run_raw = copy.deepcopy(base)
            try:
                for k, v in over.items():
                    set_dotted(run_raw, k, v)
            except ConfigError as exc:
                raise ConfigError(f"sweep run {rname!r}: {exc.reason}", file=path,
                                  key=_axis_key(axes, exc.key), line=line_of(text, "sweep")) from None
            run_raw["seed"] = seed
            run_raw["name"] = rname
            if max_epochs is not None:
                tr = run_raw.setdefault("training", {}) or {}
                run_raw["training"] = tr
                tr["epochs"] = min(int(tr.get("epochs", 190)), max_epochs)
            proto = run_raw
            sweep.n_total += 1
            if only and not any(_match(rname, p) for p in only):
                continue
            if validate:
                try:
                    proto = validate_protocol(run_raw, path, text)
                except ConfigError as exc:
                    key = exc.key
                    swept = _axis_key(axes, key) if key else None
                    line = line_of(text, swept) if swept else exc.line
                    raise ConfigError(f"sweep run {rname!r}: {exc.reason}", file=exc.file or path,
                                      key=key, line=line) from None
            sweep.runs.append(SweepRun(rname, {**over, "seed": seed}, proto, cell))
    return sweep


def _axis_key(axes, key):
    """``sweep.<axis>`` of the axis that sets ``key`` (or a parent/child of it), if any."""
    if not key:
        return None
    for a in axes:
        for k in a.keys:
            if key == k or key.startswith(k + ".") or k.startswith(key + "."):
                return f"sweep.{a.key}"
    return None


def load_sweep(path, overrides: dict | None = None, max_epochs=None, validate=True, only=None) -> Sweep:
    """Read a sweep protocol file and expand it (see :func:`expand`)."""
    raw, text = load_yaml(Path(path))
    return expand(raw, path, text, overrides, max_epochs, validate, only)


# ---------------------------------------------------------------------------
# the sweep store
class SweepStore:
    """A Zarr root group (attrs ``kind="sweep"``) holding each run's store as ``runs/<name>``."""

    def __init__(self, path):
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        return (self.path / "zarr.json").exists()

    def open(self, mode="r"):
        return zarr.open_group(str(self.path), mode=mode, use_consolidated=False)

    @property
    def attrs(self) -> dict:
        return dict(self.open("r").attrs)

    def create_or_open(self, sweep: Sweep) -> None:
        from .recording import StoreError, _jsonable, versions

        if self.exists:
            kind = self.attrs.get("kind")
            if kind != KIND:
                raise StoreError(f"{self.path} exists and is not a sweep store (root attr kind={kind!r}); "
                                 f"choose another --out")
        elif self.path.exists() and any(self.path.iterdir()):
            raise StoreError(f"{self.path} exists and is not a Zarr store; choose another --out")
        g = zarr.open_group(str(self.path), mode="a")
        if "kind" not in g.attrs:
            g.attrs.update(_jsonable({
                "kind": KIND, "title": f"neurosim sweep {sweep.name}", "name": sweep.name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "versions": versions(), "runs": {},
            }))
        g.attrs.update(_jsonable({"protocol_file": sweep.file, "sweep_protocol": json.dumps(sweep.raw),
                                  "seeds": sweep.seeds,
                                  "axes": [{"key": a.key, "keys": a.keys} for a in sweep.axes]}))
        zarr.open_group(str(self.path / "runs"), mode="a")

    def run_path(self, name: str) -> Path:
        return self.path / "runs" / name

    def runs(self) -> dict:
        return dict(self.attrs.get("runs", {}))

    def update_runs(self, entries: dict) -> None:
        """Merge ``{name: {field: value}}`` into the root attr ``runs`` (driver only)."""
        from .recording import _jsonable

        g = self.open("r+")
        runs = dict(g.attrs.get("runs", {}))
        for name, info in entries.items():
            runs[name] = {**runs.get(name, {}), **_jsonable(info)}
        g.attrs["runs"] = runs
        g.attrs["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    def run_attrs(self, name: str) -> dict | None:
        """Root attrs of a run's store, or None when it has none (yet)."""
        p = self.run_path(name)
        if not (p / "zarr.json").exists():
            return None
        try:
            return dict(zarr.open_group(str(p), mode="r", use_consolidated=False).attrs)
        except Exception:  # unreadable debris from a killed worker
            return None


def is_sweep_store(path) -> bool:
    p = Path(path)
    if not (p / "zarr.json").exists():
        return False
    try:
        return zarr.open_group(str(p), mode="r", use_consolidated=False).attrs.get("kind") == KIND
    except Exception:
        return False


def run_is_done(attrs: dict | None, protocol: dict) -> bool:
    """A run is done when its store is finished and either stopped early or trained for at
    least the epochs asked for now (so a shortened sweep can later be extended)."""
    if not attrs or attrs.get("status") != "finished":
        return False
    if str(attrs.get("stopped", "")).startswith("early stop"):
        return True
    try:
        had = json.loads(attrs["protocol"])["training"]["epochs"]
    except (KeyError, TypeError, ValueError):
        return True
    return had >= protocol["training"]["epochs"]


def _committed_epoch(path: Path) -> int:
    from .recording import MARKER

    try:
        g = zarr.open_group(str(path), mode="r", use_consolidated=False)
        return int(g.attrs.get(MARKER, {}).get("epoch", 0) or 0)
    except Exception:
        return 0


# ---------------------------------------------------------------------------
# one run (executed on a dask worker)
def run_one(protocol: dict, out: str, device: str | None = None, topic: str | None = None) -> dict:
    """Train one run into ``out`` (resuming its checkpoint if the store exists).

    Never raises for a failing run: returns ``{"status": "failed", "error": ...}`` so that the
    sweep records it and goes on.  Publishes ``start``/``epoch`` events on ``topic``.
    """
    from .recording import Recorder
    from .train import run_protocol

    name = protocol["name"]
    t0 = time.time()
    log = _event_logger(topic)
    try:
        worker = _worker_name()
        if device in ("gpu", "auto"):
            _pick_gpu(worker)
        path = Path(out)
        if path.exists() and not (path / "zarr.json").exists():
            shutil.rmtree(path)  # debris of a worker killed while creating the store
        rec = Recorder(path)
        if rec.exists:  # resuming: the store describes the protocol it is continued with
            rec.set_attrs(protocol=json.dumps(protocol))
        log({"event": "start", "run": name, "worker": worker})
        epochs = protocol["training"]["epochs"]

        last = [time.time()]

        def progress(epoch, batch, n_batches, loss):  # fractional epochs, at most every 20 s
            now = time.time()
            if batch == n_batches or now - last[0] > 20.0:
                last[0] = now
                log({"event": "epoch", "run": name, "epoch": epoch - 1 + batch / n_batches,
                     "epochs": epochs})

        s = run_protocol(protocol, out=str(path), device=device, resume=True, progress=progress)
        return {"status": "finished", "epochs": s.epochs, "steps": s.steps,
                "train_error": s.train_error, "test_error": s.test_error, "stopped": s.stopped,
                "seconds": time.time() - t0, "error": None, "worker": worker}
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, the sweep goes on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:], "seconds": time.time() - t0}


def _worker_name():
    try:
        from distributed import get_worker

        return get_worker().name
    except (ImportError, ValueError):
        return None


def _event_logger(topic):
    if topic is None:
        return lambda msg: None
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        return lambda msg: None

    def log(msg):
        try:
            w.log_event(topic, msg)
        except Exception:  # progress is best effort
            pass

    return log


def _pick_gpu(worker) -> None:
    """One GPU per worker: a LocalCluster worker named i uses GPU i (mod the count)."""
    try:
        import cupy

        n = cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return
    if n and isinstance(worker, int):
        cupy.cuda.Device(worker % n).use()


def gpu_count() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


# ---------------------------------------------------------------------------
# the driver
def _hms(s: float) -> str:
    s = int(round(s))
    h, r = divmod(s, 3600)
    m, sec = divmod(r, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class Progress:
    """Counts and an ETA from epochs completed in this session (an upper bound when runs
    stop early)."""

    def __init__(self, total: int, skipped: int, todo: dict, echo=print):
        self.total, self.skipped = total, skipped
        self.todo = todo  # name -> (start epoch, target epochs)
        self.done_epoch = {n: s for n, (s, _) in todo.items()}
        self.running, self.finished, self.failed = set(), set(), set()
        self.t0 = time.time()
        self.echo = echo

    def event(self, msg: dict) -> None:
        name = msg.get("run")
        if name not in self.todo:
            return
        if msg.get("event") == "start" and name not in self.finished | self.failed:
            self.running.add(name)
        elif msg.get("event") == "epoch":
            self.done_epoch[name] = max(self.done_epoch.get(name, 0), float(msg.get("epoch", 0)))

    def complete(self, name: str, ok: bool) -> None:
        self.running.discard(name)
        (self.finished if ok else self.failed).add(name)
        if ok:
            self.done_epoch[name] = self.todo[name][1]  # early stops count as done

    def eta(self) -> float | None:
        worked = sum(self.done_epoch[n] - s for n, (s, _) in self.todo.items())
        left = sum(max(t - self.done_epoch[n], 0) for n, (_, t) in self.todo.items()
                   if n not in self.failed)
        el = time.time() - self.t0
        if worked <= 0 or el <= 0:
            return None
        return left / (worked / el)

    def line(self) -> str:
        done = self.skipped + len(self.finished)
        queued = len(self.todo) - len(self.finished) - len(self.failed) - len(self.running)
        eta = self.eta()
        epochs = sum(self.done_epoch.values()), sum(t for _, t in self.todo.values())
        return (f"[sweep] {done}/{self.total} done ({self.skipped} skipped), {len(self.running)} running, "
                f"{len(self.failed)} failed, {queued} queued | epochs {epochs[0]:.1f}/{epochs[1]} | "
                f"elapsed {_hms(time.time() - self.t0)} | ETA "
                f"{_hms(eta) if eta is not None else '?'}")


@dataclass
class SweepResult:
    store: str
    total: int
    skipped: list
    finished: list
    failed: dict  # name -> error
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed


def execute(sweep: Sweep, store_path, client, runs=None, device=None, echo=print,
            heartbeat: float = 60.0) -> SweepResult:
    """Run ``runs`` (default: all) of ``sweep`` on a dask ``client``, recording into the
    sweep store at ``store_path``.  Finished runs are skipped, others resumed."""
    from distributed import as_completed

    store = SweepStore(store_path)
    store.create_or_open(sweep)
    runs = sweep.runs if runs is None else runs
    t0 = time.time()
    skipped, todo, submit = [], {}, []
    listing = {}
    for r in runs:
        path = store.run_path(r.name)
        attrs = store.run_attrs(r.name)
        info = {"cell": r.cell, "overrides": r.overrides, "seed": r.overrides["seed"],
                "store": f"runs/{r.name}"}
        if run_is_done(attrs, r.protocol):
            skipped.append(r.name)
            listing[r.name] = {**info, "status": "finished"}
            continue
        proto = copy.deepcopy(r.protocol)
        proto["recording"]["out"] = str(path.resolve())  # workers may run in another directory
        todo[r.name] = (_committed_epoch(path) if attrs else 0, proto["training"]["epochs"])
        submit.append((r, proto))
        listing[r.name] = {**info, "status": "queued", "error": None}
    store.update_runs(listing)
    prog = Progress(len(runs), len(skipped), todo, echo)
    echo(f"[sweep] {sweep.name}: {len(runs)} runs ({len(skipped)} already finished, {len(submit)} to run) "
         f"-> {store.path}")
    finished, failed = [], {}
    if submit:
        topic = f"neurosim-sweep-{uuid.uuid4().hex[:12]}"
        client.subscribe_topic(topic, lambda ev: prog.event(ev[1] if isinstance(ev, tuple) else ev))
        token = uuid.uuid4().hex[:8]
        futures = {}
        for r, proto in submit:
            fut = client.submit(run_one, proto, proto["recording"]["out"], device, topic,
                                key=f"neurosim-run-{r.name}-{token}", pure=False)
            futures[fut] = r.name
        ac = as_completed(list(futures))
        last_beat = time.time()
        try:
            while not ac.is_empty():
                batch = ac.next_batch(block=False)
                for fut in batch:
                    name = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a lost worker, a cancelled task
                        res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    ok = res.get("status") == "finished"
                    prog.complete(name, ok)
                    store.update_runs({name: {**res, "status": res.get("status", "failed")}})
                    if ok:
                        finished.append(name)
                        echo(f"  finished {name}: test {res['test_error']:.2f}% (train "
                             f"{res['train_error']:.2f}%), {res['epochs']} epochs "
                             f"({_stop_reason(res.get('stopped'))}), "
                             f"{res['seconds']:.1f} s")
                    else:
                        failed[name] = res.get("error")
                        echo(f"  FAILED {name}: {res.get('error')}")
                    echo(prog.line())
                    last_beat = time.time()
                if not batch:
                    if time.time() - last_beat >= heartbeat:
                        echo(prog.line())
                        last_beat = time.time()
                    time.sleep(0.1)
        finally:
            try:
                client.unsubscribe_topic(topic)
            except Exception:
                pass
            left = {}
            for fut, name in futures.items():
                if name not in finished and name not in failed:
                    fut.cancel()
                    if store.run_attrs(name) is not None:  # started: resumes from its checkpoint
                        left[name] = {"status": "interrupted"}
            if left:
                store.update_runs(left)
    res = SweepResult(str(store.path), len(runs), skipped, finished, failed, time.time() - t0)
    g = store.open("r+")
    g.attrs["last_invocation"] = {"seconds": res.seconds, "finished": len(finished), "failed": len(failed),
                                  "skipped": len(skipped)}
    return res


def _stop_reason(stopped) -> str:
    """Why a run ended, for the progress line."""
    return "all epochs" if stopped in (None, "", "epochs") else str(stopped)


def local_cluster(workers: int | None = None, device: str | None = None, processes: bool = True):
    """A LocalCluster: one single-threaded worker process per CPU (or per GPU with
    ``device="gpu"``); BLAS/Numba threads per worker = CPUs // workers."""
    import dask
    from distributed import LocalCluster

    ncpu = os.cpu_count() or 1
    if workers is None:
        workers = max(gpu_count(), 1) if device == "gpu" else ncpu
    threads = str(max(1, ncpu // workers))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "NUMBA_NUM_THREADS": threads, "MALLOC_TRIM_THRESHOLD_": 65536}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                            dashboard_address=":0", silence_logs=40)


def run_sweep(sweep: Sweep, store_path, scheduler: str | None = None, workers: int | None = None,
              device: str | None = None, only=None, echo=print, heartbeat: float = 60.0) -> SweepResult:
    """Run a sweep on a new LocalCluster, or on the dask scheduler at ``scheduler``."""
    from distributed import Client

    runs = sweep.select(only)
    store = SweepStore(store_path)
    store.create_or_open(sweep)  # refuses a non-sweep path before any cluster starts
    if all(run_is_done(store.run_attrs(r.name), r.protocol) for r in runs):
        return execute(sweep, store_path, None, runs, device, echo, heartbeat)  # nothing to run
    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = local_cluster(workers, device)
        client = Client(cluster)
    try:
        n = len(client.nthreads())
        echo(f"[sweep] dask: {'scheduler ' + scheduler if scheduler else 'LocalCluster'} with {n} workers")
        return execute(sweep, store_path, client, runs, device, echo, heartbeat)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
