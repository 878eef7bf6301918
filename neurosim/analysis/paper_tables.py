"""Published results of Clark, Abbott & Chung (2021), tables 1 and 2 (paper §6).

Source: D. G. Clark, L. F. Abbott, S. Chung, "Credit Assignment Through
Broadcasting a Global Error Vector", NeurIPS 2021, Table 1 (MNIST test
errors, %) and Table 2 (CIFAR-10 test errors, %); train errors in
parentheses there "if greater than 0.005" — a missing train error is stored
as 0.0 here.  Each value is the mean over five runs of the test error at the
last checkpoint (epoch 190 or the zero-train-error early stop).  Same values
as /work/shared/SPEC.md §7.

Rows: architecture ``FC | Conv | LC`` with ``-Vec`` for vectorized networks
(trained with GEVB and BP) and without for conventional ones (DFA and BP).
Columns: ``(rule, sign)`` with rule ``GEVB/DFA | BP`` and sign
``nonnegative | mixed``.
"""

from __future__ import annotations

SOURCE = ("Clark, Abbott & Chung (2021), Credit Assignment Through Broadcasting a Global Error "
          "Vector, NeurIPS; Table 1 (MNIST) and Table 2 (CIFAR-10), test error % (train error %)")

#: column order of the published tables
COLUMNS = [("GEVB/DFA", "nonnegative"), ("BP", "nonnegative"), ("GEVB/DFA", "mixed"), ("BP", "mixed")]

# (test, train) per column in COLUMNS order
_MNIST = {
    "FC-Vec": [(1.87, 0.06), (1.93, 0.05), (2.32, 0.33), (1.84, 0.07)],
    "Conv-Vec": [(2.33, 1.03), (1.30, 0.19), (1.83, 0.83), (0.80, 0.0)],
    "LC-Vec": [(1.78, 0.0), (1.64, 0.0), (1.84, 0.05), (1.44, 0.0)],
    "FC": [(2.20, 0.30), (1.36, 0.0), (2.09, 0.19), (1.29, 0.0)],
    "Conv": [(1.56, 0.67), (0.71, 0.0), (1.64, 0.42), (0.65, 0.0)],
    "LC": [(1.98, 0.32), (1.21, 0.0), (1.48, 0.09), (1.07, 0.0)],
}
_CIFAR10 = {
    "FC-Vec": [(47.62, 1.25), (47.03, 0.72), (48.86, 2.02), (45.98, 0.78)],
    "Conv-Vec": [(33.74, 28.83), (30.85, 16.29), (38.43, 20.59), (30.54, 1.71)],
    "LC-Vec": [(41.08, 0.83), (41.01, 0.34), (40.11, 0.83), (38.77, 0.36)],
    "FC": [(48.69, 3.28), (45.42, 0.96), (49.54, 2.88), (45.69, 0.73)],
    "Conv": [(54.18, 48.43), (32.13, 0.23), (44.07, 17.25), (28.80, 0.15)],
    "LC": [(41.18, 10.62), (35.51, 0.0), (39.41, 2.94), (32.32, 0.0)],
}

#: {"mnist"|"cifar10": {row: [(test, train) per column in COLUMNS order]}}
TABLES = {"mnist": _MNIST, "cifar10": _CIFAR10}

#: {(dataset, row, rule, sign): {"test": %, "train": %}}
PAPER = {}
for _ds, _tab in (("MNIST", _MNIST), ("CIFAR-10", _CIFAR10)):
    for _row, _vals in _tab.items():
        for (_rule, _sign), (_te, _tr) in zip(COLUMNS, _vals):
            PAPER[(_ds, _row, _rule, _sign)] = {"test": _te, "train": _tr}

DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar10_partial": "CIFAR-10"}


def architecture_row(layer_kinds, vectorized: bool) -> str:
    """``FC | Conv | LC`` (+ ``-Vec``) from the circuit's hidden layer kinds."""
    kinds = set(layer_kinds)
    if "locally_connected2d" in kinds:
        base = "LC"
    elif "conv2d" in kinds:
        base = "Conv"
    else:
        base = "FC"
    return base + ("-Vec" if vectorized else "")


def cell(dataset: str, layer_kinds, vectorized: bool, sign: str, rule: str):
    """The table cell ``(dataset, row, rule column, sign)`` a run belongs to, or None.

    Vectorized networks pair with GEVB/BP, conventional ones with DFA/BP
    (the paper ran no other combination).
    """
    ds = DATASET_NAMES.get(dataset)
    if ds is None or sign not in ("nonnegative", "mixed"):
        return None
    rule = rule.lower()
    if rule == "bp":
        col = "BP"
    elif (rule == "gevb" and vectorized) or (rule == "dfa" and not vectorized):
        col = "GEVB/DFA"
    else:
        return None
    return ds, architecture_row(layer_kinds, vectorized), col, sign


def lookup(key):
    """Published ``{"test", "train"}`` of a cell key, or None."""
    return PAPER.get(key) if key is not None else None
