"""``python -m benchmarks``: time every workload, neurosim vs plain PyTorch vs matmul peak.

    python -m benchmarks                       # all workloads, 40 timed steps each
    python -m benchmarks fc_mnist_vnn --epoch  # workloads matching a name, one full epoch
    python -m benchmarks --device gpu --json results/h100.json
    python -m benchmarks --no-torch --steps 20
    python -m benchmarks dynamics_grouped --no-torch   # the circuits in time beside Brian2

Prints one table; writes JSON (default benchmarks/results/<date>-<device>.json)
so two runs can be diffed (``python -m benchmarks.diff A.json B.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .core import Skip, get_workloads, machine, matmul_peak, run_workload


def fmt(v, spec):
    """``v`` formatted by ``spec`` ("8.1f"); None: a "-" in the same width."""
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("workloads", nargs="*", help="names (or parts of names) of workloads; default all")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per workload (default 40)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--epoch", action="store_true", help="time one full epoch instead of --steps")
    ap.add_argument("--n-train", type=int, default=None, help="use only the first N training examples")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    ap.add_argument("--no-brian2", action="store_true", help="skip the Brian2 column (circuits in time)")
    ap.add_argument("--brian2-trials", type=int, default=2,
                    help="trials the Brian2 column simulates (default 2)")
    ap.add_argument("--brian2-target", choices=["cpp_standalone", "cython", "numpy"],
                    default="cpp_standalone",
                    help="Brian2's code generation (default cpp_standalone: the whole network as one "
                         "C++ program, compiled once and rebuilt by make; cython: compiled per code "
                         "object; numpy: no compilation)")
    ap.add_argument("--brian2-threads", type=int, default=os.cpu_count() or 1,
                    help="OpenMP threads of Brian2's C++ program (default: the CPUs, as neurosim uses)")
    ap.add_argument("--json", default=None, help="output JSON path (default benchmarks/results/...)")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    a = ap.parse_args(argv)

    if a.list:
        for w in get_workloads():
            print(f"{w.name:28s} {w.description}")
        return 0
    try:
        workloads = get_workloads(a.workloads)
    except ValueError as exc:
        print(f"python -m benchmarks: {exc}", file=sys.stderr)
        return 2
    info = machine()
    print(f"# neurosim benchmarks  {info['date']}  device={a.device} dtype={a.dtype}  "
          f"cpus={info['cpus']} load={info.get('load_avg')}")
    peak = matmul_peak(a.device, use_torch=not a.no_torch)
    print(f"# float32 matmul peak (n={peak['n']}): backend {peak['neurosim_backend_gflops']:.1f} GFLOP/s"
          + (f", torch {peak['torch_gflops']:.1f} GFLOP/s" if "torch_gflops" in peak else "")
          + f"  -> peak {peak['peak_gflops']:.1f}")
    hdr = (f"{'workload':26s} {'impl':8s} {'ex/s':>9s} {'epoch s':>8s} {'GFLOP/s':>8s} "
           f"{'%peak':>6s} {'ns/torch':>8s} {'mem GiB':>8s} {'syn upd/s':>9s} {'sim s/wall s':>12s}")
    print(hdr)
    print("-" * len(hdr))
    results = []
    for w in workloads:
        try:
            r = run_workload(w, a.device, a.dtype, a.steps, a.warmup, a.epoch, not a.no_torch,
                             peak["peak_gflops"], a.n_train,
                             None if a.no_brian2 else {"trials": a.brian2_trials,
                                                       "target": a.brian2_target,
                                                       "threads": a.brian2_threads})
        except Skip as exc:
            print(f"{w.name:26s} skipped: {exc}")
            results.append({"workload": w.name, "skipped": str(exc)})
            continue
        results.append(r)
        for impl in ("neurosim", "torch", "brian2"):
            d = r.get(impl)
            if d is None:
                continue
            if "skipped" in d:
                print(f"{'':26s} {impl:8s} skipped: {d['skipped']}")
                continue
            if impl == "brian2":  # trials (examples) per second and simulated time only
                print(f"{'':26s} {impl:8s} {d['trials_per_s']:9.3g} {'':8s} {'':8s} {'':6s} "
                      f"{'':8s} {'':8s} {'':9s} {fmt(d['sim_s_per_wall_s'], '12.3g')}   "
                      f"neurosim/brian2 = {r['ratio_trials_neurosim_over_brian2']:.0f}x "
                      f"(Brian2 {d['brian2_version']} {d['target']}, {d['threads']} thread(s), "
                      f"{d['trials']} trials)")
                continue
            ratio = r.get("ratio_speed_neurosim_over_torch") if impl == "neurosim" else None
            frac = d.get("fraction_of_peak")
            print(f"{w.name if impl == 'neurosim' else '':26s} {impl:8s} {d['examples_per_s']:9.0f} "
                  f"{d['epoch_s_estimate']:8.1f} {fmt(d.get('gflops'), '8.1f')} "
                  f"{fmt(None if frac is None else 100 * frac, '6.1f')} {fmt(ratio, '8.2f')} "
                  f"{fmt(None if d.get('peak_rss_bytes') is None else d['peak_rss_bytes'] / 2**30, '8.2f')} "
                  f"{fmt(d['synaptic_updates_per_s'], '9.2e')} {fmt(d['sim_s_per_wall_s'], '12.3g')}")
        sys.stdout.flush()
    out = Path(a.json) if a.json else (Path(__file__).parent / "results" /
                                       f"{time.strftime('%Y%m%dT%H%M%S')}-{a.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "peak": peak, "args": vars(a), "results": results},
                              indent=1, default=float))
    print(f"# wrote {out}")
    print("# note: mem GiB = peak resident memory of the process while the workload ran (neurosim); "
          "examples/s from mean step time; epoch s = step time x batches per epoch; "
          "GFLOP/s from analytic matmul FLOPs (benchmarks/core.py:step_flops)")
    print("# syn upd/s = synapse updates per example x examples/s; sim s/wall s = biological time "
          "simulated per wall-clock second, circuits with dynamics only (both: benchmarks/synapses.py)")
    print("# brian2 = the same circuit in time written in Brian2 (forward dynamics, gates, "
          "neuromodulator, every synapse's eligibility trace; benchmarks/brian2_column.py), timed "
          "right after neurosim; ex/s = trials/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
