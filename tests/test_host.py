"""Process-wide host settings applied on ``import neurosim`` (neurosim/host.py):
each is on by default, off by its environment variable, and a user's own
OpenMP setting wins.  Checked in fresh interpreters."""

import json
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = ("import json, os, neurosim; "
         "print(json.dumps({'applied': neurosim.core.host.APPLIED, "
         "'omp': os.environ.get('OMP_WAIT_POLICY'), "
         "'blas': os.environ.get('OPENBLAS_THREAD_TIMEOUT')}))")


def _env(**env):
    """This environment without the settings under test, plus ``env``, with this checkout first."""
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NEUROSIM_MALLOC_TUNE",
                                                          "OPENBLAS_THREAD_TIMEOUT")}
    e.update(env)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def _probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], env=_env(**env), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_defaults_and_user_settings_win():
    d = _probe()
    assert d["omp"] == "PASSIVE" and d["applied"]["omp_wait_policy"] == "PASSIVE"
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert d["applied"]["malloc_keeps_large_blocks"] is True
    assert _probe(OMP_WAIT_POLICY="ACTIVE")["omp"] == "ACTIVE"
    assert d["blas"] == "16" and d["applied"]["openblas_thread_timeout"] == "16"
    assert _probe(OPENBLAS_THREAD_TIMEOUT="28")["blas"] == "28"
    assert _probe(NEUROSIM_MALLOC_TUNE="0")["applied"]["malloc_keeps_large_blocks"] is False


MALLINFO = """
import ctypes, numpy as np, neurosim
class MI(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena ordblks smblks hblks hblkhd usmblks "
                                                 "fsmblks uordblks fordblks keepcost").split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MI
before = libc.mallinfo2().hblkhd             # bytes held in mmap'd blocks
a = np.ones(64 << 20, np.float32)            # 256 MB
print(libc.mallinfo2().hblkhd - before)
"""


def _mmapped_bytes(**env):
    proc = subprocess.run([sys.executable, "-c", MALLINFO], env=_env(**env), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"no glibc mallinfo2 here: {proc.stderr.strip().splitlines()[-1:]}")
    return int(proc.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_large_arrays_live_in_the_heap():
    """With the tuning a 256 MB array comes from the heap (reused after it is
    freed, no fresh page faults each step); glibc's default gives it its own
    mmap, returned to the system on free."""
    assert _mmapped_bytes(NEUROSIM_MALLOC_TUNE="0") >= 256 << 20
    assert _mmapped_bytes() == 0
