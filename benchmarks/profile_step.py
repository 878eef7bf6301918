"""Where a workload's training step spends its time, phase by phase (CPU).

    python -m benchmarks.profile_step fc_mnist_vnn_gevb [--steps 40] [--warmup 3]
    python -m benchmarks.profile_step conv_cifar10_vnn_gevb --steps 4

Builds the workload as ``python -m benchmarks`` does (:func:`benchmarks.core.build`), then
times its realization's steps with a clock around each phase: the gather of the batch, each
layer's forward pass, each gate, the loss, each weight layer's update direction
(``gevb_grads`` or ``grads``), and the optimizer (Adam and the nonnegativity projection; the
projection alone on its own line).  Prints, per phase, the median and the minimum over the
timed steps and the phase's matrix-product FLOPs and rate where it has some
(:meth:`Layer.pass_flops`, :meth:`Layer.gevb_update_flops`), then the step's median and minimum.  The clocks
add a few microseconds per phase; the phases run as in an untimed step.
"""

from __future__ import annotations

import argparse
import collections
import functools
import statistics
import time

import numpy as np

from .core import build, get_workloads


def _timed(table, key, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        table[key].append(time.perf_counter() - t)
        return out

    return run


class _TimedNonlinearity:
    """A nonlinearity with a clock around its call (keeps ``gating`` and ``name``)."""

    def __init__(self, phi, table, key):
        self.phi, self.gating, self.name = phi, phi.gating, phi.name
        self._call = _timed(table, key, phi.__call__)

    def __call__(self, h, t=None):
        return self._call(h, t)


def instrument(net, realization, optimizer, rule: str, B: int):
    """Put clocks around the phases of a step; returns (table {phase: [seconds]}, FLOPs
    {phase: matrix-product FLOPs per step})."""
    table, flops = collections.defaultdict(list), {}
    for i, L in enumerate(net.layers):
        key = f"forward {i} {L.kind}"
        L.forward = _timed(table, key, L.forward)
        if L.has_weights:
            flops[key] = L.pass_flops(B)
            for name in ("gevb_grads", "grads"):
                gkey = f"{name} {i} {L.kind}"
                setattr(L, name, _timed(table, gkey, getattr(L, name)))
            gk = f"{'gevb_grads' if rule == 'gevb' and i != net.readout else 'grads'} {i} {L.kind}"
            if rule == "gevb" and i != net.readout:
                flops[gk] = L.gevb_update_flops(B)
            else:
                flops[gk] = L.pass_flops(B)
    for i, phi in enumerate(net.nonlins):
        if phi is not None and phi.gating:
            net.nonlins[i] = _TimedNonlinearity(phi, table, f"gate {i}")
    realization.loss_fn = _timed(table, "loss", realization.loss_fn)
    optimizer.step = _timed(table, "optimizer (Adam + projection)", optimizer.step)
    net.project = _timed(table, "  of which projection", net.project)
    return table, flops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile_step",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("workload", help="a workload name (python -m benchmarks --list)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--n-train", type=int, default=8192, help="training examples loaded")
    a = ap.parse_args(argv)
    w = get_workloads([a.workload])[0]
    be, net, rule, optimizer, real, x, y, data = build(w, "cpu", a.dtype, a.n_train)
    B = w.batch_size
    n_batches = x.shape[0] // B
    perm = np.random.default_rng(0).permutation(x.shape[0])
    table, flops = instrument(net, real, optimizer, w.rule, B)

    def step(k):
        t = time.perf_counter()
        idx = perm[(k % n_batches) * B:(k % n_batches + 1) * B]
        xb, yb = x[idx], y[idx]
        table["gather"].append(time.perf_counter() - t)
        real.step(xb, yb)

    for k in range(a.warmup):
        step(k)
    table.clear()
    total = []
    for k in range(a.steps):
        t = time.perf_counter()
        step(k)
        total.append(time.perf_counter() - t)
    print(f"# {w.name} ({w.description}), {data}, batch {B}, {a.dtype}, {a.steps} steps")
    print(f"{'phase':34s} {'median ms':>10s} {'min ms':>8s} {'GFLOP':>7s} {'GFLOP/s':>8s}")
    for key, v in table.items():
        per_step = [sum(v[j::a.steps]) for j in range(a.steps)] if len(v) > a.steps else v
        med = statistics.median(per_step)
        fl = flops.get(key)
        rate = "" if fl is None else f"{fl / med / 1e9:8.1f}"
        print(f"{key:34s} {1e3 * med:10.2f} {1e3 * min(per_step):8.2f} "
              f"{'' if fl is None else format(fl / 1e9, '7.3f'):>7s} {rate:>8s}")
    med = statistics.median(total)
    print(f"{'step':34s} {1e3 * med:10.2f} {1e3 * min(total):8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
