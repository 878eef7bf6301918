"""A strict stand-in for CuPy, backed by NumPy, for tests of the device path without a GPU.

``StrictArray`` wraps a NumPy array and behaves like a CuPy array where placement matters:

* crossing to the host implicitly is refused with ``TypeError``, as CuPy refuses it:
  ``numpy.asarray(a)`` / ``a.__array__()``, a NumPy function or ufunc applied to ``a``
  (``np.exp(a)``, ``np.sum(a)``), arithmetic or a module function mixing ``a`` with a NumPy
  array;
* what CuPy allows but pays for with a device synchronisation is allowed and *counted*:
  ``float(a)``, ``int(a)``, ``bool(a)``, ``a.item()``, ``a.tolist()``, ``a.__index__``,
  printing, and operations whose result shape depends on the data (``nonzero``,
  ``flatnonzero``, ``unique``, indexing or assigning through a boolean mask: CuPy reads the
  number of True values back to the host);
* the explicit crossings are counted too: ``a.get()`` / ``asnumpy`` (device -> host, what the
  backend's ``to_host`` calls) and ``asarray`` of host data (host -> device).

Reductions return 0-d device arrays, as CuPy's do (NumPy returns host scalars).  The module
(:data:`xp`) offers NumPy's functions on device arrays, ``random.RandomState`` drawing on the
"device", ``asnumpy``, a ``cuda.runtime`` that describes the stand-in, and an
``ElementwiseKernel`` that runs neurosim's three kernels (Adam, the vector gate, the GEVB
contraction) after checking their arguments the way CuPy would (device arrays only, one dtype
per type placeholder).  :func:`strict_gpu` makes ``Backend("gpu")`` use it.

Every counted event is logged with the neurosim source line that caused it
(:attr:`Log.events`), so a test can say where a host synchronisation happens.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import types
from collections import Counter

import numpy as np

import neurosim
from neurosim.core import backend as _backend

_PKG = os.path.dirname(os.path.abspath(neurosim.__file__))
_HERE = os.path.abspath(__file__)
_TRANSPARENT = {_HERE, os.path.abspath(_backend.__file__)}  # frames that report their caller

#: kinds of counted events
SYNC = "sync"  # implicit: the host waits for the device and reads a value (CuPy allows it)
D2H = "d2h"  # explicit device -> host copy (to_host, .get(), asnumpy)
H2D = "h2d"  # host -> device copy (asarray of host data, host values assigned into an array)


class Log:
    """Counted events: ``(kind, what, where)`` with ``where`` the neurosim ``file:line``."""

    def __init__(self):
        self.events: list = []
        self.raise_on_sync = False

    def mark(self) -> int:
        return len(self.events)

    def since(self, mark: int) -> list:
        return self.events[mark:]

    def count(self, kind: str, mark: int = 0) -> int:
        return sum(1 for e in self.events[mark:] if e[0] == kind)

    def where(self, kind: str, mark: int = 0) -> Counter:
        return Counter(f"{e[1]} at {e[2]}" for e in self.events[mark:] if e[0] == kind)


LOG = Log()


def _caller() -> str:
    """``file:line`` of the innermost frame in neurosim's source (else the innermost frame
    outside this module)."""
    f = sys._getframe(2)
    first = None
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if fn not in _TRANSPARENT:
            if first is None:
                first = f"{os.path.basename(fn)}:{f.f_lineno}"
            if fn.startswith(_PKG):
                return f"{os.path.relpath(fn, os.path.dirname(_PKG))}:{f.f_lineno}"
        f = f.f_back
    return first or "?"


def _event(kind: str, what: str) -> None:
    where = _caller()
    if kind == SYNC and LOG.raise_on_sync:
        raise HostSyncError(f"host synchronisation ({what}) at {where}")
    LOG.events.append((kind, what, where))


class HostSyncError(RuntimeError):
    """An implicit host synchronisation while :func:`no_sync` forbids them."""


@contextlib.contextmanager
def no_sync():
    """Make implicit host synchronisations raise (with their place) instead of counting them."""
    old, LOG.raise_on_sync = LOG.raise_on_sync, True
    try:
        yield
    finally:
        LOG.raise_on_sync = old


def _refuse_host(obj, what: str):
    raise TypeError(f"{what}: a NumPy array ({type(obj).__name__}, shape "
                    f"{getattr(obj, 'shape', '?')}) where a device array is needed (CuPy refuses "
                    f"implicit host->device conversion; use backend.asarray)")


# --------------------------------------------------------------------------------------------
# wrapping and unwrapping


def _unwrap(obj, what: str):
    """The NumPy value under ``obj``; host NumPy arrays are refused (CuPy would)."""
    t = type(obj)
    if t is StrictArray:
        return obj._a
    if t is np.ndarray:
        _refuse_host(obj, what)
    if t in (list, tuple):
        return t(_unwrap(o, what) for o in obj)
    return obj


def _wrap(obj):
    t = type(obj)
    if t is np.ndarray:
        return StrictArray(obj)
    if isinstance(obj, np.generic):  # CuPy returns 0-d device arrays, not host scalars
        return StrictArray(np.asarray(obj))
    if t in (list, tuple):
        return t(_wrap(o) for o in obj)
    return obj


def _is_bool_mask(key) -> bool:
    keys = key if type(key) is tuple else (key,)
    return any(type(k) is StrictArray and k._a.dtype == np.bool_ and k._a.ndim > 0 for k in keys)


def _index(key, what: str):
    """An index for the NumPy array below: device index arrays unwrapped; a host index array
    is an upload (CuPy copies it to the device)."""
    if type(key) is tuple:
        return tuple(_index(k, what) for k in key)
    if type(key) is StrictArray:
        return key._a
    if type(key) is np.ndarray:
        _event(H2D, f"host index array in {what}")
    return key


class StrictArray:
    """A device array: a NumPy array that refuses implicit crossings to the host."""

    __slots__ = ("_a",)
    __array_priority__ = 1000
    __array_ufunc__ = None  # NumPy ufuncs (np.exp(a), host_array + a) refuse it

    def __init__(self, a: np.ndarray):
        self._a = a

    # --- refused implicit conversions -------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly (strict device: "
                        "use backend.to_host)")

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} applied to a device array: use the backend's "
                        f"array module (xp.{func.__name__})")

    # --- counted synchronisations ------------------------------------------------------
    def __float__(self):
        _event(SYNC, "float()")
        return float(self._a)

    def __int__(self):
        _event(SYNC, "int()")
        return int(self._a)

    def __index__(self):
        _event(SYNC, "__index__")
        return self._a.__index__()

    def __complex__(self):
        _event(SYNC, "complex()")
        return complex(self._a)

    def __bool__(self):
        _event(SYNC, "bool()")
        return bool(self._a)

    def item(self, *args):
        _event(SYNC, ".item()")
        return self._a.item(*args)

    def tolist(self):
        _event(SYNC, ".tolist()")
        return self._a.tolist()

    def __repr__(self):
        _event(SYNC, "repr()")
        return f"strict_device.array({self._a!r})"

    def __str__(self):
        _event(SYNC, "str()")
        return str(self._a)

    def __format__(self, spec):
        _event(SYNC, "format()")
        return format(self._a if self._a.ndim else self._a[()], spec)

    def __contains__(self, v):
        _event(SYNC, "in")
        return v in self._a

    # --- explicit crossing -------------------------------------------------------------
    def get(self, stream=None, order="C", out=None):
        _event(D2H, ".get()")
        return np.array(self._a, order=order)

    # --- shape and layout (no data read) -----------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    real = property(lambda self: StrictArray(self._a.real))
    imag = property(lambda self: StrictArray(self._a.imag))

    @property
    def base(self):
        return None if self._a.base is None else StrictArray(self._a.base)

    def __len__(self):
        return len(self._a)

    def __iter__(self):  # CuPy yields device arrays
        for r in self._a:
            yield _wrap(r)

    def __hash__(self):
        raise TypeError("unhashable type: 'StrictArray'")

    def __copy__(self):
        return StrictArray(self._a.copy())

    def __deepcopy__(self, memo):
        return StrictArray(self._a.copy())

    def __reduce__(self):
        raise TypeError("a device array cannot be pickled here: copy it to the host first")

    # --- indexing -----------------------------------------------------------------------
    def __getitem__(self, key):
        if _is_bool_mask(key):
            _event(SYNC, "boolean-mask indexing")
        return _wrap(self._a[_index(key, "indexing")])

    def __setitem__(self, key, value):
        if _is_bool_mask(key):
            _event(SYNC, "boolean-mask assignment")
        if type(value) is np.ndarray:
            _event(H2D, "host array assigned into a device array")
        elif type(value) is StrictArray:
            value = value._a
        elif type(value) in (list, tuple):
            value = _unwrap(value, "assignment")
        self._a[_index(key, "assignment")] = value

    # --- methods: NumPy's, with device arguments and results -------------------------
    def __getattr__(self, name):
        if name.startswith("__") or name in ("tobytes", "tofile", "dump", "dumps"):
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            @functools.wraps(attr)
            def method(*args, **kwargs):
                return _wrap(attr(*_unwrap(args, f".{name}()"),
                                  **{k: _unwrap(v, f".{name}()") for k, v in kwargs.items()}))
            return method
        return _wrap(attr)


def _binary(name):
    def op(self, other):
        if type(other) is np.ndarray:
            _refuse_host(other, f"operator {name}")
        o = other._a if type(other) is StrictArray else other
        r = getattr(self._a, name)(o)
        return NotImplemented if r is NotImplemented else _wrap(r)
    op.__name__ = name
    return op


def _inplace(name):
    def op(self, other):
        if type(other) is np.ndarray:
            _refuse_host(other, f"operator {name}")
        o = other._a if type(other) is StrictArray else other
        getattr(self._a, name)(o)
        return self
    op.__name__ = name
    return op


def _unary(name):
    def op(self):
        return _wrap(getattr(self._a, name)())
    op.__name__ = name
    return op


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
           "xor", "lshift", "rshift"):
    setattr(StrictArray, f"__{_n}__", _binary(f"__{_n}__"))
    setattr(StrictArray, f"__r{_n}__", _binary(f"__r{_n}__"))
    setattr(StrictArray, f"__i{_n}__", _inplace(f"__i{_n}__"))
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_n}__", _binary(f"__{_n}__"))
for _n in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_n}__", _unary(f"__{_n}__"))


# --------------------------------------------------------------------------------------------
# the module

#: creation functions that take host data (an upload when it is an array or a list)
_UPLOADS = {"asarray", "array", "asanyarray"}
#: functions whose result shape depends on the data: CuPy reads a count back to the host
_DATA_SHAPED = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"}


def _module_function(name, f):
    if name in _UPLOADS:
        def upload(obj, *args, **kwargs):
            if type(obj) is StrictArray:
                return StrictArray(f(obj._a, *args, **kwargs))
            if isinstance(obj, (np.ndarray, list, tuple)) or np.ndim(obj) > 0:
                _event(H2D, f"xp.{name} of host data")
            return StrictArray(np.array(f(_unwrap_loose(obj), *args, **kwargs)))
        return upload

    @functools.wraps(f)
    def call(*args, **kwargs):
        if name in _DATA_SHAPED:
            _event(SYNC, f"xp.{name} (data-dependent shape)")
        args = _unwrap(args, f"xp.{name}")
        kwargs = {k: _unwrap(v, f"xp.{name}") for k, v in kwargs.items()}
        return _wrap(f(*args, **kwargs))
    return call


def _unwrap_loose(obj):
    t = type(obj)
    if t is StrictArray:
        return obj._a
    if t in (list, tuple):
        return t(_unwrap_loose(o) for o in obj)
    return obj


class _Namespace(types.ModuleType):
    """NumPy's namespace ``src`` with functions on device arrays (``sub`` lists submodules)."""

    def __init__(self, name, src, sub=()):
        super().__init__(name)
        self._src = src
        self._sub = {s: _Namespace(f"{name}.{s}", getattr(src, s)) for s in sub}

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr in self._sub:
            return self._sub[attr]
        v = getattr(self._src, attr)
        if isinstance(v, np.ufunc) or (callable(v) and not isinstance(v, type)):
            w = _Ufunc(attr, v) if isinstance(v, np.ufunc) else _module_function(attr, v)
        elif isinstance(v, np.ndarray):
            w = StrictArray(v)
        else:  # dtypes, constants, classes (finfo, dtype)
            w = v
        setattr(self, attr, w)
        return w


