"""Brian2 in an environment of its own, and the exchange of arrays with it.

Brian2 is the simulator a computational neuroscientist would use to build neurosim's circuits in
time by hand; the tests in ``tests/test_brian2.py`` and the Brian2 column of ``python -m
benchmarks`` compare neurosim with it.  Brian2 2.9 (the newest release for Python 3.11) does not
import with NumPy 2.4, which neurosim uses, so Brian2 runs in a virtual environment of its own
(Brian2 and a NumPy it supports), created on first use from the package index and cached:

    ${NEUROSIM_BRIAN2_ENV:-${XDG_CACHE_HOME:-~/.cache}/neurosim/brian2-<version>-py<X.Y>}

:func:`run` starts ``benchmarks/brian2_side.py`` with that environment's Python, gives it the
inputs of a task as an ``.npz`` file and reads its results from another; a :class:`Session`
keeps one such process for a series of tasks.  The script imports
Brian2 and NumPy only, never neurosim.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BRIAN2_VERSION = "2.9.0"
#: what the environment installs: Brian2 2.9 calls ``ndarray.ptp``, which NumPy 2.4 removed
REQUIREMENTS = (f"brian2=={BRIAN2_VERSION}", "numpy>=1.26,<2.4", "cython>=3.0", "setuptools")
SIDE = Path(__file__).resolve().parent / "brian2_side.py"
#: pip messages that mean the package index could not be reached (the only reason to skip)
OFFLINE = ("Max retries exceeded", "NewConnectionError", "Temporary failure in name resolution",
           "Name or service not known", "Network is unreachable", "No matching distribution found",
           "ProxyError", "Connection refused", "ConnectTimeoutError")


class Unavailable(Exception):
    """The Brian2 environment cannot be created here: the package index is unreachable."""


class Brian2Error(RuntimeError):
    """The Brian2 side failed (its message carries the end of the child's output)."""


def env_dir() -> Path:
    """Where the environment lives (``NEUROSIM_BRIAN2_ENV`` overrides the cache location)."""
    if os.environ.get("NEUROSIM_BRIAN2_ENV"):
        return Path(os.environ["NEUROSIM_BRIAN2_ENV"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    v = sys.version_info
    return cache / "neurosim" / f"brian2-{BRIAN2_VERSION}-py{v.major}.{v.minor}"


def _python(d: Path) -> Path:
    return d / "bin" / "python"


def _stamp(d: Path) -> Path:
    return d / "neurosim-brian2.stamp"


def _ready(d: Path) -> bool:
    st = _stamp(d)
    return st.exists() and st.read_text() == "\n".join(REQUIREMENTS) and _python(d).exists()


def ensure(log=None) -> Path:
    """The Python executable of the Brian2 environment, created first if needed (about half a
    minute: a venv and ``pip install`` of :data:`REQUIREMENTS`).  Raises :class:`Unavailable`
    when pip cannot reach the package index, :class:`Brian2Error` on any other failure."""
    d = env_dir()
    if _ready(d):
        return _python(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    with open(d.parent / (d.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time; the others wait and reuse it
        if _ready(d):
            return _python(d)
        if d.exists():
            shutil.rmtree(d)
        t0 = time.perf_counter()
        if log:
            log(f"creating the Brian2 environment in {d} ...")
        env = _clean_env()
        _check(subprocess.run([sys.executable, "-m", "venv", str(d)], capture_output=True, text=True,
                              env=env), "python -m venv")
        proc = subprocess.run([str(_python(d)), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            out = proc.stdout + proc.stderr
            shutil.rmtree(d, ignore_errors=True)
            if any(m in out for m in OFFLINE):
                raise Unavailable("the package index is unreachable, Brian2 cannot be installed: "
                                  + _tail(out))
            raise Brian2Error(f"pip install {' '.join(REQUIREMENTS)} failed: {_tail(out)}")
        _check(subprocess.run([str(_python(d)), "-c", "import brian2"], capture_output=True, text=True,
                              env=env), "import brian2")
        _stamp(d).write_text("\n".join(REQUIREMENTS))
        if log:
            log(f"created the Brian2 environment in {time.perf_counter() - t0:.0f} s")
    return _python(d)


def run(task: str, inputs: dict, target: str = "numpy", timeout: float = 1800) -> dict:
    """Run ``task`` of ``benchmarks/brian2_side.py`` in the Brian2 environment on ``inputs``
    (arrays and numbers; a dict is passed as its items) with Brian2's code generation
    ``target`` (numpy | cython); its outputs as a dict of arrays (0-d arrays for numbers)."""
    py = ensure()
    with tempfile.TemporaryDirectory(prefix="neurosim_brian2_") as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        _save(src, inputs)
        proc = subprocess.run([str(py), str(SIDE), task, str(src), str(dst), "--target", target],
                              capture_output=True, text=True, env=_clean_env(), timeout=timeout, cwd=tmp)
        if proc.returncode != 0 or not dst.exists():
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            errors = [s for s in lines if ("Error" in s or "Exception" in s) and not s.startswith("ERROR ")]
            raise Brian2Error(f"brian2_side.py {task} failed: " + " | ".join(errors or lines[-3:]))
        return _load(dst)


def _save(path: Path, inputs: dict) -> None:
    """A task's inputs (arrays and numbers) as an ``.npz`` file for the Brian2 side."""
    np.savez(path, **{k: np.asarray(v) for k, v in inputs.items()})


def _load(path: Path) -> dict:
    """A task's outputs, read from the Brian2 side's ``.npz`` file into memory."""
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


class Session:
    """One Brian2 process for a series of tasks (``brian2_side.py --serve``): Brian2 is imported
    once, not once per task.  :meth:`run` is :func:`run` for the runtime targets (numpy,
    cython).  A context manager; the process ends on :meth:`close`."""

    def __init__(self, timeout: float = 1800):
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="neurosim_brian2_")
        self._log = open(Path(self._tmp.name) / "stderr.txt", "w+")
        self._proc = subprocess.Popen([str(ensure()), str(SIDE), "--serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._log, text=True,
                                      env=_clean_env(), cwd=self._tmp.name)
        self._n = 0

    def run(self, task: str, inputs: dict, target: str = "numpy") -> dict:
        self._n += 1
        src, dst = (Path(self._tmp.name) / f"{self._n}.{x}.npz" for x in ("in", "out"))
        _save(src, inputs)
        try:
            self._proc.stdin.write(f"{task}\t{src}\t{dst}\t{target}\n")
            self._proc.stdin.flush()
            reply = self._reply()
        except BrokenPipeError:  # the process had ended
            reply = ""
        src.unlink()
        if reply != "ok" or not dst.exists():
            why = reply.removeprefix("error ") if reply else self._stderr_tail()
            raise Brian2Error(f"brian2_side.py {task} failed: {why}")
        out = _load(dst)
        dst.unlink()
        return out

    def _reply(self) -> str:
        """The answer to the task just sent ("" when the process ended; killed after
        ``timeout`` seconds without one)."""
        timer = threading.Timer(self.timeout, self._proc.kill)
        timer.start()
        try:
            while line := self._proc.stdout.readline():
                if line.startswith("@neurosim-brian2 "):
                    return line.split(" ", 1)[1].strip()
        finally:
            timer.cancel()
        return "" if self._proc.wait() != -9 else f"no answer within {self.timeout:g} s"

    def _stderr_tail(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return "the Brian2 process ended: " + _tail(self._log.read(), 3)

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _clean_env() -> dict:
    """This process's environment without the paths that would put neurosim's packages (and
    its NumPy) in front of the Brian2 environment's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _check(proc, what: str) -> None:
    if proc.returncode != 0:
        raise Brian2Error(f"{what} failed: {_tail(proc.stdout + proc.stderr)}")


def _tail(text: str, n: int = 2) -> str:
    lines = [s for s in text.strip().splitlines() if s.strip()]
    return " | ".join(lines[-n:]) if lines else "no output"
