"""Throughput of the explicit-circuit realizations (grouped, temporal).

Prints three-factor synaptic updates per second on the FC MNIST VNN
(784-1024-512-1 vector units, K = 10, batch 128, float32), counting every
synapse updated per example per time bin:

* grouped: K·n·n_in synapses per layer (K synapses per group pair; the first
  layer W1[μ,i,j]) × ``time_bins`` (1) bins;
* temporal: per bin n1·n0 first-layer synapses (input population μ) plus
  n·n_in per later layer, × K bins.

Each realization runs with recording off and on (trajectory records every
``--every`` steps incl. the batched-GEVB agreement, synapse snapshots every
2·every steps, written to a temporary store); the overhead is the relative
difference of the step times.  Usage::

    python benchmarks/realizations.py [--steps 20] [--every 10] [--device cpu|gpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from neurosim.protocol import validate_protocol
from neurosim.train import Run


def protocol(realization, out, every, device, dataset):
    return validate_protocol({
        "name": "bench",
        "circuit": {"vectorized": True, "sign": "nonnegative", "init": "on_off",
                    "layers": [{"type": "dense", "units": 1024}, {"type": "dense", "units": 512}]},
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


def synapses_per_example(run) -> int:
    net, real = run.net, run.realization
    K = net.K
    first = net.weight_layers[0]
    per_bin = 0
    for i in net.weight_layers:
        L = net.layers[i]
        if real.name == "grouped":
            per_bin += K * L.n_units * L.n_in
        else:  # temporal: one population of the first layer is active per bin
            per_bin += L.n_units * L.n_in
    bins = real.T if real.name == "grouped" else K
    del first
    return per_bin * bins


def time_steps(run, steps, record: bool) -> float:
    xp = run.backend.xp
    rng = np.random.default_rng(0)
    n = run.x_train.shape[0]
    hook = run._before_update if record else None
    if not record:
        run.observers = []
    batches = [xp.asarray(rng.choice(n, 128, replace=False)) for _ in range(steps + 2)]
    for idx in batches[:2]:  # warm-up (BLAS threads, numba compilation)
        run.realization.step(run.x_train[idx], run.y_train[idx])
    sync = (lambda: xp.cuda.Device().synchronize()) if run.backend.is_gpu else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for idx in batches[2:]:
        run.realization.step(run.x_train[idx], run.y_train[idx], hook)
        run.step += 1
    if record:  # write buffered records (part of the recording cost; no checkpoint)
        for obs in run.observers:
            for ds, dim in obs.flush(run):
                run.recorder.append(ds, dim)
    sync()
    return (time.perf_counter() - t0) / steps


def warm_imports() -> None:
    """xarray imports dask.array lazily on the first Dataset (seconds, once per process)."""
    import dask.array  # noqa: F401
    import xarray as xr

    xr.Dataset({"a": ("x", np.zeros(2))})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    warm_imports()
    data_dir = os.environ.get("NEUROSIM_DATA_DIR")
    if data_dir and os.path.exists(os.path.join(data_dir, "mnist")):
        dataset = {"dataset": "mnist", "train_subset": 4096, "test_subset": 128}
    else:
        dataset = {"dataset": "synthetic", "options": {"n_train": 4096, "n_test": 128,
                                                       "shape": [1, 28, 28]}}
    print(f"FC MNIST VNN 784-1024-512-1 (K=10), batch 128, float32, device {args.device}, "
          f"{args.steps} steps; recording every {args.every} steps")
    print(f"{'realization':<40} {'recording':>9} {'s/step':>8} {'synaptic updates/s':>19}")
    for real in ({"type": "grouped"}, {"type": "temporal", "gating": "full"},
                 {"type": "temporal", "gating": "first_bin"}):
        times = {}
        for record in (False, True):
            tmp = tempfile.mkdtemp(prefix="neurosim_bench_")
            try:
                run = Run(protocol(real, os.path.join(tmp, "b.zarr"), args.every, args.device,
                                   dataset))
                run.recorder.create(run.attrs())
                dt = time_steps(run, args.steps, record)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            times[record] = dt
            rate = synapses_per_example(run) * 128 / dt
            label = ", ".join(f"{k}={v}" for k, v in real.items())
            print(f"{label:<40} {'on' if record else 'off':>9} {dt:8.3f} {rate:19.3e}")
        print(f"{'':<40} overhead of recording: {100 * (times[True] / times[False] - 1):+.1f}%")


if __name__ == "__main__":
    main()
