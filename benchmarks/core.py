"""Benchmark machinery: workloads registry, timing, analytic FLOPs, matmul peak.

A *workload* is one :class:`Workload` entry in :data:`WORKLOADS` (append one
to add a workload): a circuit (file + overrides), a rule, a dataset and a
realization; a workload naming a layer kind or realization that this
installation does not register is skipped with a message.  For each workload
the suite times neurosim's training step (data gather + rule + Adam +
projection, the realization's ``step``) and, for dense networks and conv VNNs,
the same network and rule written in plain PyTorch (:mod:`benchmarks.torch_ref`),
and reports examples/s, achieved GFLOP/s from analytic matmul FLOP counts, the
fraction of the float32 matmul peak measured in the same run, synaptic updates
per second and, for circuits with dynamics, simulated seconds per wall-clock
second (both as defined in :mod:`benchmarks.synapses`).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .synapses import simulated_seconds_per_step, synapse_updates_per_example

ROOT = Path(__file__).resolve().parent.parent


class Skip(Exception):
    """A workload that cannot run here (missing layer, realization, torch, ...)."""


# ----------------------------------------------------------------------------
# workloads


@dataclass
class Workload:
    name: str
    circuit: str  # file under circuits/
    rule: str
    dataset: str  # mnist | cifar10 (synthetic data of the same shape if absent)
    circuit_overrides: dict = field(default_factory=dict)
    realization: dict = field(default_factory=lambda: {"type": "batched"})
    needs_layers: tuple = ()  # layer kinds that must be registered (else: skipped)
    batch_size: int = 128
    torch: bool = True  # a plain-PyTorch reference exists (dense networks, conv VNNs)
    description: str = ""


CONVENTIONAL = {"vectorized": False, "sign": "mixed", "init": "he"}
#: the circuit of the dynamics study (protocols/dynamics_grouped_mnist.yaml): the file's
#: nonnegative ON/OFF VNN (K = 10) with hidden layers 256, 128
STUDY_CIRCUIT = {"layers": [{"type": "dense", "units": 256}, {"type": "dense", "units": 128}]}

#: the suite; adding a workload is one entry
WORKLOADS: list[Workload] = [
    Workload("fc_mnist_vnn_gevb", "mnist_fc.yaml", "gevb", "mnist",
             description="MNIST FC 784-1024-512-1 VNN (K=10), nonnegative, GEVB"),
    Workload("fc_mnist_vnn_bp", "mnist_fc.yaml", "bp", "mnist",
             description="MNIST FC 784-1024-512-1 VNN (K=10), nonnegative, BP"),
    Workload("fc_mnist_conv_dfa", "mnist_fc.yaml", "dfa", "mnist", CONVENTIONAL,
             description="MNIST FC 784-1024-512-10 conventional (K=1), DFA"),
    Workload("fc_mnist_conv_bp", "mnist_fc.yaml", "bp", "mnist", CONVENTIONAL,
             description="MNIST FC 784-1024-512-10 conventional (K=1), BP"),
    Workload("conv_cifar10_vnn_gevb", "cifar10_conv.yaml", "gevb", "cifar10",
             description="CIFAR-10 conv VNN (K=10), GEVB"),
    Workload("conv_cifar10_vnn_bp", "cifar10_conv.yaml", "bp", "cifar10",
             description="CIFAR-10 conv VNN (K=10), BP"),
    Workload("fc_mnist_grouped_gevb", "mnist_fc.yaml", "gevb", "mnist",
             realization={"type": "grouped"}, torch=False,
             description="MNIST FC VNN, grouped (explicit-circuit) realization, GEVB"),
    Workload("fc_mnist_temporal_gevb", "mnist_fc.yaml", "gevb", "mnist",
             realization={"type": "temporal"},
             torch=False, description="MNIST FC VNN, temporal realization, GEVB"),
    # the circuits in time (docs/dynamics.md), default dynamics, on the study circuit
    Workload("dynamics_grouped_rate", "mnist_fc.yaml", "gevb", "mnist", STUDY_CIRCUIT,
             {"type": "grouped", "dynamics": {}}, torch=False,
             description="MNIST VNN 784-256-128-1 (K=10), grouped circuit in time, rate neurons, GEVB"),
    Workload("dynamics_temporal_rate", "mnist_fc.yaml", "gevb", "mnist", STUDY_CIRCUIT,
             {"type": "temporal", "gating": "first_bin", "dynamics": {}}, torch=False,
             description="MNIST VNN 784-256-128-1 (K=10), temporal circuit (gating first_bin) "
                         "in time, rate neurons, GEVB"),
    Workload("dynamics_grouped_poisson", "mnist_fc.yaml", "gevb", "mnist", STUDY_CIRCUIT,
             {"type": "grouped", "dynamics": {"neurons": {"model": "poisson"}}}, torch=False,
             description="MNIST VNN 784-256-128-1 (K=10), grouped circuit in time, Poisson neurons, GEVB"),
]


def get_workloads(names=None) -> list[Workload]:
    """The workloads named (or whose name contains a given part); all without ``names``;
    ValueError for a name that matches none."""
    if not names:
        return list(WORKLOADS)
    known = {w.name: w for w in WORKLOADS}
    out = []
    for n in names:
        hits = [w for w in WORKLOADS if n == w.name or n in w.name]
        if not hits:
            raise ValueError(f"unknown workload {n!r}; known: {', '.join(known)}")
        out.extend(h for h in hits if h not in out)
    return out


# ----------------------------------------------------------------------------
# building a workload


def _dataset(name: str, n_train: int | None, seed: int = 0):
    """Real data from $NEUROSIM_DATA_DIR when present, else synthetic of the same shape."""
    from neurosim.data import load_dataset

    tries = {"mnist": ["mnist"], "cifar10": ["cifar10", "cifar10_partial"]}[name]
    for ds_name in tries:
        try:
            ds = load_dataset(ds_name)
            x, y = ds.x_train, ds.y_train
            if n_train:
                x, y = x[:n_train], y[:n_train]
            return x, y, ds_name
        except Exception:  # noqa: BLE001 - any failure means: not available here
            continue
    shape = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[name]
    n = n_train or {"mnist": 60000, "cifar10": 50000}[name]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n,) + shape).astype(np.float32)
    return x, rng.integers(0, 10, n), f"synthetic{shape}"


def build(w: Workload, device: str = "cpu", dtype: str = "float32", n_train: int | None = None):
    """(backend, net, rule, optimizer, realization, x, y, data name) of a workload: the
    protocol assembled by :func:`neurosim.experiment.build` (without its data set), trained on
    the real data set when the data directory has it, else on synthetic data of its shape."""
    from neurosim.experiment import build as build_experiment
    from neurosim.model import layers as layermod
    from neurosim.protocol import validate_protocol
    from neurosim.realizations import REALIZATIONS

    missing = [k for k in w.needs_layers if k not in layermod.LAYERS]
    if missing:
        raise Skip(f"layer kind(s) {missing} not registered")
    if w.realization["type"] not in REALIZATIONS:
        raise Skip(f"realization {w.realization['type']!r} not registered")
    raw = {
        "name": w.name,
        "circuit": {"file": str(ROOT / "circuits" / w.circuit), **w.circuit_overrides},
        "realization": dict(w.realization),
        "rule": {"name": w.rule},
        "loss": "cross_entropy",
        "data": {"dataset": {"mnist": "mnist", "cifar10": "cifar10"}[w.dataset]},
        "optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.9, 0.999], "eps": 1e-8},
        "training": {"epochs": 1, "batch_size": w.batch_size},
        "seed": 0, "device": device, "dtype": dtype,
        "recording": {"out": os.devnull},
    }
    x, y, data_name = _dataset(w.dataset, n_train)
    exp = build_experiment(validate_protocol(raw), data=False)
    be = exp.backend
    return (be, exp.net, exp.rule, exp.optimizer, exp.realization, be.asarray(x),
            be.xp.asarray(y), data_name)


# ----------------------------------------------------------------------------
# analytic FLOPs


def step_flops(net, rule: str, B: int) -> int | None:
    """Analytic matmul FLOPs of one training step (None: rule not modelled).

    forward: one pass per weight layer.  bp/fa: + weight gradient (one pass)
    per layer + input gradient (one pass) per layer after the first.  dfa: +
    weight gradients + the feedback projections e·B (2·B·K·n_out·n per hidden
    layer).  gevb: the readout's weight gradient (one pass) + each hidden layer's
    update.  Each layer states its pass and its GEVB update (:meth:`Layer.pass_flops`,
    :meth:`Layer.gevb_update_flops`).
    """
    wl = [net.layers[i] for i in net.weight_layers]
    fwd = sum(L.pass_flops(B) for L in wl)
    if rule in ("bp", "fa"):
        return fwd + sum(L.pass_flops(B) for L in wl) + sum(L.pass_flops(B) for L in wl[1:])
    if rule == "dfa":
        fb = sum(2 * B * net.K * net.n_out * L.n_units for L in wl[:-1])
        return fwd + sum(L.pass_flops(B) for L in wl) + fb
    if rule == "gevb":
        return fwd + wl[-1].pass_flops(B) + sum(L.gevb_update_flops(B) for L in wl[:-1])
    return None


# ----------------------------------------------------------------------------
# timing


def synchronize(device: str) -> None:
    if device == "gpu":  # pragma: no cover - GPU only
        import cupy

        cupy.cuda.Device().synchronize()


def matmul_peak(device: str = "cpu", n: int = 2048, repeats: int = 5, use_torch: bool = True) -> dict:
    """Best float32 GFLOP/s of an n×n×n matmul: NumPy/CuPy here, and torch (if
    installed) in a child process, so that torch's thread pool never runs in
    the process that times neurosim."""
    out = {}
    if device == "gpu":  # pragma: no cover
        import cupy as xp
        n = max(n, 8192)
    else:
        xp = np
    rng = np.random.default_rng(0)
    A = xp.asarray(rng.random((n, n), dtype=np.float32))
    Bm = xp.asarray(rng.random((n, n), dtype=np.float32))
    C = xp.empty_like(A)
    xp.matmul(A, Bm, out=C)
    best = np.inf
    for _ in range(repeats):
        synchronize(device)
        t = time.perf_counter()
        xp.matmul(A, Bm, out=C)
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    out["neurosim_backend_gflops"] = 2 * n**3 / best / 1e9
    if use_torch:
        child = run_torch_child(["--peak", "--device", device])
        if "torch_gflops" in child:
            out["torch_gflops"] = child["torch_gflops"]
    out["peak_gflops"] = max(v for k, v in out.items() if k.endswith("_gflops"))
    out["n"] = n
    return out


def torch_child_env() -> dict:
    """The environment of the torch child: this one, with OMP_WAIT_POLICY as the
    user had it before :func:`neurosim.core.host.configure` set neurosim's default."""
    from . import USER_OMP_WAIT_POLICY

    env = dict(os.environ, NEUROSIM_BENCH_TORCH_CHILD="1")
    if USER_OMP_WAIT_POLICY is None:
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = USER_OMP_WAIT_POLICY
    return env


