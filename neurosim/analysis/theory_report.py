"""Eq. 15 check at initialisation over widths: table (CSV, Markdown) and plot.

For each width n the circuit's hidden layers get n units (or channels), the
network is built with the circuit's initialisation (or i.i.d. nonnegative
weights, the assumption of appendix F), and on random inputs we measure
r^ℓ = std(δ̂)/mean(δ̂) and the GEVB angle θ^ℓ (eq. A4) per hidden layer
next to the eq.-15 prediction.  Expected (§4): r ∝ 1/√n in early layers,
θ^{L−1} = atan(σ_{w^L}/μ_{w^L}) independent of n (≈ 45-55° under ON/OFF init).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

IN_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar10_partial": (3, 32, 32),
             "synthetic": (1, 8, 8)}

COLUMNS = ["width", "layer", "hidden_layer", "n", "n_next", "cv_next", "r_measured",
           "r_measured_std", "r_predicted", "theta_measured", "theta_predicted"]


def theory_rows(spec: dict, widths, init: str = "circuit", examples: int = 64,
                dataset: str = "mnist", real_data: bool = False, seed: int = 0, dtype="float64"):
    """Rows (dicts with :data:`COLUMNS`) of measured vs predicted r and θ."""
    from ..core.backend import Backend
    from ..metrics.theory import iid_nonnegative, measure_at_init, with_width
    from ..model.network import build_network

    be = Backend("cpu", dtype, seed)
    if real_data:
        from ..data import load_dataset

        d = load_dataset(dataset, test_subset=examples)
        x, in_shape, n_classes = d.x_test, d.in_shape, d.n_classes
    else:
        in_shape, n_classes = IN_SHAPES[dataset], 10
        x = be.rng("synthetic").uniform(-1.0, 1.0, (examples,) + tuple(in_shape))
    spec = dict(spec)
    if init == "on_off":
        spec["init"] = "on_off"
    rows = []
    for w in widths:
        net = build_network(with_width(spec, w), be, in_shape, n_classes)
        if init == "iid":
            iid_nonnegative(net, be.rng("init", 1, int(w)))
        for r in measure_at_init(net, be.asarray(x)):
            rows.append({"width": int(w), **r})
    return rows


def write_table(rows, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "theory.csv", out / "theory.md"
    with open(csv_path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=COLUMNS)
        wr.writeheader()
        for r in rows:
            wr.writerow({k: r[k] for k in COLUMNS})
    lines = ["# Eq. 15 at initialisation: measured vs predicted", "",
             "r = std(δ̂)/mean(δ̂) over the units of a hidden layer (batch mean), θ = GEVB "
             "alignment angle (deg); prediction: eq. 15 with the empirical σ_w/μ_w of the next "
             "layer's weights (cv_next).", "",
             "| width | hidden layer | n_next | σ/μ next | r measured | r eq. 15 | θ measured | "
             "θ eq. 15 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['width']} | {r['hidden_layer']} | {r['n_next']} | {r['cv_next']:.3f} | "
                     f"{r['r_measured']:.4f} | {r['r_predicted']:.4f} | {r['theta_measured']:.2f} | "
                     f"{r['theta_predicted']:.2f} |")
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]


def plot(rows, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    depths = sorted({r["hidden_layer"] for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, d in enumerate(depths):
        rr = sorted((r for r in rows if r["hidden_layer"] == d), key=lambda r: r["width"])
        w = np.array([r["width"] for r in rr])
        c = colors[k % len(colors)]
        ax1.loglog(w, [r["r_measured"] for r in rr], "o", color=c)
        ax1.loglog(w, [r["r_predicted"] for r in rr], "-", color=c, label=f"hidden {d}")
        ax2.semilogx(w, [r["theta_measured"] for r in rr], "o", color=c)
        ax2.semilogx(w, [r["theta_predicted"] for r in rr], "-", color=c, label=f"hidden {d}")
    ws = np.array(sorted({r["width"] for r in rows}), dtype=float)
    if len(ws):
        first = [r for r in rows if r["hidden_layer"] == depths[0] and r["width"] == ws[0]]
        if first and math.isfinite(first[0]["r_measured"]):
            ax1.loglog(ws, first[0]["r_measured"] * np.sqrt(ws[0] / ws), "k:", label="∝ 1/√n")
    for ax in (ax1, ax2):  # the widths measured, written out (not 6×10¹)
        from matplotlib.ticker import FixedLocator, NullLocator

        ax.xaxis.set_major_locator(FixedLocator(ws))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax1.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: f"{v:g}" if round(v / 10 ** np.floor(np.log10(v)), 6) in (2, 3, 5) else ""))
    ax1.set_xlabel("width n")
    ax1.set_ylabel("r = std(δ̂)/mean(δ̂)")
    ax1.legend(fontsize=7, title="markers measured, lines eq. 15", title_fontsize=7)
    ax2.set_xlabel("width n")
    ax2.set_ylabel("GEVB alignment angle θ (deg)")
    ax2.axhline(45, color="grey", lw=0.5)
    ax2.legend(fontsize=7, title="markers measured, lines eq. 15", title_fontsize=7)
    fig.suptitle("GEVB at initialisation: eq. 15 vs measurement")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_theory(spec, widths, out, **options) -> list[Path]:
    out = Path(out)
    rows = theory_rows(spec, widths, **options)
    files = write_table(rows, out)
    files.append(plot(rows, out / "theory.png"))
    return files
