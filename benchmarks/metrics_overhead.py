"""Cost of recording credit-assignment metrics (protocol ``metrics:``).

Times training steps exactly as ``Run.train`` takes them (realization step
with the observer hook, records appended to a store) for the same network
with metrics off and with ``metrics.every = N``, alternating blocks of steps
so machine-load drift hits both alike.  Prints per-step times, the overall
overhead, the cost of one metric step, and the median *non-metric* step with
metrics on vs off (which should be equal: non-metric steps cost nothing).

    python benchmarks/metrics_overhead.py [--steps 400] [--every 100] [--rule gevb]
        [--widths 1024,512] [--device cpu|gpu] [--block 100]

Data are synthetic with MNIST's shape (no files needed).  Target: metrics
every 100 steps within 5 % of metrics off.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def make_run(rule, widths, every, device, out, batch):
    from neurosim.protocol import validate_protocol
    from neurosim.train import Run

    raw = {
        "name": f"bench_{every}",
        "device": device,
        "circuit": {"vectorized": rule == "gevb" or rule == "bp", "sign": "nonnegative",
                    "init": "on_off", "layers": [{"type": "dense", "units": w} for w in widths]},
        "rule": {"name": rule},
        "data": {"dataset": "synthetic", "options": {"n_train": batch * 50, "n_test": 16,
                                                       "shape": [1, 28, 28]}},
        "training": {"epochs": 1000, "batch_size": batch},
        "metrics": {"every": every},
        "recording": {"out": str(out)},
    }
    run = Run(validate_protocol(raw), out=str(out))
    run.recorder.create(run.attrs())
    return run


def timed_steps(run, n, sync):
    """Take n steps as Run.train does; per-step seconds and whether each was a metric step."""
    xp = run.backend.xp
    bs = run.protocol["training"]["batch_size"]
    N = run.x_train.shape[0]
    times, metric = [], []
    hook = run._before_update if run.observers else None
    for _ in range(n):
        s = (run.step * bs) % (N - bs)
        idx = xp.arange(s, s + bs)
        due = any(o.due(run.step + 1) for o in run.observers)
        t0 = time.perf_counter()
        run.realization.step(run.x_train[idx], run.y_train[idx], hook)
        sync()
        times.append(time.perf_counter() - t0)
        metric.append(due)
        run.step += 1
    return times, metric


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="steps per configuration")
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--block", type=int, default=100, help="steps per alternating block")
    ap.add_argument("--rule", default="gevb")
    ap.add_argument("--widths", default="1024,512")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    widths = [int(w) for w in a.widths.split(",")]
    with tempfile.TemporaryDirectory() as d:
        off = make_run(a.rule, widths, 0, a.device, Path(d) / "off.zarr", a.batch)
        on = make_run(a.rule, widths, a.every, a.device, Path(d) / "on.zarr", a.batch)
        if off.backend.is_gpu:
            import cupy

            def sync():
                cupy.cuda.Device().synchronize()
        else:
            def sync():
                pass
        # warm-up (kernels, caches, first store writes)
        timed_steps(off, 5, sync)
        timed_steps(on, 5, sync)
        on.step = off.step = 0
        t_off, t_on, m_on = [], [], []
        while len(t_off) < a.steps:
            k = min(a.block, a.steps - len(t_off))
            t, _ = timed_steps(off, k, sync)
            t_off += t
            t, m = timed_steps(on, k, sync)
            t_on += t
            m_on += m
    mean_off, mean_on = sum(t_off) / len(t_off), sum(t_on) / len(t_on)
    plain_on = [t for t, m in zip(t_on, m_on) if not m]
    metric_steps = [t for t, m in zip(t_on, m_on) if m]
    print(f"network {a.rule} dense {widths} batch {a.batch} device {a.device}; {a.steps} steps each")
    print(f"metrics off:               mean step {mean_off * 1e3:8.2f} ms  median "
          f"{statistics.median(t_off) * 1e3:8.2f} ms")
    print(f"metrics every {a.every:<4d}:       mean step {mean_on * 1e3:8.2f} ms  median "
          f"{statistics.median(t_on) * 1e3:8.2f} ms")
    print(f"  non-metric steps:        median {statistics.median(plain_on) * 1e3:8.2f} ms")
    if metric_steps:
        mstep = sum(metric_steps) / len(metric_steps)
        print(f"  metric steps ({len(metric_steps)}):         mean {mstep * 1e3:8.2f} ms "
              f"(= {mstep / statistics.median(t_off):.1f} plain steps)")
        print(f"steady state (1 metric step per {a.every}): "
              f"{100 * (mstep / statistics.median(t_off) - 1) / a.every:+.2f} % "
              f"(this window also counts step 1)")
    print(f"overhead (mean step):      {100 * (mean_on / mean_off - 1):+.2f} %  (target within 5 %)")
    rel = statistics.median(plain_on) / statistics.median(t_off) - 1
    print(f"non-metric step vs off:    {100 * rel:+.2f} % (median)")


if __name__ == "__main__":
    main()
