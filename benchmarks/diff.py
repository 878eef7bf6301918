"""``python -m benchmarks.diff OLD.json NEW.json``: examples/s per workload, side by side."""

from __future__ import annotations

import json
import sys


def load(path):
    d = json.load(open(path))
    return {r["workload"]: r for r in d["results"]}, d


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__)
        return 2
    (a, da), (b, db) = load(argv[0]), load(argv[1])
    print(f"peak GFLOP/s: {da['peak']['peak_gflops']:.1f} -> {db['peak']['peak_gflops']:.1f}")
    print(f"{'workload':26s} {'impl':8s} {'old ex/s':>9s} {'new ex/s':>9s} {'new/old':>8s}")
    for name in list(a) + [n for n in b if n not in a]:
        for impl in ("neurosim", "torch"):
            ra, rb = a.get(name, {}).get(impl, {}), b.get(name, {}).get(impl, {})
            xa, xb = ra.get("examples_per_s"), rb.get("examples_per_s")
            if xa is None and xb is None:
                continue
            r = f"{xb / xa:8.2f}" if xa and xb else "       -"
            print(f"{name:26s} {impl:8s} {xa or 0:9.0f} {xb or 0:9.0f} {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
