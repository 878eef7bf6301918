"""Tables and figures of the circuit-dynamics study (docs/results/dynamics_study.md).

Reads the sweep store written by ``neurosim sweep protocols/dynamics_study.yaml`` and writes,
beside this file (or into ``--out``):

* ``dynamics_study.csv`` — one row per run: circuit, case, seed, final test and train error,
  the mean cosine between the circuit's update and batched GEVB's on the same batch
  (``update_cosine``, per weight layer, averaged over the records), the fraction of
  neuron-steps at zero rate and the mean rate of the hidden layers on the probe examples;
* ``dynamics_study_table.md`` — per circuit and case: test error over seeds (mean, and the
  seeds' values), train error, update cosine;
* ``dynamics_study_delay.png`` — test error against neuromodulator delay, one line per
  eligibility time constant, per circuit;
* ``dynamics_study_cases.png`` — test error of every case, per circuit, with ideal GEVB and BP.

    python docs/results/dynamics_study.py runs/dynamics_study.zarr
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from neurosim.analysis.figures import pyplot
from neurosim.analysis.reader import open_sweep

HERE = Path(__file__).resolve().parent

#: override key (last part) -> short label
SHORT = {"tau_e_ms": "τ_e", "delay_ms": "delay", "replay": "replay", "noise": "σ_M",
         "crosstalk": "crosstalk", "presentation_ms": "presentation", "settle_ms": "settle",
         "model": "neurons", "baseline_hz": "r0", "gain_hz": "gain"}


REFERENCE = "τ_e 500 ms, delay 100 ms"
RENAME = {"replay False": "no replay", "neurons poisson": "Poisson spikes",
          "neurons poisson, r0 320 Hz, gain 160 Hz": "Poisson spikes, r0 320 Hz, gain 160 Hz"}


def _order(case: str):
    """Table order: ideal, the reference, the τ_e × delay grid, the other non-idealities."""
    if case == "ideal":
        return (0,)
    if case == REFERENCE:
        return (1,)
    if case.startswith("τ_e"):
        te, delay = (float(p.split()[1]) for p in case.split(", "))
        return (2, te, delay)
    return (3, case)


def _case(overrides: dict) -> tuple[str, str]:
    """(circuit, case label) of a run from its sweep overrides."""
    real = overrides.get("realization") or {}
    if overrides.get("rule.name") == "bp":
        return "batched", "BP"
    circuit = str(real.get("type"))
    if isinstance(overrides.get("realization.dynamics"), dict):
        return circuit, "ideal"
    parts = []
    for key, value in overrides.items():
        if not key.startswith("realization.dynamics."):
            continue
        name = key.rsplit(".", 1)[-1]
        if name == "settle_ms":
            continue  # goes with presentation_ms
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        unit = " ms" if name.endswith("_ms") else " Hz" if name.endswith("_hz") else ""
        parts.append(f"{SHORT.get(name, name)} {value}{unit}")
    label = ", ".join(parts) or "reference"
    return circuit, RENAME.get(label, label)


def _mean(x) -> float:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def collect(path) -> list[dict]:
    sweep = open_sweep(path)
    listing = sweep.attrs.get("runs") or {}
    rows = []
    for e in sweep.entries:
        if e.run is None or e.status != "finished":
            continue
        circuit, case = _case(listing[e.name].get("overrides") or {})
        ds = e.run.ds
        row = {"circuit": circuit, "case": case, "seed": e.seed,
               "test_error": float(ds["test_error"].values[-1]),
               "train_error": float(ds["train_error"].values[-1]),
               "epochs": float(ds["epoch"].values[-1])}
        if "update_cosine" in ds:
            cos = ds["update_cosine"].values  # (records, weight layer)
            for layer in range(cos.shape[1]):
                row[f"update_cosine_{layer}"] = _mean(cos[:, layer])
        for var in ("zero_rate_fraction", "mean_rate"):
            name = var if var in ds else f"dyn_{var}"  # (the name in stores written before)
            if name in ds:
                v = ds[name].values  # (records, weight layer)
                row[var] = _mean(v[:, :-1])  # hidden layers (the readout is not gated)
        rows.append(row)
    return rows


def _cases(rows, circuit):
    out: dict = {}
    for r in rows:
        if r["circuit"] == circuit:
            out.setdefault(r["case"], []).append(r)
    return out


def write_table(rows, path: Path) -> Path:
    lines = []
    bp = _cases(rows, "batched").get("BP", [])
    for circuit in ("grouped", "temporal"):
        cases = _cases(rows, circuit)
        if not cases:
            continue
        lines += [f"### {circuit} circuit", "",
                  "| case | test error % (seeds) | train error % | update cosine (layers 1, 2, 3) |",
                  "|---|---|---|---|"]
        order = sorted(cases, key=_order)
        for case in order + (["BP"] if bp else []):
            rs = cases.get(case, bp if case == "BP" else [])
            te = [r["test_error"] for r in sorted(rs, key=lambda r: r["seed"])]
            tr = _mean([r["train_error"] for r in rs])
            cos = [_mean([r.get(f"update_cosine_{i}", math.nan) for r in rs]) for i in range(3)]
            cos_text = "—" if all(math.isnan(c) for c in cos) else ", ".join(f"{c:.2f}" for c in cos)
            label = ("BP (batched)" if case == "BP" else "**reference**: " + case if case == REFERENCE
                     else case)
            lines.append(f"| {label} | {_mean(te):.2f} ({', '.join(f'{t:.2f}' for t in te)}) | "
                         f"{tr:.2f} | {cos_text} |")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_csv(rows, path: Path) -> Path:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["circuit"], r["case"], r["seed"])):
            w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()})
    return path


def _log_axis(axis) -> None:
    """A log-scaled error axis labelled 1, 2, 5, 10, 20, 50, ... (no powers of ten)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _refs(ax, rows, circuit, vertical=False):
    """Ideal GEVB and BP on the same circuit as lines across the plot (vertical: at an x)."""
    line = ax.axvline if vertical else ax.axhline
    ideal = [r["test_error"] for r in _cases(rows, circuit).get("ideal", [])]
    bp = [r["test_error"] for r in _cases(rows, "batched").get("BP", [])]
    if ideal:
        line(_mean(ideal), color="k", ls="--", lw=1, label=f"ideal dynamics ({_mean(ideal):.1f}%)")
    if bp:
        line(_mean(bp), color="tab:gray", ls=":", lw=1.2, label=f"BP ({_mean(bp):.1f}%)")


