"""Process-wide settings of the host (CPU) side that neurosim's speed depends on.

Applied by :func:`configure`, which ``import neurosim`` does not call: a library
imported into someone's program (a notebook) leaves its process alone.  The
``neurosim`` command (:mod:`neurosim.cli`) and ``python -m benchmarks`` call it
first thing, before NumPy is imported.  Each setting can be switched off by its
environment variable, and a user's own setting always wins.

* ``OMP_WAIT_POLICY=PASSIVE`` (unless set): Numba's parallel kernels run on an
  OpenMP pool whose threads spin-wait after each kernel by default; on a small
  machine they then steal the cores OpenBLAS needs for the next matmul
  (measured: a GEVB step of the MNIST VNN 79 ms -> 53 ms on 2 cores).
* ``OPENBLAS_THREAD_TIMEOUT=16`` (unless set): after each matrix product
  OpenBLAS's worker threads busy-wait (yielding) for 2^n cycles before they
  sleep, by default n = 28, about 0.1 s.  In a training step the product is
  followed by elementwise kernels (gating, Adam) that need both cores, and the
  spinning thread takes one of them.  n = 16 (about 20 µs) keeps the threads
  awake between back-to-back products only (measured on the 2-core machine:
  ``fc_mnist_conv_dfa`` 49–51% → 52–56% of the matrix-product peak, the
  conventional BP step 3% and the grouped circuit 4% faster, the circuit in
  time 2% slower).  OpenBLAS reads it when NumPy is first imported: it takes
  effect only when :func:`configure` runs before NumPy is imported (the CLI, the
  benchmarks).
* glibc ``malloc`` keeps large blocks (``NEUROSIM_MALLOC_TUNE=0`` to skip):
  by default every array above 32 MB is a fresh ``mmap`` that is returned to
  the system when freed, so each training step page-faults its activations in
  again.  A conv VNN's first-layer activations are 0.67 GB per array at batch
  128, and first-touching them costs more than the arithmetic (measured on the
  2-core machine: filling a fresh 0.67 GB array 1.64 s, a reused one 0.03 s;
  CIFAR-10 conv VNN GEVB step 2.2-2.8 s -> 1.4-1.7 s).  With mmap off and the
  trim threshold at its maximum, freed blocks stay in the heap and are
  reused; the process keeps its peak memory until it exits.
"""

from __future__ import annotations

import os
import sys

#: what :func:`configure` did (the benchmarks record it with each result)
APPLIED: dict = {}

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def _tune_malloc() -> bool:
    if os.environ.get("NEUROSIM_MALLOC_TUNE", "1") in ("0", "false", "no") or \
            not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): leave malloc alone
        return False
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    ok = (mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1) and ok
    return ok


def configure() -> dict:
    """Apply the settings above (idempotent); returns what was applied."""
    if APPLIED:
        return APPLIED
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    APPLIED["omp_wait_policy"] = os.environ["OMP_WAIT_POLICY"]
    if "numpy" not in sys.modules:  # read once, when NumPy loads OpenBLAS
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")
    APPLIED["openblas_thread_timeout"] = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    APPLIED["malloc_keeps_large_blocks"] = _tune_malloc()
    return APPLIED
