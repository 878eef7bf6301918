import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

#: The real data beside a checkout (``../shared/data``): the suite uses it when
#: ``NEUROSIM_DATA_DIR`` is unset, so the README's test command and CI run the same tests.
#: Set here, at conftest import, before any test module reads the variable; subprocesses
#: inherit it.  The package itself still reads only ``NEUROSIM_DATA_DIR`` or its cache.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not os.environ.get("NEUROSIM_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["NEUROSIM_DATA_DIR"] = str(SHARED_DATA)


from neurosim.core.backend import Backend  # noqa: E402  (after the data directory is set)


def pytest_report_header(config):
    unset = "(unset: real-data tests skip)"
    return f"NEUROSIM_DATA_DIR: {os.environ.get('NEUROSIM_DATA_DIR', unset)}"


@pytest.fixture
def be64():
    return Backend("cpu", "float64", seed=123)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def mnist_dir():
    d = os.environ.get("NEUROSIM_DATA_DIR")
    if d and all((Path(d) / "mnist" / f).exists() for f in (
            "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        return d
    return None


requires_mnist = pytest.mark.skipif(mnist_dir() is None,
                                    reason="real MNIST not found in $NEUROSIM_DATA_DIR/mnist")


@pytest.fixture
def holder():
    from neurosim.recording.store.lock import StoreLock

    """Fork a process that holds the lock of a store (any path to it) until it is killed."""
    procs = []

    def start(path):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                StoreLock(path).acquire()
                os.write(w, b"held")
                time.sleep(120)
            finally:
                os._exit(0)
        procs.append((pid, r, w))
        assert os.read(r, 4) == b"held"
        return pid

    yield start
    for pid, r, w in procs:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(r)
        os.close(w)


@pytest.hookimpl(optionalhook=True)  # known only where pytest-xdist is installed and enabled
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the default, in pyproject.toml): one worker per CPU this process may use, at
    most four (each worker imports the package and some tests start clusters and subprocesses
    of their own); ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it."""
    env = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if env and env.isdigit():
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cpus, 4))