def torch_available() -> bool:
    """Whether torch is installed — without importing it: torch's thread pool
    must never start in the process that times neurosim (it shares the OpenMP
    runtime with Numba's pool; see :mod:`benchmarks.torch_child`)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def run_torch_child(args: list) -> dict:
    """Run ``python -m benchmarks.torch_child ARGS``; its JSON line, or {"skipped": why}."""
    import json
    import subprocess
    import sys

    if not torch_available():
        return {"skipped": "torch not installed (pip install neurosim[bench])"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.torch_child", *args], cwd=ROOT,
                          env=torch_child_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"skipped": f"torch reference failed: {tail[0]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def time_steps(step, n_steps: int, warmup: int, device: str, chunk: int = 10) -> dict:
    """Run ``step(k)`` warmup + n_steps times; mean and best-chunk seconds per step."""
    for k in range(warmup):
        step(k)
    synchronize(device)
    times = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    k = warmup
    while k < warmup + n_steps:
        m = min(chunk, warmup + n_steps - k)
        t = time.perf_counter()
        for j in range(m):
            step(k + j)
        synchronize(device)
        times.append((time.perf_counter() - t) / m)
        k += m
    total = time.perf_counter() - t0
    cpu = time.process_time() - c0
    # process CPU time per step: a steadier figure than wall time on a shared machine
    return {"steps": n_steps, "mean_s_per_step": total / n_steps, "best_s_per_step": min(times),
            "cpu_s_per_step": cpu / n_steps}


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    import numba

    info["numba"] = numba.__version__
    info["numba_threads"] = numba.get_num_threads()
    try:  # the version without importing torch (see torch_available)
        from importlib.metadata import version

        info["torch"] = version("torch")
    except Exception:  # noqa: BLE001 - not installed
        pass
    info["NEUROSIM_NUMBA"] = os.environ.get("NEUROSIM_NUMBA", "1")
    from neurosim.core import host

    info["host"] = dict(host.APPLIED)  # OpenMP wait policy, malloc tuning (neurosim/core/host.py)
    return info


# ----------------------------------------------------------------------------
# one workload, both implementations


def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux ``clear_refs`` 5); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """Peak resident memory of this process since the last reset (``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_workload(w: Workload, device="cpu", dtype="float32", steps=40, warmup=3, epoch=False,
                 use_torch=True, peak=None, n_train=None, brian2: dict | None = None) -> dict:
    """Time neurosim (and the PyTorch reference) on workload ``w``; ``peak_rss_bytes`` is the
    process's peak resident memory while it built and ran the workload (host memory: the
    data set, the network, the optimizer state and the step's temporaries).  ``brian2``
    (``{"trials": n, "target": "cython"}``): also time the Brian2 model of a grouped circuit
    in time (:mod:`benchmarks.brian2_column`), right after neurosim, on the same network."""
    can_reset = reset_peak_rss()
    be, net, rule, optimizer, real, x, y, data_name = build(w, device, dtype, n_train)
    N, B = x.shape[0], w.batch_size
    n_batches = -(-N // B)
    if epoch:
        steps, warmup = n_batches, min(warmup, 2)
    perm = be.xp.asarray(np.random.default_rng(0).permutation(N))

    def ns_step(k):
        idx = perm[(k % n_batches) * B: (k % n_batches + 1) * B]
        real.step(x[idx], y[idx])

    res = {"workload": w.name, "description": w.description, "data": data_name, "batch": B,
           "n_train": N, "device": device, "dtype": dtype, "params": net.n_params(),
           # what a step does, in the units of benchmarks/synapses.py
           "synapse_updates_per_example": synapse_updates_per_example(net, real),
           "simulated_s_per_step": simulated_seconds_per_step(real, B)}
    flops = step_flops(net, w.rule, B) if w.realization["type"] == "batched" else None
    t = time_steps(ns_step, steps, warmup, device)
    res["neurosim"] = _rates(t, B, flops, peak, n_batches, res)
    res["neurosim"]["peak_rss_bytes"] = peak_rss_bytes() if can_reset else None
    res["step_gflop"] = None if flops is None else flops / 1e9
    if use_torch and w.torch:
        args = [w.name, "--device", device, "--dtype", dtype, "--steps", str(steps),
                "--warmup", str(warmup)] + (["--epoch"] if epoch else []) \
            + ([] if n_train is None else ["--n-train", str(n_train)])
        tt = run_torch_child(args)
        if "skipped" in tt:
            res["torch"] = tt
        else:
            res["torch"] = _rates(tt, B, flops, peak, n_batches, res)
            res["ratio_speed_neurosim_over_torch"] = (
                res["neurosim"]["examples_per_s"] / res["torch"]["examples_per_s"])
    elif not w.torch:
        res["torch"] = {"skipped": "no plain-PyTorch reference for this workload"}
    if brian2 is not None and res["simulated_s_per_step"] is not None:
        from . import brian2_column

        why = brian2_column.supported(w)
        res["brian2"] = {"skipped": why} if why else brian2_column.run(real, x, **brian2)
        if "trials_per_s" in res["brian2"]:
            res["ratio_trials_neurosim_over_brian2"] = (
                res["neurosim"]["examples_per_s"] / res["brian2"]["trials_per_s"])
    return res


def _rates(t: dict, B: int, flops, peak, n_batches, res: dict) -> dict:
    """Rates from the mean step time ``t``; ``res``: the workload's step (synapse updates per
    example, simulated seconds per step: :mod:`benchmarks.synapses`)."""
    s = t["mean_s_per_step"]
    out = dict(t)
    out["examples_per_s"] = B / s
    out["epoch_s_estimate"] = s * n_batches
    out["synaptic_updates_per_s"] = res["synapse_updates_per_example"] * B / s
    sim = res["simulated_s_per_step"]
    out["sim_s_per_wall_s"] = None if sim is None else sim / s
    if flops is not None:
        out["gflops"] = flops / s / 1e9
        out["gflops_best"] = flops / t["best_s_per_step"] / 1e9
        if peak:
            out["fraction_of_peak"] = out["gflops"] / peak
    return out
