"""Every shipped protocol through a short cycle, with its peak memory.

    python -m benchmarks.protocol_cycle [--steps 2] [--out table.md] [PATTERN ...]

Each non-sweep protocol in ``protocols/`` runs in its own process as ``neurosim run`` with
``training.max_steps`` steps (the first evaluation, a few steps, the last evaluation and the
checkpoints), evaluation on at most 2,000 test and 2,000 training examples (evaluation batches
are at most 2,000 examples, so the batch, and with it the peak memory, is the full run's), and
``cifar10`` replaced by ``cifar10_partial`` where only that is in the data directory.  The
table lists wall time, exit code and the process's peak resident memory (``ru_maxrss`` of that
child alone, from ``os.wait4``).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def protocols(patterns) -> list[Path]:
    out = []
    for p in sorted((ROOT / "protocols").glob("*.yaml")):
        text = p.read_text()
        if "\nsweep:" in text or text.startswith("sweep:"):
            continue  # a sweep: its runs are the other protocols' cells
        if patterns and not any(fnmatch.fnmatch(p.stem, pat) for pat in patterns):
            continue
        out.append(p)
    return out


def cycle(proto: Path, steps: int, folder: Path) -> dict:
    sets = [f"training.max_steps={steps}", "training.eval_train_subset=2000", "data.test_subset=2000"]
    data_dir = Path(os.environ.get("NEUROSIM_DATA_DIR", ""))
    if "dataset: cifar10\n" in proto.read_text() or "dataset: cifar10}" in proto.read_text():
        if not (data_dir / "cifar10" / "cifar-10-batches-py").exists():
            sets.append("data.dataset=cifar10_partial")
    cmd = [sys.executable, "-m", "neurosim.cli", "run", str(proto), "--quiet",
           "--out", str(folder / f"{proto.stem}.zarr")]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    return {"protocol": proto.stem, "seconds": time.time() - t0, "exit": code,
            "peak_gib": usage.ru_maxrss * 1024 / 2**30,
            "line": (out.strip().splitlines() or err.strip().splitlines() or [""])[-1][:160],
            "overrides": " ".join(sets)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("patterns", nargs="*", help="protocol name patterns (default: all)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the Markdown table here")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in protocols(a.patterns):
            r = cycle(p, a.steps, Path(tmp))
            rows.append(r)
            print(f"{r['protocol']:28s} exit {r['exit']}  {r['seconds']:7.1f} s  "
                  f"peak {r['peak_gib']:5.2f} GiB  {r['line']}", flush=True)
    lines = ["| protocol | exit | wall s | peak GiB |", "|---|---|---|---|"]
    lines += [f"| {r['protocol']} | {r['exit']} | {r['seconds']:.0f} | {r['peak_gib']:.2f} |" for r in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    if a.out:
        Path(a.out).write_text(table)
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
