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

from neurosim.analysis.sweep_report import collect, paper_cell

LAST = 5


def _cell(protocol: dict) -> tuple:
    """(sort key, name) of a run's cell in the paper's notation, e.g. "FC, DFA+" ("+":
    nonnegative): the paper's row and column from :func:`paper_cell`, the rule's own name."""
    _, row, column = paper_cell(protocol)
    rule = protocol["rule"]["name"].upper()
    plus = "+" if protocol["circuit"]["sign"] == "nonnegative" else ""
    return (row, column), f"{row}, {rule}{plus}"


def checkpoint_rows(path) -> list[dict]:
    """One row per finished run of the sweep, by the paper's row and column, then seed."""
    rows = []
    for r in collect(path):
        if r["status"] != "finished" or r["epoch"] is None:
            continue
        test, train, epoch = r["test_error"], r["train_error"], r["epoch"]
        late = slice(max(1, epoch.size - LAST), None)  # never the untrained epoch 0
        order, cell = _cell(r["protocol"])
        rows.append({"order": order, "cell": cell, "seed": r["seed"], "stop_epoch": int(epoch[-1]),
                     "test_at_stop": float(test[-1]), "late_mean": float(test[late].mean()),
                     "late_min": float(test[late].min()), "late_max": float(test[late].max()),
                     "late_from": int(epoch[late][0]), "train_at_stop": float(train[-1])})
    return sorted(rows, key=lambda r: (r["order"], r["seed"]))


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
