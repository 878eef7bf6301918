"""Fused element-wise kernels: Numba on the CPU, CuPy on the GPU, NumPy fallback.

NumPy evaluates ``p -= lr * m / (sqrt(v) + eps)`` as a chain of temporaries,
each a full pass over memory; for the 8M-weight first layer of the MNIST
VNN that dominates a GEVB step.  The kernels below do one pass.  The pure
NumPy path is used when Numba is disabled (``NEUROSIM_NUMBA=0``) and is the
reference the tests compare against.
"""

from __future__ import annotations

import numpy as np

from .backend import numba_enabled

_numba_adam = None


def _get_numba_adam():
    global _numba_adam
    if _numba_adam is None:
        import numba

        @numba.njit(parallel=True, fastmath=False, cache=True)
        def adam_flat(p, g, m, v, b1, b2, eps, step, sqrt_c2):
            for k in numba.prange(p.size):
                gk = g[k]
                mk = b1 * m[k] + (1.0 - b1) * gk
                vk = b2 * v[k] + (1.0 - b2) * gk * gk
                m[k] = mk
                v[k] = vk
                p[k] -= step * mk / (np.sqrt(vk) / sqrt_c2 + eps)

        _numba_adam = adam_flat
    return _numba_adam


_cupy_adam = None


def _get_cupy_adam():  # pragma: no cover - GPU only
    global _cupy_adam
    if _cupy_adam is None:
        import cupy

        _cupy_adam = cupy.ElementwiseKernel(
            "T g, T b1, T b2, T eps, T step, T sqrt_c2",
            "T p, T m, T v",
            """
            T mk = b1 * m + (1 - b1) * g;
            T vk = b2 * v + (1 - b2) * g * g;
            m = mk; v = vk;
            p -= step * mk / (sqrt(vk) / sqrt_c2 + eps);
            """,
            "neurosim_adam",
        )
    return _cupy_adam


def adam_update_numpy(p, g, m, v, b1, b2, eps, step, sqrt_c2):
    """Reference NumPy/CuPy implementation (several passes over memory)."""
    m *= b1
    m += (1.0 - b1) * g
    v *= b2
    v += (1.0 - b2) * (g * g)
    xp = np if isinstance(p, np.ndarray) else __import__("cupy")
    p -= step * m / (xp.sqrt(v) / sqrt_c2 + eps)


def adam_update(p, g, m, v, b1, b2, eps, step, sqrt_c2):
    """One Adam step in place: m, v moments; p -= step·m/(√v/√c2 + ε)."""
    if isinstance(p, np.ndarray):
        if numba_enabled() and p.flags.c_contiguous and g.flags.c_contiguous:
            f = _get_numba_adam()
            dt = p.dtype.type
            f(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), m.reshape(-1),
              v.reshape(-1), dt(b1), dt(b2), dt(eps), dt(step), dt(sqrt_c2))
        else:
            adam_update_numpy(p, g, m, v, b1, b2, eps, step, sqrt_c2)
    else:  # pragma: no cover - GPU only
        k = _get_cupy_adam()
        dt = p.dtype.type
        k(g, dt(b1), dt(b2), dt(eps), dt(step), dt(sqrt_c2), p, m, v)
