"""Array backend: NumPy on the CPU or CuPy on a GPU, chosen once per run.

Every array routine in neurosim is written once against ``backend.xp`` (the
array module) so that the same code runs on both devices, in the spirit of
Brian2's device separation.  Random numbers come from *named streams* derived
from the run's seed, so that adding a new consumer of randomness never shifts
the numbers another one sees, and so that a resumed run reproduces the
uninterrupted one exactly (streams are keyed by epoch/step, not advanced
statefully).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np

#: Named random streams.  The integer is mixed into the seed sequence.
STREAMS = {
    "init": 1,  # weight initialisation
    "gating": 2,  # gating vectors t
    "data": 3,  # mini-batch order
    "feedback": 4,  # FA / DFA feedback matrices
    "noise": 5,  # perturbations (node perturbation, dropout)
    "synthetic": 6,  # synthetic datasets
    "record": 7,  # choice of recorded samples / synapses
}

_DTYPES = {"float32": np.float32, "float64": np.float64}


#: how this project's GPU extra is installed (from the source directory; the name
#: "neurosim" on the package registry belongs to a different project)
INSTALL_GPU = 'python -m pip install -e ".[gpu]"'


class DeviceError(RuntimeError):
    """The requested device cannot be used here (bad input: ``neurosim run`` exits 2)."""


#: a module standing in for CuPy as device ``gpu`` and the type of its arrays, while
#: :func:`gpu_standin` is active (tests: ``tests/strict_device.py``); None: CuPy
_STANDIN: tuple | None = None


@contextlib.contextmanager
def gpu_standin(module, array_type):
    """Device ``gpu`` is ``module`` (CuPy's API, arrays of ``array_type``) within the block."""
    global _STANDIN
    old, _STANDIN = _STANDIN, (module, array_type)
    try:
        yield module
    finally:
        _STANDIN = old


def gpu_module():
    """The array module of device ``gpu``: CuPy, or the stand-in of :func:`gpu_standin`."""
    if _STANDIN is not None:
        return _STANDIN[0]
    import cupy

    return cupy


def gpu_problem() -> str | None:
    """Why device ``gpu`` cannot be used on this machine, or None when it can."""
    if _STANDIN is not None:
        return None
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    except Exception as exc:  # pragma: no cover - a broken CUDA installation
        return f"CuPy does not load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # pragma: no cover - depends on the machine
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"CuPy finds no usable CUDA GPU ({first})"
    return None if n > 0 else "CuPy finds no CUDA GPU"  # pragma: no cover


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return gpu_problem() is None


def resolve_device(device: str) -> str:
    """``cpu`` or ``gpu`` for a requested ``cpu`` / ``gpu`` / ``auto``; :class:`DeviceError`
    (one line, with the install command) when ``gpu`` is asked for and cannot be used."""
    if device == "auto":
        return "gpu" if cupy_available() else "cpu"
    if device == "gpu":
        why = gpu_problem()
        if why is not None:
            raise DeviceError(f"device 'gpu' needs CuPy and a CUDA GPU, and {why}. Install the GPU "
                              f"extra from the neurosim source directory with `{INSTALL_GPU}` "
                              f"(CUDA 12), or use --device cpu")
    return device


def numba_enabled() -> bool:
    """Numba kernels are used unless ``NEUROSIM_NUMBA=0`` or numba is missing."""
    if os.environ.get("NEUROSIM_NUMBA", "1") == "0":
        return False
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover
        return False
    return True


def stream_seed(seed: int, stream: str, *keys: int) -> np.random.SeedSequence:
    """Seed sequence of a named stream, optionally keyed (e.g. by epoch)."""
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}; known: {sorted(STREAMS)}")
    return np.random.SeedSequence([int(seed), STREAMS[stream], *[int(k) for k in keys]])


