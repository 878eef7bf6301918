"""Process-wide host settings (neurosim/core/host.py): ``import neurosim`` leaves the
process alone; the ``neurosim`` command and the benchmarks opt in, each setting on by
default, off by its environment variable, and a user's own setting wins.  Checked in
fresh interpreters."""

import json
import os
import platform
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

REPORT = ("json.dumps({'applied': host.APPLIED, "
          "'omp': os.environ.get('OMP_WAIT_POLICY'), "
          "'blas': os.environ.get('OPENBLAS_THREAD_TIMEOUT')})")

#: what the ``neurosim`` console script does (``from neurosim.cli import main; main()``),
#: reporting the settings when the command has ended
CLI = ("import atexit, json, os, sys\n"
       "atexit.register(lambda: print(" + REPORT + "))\n"
       "sys.argv = ['neurosim'] + sys.argv[1:]\n"
       "from neurosim.cli import main\n"
       "from neurosim.core import host\n"
       "main()\n")

PROBE = ("import json, os\n"
         "{imports}\n"
         "from neurosim.core import host\n"
         "print(" + REPORT + ")\n")


def _env(**env):
    """This environment without the settings under test, plus ``env``, with this checkout first."""
    e = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NEUROSIM_MALLOC_TUNE",
                                                          "OPENBLAS_THREAD_TIMEOUT")}
    e.update(env)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    return e


def _last_json(args, env):
    out = subprocess.run([sys.executable, *args], env=_env(**env), capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _probe(imports="from neurosim import cli", **env):
    return _last_json(["-c", PROBE.replace("{imports}", imports)], env)


def test_import_neurosim_changes_nothing_process_wide():
    """A library imported into a notebook leaves malloc and the environment alone."""
    d = _probe("import neurosim, neurosim.api")
    assert d["applied"] == {} and d["omp"] is None and d["blas"] is None
    out = subprocess.run([sys.executable, "-c", "import os, neurosim; "
                          "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"],
                         env=_env(), capture_output=True, text=True, check=True).stdout
    assert out.strip() == "None"


def test_neurosim_run_applies_the_settings(tmp_path):
    """``neurosim run`` applies them, before NumPy is imported (OpenBLAS reads its
    thread timeout then)."""
    proto = {"name": "tiny",
             "circuit": {"vectorized": True, "layers": [{"type": "dense", "units": 8}]},
             "rule": {"name": "bp"},
             "data": {"dataset": "synthetic",
                      "options": {"n_train": 64, "n_test": 32, "n_classes": 4, "shape": [1, 4, 4]}},
             "optimizer": {"name": "sgd", "lr": 0.1},
             "training": {"epochs": 1, "batch_size": 32},
             "recording": {"out": str(tmp_path / "tiny.zarr")}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(proto))
    d = _last_json(["-c", CLI, "run", str(path), "--quiet"], {})
    assert (tmp_path / "tiny.zarr").is_dir()
    assert d["omp"] == "PASSIVE" and d["applied"]["omp_wait_policy"] == "PASSIVE"
    assert d["blas"] == "16" and d["applied"]["openblas_thread_timeout"] == "16"
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert d["applied"]["malloc_keeps_large_blocks"] is True


def test_benchmarks_apply_the_settings():
    d = _probe("import benchmarks")
    assert d["omp"] == "PASSIVE" and d["blas"] == "16"


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
import ctypes, numpy as np
from neurosim.core import host
host.configure()
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


def test_a_sweep_worker_applies_the_settings(tmp_path):
    """A dask worker process is not the CLI: :func:`run_one` applies the settings itself (the
    malloc tuning is per process and would otherwise be lost in every worker), even for a run
    that then fails."""
    code = ("import json, os\n"
            "from neurosim.sweep.execute import run_one\n"
            "from neurosim.core import host\n"
            "assert host.APPLIED == {}\n"
            f"r = run_one({{'name': 'bad'}}, {str(tmp_path / 'bad.zarr')!r})\n"
            "assert r['status'] == 'failed', r\n"
            "print(" + REPORT + ")\n")
    d = _last_json(["-c", code], {})
    assert d["omp"] == "PASSIVE" and d["applied"]["omp_wait_policy"] == "PASSIVE"
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert d["applied"]["malloc_keeps_large_blocks"] is True
