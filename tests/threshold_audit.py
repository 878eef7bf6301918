"""The spread of every trained result that a test compares with a threshold.

Each measure below is the computation of one test (imported from it, so the audit measures
exactly what the test asserts).  The audit runs each over seeds, in a fresh process per
``OPENBLAS_NUM_THREADS`` (1, 2) x ``NEUROSIM_NUMBA`` (0, 1) setting, and prints the minimum
and maximum per measure beside the test's bound.  ``--flip`` runs the same measures with the
hidden layers' updates negated (a learning rule of the wrong sign; the readout's update,
exact for every rule, is kept) and ``--freeze`` with them dropped (only the readout learns):
a bound that passes these does not test the hidden layers' rule.

    python -m tests.threshold_audit                  # the whole grid (about 20 min on 2 cores)
    python -m tests.threshold_audit --flip           # the broken-rule checks
    python -m tests.threshold_audit --freeze
    python -m tests.threshold_audit --only tiny      # measures whose name contains 'tiny'

Not collected by pytest (no ``test_`` prefix); run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SETTINGS = [(t, n) for t in ("1", "2") for n in ("1", "0")]


def measures():
    """name -> (function of (seed, tmpdir) giving the value, seeds, bound text, passes(value))."""
    from . import test_feedback_rules as fr
    from . import test_metrics as tm
    from . import test_mnist_training as mt
    from . import test_rules as tr
    from .conftest import mnist_dir

    out = {}
    if mnist_dir() is not None:
        out["mnist_gevb_fc_vnn test_error %"] = (
            lambda s, d: mt.gevb_mnist_run(Path(d) / "g.zarr", seed=s).test_error,
            [0, 1, 2], f"< {mt.MNIST_BOUND}", lambda v: v < mt.MNIST_BOUND)
        units, steps = mt.SMALL["units"], mt.SMALL["steps"]
        out[f"mnist_gevb_fc_vnn {'-'.join(map(str, units))} {steps} steps test_error %"] = (
            lambda s, d: mt.gevb_mnist_run(Path(d) / "g.zarr", seed=s, units=units, steps=steps).test_error,
            [0, 1, 2], f"< {mt.SMALL_BOUND}", lambda v: v < mt.SMALL_BOUND)
    for name, opts in [("node_perturbation", {"noise": 0.01, "feedback_lr": 1e-3}),
                       ("node_perturbation", {"noise": 0.01, "feedback_lr": 1e-3, "style": "dfa"}),
                       ("ifa", {}), ("sign_symmetry", {})]:
        label = name + ("/dfa" if opts.get("style") else "")
        out[f"tiny_task {label} error %"] = (
            lambda s, d, name=name, opts=opts: fr.tiny_task_error(name, opts, seed=s),
            [0, 1, 2, 3, 4], f"< {fr.TINY_TASK_BOUND}", lambda v: v < fr.TINY_TASK_BOUND)
    out["autoencoder test_loss last/first"] = (
        lambda s, d: fr.autoencoder_loss_ratio(Path(d) / "ae.zarr", seed=s),
        [0, 1, 2, 3, 4], f"< {fr.AUTOENCODER_BOUND}", lambda v: v < fr.AUTOENCODER_BOUND)
    for rule, vec, sign in tr.CASES:
        key = f"synthetic {rule} {'vec' if vec else 'conv'} {sign}"
        out[key + " loss last/first"] = (
            lambda s, d, a=(rule, vec, sign): tr.synthetic_task(*a, seed=s)[0],
            [3, 4, 5], "< 0.2", lambda v: v < 0.2)
        out[key + " error"] = (
            lambda s, d, a=(rule, vec, sign): tr.synthetic_task(*a, seed=s)[1],
            [3, 4, 5], "< 0.2", lambda v: v < 0.2)
    out["tsne cluster_quality separated"] = (
        lambda s, d: tm.tsne_cluster_quality(seed=s)[0], [0, 1, 2, 3, 4], "> 0.5", lambda v: v > 0.5)
    out["tsne cluster_quality shuffled"] = (
        lambda s, d: tm.tsne_cluster_quality(seed=s)[1], [0, 1, 2, 3, 4], "< 0.3", lambda v: v < 0.3)
    return out


def break_hidden_updates(how: str) -> None:
    """Negate (``flip``) or drop (``freeze``) every hidden layer's update before the optimizer
    applies it; the readout's update is kept."""
    from neurosim import optim

    step = optim.Optimizer.step
    factor = {"flip": -1.0, "freeze": 0.0}[how]

    def broken(self, grads):
        readout = self.net.readout
        return step(self, {k: (g if k[0] == readout else factor * g) for k, g in grads.items()})

    optim.Optimizer.step = broken


def worker(only: list[str], broken: str | None) -> None:
    if broken:
        break_hidden_updates(broken)
    results = {}
    for name, (fn, seeds, _bound, _ok) in measures().items():
        if only and not any(o in name for o in only):
            continue
        for s in seeds:
            with tempfile.TemporaryDirectory() as d:
                results.setdefault(name, []).append(float(fn(s, d)))
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    print(json.dumps(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--flip", dest="broken", action="store_const", const="flip",
                    help="negate the hidden layers' updates")
    ap.add_argument("--freeze", dest="broken", action="store_const", const="freeze",
                    help="drop the hidden layers' updates (readout only)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="all", help="'all' or THREADS,NUMBA (e.g. 2,1)")
    args = ap.parse_args()
    if args.worker:
        worker(args.only, args.broken)
        return
    settings = SETTINGS if args.settings == "all" else [tuple(args.settings.split(","))]
    if args.broken:
        settings = settings[:1]
    table: dict[str, dict] = {}
    for threads, numba in settings:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "NEUROSIM_NUMBA": numba}
        cmd = [sys.executable, "-m", "tests.threshold_audit", "--worker"]
        cmd += [a for o in args.only for a in ("--only", o)]
        cmd += [f"--{args.broken}"] if args.broken else []
        res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, check=True, text=True)
        for name, vals in json.loads(res.stdout.strip().splitlines()[-1]).items():
            table.setdefault(name, {})[(threads, numba)] = vals
    ms = measures()
    print("| measure | bound | min | max | values (threads,numba: per seed) | all pass |")
    print("|---|---|---|---|---|---|")
    for name, per in table.items():
        vals = [v for vs in per.values() for v in vs]
        ok = all(ms[name][3](v) for v in vals)
        detail = "; ".join(f"{t},{n}: " + ", ".join(f"{v:.4g}" for v in vs)
                           for (t, n), vs in per.items())
        print(f"| {name} | {ms[name][2]} | {min(vals):.4g} | {max(vals):.4g} | {detail} | "
              f"{'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
