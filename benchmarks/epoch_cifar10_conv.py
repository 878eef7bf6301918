"""Training throughput of the CIFAR-10 conv architecture (appendix G, table 2), CPU.

Prints images/s of one training step (forward + learning rule + Adam +
nonnegativity clamp) and the epoch time it implies (50,000 images), for

* the vectorized nonnegative net (K = 10) with GEVB and with BP,
* the conventional mixed-sign net with DFA and with BP,

the matrix-product FLOPs per step (counted from the layer shapes), the
fraction of the float32 matmul peak measured in the same run, and a short
cProfile summary of the VNN GEVB step.

    python benchmarks/epoch_cifar10_conv.py [--batch 128] [--steps 3] [--no-profile]
        [--cases vnn:gevb,vnn:bp,conv:dfa,conv:bp]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from neurosim.core.backend import Backend
from neurosim.losses import cross_entropy
from neurosim.model.network import build_network
from neurosim.optim import Adam
from neurosim.rules import build_rule

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file: python benchmarks/epoch_cifar10_conv.py
    sys.path.insert(0, str(ROOT))

from benchmarks.core import step_flops  # noqa: E402  (one FLOP count for every benchmark)

CIRCUIT = ROOT / "circuits" / "cifar10_conv.yaml"
EPOCH = 50_000


def matmul_peak(n=2048, reps=5):
    """Best float32 matmul rate: (wall-clock FLOP/s, FLOP per CPU-second)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.copy()
    a @ b
    best = best_cpu = np.inf
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        a @ b
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return 2 * n ** 3 / best, 2 * n ** 3 / best_cpu


def build(vectorized, rule_name, seed=0):
    spec = yaml.safe_load(CIRCUIT.read_text())
    spec["vectorized"] = vectorized
    if not vectorized:
        spec["sign"], spec["init"] = "mixed", "he"
    be = Backend("cpu", "float32", seed)
    net = build_network(spec, be, (3, 32, 32), 10)
    rule = build_rule(rule_name, net, be)
    opt = Adam(net, 3e-4)
    return net, rule, opt


def run_steps(net, rule, opt, x, y, steps):
    times, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        res = rule.step(net, x, y, cross_entropy)
        opt.step(res.grads)
        net.project()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, cpu


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--cases", default="vnn:gevb,vnn:bp,conv:dfa,conv:bp",
                    help="comma-separated network:rule pairs (network vnn | conv)")
    args = ap.parse_args(argv)
    B = args.batch
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (B, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, B)
    peak, peak_cpu = matmul_peak()
    print(f"float32 matmul peak (2048^3, best of 5): {peak / 1e9:.1f} GFLOP/s wall-clock, "
          f"{peak_cpu / 1e9:.1f} GFLOP per CPU-second")
    print(f"batch {B}, {args.steps} timed steps after one warm-up step (median); 'cpu' columns use "
          "process CPU time, less sensitive to other load on a shared machine")
    print(f"{'network':<28}{'rule':<6}{'img/s':>8}{'epoch (min)':>13}{'GFLOP/step':>12}"
          f"{'GFLOP/s':>9}{'of peak':>9}{'img/cpu-s':>11}{'of cpu peak':>13}")
    cases = [(c.split(":")[0] == "vnn", c.split(":")[1]) for c in args.cases.split(",")]
    for vec, rname in cases:
        net, rule, opt = build(vec, rname)
        run_steps(net, rule, opt, x, y, 1)
        ts, cs = run_steps(net, rule, opt, x, y, args.steps)
        t, c = float(np.median(ts)), float(np.median(cs))
        fl = step_flops(net, rname, B)
        label = "vectorized nonneg (K=10)" if vec else "conventional mixed"
        print(f"{label:<28}{rname:<6}{B / t:>8.1f}{EPOCH / (B / t) / 60:>13.1f}{fl / 1e9:>12.1f}"
              f"{fl / t / 1e9:>9.1f}{fl / t / peak:>9.1%}{B / c:>11.1f}{fl / c / peak_cpu:>13.1%}",
              flush=True)
    if not args.no_profile:
        net, rule, opt = build(True, "gevb")
        run_steps(net, rule, opt, x, y, 1)
        pr = cProfile.Profile()
        pr.enable()
        run_steps(net, rule, opt, x, y, 2)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(14)
        print("\ncProfile of 2 VNN GEVB steps (by own time):")
        print("\n".join(line for line in s.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
