"""Shared helpers of the reliability tests: a tiny synthetic protocol, running
``neurosim`` in a subprocess (single thread, deterministic) and comparing stores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr
from click.testing import CliRunner

from neurosim.cli import main

ROOT = Path(__file__).resolve().parents[1]

CIRCUIT = """\
name: tiny_circuit
vectorized: true
layers:
  - {type: dense, units: 8}
  - {type: dense, units: 4}
"""

PROTOCOL = """\
name: tiny
circuit:
  file: tiny_circuit.yaml
rule: {name: gevb}
data:
  dataset: synthetic
  options: {n_train: 32, n_test: 16, n_classes: 4, shape: [1, 4, 4]}
optimizer: {name: adam, lr: 1.0e-3}
training: {epochs: 1, batch_size: 16, eval_every: 1, early_stop: false}
seed: 0
dtype: float64
"""


def write_protocol(folder: Path, protocol: str = PROTOCOL, circuit: str = CIRCUIT,
                   name: str = "proto.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny_circuit.yaml").write_text(circuit)
    p = folder / name
    p.write_text(protocol)
    return p


def env(**extra) -> dict:
    """Environment of a deterministic single-threaded subprocess running this tree."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
             NUMBA_NUM_THREADS="1", PYTHONHASHSEED="0")
    e.pop("NEUROSIM_FAULT_KILL_AT", None)
    e.update({k: str(v) for k, v in extra.items()})
    return e


def neurosim_cmd(*args) -> list:
    return [sys.executable, "-m", "neurosim.cli", *map(str, args)]


def run_cli(*args, timeout=300, **env_extra) -> subprocess.CompletedProcess:
    return subprocess.run(neurosim_cmd(*args), env=env(**env_extra), capture_output=True,
                          text=True, timeout=timeout)


def start_cli(*args, **env_extra) -> subprocess.Popen:
    return subprocess.Popen(neurosim_cmd(*args), env=env(**env_extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def committed_records(store: Path) -> int:
    """Number of epoch records a reader sees (0 if the store is not there yet)."""
    try:
        with xr.open_zarr(store) as ds:
            return int(ds.sizes.get("epoch", 0))
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return 0


def _same(x, y, rtol: float) -> bool:
    if rtol == 0 or x.dtype.kind not in "fc":
        return np.array_equal(x, y, equal_nan=True)
    return np.allclose(x, y, rtol=rtol, atol=0, equal_nan=True)


def assert_same_store(a: Path, b: Path, skip=("wall_time",), rtol: float = 0.0) -> None:
    """Bit-identical recorded variables (except ``skip``) and committed checkpoint; with
    ``rtol`` > 0, floating-point values equal to that relative tolerance instead (for a store
    written on another CPU, whose BLAS may round differently)."""
    from neurosim.recording import Recorder

    with xr.open_zarr(a) as A, xr.open_zarr(b) as B:
        assert set(A.variables) - set(skip) == set(B.variables) - set(skip)
        assert dict(A.sizes) == dict(B.sizes)
        for k in A.variables:
            if k in skip:
                continue
            va, vb = A[k].values, B[k].values
            assert va.dtype == vb.dtype, k
            assert _same(va, vb, rtol), f"variable {k} differs"
    sa, ia = Recorder(a).load_checkpoint()
    sb, ib = Recorder(b).load_checkpoint()
    assert set(sa) == set(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and _same(sa[k], sb[k], rtol), f"checkpoint {k} differs"
    for k in ("epoch", "batch", "step", "loss_n", "stopped"):
        assert ia[k] == ib[k], k
    assert _same(np.float64(ia["loss_sum"]), np.float64(ib["loss_sum"]), rtol), "loss_sum"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, *needles):
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert str(n) in res.output, (n, res.output)
    return res.output


def finished_run(tmp_path_factory):
    """A finished 1-epoch run with weight snapshots (checkpoints at epochs 0 and 1), and its
    protocol: (protocol path, store path)."""
    folder = tmp_path_factory.mktemp("made")
    proto = write_protocol(folder, PROTOCOL + "recording: {weights: true}\n")
    res = cli("run", proto, "--out", folder / "run.zarr", "--quiet")
    assert res.exit_code == 0, res.output
    return proto, folder / "run.zarr"
