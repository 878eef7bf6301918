"""A restricted unpickler for the CIFAR-10 python batches.

The official batches are pickled dicts of bytes, ints, lists and NumPy
arrays.  :func:`loads` admits exactly the globals needed to rebuild those
(NumPy's array reconstruction — protocols 0–5, NumPy 1 and 2 module paths —
and dtype) and refuses everything else, so a malicious file cannot run code
(plain ``pickle.load`` would): the callables it admits only build arrays.
"""

from __future__ import annotations

import io
import pickle

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    # pickle protocol 5 (Python's default since 3.8) rebuilds arrays from a buffer
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class UnsafePickleError(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}: not a CIFAR-10 batch type")


def loads(data: bytes, encoding: str = "bytes"):
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
