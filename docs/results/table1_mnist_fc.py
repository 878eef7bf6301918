"""The checkpoint table of the full-schedule MNIST FC row (docs/results/table1_mnist_fc.md).

Reads the sweep store written by ``neurosim sweep protocols/table1_mnist_fc_full.yaml`` and
writes ``table1_mnist_fc_checkpoints.md`` beside this file (or to ``--out``): per run, the
test error at the stop (the table's measure), the mean and range of the test error over the
last five checkpoints (how much one checkpoint varies), and the train error at the stop.

    python docs/results/table1_mnist_fc.py runs/table1_mnist_fc_full.zarr
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neurosim.analysis.reader import open_sweep

#: the cells' names in the paper's notation ("+": nonnegative, ON/OFF initialisation)
CELLS = {
    ("false", "dfa", "nonnegative"): "FC, DFA+",
    ("false", "bp", "nonnegative"): "FC, BP+",
    ("false", "dfa", "mixed"): "FC, DFA",
    ("false", "bp", "mixed"): "FC, BP",
    ("true", "gevb", "nonnegative"): "FC-Vec, GEVB+",
}
LAST = 5


def _cell(name: str) -> str:
    opts = dict(part.split("=", 1) for part in name.split(","))
    return CELLS.get((opts.get("vectorized"), opts.get("rule"), opts.get("sign")), name)


def checkpoint_rows(path) -> list[dict]:
    """One row per finished run of the sweep, in the order of :data:`CELLS`, then seed."""
    rows = []
    for e in open_sweep(path).entries:
        if e.run is None or e.status != "finished":
            continue
        ds = e.run.ds
        test, train, epoch = (ds[v].values for v in ("test_error", "train_error", "epoch"))
        late = slice(max(1, epoch.size - LAST), None)  # never the untrained epoch 0
        rows.append({"cell": _cell(e.name), "seed": e.seed, "stop_epoch": int(epoch[-1]),
                     "test_at_stop": float(test[-1]), "late_mean": float(test[late].mean()),
                     "late_min": float(test[late].min()), "late_max": float(test[late].max()),
                     "late_from": int(epoch[late][0]), "train_at_stop": float(train[-1])})
    order = list(CELLS.values())
    return sorted(rows, key=lambda r: (order.index(r["cell"]) if r["cell"] in order else 99, r["seed"]))


def markdown(rows) -> str:
    lines = [f"| cell | seed | stop epoch | test % at stop | test % over the last {LAST} checkpoints: "
             "mean (min–max, epochs) | train % at stop |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['seed']} | {r['stop_epoch']} | {r['test_at_stop']:.2f} | "
                     f"{r['late_mean']:.2f} ({r['late_min']:.2f}–{r['late_max']:.2f}, "
                     f"{r['late_from']}–{r['stop_epoch']}) | {r['train_at_stop']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", help="the sweep store (runs/table1_mnist_fc_full.zarr)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("table1_mnist_fc_checkpoints.md")))
    a = ap.parse_args(argv)
    Path(a.out).write_text(markdown(checkpoint_rows(a.store)))
    print(a.out)


if __name__ == "__main__":
    main()
