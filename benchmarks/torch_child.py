"""The PyTorch side of the benchmark, in its own process:
``python -m benchmarks.torch_child WORKLOAD ...`` prints one JSON line.

torch is imported and its thread pool started *before* neurosim, so it runs
under the OpenMP settings the user gave (neurosim's passive-wait default is
for its own Numba pool, and a shared runtime would otherwise carry it over to
torch, or torch's spinning threads over to neurosim).  :mod:`benchmarks.core`
starts this process (:func:`~benchmarks.core.run_torch_child`); the networks
are the mirrors of :mod:`benchmarks.torch_ref`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from . import core, torch_ref


def torch_matmul_gflops(device: str = "cpu", n: int = 2048, repeats: int = 5) -> float:
    """torch's best float32 n×n×n matmul GFLOP/s (run in the torch child process)."""
    import torch

    if device == "gpu":  # pragma: no cover
        n = max(n, 8192)
    dev = "cuda" if device == "gpu" else "cpu"
    At = torch.rand(n, n, device=dev)
    Bt = torch.rand(n, n, device=dev)
    At @ Bt
    best = np.inf
    for _ in range(repeats):
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        At @ Bt
        if dev == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def time_torch_reference(w: core.Workload, device="cpu", dtype="float32", steps=40, warmup=3,
                         epoch=False, n_train=None) -> dict:
    """Time the plain-PyTorch reference of ``w`` (called in the torch child process):
    the same network, initial weights, rule and batch order as
    :func:`benchmarks.core.run_workload`."""
    import torch

    be, net, rule, _, _, x, y, _ = core.build(w, device, dtype, n_train)
    N, B = x.shape[0], w.batch_size
    n_batches = -(-N // B)
    if epoch:
        steps, warmup = n_batches, min(warmup, 2)
    perm = np.random.default_rng(0).permutation(N)
    tnet = torch_ref.reference_for(net, rule, w.rule, device)
    xt = torch.as_tensor(np.asarray(be.to_host(x)), dtype=tnet.dtype, device=tnet.dev)
    yt = torch.as_tensor(np.asarray(be.to_host(y)), device=tnet.dev)
    pt = torch.as_tensor(perm, device=tnet.dev)

    def t_step(k):
        idx = pt[(k % n_batches) * B: (k % n_batches + 1) * B]
        tnet.step(xt[idx], yt[idx])

    if device == "gpu":  # pragma: no cover - GPU only
        return _time_torch_gpu(t_step, steps, warmup)
    return core.time_steps(t_step, steps, warmup, "cpu")


def _time_torch_gpu(step, steps, warmup):  # pragma: no cover - GPU only
    import torch

    for k in range(warmup):
        step(k)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for k in range(steps):
        step(warmup + k)
    torch.cuda.synchronize()
    s = (time.perf_counter() - t) / steps
    return {"steps": steps, "mean_s_per_step": s, "best_s_per_step": s}


def main(argv=None) -> int:
    """Time the PyTorch reference of one workload in this (fresh) process, torch
    started first (see the module docstring)."""
    omp_wait_policy = os.environ.get("OMP_WAIT_POLICY")  # before neurosim sets its default
    import torch

    torch.ones(64, 64) @ torch.ones(64, 64)  # start torch's pool under the user's settings
    from neurosim.core import host

    host.configure()  # then neurosim's host settings (malloc reuse of large blocks), as beside it

    ap = argparse.ArgumentParser(prog="python -m benchmarks.torch_child")
    ap.add_argument("workload", nargs="?")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--epoch", action="store_true")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--peak", action="store_true", help="print torch's float32 matmul GFLOP/s only")
    a = ap.parse_args(argv)
    if a.peak:
        print(json.dumps({"torch_gflops": torch_matmul_gflops(a.device)}))
        return 0
    w = core.get_workloads([a.workload])[0]
    out = time_torch_reference(w, a.device, a.dtype, a.steps, a.warmup, a.epoch, a.n_train)
    out["omp_wait_policy"] = omp_wait_policy
    out["torch_threads"] = torch.get_num_threads()
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