class _Ufunc:
    """A NumPy ufunc on device arrays (with ``.at``, ``.reduce``, ... likewise)."""

    def __init__(self, name, uf):
        self.__name__ = name
        self._uf = uf

    def __call__(self, *args, **kwargs):
        return _wrap(self._uf(*_unwrap(args, f"xp.{self.__name__}"),
                              **{k: _unwrap(v, f"xp.{self.__name__}") for k, v in kwargs.items()}))

    def __getattr__(self, attr):
        m = getattr(self._uf, attr)
        if not callable(m):
            return m

        def method(*args, **kwargs):
            return _wrap(m(*_unwrap(args, f"xp.{self.__name__}.{attr}"),
                           **{k: _unwrap(v, f"xp.{self.__name__}.{attr}") for k, v in kwargs.items()}))
        return method


class _RandomState:
    """``cupy.random.RandomState``: draws made on the device (here NumPy's generator)."""

    def __init__(self, seed=None):
        self._g = np.random.default_rng(seed)

    def random_sample(self, size=None, dtype=float):
        return StrictArray(self._g.random(size, dtype=np.dtype(dtype).type))

    def rand(self, *size, dtype=float):
        return self.random_sample(size, dtype)

    def standard_normal(self, size=None, dtype=float):
        return StrictArray(self._g.standard_normal(size, dtype=np.dtype(dtype).type))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return StrictArray((self._g.standard_normal(size) * scale + loc).astype(dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return StrictArray(self._g.uniform(low, high, size).astype(dtype))

    def poisson(self, lam=1.0, size=None, dtype=int):
        return StrictArray(self._g.poisson(_unwrap(lam, "poisson"), size).astype(dtype))

    def permutation(self, n):
        return StrictArray(self._g.permutation(n))

    def choice(self, a, size=None, replace=True, p=None):
        return StrictArray(np.asarray(self._g.choice(_unwrap(a, "choice"), size, replace,
                                                     None if p is None else _unwrap(p, "choice"))))


# --- ElementwiseKernel: neurosim's kernels, with CuPy's argument checks ----------------------


def _params(spec: str) -> list:
    out = []
    for p in spec.split(","):
        words = p.split()
        raw = words[0] == "raw"
        out.append((raw, words[-2], words[-1]))
    return out


def _adam(a):
    T = a["p"].dtype.type
    b1, b2, eps, step, sc2, tiny = (T(a[k]) for k in ("b1", "b2", "eps", "step", "sqrt_c2", "tiny"))
    g, p, m, v = a["g"], a["p"], a["m"], a["v"]
    mk = b1 * m + (T(1) - b1) * g
    vk = b2 * v + (T(1) - b2) * g * g
    mk = mk * (np.abs(mk) >= tiny)
    vk = vk * (vk >= tiny)
    m[...] = mk
    v[...] = vk
    p -= step * mk / (np.sqrt(vk) / sc2 + eps)


def _gate(a):
    K, U = int(a["K"]), int(a["U"])
    G = a["G"]
    h = np.ascontiguousarray(a["h"]).reshape(-1, K, U)
    t = np.ascontiguousarray(a["t"]).reshape(K, U)
    s = h[:, 0] * t[0]
    for k in range(1, K):
        s = s + h[:, k] * t[k]
    G.reshape(-1)[...] = (s >= 0).astype(G.dtype).reshape(-1)


def _contract(a):
    K, J = int(a["K"]), int(a["J"])
    P = a["P"]
    e = np.ascontiguousarray(a["e"]).reshape(-1, K)
    x = np.ascontiguousarray(a["a"]).reshape(-1, K, J)
    s = e[:, 0, None] * x[:, 0]
    for k in range(1, K):
        s = s + e[:, k, None] * x[:, k]
    P.reshape(-1)[...] = s.reshape(-1)


_KERNELS = {"neurosim_adam": _adam, "neurosim_gate": _gate, "neurosim_contract": _contract}


class ElementwiseKernel:
    """``cupy.ElementwiseKernel`` for neurosim's kernels (by name): arguments checked as CuPy
    checks them, the operation run by a NumPy equivalent."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        if name not in _KERNELS:
            raise NotImplementedError(f"strict device: no NumPy equivalent of kernel {name!r}")
        self.name = name
        self.ins, self.outs = _params(in_params), _params(out_params)

    def __call__(self, *args):
        params = self.ins + self.outs
        if len(args) != len(params):
            raise TypeError(f"{self.name}: {len(params)} arguments expected, {len(args)} given")
        types_, vals = {}, {}
        for (_, typ, name), v in zip(params, args):
            if type(v) is np.ndarray:
                _refuse_host(v, f"kernel {self.name} argument {name}")
            if type(v) is StrictArray:
                if len(typ) == 1:  # a type placeholder: one dtype for all its arrays
                    if types_.setdefault(typ, v.dtype) != v.dtype:
                        raise TypeError(f"{self.name}: type of {name} ({v.dtype}) does not match "
                                        f"{typ} = {types_[typ]}")
                elif np.dtype(typ) != v.dtype:
                    raise TypeError(f"{self.name}: {name} must be {typ}, not {v.dtype}")
                vals[name] = v._a
            else:
                if not np.isscalar(v):
                    raise TypeError(f"{self.name}: argument {name} of type {type(v).__name__}")
                vals[name] = v
        for (raw, _, name) in self.outs:
            if not vals[name].flags.c_contiguous and not raw:
                raise ValueError(f"{self.name}: output {name} is not contiguous")
        _KERNELS[self.name](vals)
        outs = [StrictArray(vals[n]) if type(vals[n]) is np.ndarray else vals[n]
                for _, _, n in self.outs]
        return outs[0] if len(outs) == 1 else tuple(outs)


def _asnumpy(a, stream=None, order="C", out=None):
    if type(a) is StrictArray:
        return a.get(order=order)
    return np.asarray(a)


def _get_array_module(*args):
    return xp if any(type(a) is StrictArray for a in args) else np


_cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {"name": b"strict NumPy device (tests/strict_device.py)"}))

#: the stand-in for the ``cupy`` module
xp = _Namespace("strict_device", np, sub=("linalg", "fft"))
xp.__version__ = f"strict-numpy-{np.__version__}"
xp.ndarray = StrictArray
xp.asnumpy = _asnumpy
xp.get_array_module = _get_array_module
xp.ElementwiseKernel = ElementwiseKernel
xp.random = types.SimpleNamespace(RandomState=_RandomState)
xp.cuda = _cuda
xp.lib = types.SimpleNamespace(stride_tricks=_Namespace("strict_device.lib.stride_tricks",
                                                        np.lib.stride_tricks))


@contextlib.contextmanager
def strict_gpu():
    """``Backend("gpu")`` uses this module instead of CuPy while in the block; yields :data:`LOG`."""
    with _backend.gpu_standin(xp, StrictArray):
        yield LOG
