"""Throughput of the explicit-circuit realizations (grouped, temporal), with and without dynamics.

Prints three-factor synaptic updates per second, counting every synapse
updated per example per time bin (with ``dynamics``: every synapse's
eligibility trace at every counting step), and for circuits with dynamics
simulated seconds per wall-clock second -- both as defined in
:mod:`benchmarks.synapses`, which ``python -m benchmarks`` reports too.

Circuits without dynamics run on the FC MNIST VNN 784-1024-512-1 (K = 10);
circuits with dynamics are the ``dynamics_*`` workloads of ``python -m
benchmarks`` (benchmarks/core.py): the study circuit 784-256-128-1 (K = 10)
with the default (biologically plausible) dynamics.  Batch 128, float32.
Each row runs with recording off and on (trajectory records every ``--every``
steps incl. the batched-GEVB agreement, synapse snapshots every 2·every steps,
written to a temporary store); the overhead is the relative difference of the
step times.  Usage::

    python benchmarks/realizations.py [--steps 20] [--every 10] [--device cpu|gpu] [--only dynamics]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurosim.protocol import validate_protocol
from neurosim.train import Run

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: python benchmarks/realizations.py
    sys.path.insert(0, str(ROOT))

from benchmarks.core import WORKLOADS  # noqa: E402  (the dynamics rows are the suite's workloads)
from benchmarks.synapses import (  # noqa: E402  (one definition for every benchmark)
    simulated_seconds_per_step,
    synapse_updates_per_example,
)


def protocol(realization, out, every, device, dataset, layers=(1024, 512)):
    return validate_protocol({
        "name": "bench",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": n} for n in layers]},
        "realization": realization,
        "rule": {"name": "gevb"},
        "data": dataset,
        "optimizer": {"name": "adam", "lr": 3e-4},
        "training": {"epochs": 1, "batch_size": 128},
        "device": device,
        "dtype": "float32",
        "recording": {"out": out, "trajectories": {"every": every, "snapshot_every": 2 * every,
                                                   "samples": 4, "units": 16, "synapses": 64,
                                                   "chunk": 10}},
    })


def time_steps(run, steps, record: bool) -> float:
    exp = run.exp
    xp = exp.backend.xp
    rng = np.random.default_rng(0)
    n = exp.x_train.shape[0]
    hook = run._before_update if record else None
    if not record:
        exp.observers = []
    batches = [xp.asarray(rng.choice(n, 128, replace=False)) for _ in range(steps + 2)]
    for idx in batches[:2]:  # warm-up (BLAS threads, numba compilation)
        exp.realization.step(exp.x_train[idx], exp.y_train[idx])
    sync = (lambda: xp.cuda.Device().synchronize()) if exp.backend.is_gpu else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for idx in batches[2:]:
        exp.realization.step(exp.x_train[idx], exp.y_train[idx], hook)
        run.step += 1
    if record:  # write buffered records (part of the recording cost; no checkpoint)
        run._before_update(flush=True)
    sync()
    return (time.perf_counter() - t0) / steps


def warm_imports() -> None:
    """xarray imports dask.array lazily on the first Dataset (seconds, once per process)."""
    import dask.array  # noqa: F401
    import xarray as xr

    xr.Dataset({"a": ("x", np.zeros(2))})


#: (label, hidden layers, realization) of each row
ROWS = [
    ("grouped", (1024, 512), {"type": "grouped"}),
    ("temporal, gating=full", (1024, 512), {"type": "temporal", "gating": "full"}),
    ("temporal, gating=first_bin", (1024, 512), {"type": "temporal", "gating": "first_bin"}),
] + [(w.name, tuple(layer["units"] for layer in w.circuit_overrides["layers"]), w.realization)
     for w in WORKLOADS if "dynamics" in w.realization]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default=None, help="rows whose label contains this text")
    args = ap.parse_args()
    warm_imports()
    data_dir = os.environ.get("NEUROSIM_DATA_DIR")
    if data_dir and os.path.exists(os.path.join(data_dir, "mnist")):
        dataset = {"dataset": "mnist", "train_subset": 4096, "test_subset": 128}
    else:
        dataset = {"dataset": "synthetic", "options": {"n_train": 4096, "n_test": 128,
                                                       "shape": [1, 28, 28]}}
    print(f"FC MNIST VNN (K=10), batch 128, float32, device {args.device}, "
          f"{args.steps} steps; recording every {args.every} steps")
    print(f"{'realization':<36} {'circuit':>12} {'recording':>9} {'s/step':>8} "
          f"{'synaptic updates/s':>19} {'sim s/wall s':>13}")
    for label, layers, real in ROWS:
        if args.only and args.only not in label:
            continue
        times = {}
        for record in (False, True):
            tmp = tempfile.mkdtemp(prefix="neurosim_bench_")
            try:
                run = Run(protocol(real, os.path.join(tmp, "b.zarr"), args.every, args.device,
                                   dataset, layers))
                run.recorder.create(run.exp.attrs())
                dt = time_steps(run, args.steps, record)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            times[record] = dt
            rate = synapse_updates_per_example(run.exp.net, run.exp.realization) * 128 / dt
            sim = simulated_seconds_per_step(run.exp.realization, 128)
            circ = "784-" + "-".join(map(str, layers))
            sim_s = f"{sim / dt:13.3g}" if sim is not None else f"{'-':>13}"
            print(f"{label:<36} {circ:>12} {'on' if record else 'off':>9} {dt:8.3f} {rate:19.3e} {sim_s}")
        print(f"{'':<36} overhead of recording: {100 * (times[True] / times[False] - 1):+.1f}%")


if __name__ == "__main__":
    main()