@dataclass
class Backend:
    """The device, the float dtype and the random streams of one run.

    Parameters
    ----------
    device : ``"cpu"``, ``"gpu"`` or ``"auto"`` (GPU when CuPy sees one).
    dtype : ``"float32"`` (default) or ``"float64"`` (tests, exact comparisons).
    seed : master seed of every random stream.
    """

    device: str = "cpu"
    dtype: str = "float32"
    seed: int = 0
    xp: object = field(init=False, repr=False)

    def __post_init__(self):
        if self.device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"device must be cpu, gpu or auto, not {self.device!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, not {self.dtype!r}")
        self.device = resolve_device(self.device)
        if self.device == "gpu":
            self.xp = gpu_module()
        else:
            self.xp = np

    @property
    def float(self):
        return _DTYPES[self.dtype]

    @property
    def is_gpu(self) -> bool:
        return self.device == "gpu"

    # --- random numbers -------------------------------------------------
    def rng(self, stream: str, *keys: int) -> np.random.Generator:
        """A host NumPy generator for ``stream`` (keyed by ``keys``).

        Numbers drawn once (the network) or once per epoch (the batch order) come from here
        and are moved to the device: the same seed gives the same network on CPU and GPU.
        Numbers needed at every step come from :meth:`device_rng`.
        """
        return np.random.default_rng(stream_seed(self.seed, stream, *keys))

    def device_rng(self, stream: str, *keys: int) -> DeviceRandom:
        """Draws made on the run's device from ``stream`` (keyed by ``keys``): for numbers
        needed at every step (noise, dropout masks), which must not be drawn on the host and
        copied over.  On the CPU the numbers are :meth:`rng`'s; on the GPU CuPy's generator
        is seeded from the same seed sequence (reproducible, but device-specific numbers)."""
        return DeviceRandom(self, stream_seed(self.seed, stream, *keys))

    # --- transfers -------------------------------------------------------
    def asarray(self, a, dtype=None):
        """Move ``a`` to the device with the run's float dtype (or ``dtype``)."""
        return self.xp.asarray(a, dtype=self.float if dtype is None else dtype)

    def to_host(self, a) -> np.ndarray:
        """A NumPy copy of a device array (no copy for NumPy input)."""
        if self.xp is np:
            return np.asarray(a)
        return self.xp.asnumpy(a)

    def describe(self) -> dict:
        info = {"device": self.device, "dtype": self.dtype, "numpy": np.__version__}
        if self.is_gpu:
            info["cupy"] = self.xp.__version__
            props = self.xp.cuda.runtime.getDeviceProperties(0)
            info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return info


class DeviceRandom:
    """Uniform and normal float64 numbers on a backend's device (see :meth:`Backend.device_rng`)."""

    def __init__(self, backend: Backend, ss: np.random.SeedSequence):
        self.host = backend.xp is np
        if self.host:
            self.g = np.random.default_rng(ss)
        else:
            self.g = backend.xp.random.RandomState(int(ss.generate_state(1)[0]))

    def random(self, shape):
        """Uniform on [0, 1)."""
        return self.g.random(shape) if self.host else self.g.random_sample(shape, dtype=np.float64)

    def standard_normal(self, shape):
        return self.g.standard_normal(shape) if self.host else \
            self.g.standard_normal(shape, dtype=np.float64)


def to_host(a) -> np.ndarray:
    """NumPy copy of a NumPy or CuPy array (no copy for NumPy input)."""
    if array_module(a) is np:
        return np.asarray(a)
    return a.get()


def array_module(a):
    """The array module (``numpy`` or ``cupy``) that owns ``a``: ``cupy`` for a CuPy
    array, ``numpy`` for anything else (NumPy arrays and scalars, Python numbers).

    The one place neurosim asks which library an array belongs to; array code
    starts with ``xp = array_module(x)`` and is then written once for both.
    CuPy is imported only when ``a`` is one of its arrays.
    """
    if type(a).__module__.partition(".")[0] == "cupy":
        import cupy

        return cupy
    if _STANDIN is not None and type(a) is _STANDIN[1]:
        return _STANDIN[0]
    return np