def plot_delay(rows, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, circuit in zip(axes, ("grouped", "temporal")):
        grid: dict = {}
        for r in rows:
            if r["circuit"] != circuit or not r["case"].startswith("τ_e"):
                continue
            parts = dict(p.split(" ", 1) for p in r["case"].split(", "))
            te = float(parts["τ_e"].split()[0])
            delay = float(parts["delay"].split()[0])
            grid.setdefault(te, {}).setdefault(delay, []).append(r["test_error"])
        for te in sorted(grid):
            ds = sorted(grid[te])
            m = [_mean(grid[te][d]) for d in ds]
            lo = [min(grid[te][d]) for d in ds]
            hi = [max(grid[te][d]) for d in ds]
            line, = ax.plot(ds, m, marker="o", label=f"τ_e = {te:g} ms")
            ax.vlines(ds, lo, hi, color=line.get_color(), lw=2, alpha=0.5)
        _refs(ax, rows, circuit)
        if not grid:
            ax.set_axis_off()
            continue
        ax.set_yscale("log")
        _log_axis(ax.yaxis)
        ax.set_xlabel("neuromodulator delay (ms)")
        ax.set_title(f"{circuit} circuit")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test error after 2 epochs (%)\n(line: mean of 2 seeds; bar: range)")
    fig.suptitle("Eligibility traces against neuromodulator delay (MNIST VNN 784-256-128, K = 10)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cases(rows, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, circuit in zip(axes, ("grouped", "temporal")):
        cases = _cases(rows, circuit)
        if not cases:
            ax.set_axis_off()
            continue
        names = sorted((c for c in cases if c != "ideal"
                        and not (c.startswith("τ_e") and c != REFERENCE)), key=_order)
        if not names:
            ax.set_axis_off()
            continue
        y = np.arange(len(names))
        m = [_mean([r["test_error"] for r in cases[c]]) for c in names]
        ax.barh(y, m, color="tab:blue", alpha=0.6)
        for i, c in enumerate(names):
            ax.plot([r["test_error"] for r in cases[c]], [i] * len(cases[c]), "k.", ms=5)
        labels = [f"reference ({REFERENCE})" if c == REFERENCE else f"+ {c}" for c in names]
        ax.set_yticks(y, labels, fontsize=9)
        ax.invert_yaxis()
        _refs(ax, rows, circuit, vertical=True)
        ax.set_xscale("log")
        ax.set_xlim(5, 100)
        _log_axis(ax.xaxis)
        ax.set_xlabel("test error after 2 epochs (%)")
        ax.set_title(f"{circuit} circuit")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle("The reference dynamics with one change each (bar: mean of 2 seeds, dots: seeds; "
                 "chance is 90%)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", help="the sweep store (runs/dynamics_study.zarr)")
    ap.add_argument("--out", default=str(HERE), help="output directory (default: docs/results)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(a.store)
    for p in (write_csv(rows, out / "dynamics_study.csv"),
              write_table(rows, out / "dynamics_study_table.md"),
              plot_delay(rows, out / "dynamics_study_delay.png"),
              plot_cases(rows, out / "dynamics_study_cases.png")):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
