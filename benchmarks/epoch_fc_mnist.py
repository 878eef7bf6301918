"""Issue-2 benchmark: one full training epoch of the FC MNIST networks on the CPU.

    python -m benchmarks.epoch_fc_mnist            # real MNIST from $NEUROSIM_DATA_DIR, else synthetic
    python -m benchmarks.epoch_fc_mnist --torch    # also the plain-PyTorch reference

Prints examples/s and the epoch time (60,000 images, batch 128, Adam) for the
vectorized network (GEVB, BP) and the conventional network (DFA, BP).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .core import get_workloads, machine, matmul_peak, run_workload

NAMES = ["fc_mnist_vnn_gevb", "fc_mnist_vnn_bp", "fc_mnist_conv_dfa", "fc_mnist_conv_bp"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.epoch_fc_mnist")
    ap.add_argument("--torch", action="store_true", help="also time the PyTorch reference")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--json", default=None)
    ap.add_argument("--n-train", type=int, default=None,
                    help="epoch over the first N examples only (smoke test; default all 60,000)")
    a = ap.parse_args(argv)
    info = machine()
    peak = matmul_peak(a.device, use_torch=a.torch)
    print(f"# one epoch, batch 128, {a.device}, load {info.get('load_avg')}, matmul peak "
          f"{peak['peak_gflops']:.1f} GFLOP/s")
    results = []
    for w in get_workloads(NAMES):
        r = run_workload(w, a.device, "float32", epoch=True, use_torch=a.torch, peak=peak["peak_gflops"],
                         n_train=a.n_train)
        results.append(r)
        d = r["neurosim"]
        line = (f"{w.name:22s} {r['data']:10s} {d['examples_per_s']:8.0f} examples/s  epoch "
                f"{d['mean_s_per_step'] * d['steps']:6.1f} s  {d.get('gflops', 0):6.1f} GFLOP/s "
                f"({100 * d.get('fraction_of_peak', 0):.0f}% of peak)")
        if "ratio_speed_neurosim_over_torch" in r:
            ratio = r["ratio_speed_neurosim_over_torch"]
            line += f"  torch {r['torch']['examples_per_s']:.0f} ex/s, ratio {ratio:.2f}"
        print(line)
        sys.stdout.flush()
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": info, "peak": peak, "results": results},
                                           indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
