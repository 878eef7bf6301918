"""Sweep execution: the per-worker run and the driver on dask.distributed.

The driver (:func:`execute`, :func:`run_sweep`) opens the sweep store, skips runs whose store is
done (:func:`run_is_done`), submits the others as tasks
(:func:`run_one`) and records each result in the store's ``runs`` listing as it arrives.  A
worker resumes an existing run store from its last committed checkpoint, under the store's
writer lock, and only when the store was made by the same protocol up to the length of training;
it never raises, so one failing run does not stop the sweep.  When the driver stops before
seeing every run end (Ctrl-C, SIGTERM), each unseen run's status is read from its own store.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..core.options import freeze
from ..protocol import declared_default
from ..recording import session
from ..recording.reader import committed_epoch
from ..recording.sweep_store import SweepStore
from .grammar import Sweep


def run_is_done(attrs: dict | None, protocol: dict) -> bool:
    """Whether a run whose store has root ``attrs`` has nothing left to do under ``protocol``
    (:func:`neurosim.recording.session.run_is_done`)."""
    return session.run_is_done(attrs, protocol, declared_default)


def check_resumable(protocol: dict, path) -> list:
    """The resume policy for the run store at ``path`` (StoreError: it cannot continue)."""
    from ..recording import Recorder

    return session.check_resumable(protocol, Recorder(path), declared_default)


# ---------------------------------------------------------------------------
# one run (executed on a dask worker)
def run_one(protocol: dict, out: str, device: str | None = None, topic: str | None = None) -> dict:
    """Train one run into ``out`` (resuming its checkpoint if the store exists).

    The run store's writer lock is held throughout.  An existing store is continued only when
    it was made by the same protocol up to the length of training
    (:func:`neurosim.recording.session.check_resumable`, as ``neurosim run --resume``): otherwise the run
    fails with that message and its store is left exactly as it was.

    Never raises for a failing run: returns ``{"status": "failed", "error": ...}`` so that the
    sweep records it and goes on.  Publishes ``start``/``epoch`` events on ``topic``.
    """
    from ..core import host
    from ..recording import Recorder
    from ..train import run_protocol

    host.configure()  # a worker process is not the CLI: apply the host settings here (once)
    name = protocol["name"]
    t0 = time.time()
    log = _event_logger(topic)
    try:
        worker = _worker_name()
        if device in ("gpu", "auto"):
            _pick_gpu(worker)
        path = Path(out)
        rec = Recorder(path)
        with rec.lock():  # re-entered by run_protocol: nothing is read or written unlocked
            if path.is_dir() and not (path / "zarr.json").exists() and not any(path.iterdir()):
                path.rmdir()  # an empty folder; anything else is left for prepare_store to judge
            if rec.exists:  # refused before anything is written; the store keeps its provenance
                check_resumable(protocol, path)
            log({"event": "start", "run": name, "worker": worker})
            tr = freeze(protocol).training  # (typed; a caller may pass a plain dict)
            epochs, max_steps = tr.epochs, tr.max_steps

            last = [time.time()]

            def progress(epoch, batch, n_batches, loss):  # fractional epochs, at most every 20 s
                now = time.time()
                if batch == n_batches or now - last[0] > 20.0:
                    last[0] = now
                    # the run's length in epochs: max_steps may end it early
                    target = min(epochs, max_steps / n_batches) if max_steps else epochs
                    log({"event": "epoch", "run": name, "epoch": epoch - 1 + batch / n_batches,
                         "epochs": epochs, "target": target})

            s = run_protocol(protocol, out=str(path), device=device, resume=rec.exists,
                             progress=progress)
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


def run_length(protocol: dict) -> float:
    """A run's length in epochs: ``training.epochs``, or less where ``training.max_steps`` ends
    it first (known without loading the data for datasets of known size; otherwise the
    run's first progress event says it)."""
    from ..protocol import train_examples

    tr = freeze(protocol).training
    epochs = float(tr.epochs)
    if not tr.max_steps:
        return epochs
    n = train_examples(protocol)
    if not n:
        return epochs
    return min(epochs, tr.max_steps / -(-n // tr.batch_size))


class SweepProgress:
    """Counts and an ETA from epochs completed in this session, each run counted to its own
    length (``training.max_steps`` included; an upper bound when runs stop early)."""

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
            if msg.get("target") is not None:  # the run's own length (max_steps), now known
                self.todo[name] = (self.todo[name][0], float(msg["target"]))

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
                f"{len(self.failed)} failed, {queued} queued | epochs {epochs[0]:.1f}/{epochs[1]:.4g} | "
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
        # workers may run in another directory
        proto = r.protocol.replace(recording=r.protocol.recording.replace(out=str(path.resolve())))
        todo[r.name] = (committed_epoch(path) if attrs else 0, run_length(proto))
        submit.append((r, proto))
        listing[r.name] = {**info, "status": "queued", "error": None}
    store.update_runs(listing)
    prog = SweepProgress(len(runs), len(skipped), todo, echo)
    echo(f"[sweep] {sweep.name}: {len(runs)} runs ({len(skipped)} already finished, {len(submit)} to run) "
         f"-> {store.path}")
    finished, failed = [], {}
    if submit:
        topic = f"neurosim-sweep-{uuid.uuid4().hex[:12]}"
        client.subscribe_topic(topic, lambda ev: prog.event(ev[1] if isinstance(ev, tuple) else ev))
        token = uuid.uuid4().hex[:8]
        futures = {}
        for r, proto in submit:
            fut = client.submit(run_one, proto, proto.recording.out, device, topic,
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
            unseen = [name for name in futures.values() if name not in finished and name not in failed]
            for fut, name in futures.items():
                if name in unseen:
                    fut.cancel()
            store.settle(unseen)  # each run as its own store says: a finished run stays finished
            store.remove_stale_writer_files()
    res = SweepResult(str(store.path), len(runs), skipped, finished, failed, time.time() - t0)
    g = store.open("r+")
    g.attrs["last_invocation"] = {"seconds": res.seconds, "finished": len(finished), "failed": len(failed),
                                  "skipped": len(skipped)}
    return res


def _stop_reason(stopped) -> str:
    """Why a run ended, for the progress line."""
    return "all epochs" if session.Stop.parse(stopped) is session.Stop.EPOCHS else str(stopped)


def local_cluster(workers: int | None = None, device: str | None = None, processes: bool = True):
    """A LocalCluster: one single-threaded worker process per CPU (or per GPU with
    ``device="gpu"``); BLAS/Numba threads per worker = CPUs // workers.

    The workers do not get dask's usual ``MALLOC_TRIM_THRESHOLD_``: each run applies
    :func:`neurosim.core.host.configure` in its worker (:func:`run_one`), which keeps freed
    large blocks in the heap, as the ``neurosim`` command does."""
    import dask
    from distributed import LocalCluster

    ncpu = os.cpu_count() or 1
    if workers is None:
        workers = max(gpu_count(), 1) if device == "gpu" else ncpu
    threads = str(max(1, ncpu // workers))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "NUMBA_NUM_THREADS": threads}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env,
                          "distributed.scheduler.worker-saturation": 1.0}):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                            dashboard_address=":0", silence_logs=40)


def _refuse_edited(store: SweepStore, runs) -> None:
    """Refuse (StoreError, before any run starts) a sweep whose runs already in the store were
    made by a different protocol: no run of it could continue, and rerunning cannot help."""
    from ..recording import StoreError

    bad = []
    for r in runs:
        attrs = store.run_attrs(r.name)
        if attrs is None or run_is_done(attrs, r.protocol):
            continue
        try:
            check_resumable(r.protocol, store.run_path(r.name))
        except StoreError as exc:
            bad.append((r.name, str(exc)))
    if bad:
        name, why = bad[0]
        why = why.split(": ", 1)[1] if ": " in why else why
        raise StoreError(
            f"{store.path} holds {len(bad)} run(s) that cannot continue under this sweep protocol "
            f"(run {name}: {why.split('. Resume with')[0]}). Run the edited sweep into a new store "
            f"(--out NEW.zarr), or restore the protocol the store was made with (its attr "
            f"sweep_protocol)")


def run_sweep(sweep: Sweep, store_path, scheduler: str | None = None, workers: int | None = None,
              device: str | None = None, only=None, echo=print, heartbeat: float = 60.0) -> SweepResult:
    """Run a sweep on a new LocalCluster, or on the dask scheduler at ``scheduler``.

    However it ends, once the cluster is closed the listing of every run whose end the driver
    did not see is settled from the run's own store, and stale run locks are removed."""
    from distributed import Client

    runs = sweep.select(only)
    store = SweepStore(store_path)
    if store.exists:
        _refuse_edited(store, runs)
    store.create_or_open(sweep)  # refuses a non-sweep path before any cluster starts
    if all(run_is_done(store.run_attrs(r.name), r.protocol) for r in runs):
        return execute(sweep, store_path, None, runs, device, echo, heartbeat)  # nothing to run
    # dask's own logging in this process: its INFO records carry tracebacks of connections
    # closed by Ctrl-C/SIGTERM; the sweep reports what happened in its own words
    dask_log = logging.getLogger("distributed")
    level = dask_log.level
    dask_log.setLevel(logging.ERROR)
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
        store.settle([r.name for r in runs])  # runs that ended while the cluster shut down
        store.remove_stale_writer_files()
        dask_log.setLevel(level)
