"""The CSVs and figures of the second circuit-dynamics study (docs/results/dynamics_study2.md).

The study runs in tranches over several sessions, and a session's run stores do not outlive
it: the committed CSVs are the study's memory.  This script reads one or more sweep stores
of ``protocols/dynamics_study2.yaml`` (through :func:`neurosim.analysis.reader.open_sweep`,
read-only) and MERGES their finished runs into the CSVs beside it (or in ``--out``):

* ``dynamics_study2.csv`` — one row per finished run, keyed by the run's name (``run``):
  ``circuit`` (grouped / temporal / batched), ``case`` (the run's ``description``), ``item``
  (1-6 of the study's questions, from the case name), ``level_name`` and ``level`` (the
  varied value: spikes per window, σ_M, χ, bin ms/delay ms), ``seed``, ``epochs``, ``steps``,
  final ``train_error`` and ``test_error`` (%), ``best_test_error`` and its ``best_epoch``,
  ``mean_rate_hz`` (mean over the trial records and the hidden populations of the recorded
  ``mean_rate``; empty when the run recorded none), ``spikes_per_window`` (r0 × (presentation
  − settle) of the run's protocol), ``wall_s`` (training wall time), ``commit`` (``--commit``,
  else the code version the run recorded: ``neurosim <version>``), then the protocol values
  the figures use (neurons, code, bins, delay, trace, noise, crosstalk, dt);
* ``dynamics_study2_curves.csv`` — the learning curves, long format: ``case``, ``seed``,
  ``epoch``, ``test_error``, ``train_error``, ``run``.

Rows already in the CSVs (from stores of earlier sessions) are kept; a run read again
replaces its rows.  Runs the stores list but that have not finished are printed, not written.

    python docs/results/dynamics_study2.py runs/dynamics_study2.zarr [more stores ...]
    python docs/results/dynamics_study2.py --missing     # --only patterns of the runs not in the CSV
    python docs/results/dynamics_study2.py --figures     # the figures, from the CSVs only

``--figures`` draws ``dynamics_study2_{curves,spikes,noise,temporal,crosstalk}.png`` from the
CSVs (never from a store): learning curves per case, test error against spikes per decoding
window, against σ_M, the temporal bin × delay map, and crosstalk against the analytic
prediction.  A case without rows is marked "not yet run".
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROTOCOL = ROOT / "protocols" / "dynamics_study2.yaml"
RUNS_CSV = "dynamics_study2.csv"
CURVES_CSV = "dynamics_study2_curves.csv"

COLUMNS = ["run", "circuit", "case", "item", "level_name", "level", "seed", "epochs", "steps",
           "train_error", "test_error", "best_test_error", "best_epoch", "mean_rate_hz",
           "spikes_per_window", "wall_s", "commit",
           # the protocol values the figures use
           "neurons", "baseline_hz", "gain_hz", "presentation_ms", "settle_ms", "delay_ms",
           "tau_e_ms", "noise", "crosstalk", "crosstalk_structure", "dt_ms"]
CURVE_COLUMNS = ["case", "seed", "epoch", "test_error", "train_error", "run"]

#: case-name prefix -> item of the study (issue's numbering), first match wins
ITEMS = (("g-ref", 5), ("g-ideal", 5), ("bp", 5), ("g-xt", 4), ("g-noise", 2), ("t-", 3),
         ("g-poisson", 1), ("g-lif", 1), ("g-dale", 6))
#: K of the study circuit (MNIST)
K = 10


# ------------------------------------------------------------------------------ reading
def item_of(case: str):
    for prefix, item in ITEMS:
        if case == prefix or case.startswith(prefix):
            return item
    return ""


def _num(v):
    """A float as the CSV writes it (rounded), an int stays an int."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return "" if not math.isfinite(v) else round(v, 5)
    return v


def describe(protocol: dict) -> dict:
    """The columns a run's resolved protocol decides (circuit, case, item, level, dynamics)."""
    real = protocol.get("realization") or {}
    case = str(protocol.get("description") or "")
    row = {"circuit": str(real.get("type", "")), "case": case, "item": item_of(case),
           "seed": protocol.get("seed")}
    dyn = real.get("dynamics")
    if dyn:
        neu, code, nm = dyn["neurons"], dyn["code"], dyn["neuromodulator"]
        window = dyn["presentation_ms"] - dyn["settle_ms"]
        row.update(neurons=neu["model"], baseline_hz=code["baseline_hz"], gain_hz=code["gain_hz"],
                   presentation_ms=dyn["presentation_ms"], settle_ms=dyn["settle_ms"],
                   delay_ms=nm["delay_ms"], tau_e_ms=dyn["eligibility"]["tau_e_ms"],
                   noise=nm["noise"], crosstalk=nm["crosstalk"],
                   crosstalk_structure=nm.get("crosstalk_structure", "uniform"),
                   dt_ms=dyn["dt_ms"], spikes_per_window=code["baseline_hz"] * window / 1000.0)
    levels = {1: ("spikes per window", row.get("spikes_per_window")), 2: ("sigma_M", row.get("noise")),
              4: ("chi", row.get("crosstalk"))}
    if row["item"] == 3 and dyn:
        levels[3] = ("bin ms/delay ms", f"{dyn['presentation_ms']:g}/{dyn['neuromodulator']['delay_ms']:g}")
    name, level = levels.get(row["item"], ("", ""))
    row.update(level_name=name, level=_num(level) if level is not None else "")
    return row


def _code_version(run) -> str:
    versions = run.attrs.get("versions") or {}
    v = versions.get("neurosim") if isinstance(versions, dict) else None
    return f"neurosim {v}" if v else ""


def read_store(path, commit: str | None = None):
    """``(rows, curves, unfinished)`` of one sweep store: a row and its curve points per finished
    run; ``(name, status, epochs done)`` per run listed but not finished."""
    from neurosim.analysis.reader import open_sweep

    rows, curves, unfinished = [], [], []
    for e in open_sweep(path).entries:
        run = e.run
        if e.status != "finished" or run is None or not run.values("epoch").size:
            done = float(run.values("epoch")[-1]) if run is not None and run.values("epoch").size else 0.0
            unfinished.append((e.name, e.status, done))
            continue
        epoch, test, train = run.values("epoch"), run.values("test_error"), run.values("train_error")
        best = int(np.nanargmin(test))
        row = {k: "" for k in COLUMNS}
        row.update(describe(run.protocol))
        rate = run.values("mean_rate")  # (trial records, weight layer): the last is the readout
        row.update(run=e.name, seed=e.seed, epochs=epoch[-1], steps=int(run.last("n_steps")),
                   train_error=train[-1], test_error=test[-1], best_test_error=test[best],
                   best_epoch=epoch[best], wall_s=run.last("wall_time"),
                   mean_rate_hz=float(np.nanmean(rate[:, :-1])) if rate.ndim == 2 and rate.size else "",
                   commit=commit or _code_version(run))
        rows.append({k: _num(v) for k, v in row.items()})
        curves += [{"case": row["case"], "seed": e.seed, "epoch": _num(ep), "test_error": _num(te),
                    "train_error": _num(tr), "run": e.name} for ep, te, tr in zip(epoch, test, train)]
    return rows, curves, unfinished


# ------------------------------------------------------------------------------ the CSVs
def read_csv(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _order(row) -> tuple:
    item = row.get("item")
    return (int(item) if str(item).strip() else 99, str(row["case"]), int(row["seed"]))


def merge(old_rows, old_curves, new_rows, new_curves):
    """The merged ``(rows, curves)``: old rows kept unless a run of the same name was read
    again, whose row and curve points replace the old ones."""
    fresh = {r["run"] for r in new_rows}
    rows = {r["run"]: r for r in old_rows if r["run"] not in fresh}
    rows.update({r["run"]: r for r in new_rows})
    curves = [c for c in old_curves if c["run"] not in fresh] + list(new_curves)
    rows = sorted(rows.values(), key=_order)
    order = {r["run"]: i for i, r in enumerate(rows)}
    curves.sort(key=lambda c: (order.get(c["run"], len(order)), float(c["epoch"])))
    return rows, curves


def write_csv(path: Path, rows, columns) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in columns})
    return path


def update(stores, out: Path, commit=None, echo=print) -> tuple:
    """Read the stores and merge them into the CSVs in ``out``; returns ``(rows, unfinished)``."""
    new_rows, new_curves, unfinished = [], [], []
    for s in stores:
        r, c, u = read_store(s, commit)
        new_rows += r
        new_curves += c
        unfinished += u
    rows, curves = merge(read_csv(out / RUNS_CSV), read_csv(out / CURVES_CSV), new_rows, new_curves)
    write_csv(out / RUNS_CSV, rows, COLUMNS)
    write_csv(out / CURVES_CSV, curves, CURVE_COLUMNS)
    echo(f"{out / RUNS_CSV}: {len(rows)} runs ({len(new_rows)} read now)")
    for name, status, done in unfinished:
        echo(f"  not finished ({status or 'not started'}, {done:g} epochs): {name}")
    return rows, unfinished


def missing_patterns(csv_rows, protocol=PROTOCOL) -> list[str]:
    """``--only`` patterns selecting exactly the protocol's runs that have no row in the CSV:
    ``description=<case>,*`` when a case has none, else one per seed (the run's full name when
    the short pattern would select another run), in the protocol's order."""
    from neurosim.sweep import load_sweep

    sw = load_sweep(protocol, validate=False)
    have = {r["run"] for r in csv_rows}
    by_case: dict = {}
    for r in sw.runs:
        by_case.setdefault(str(r.overrides.get("description", r.cell)), []).append(r)

    def exact(pattern, runs) -> bool:
        return {r.name for r in sw.select([pattern])} == {r.name for r in runs}

    out = []
    for case, runs in by_case.items():
        todo = [r for r in runs if r.name not in have]
        if not todo:
            continue
        whole = f"description={case},*"
        if len(todo) == len(runs) and exact(whole, runs):
            out.append(whole)
            continue
        for r in todo:
            short = f"description={case},*seed={r.overrides['seed']}"
            out.append(short if exact(short, [r]) else r.name)
    return out


# ------------------------------------------------------------------------------ figures
def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _stats(values):
    """(mean, standard error, n) of the finite values; s.e. 0 for one value."""
    x = np.asarray([_f(v) for v in values], float)
    x = x[np.isfinite(x)]
    if not x.size:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se, int(x.size)


def by_case(rows) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault(r["case"], []).append(r)
    return out


def protocol_cases(protocol=PROTOCOL) -> list[str]:
    """The case names of the study protocol, in order (read from its YAML, no store)."""
    import yaml

    raw = yaml.safe_load(Path(protocol).read_text())
    return [str(c.get("description")) for c in raw["sweep"]["cases"]]


def _log_error_axis(ax, label="test error (%)"):
    from neurosim.analysis.figures import ErrorAxis

    ErrorAxis(ax).finish(label, zero_note=False)


def _save(fig, path: Path, dpi=120) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _missing(ax, drawn: bool, todo, where=(0.5, 0.5)) -> None:
    """Mark a panel: "not yet run" when nothing is drawn, else the cases without rows."""
    if not drawn:
        _not_yet(ax, where=where)
    elif todo:
        _not_yet(ax, todo, where=(0.5, 0.04))


def _finish(ax, legend_cols=2):
    """The shared look of the level figures: log error axis 1-100 %, legend below the axes."""
    ax.set_ylim(1, 100)
    _log_error_axis(ax)
    ax.legend(fontsize=8, ncol=legend_cols, loc="upper center", bbox_to_anchor=(0.5, -0.14))


def _not_yet(ax, names=None, where=(0.5, 0.5)):
    import textwrap

    text = "not yet run" if not names else textwrap.fill("not yet run: " + ", ".join(names), 48)
    ax.text(*where, text, transform=ax.transAxes, ha="center", va="bottom" if names else "center",
            fontsize=7.5, color="0.35", bbox=dict(fc="w", ec="0.8", alpha=0.9))


def _band(ax, cases, name, color, label, ls="--"):
    """A reference case as a horizontal line at its mean with a ±1 s.e. band."""
    m, se, n = _stats([r["test_error"] for r in cases.get(name, [])])
    if not n:
        return
    ax.axhline(m, color=color, ls=ls, lw=1.1, label=f"{label} {m:.2f}% (n={n})")
    if se > 0:
        ax.axhspan(m - se, m + se, color=color, alpha=0.15, lw=0)


#: panels of the learning-curve figure: (title, case filter, ideal reference case, cases the
#: panel expects even when the protocol does not list them yet)
PANELS = [
    ("5 · reference dynamics", lambda c: c in ("g-ref", "g-ideal", "bp"), None, ()),
    ("4 · crosstalk (xt: uniform, xtn: neighbours)", lambda c: c == "g-ref" or c.startswith("g-xt"),
     "g-ideal", ()),
    ("2 · neuromodulator noise σ_M", lambda c: c == "g-ref" or c.startswith("g-noise"), "g-ideal", ()),
    ("1 · Poisson spikes", lambda c: c == "g-ref" or c.startswith("g-poisson"), "g-ideal", ()),
    ("1 · LIF spikes", lambda c: c == "g-ref" or c.startswith("g-lif"), "g-ideal", ()),
    ("3 · temporal, 50 and 100 ms bins", lambda c: bool(re.match(r"t-b(50|100)-", c)), "t-ideal", ()),
    ("3 · temporal, 250/500 ms bins, guard", lambda c: bool(re.match(r"t-b(250|500)-", c)), "t-ideal", ()),
    ("6 · Dale-compliant", lambda c: c in ("g-ref", "g-dale"), "g-ideal", ("g-dale",)),
]


def mean_curves(curves) -> dict:
    """case -> (epochs, mean, s.e., number of seeds) of the test error."""
    per: dict = {}
    for c in curves:
        per.setdefault(c["case"], {}).setdefault(_f(c["epoch"]), []).append(_f(c["test_error"]))
    out = {}
    for case, pts in per.items():
        ep = sorted(pts)
        st = [_stats(pts[e]) for e in ep]
        out[case] = (np.array(ep), np.array([s[0] for s in st]), np.array([s[1] for s in st]),
                     max(s[2] for s in st))
    return out


def plot_curves(rows, curves, path: Path, cases_all) -> Path:
    from neurosim.analysis.figures import pyplot

    plt = pyplot()
    mc = mean_curves(curves)
    fig, axes = plt.subplots(2, 4, figsize=(20, 12.5), sharex=True)
    for ax, (title, keep, ideal, expected) in zip(axes.flat, PANELS):
        names = [c for c in cases_all if keep(c)] + [c for c in mc if keep(c) and c not in cases_all]
        names += [c for c in expected if c not in names]
        have = [c for c in names if c in mc]
        ax.set_title(title, fontsize=10)
        colors = plt.get_cmap("tab10" if len(have) <= 10 else "tab20")
        for i, c in enumerate(have):
            ep, m, se, n = mc[c]
            ax.plot(ep, m, marker="o", ms=3, color=colors(i), label=f"{c} (n={n})")
            ax.fill_between(ep, m - se, m + se, color=colors(i), alpha=0.2, lw=0)
        for ref, style in ((ideal, dict(color="k", ls="--")), ("bp" if ideal else None,
                                                               dict(color="0.4", ls=":"))):
            if ref and ref in mc:
                ep, m, _, n = mc[ref]
                ax.plot(ep, m, lw=1.2, label=f"{ref} (n={n})", **style)
        ax.set_ylim(1, 100)
        _log_error_axis(ax)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))
        _missing(ax, bool(have), [c for c in names if c not in mc])
    for ax in axes.flat:
        ax.set_xlabel("epoch", labelpad=1)
        ax.tick_params(labelbottom=True)
    fig.suptitle("Learning curves of the study (test error, mean ± s.e. over seeds; "
                 "MNIST VNN 784-256-128, 10,000 training images)", fontsize=12)
    return _save(fig, path, dpi=110)


def _pointset(ax, xs, cases, names, color, marker, label, filled=True, line=True):
    pts = []
    for c in names:
        m, se, n = _stats([r["test_error"] for r in cases.get(c, [])])
        if n:
            pts.append((xs[c], m, se))
    if not pts:
        return False
    pts.sort()
    x, m, se = (np.array(v) for v in zip(*pts))
    ax.errorbar(x, m, yerr=se, color=color, marker=marker, ls="-" if line else "none", capsize=3,
                mfc=color if filled else "white", label=label, ms=6)
    return True


def plot_spikes(rows, path: Path, cases_all) -> Path:
    from neurosim.analysis.figures import pyplot

    plt = pyplot()
    cases = by_case(rows)
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    spikes = {c: _f(rs[0]["spikes_per_window"]) for c, rs in cases.items()}
    drawn = False
    for model, color, marker in (("poisson", "tab:blue", "o"), ("lif", "tab:red", "s")):
        names = [c for c in cases if c.startswith(f"g-{model}")]
        tail = {c: c.split(f"g-{model}-r", 1)[-1] for c in names}
        gain = [c for c in names if "-g" in tail[c]]  # the code at another gain than r0/2
        code = [c for c in names if "-p" not in tail[c] and c not in gain]
        pres = [c for c in names if c not in code and c not in gain]
        label = "LIF" if model == "lif" else "Poisson"
        drawn |= _pointset(ax, spikes, cases, code, color, marker, f"{label} (r0 varied, 50 ms presentation)")
        for c in gain:  # one point each, not joined to the code route
            g = _f(cases[c][0]["gain_hz"])
            drawn |= _pointset(ax, spikes, cases, [c], color, "D", f"{label}, gain {g:g} Hz per unit")
        drawn |= _pointset(ax, spikes, cases, pres, color, marker, f"{label} (longer presentation)",
                           filled=False, line=False)
    _band(ax, cases, "g-ref", "tab:green", "rate neurons (g-ref)")
    _band(ax, cases, "g-ideal", "k", "ideal dynamics")
    _band(ax, cases, "bp", "0.5", "BP", ls=":")
    m, _, n = _stats([r["test_error"] for r in cases.get("g-ref", [])])
    if n:
        ax.axhline(m + 1.0, color="tab:green", ls=":", lw=1, label="rate + 1 pp")
    ax.set_xscale("log")
    ax.set_xlim(0.15, 50)
    ax.set_xticks([0.2, 0.3, 0.6, 1, 2, 3, 6, 10, 20, 30], ["0.2", "0.3", "0.6", "1", "2", "3", "6",
                                                            "10", "20", "30"])
    ax.set_xlabel("spikes per decoding window at baseline, r0 × (presentation − settle)")
    spike_cases = [c for c in cases_all if c.startswith(("g-poisson", "g-lif"))]
    todo = [c for c in spike_cases if c not in cases]
    _missing(ax, drawn, todo)
    _finish(ax)
    ax.set_title("1 · Spikes per decoding window (grouped circuit; bars: s.e. over seeds)", fontsize=10)
    return _save(fig, path)


def plot_noise(rows, path: Path, cases_all) -> Path:
    from neurosim.analysis.figures import pyplot

    plt = pyplot()
    cases = by_case(rows)
    fig, ax = plt.subplots(figsize=(7.5, 6))
    names = ["g-ref"] + [c for c in cases if c.startswith("g-noise")]
    xs = {c: _f(cases[c][0]["noise"]) for c in names if c in cases}
    drawn = _pointset(ax, xs, cases, names, "tab:purple", "o", "grouped reference with noise σ_M")
    for c in names:
        for r in cases.get(c, []):
            ax.plot(xs[c], _f(r["test_error"]), ".", color="tab:purple", alpha=0.4, ms=4)
    _band(ax, cases, "g-ideal", "k", "ideal dynamics")
    _band(ax, cases, "bp", "0.5", "BP", ls=":")
    m, _, n = _stats([r["test_error"] for r in cases.get("g-ref", [])])
    if n:
        ax.axhline(m + 1.0, color="tab:purple", ls=":", lw=1, label="σ_M = 0 + 1 pp")
    ax.set_xscale("symlog", linthresh=0.03, linscale=0.5)
    ax.set_xlim(-0.005, 1.5)
    ax.set_xticks([0, 0.03, 0.1, 0.3, 1.0], ["0", "0.03", "0.1", "0.3", "1"])
    ax.set_xlabel("neuromodulator noise σ_M (per-example error units; OU, τ_M 50 ms)")
    todo = [c for c in cases_all if c.startswith("g-noise") and c not in cases]
    _missing(ax, drawn, todo)
    _finish(ax)
    ax.set_title("2 · Neuromodulator noise (dots: seeds; bars: s.e.)", fontsize=10)
    return _save(fig, path)


MAP = re.compile(r"t-b(\d+)-d(\d+)$")


def plot_temporal(rows, path: Path, cases_all) -> Path:
    from matplotlib.colors import LogNorm

    from neurosim.analysis.figures import pyplot

    plt = pyplot()
    cases = by_case(rows)
    grid = [c for c in cases_all if MAP.match(c)] + [c for c in cases if MAP.match(c) and c not in cases_all]
    bins = sorted({int(MAP.match(c).group(1)) for c in grid} or {50, 100, 250})
    delays = sorted({int(MAP.match(c).group(2)) for c in grid} or {0, 100, 300})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.15]})
    norm = LogNorm(vmin=1, vmax=100)
    val = np.full((len(bins), len(delays)), np.nan)
    for i, b in enumerate(bins):
        for j, d in enumerate(delays):
            c = f"t-b{b}-d{d}"
            m, se, n = _stats([r["test_error"] for r in cases.get(c, [])])
            val[i, j] = m
            text = ("" if c not in grid else "not yet run" if not n else f"{m:.1f}%\n(n=1)" if n == 1
                    else f"{m:.1f}%\n±{se:.1f} (n={n})")
            dark = n and norm(m) > 0.7
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="w" if dark else "k" if n else "0.4")
    im = ax.imshow(val, cmap="YlOrRd", norm=norm, aspect="auto")
    ax.set_xticks(range(len(delays)), [f"{d}" for d in delays])
    ax.set_yticks(range(len(bins)), [f"{b}" for b in bins])
    ax.set_xlabel("neuromodulator delay (ms)")
    ax.set_ylabel("bin length (ms)")
    ax.set_title("3 · temporal circuit: test error (mean ± s.e.)\nsettle 20 ms, τ_e 500 ms, dt 5 ms",
                 fontsize=10)
    fig.colorbar(im, ax=ax, label="test error (%)", fraction=0.05)
    # the remedy, its controls and the checks, as bars
    others = ["t-ideal", "t-b50-d100", "t-b50-d100-dt1", "t-b250-d100", "t-b250-d100-guard-e100",
              "t-b250-d100-guard-e500", "t-b250-d300", "t-b500-d300-guard-e300"]
    others += [c for c in list(cases_all) + list(cases) if c.startswith("t-") and c not in others
               and not MAP.match(c)]
    others = list(dict.fromkeys(others))
    y = np.arange(len(others))
    for k, c in enumerate(others):
        m, se, n = _stats([r["test_error"] for r in cases.get(c, [])])
        if n:
            bx.barh(k, m, xerr=se, color="tab:orange" if "guard" in c else "tab:blue", alpha=0.7,
                    capsize=3)
            bx.text((m + se) * 1.08, k, f"{m:.1f}% (n={n})", va="center", fontsize=8)
        else:
            bx.text(1.1, k, "not yet run", va="center", fontsize=8, color="0.4")
    bx.set_yticks(y, others, fontsize=8)
    bx.set_ylim(len(others) - 0.5, -0.5)
    bx.set_xscale("log")
    bx.set_xlim(1, 200)
    from matplotlib.ticker import FuncFormatter

    bx.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bx.axvline(90, color="0.5", ls=":", lw=1)
    bx.set_xlabel("test error (%)  (dotted: chance 90%)")
    bx.set_title("3 · remedy (orange: guard interval), controls, dt check", fontsize=10)
    bx.grid(True, axis="x", which="major", alpha=0.3)
    return _save(fig, path)


def neighbours_range(chi: float) -> tuple:
    """(min, max) of εᵀCε/εᵀε over the error vectors that sum to 0 (the softmax error) for
    crosstalk to the neighbouring channels: the factors the error's directions are scaled by
    (for uniform crosstalk both are 1 − χK/(K − 1))."""
    from neurosim.realizations.dynamics.neuromodulator import mix

    u, _, _ = np.linalg.svd(np.eye(K) - 1.0 / K)
    Q = u[:, :K - 1]  # an orthonormal basis of the sum-zero vectors
    ev = np.linalg.eigvalsh(Q.T @ mix(np.eye(K), chi, "neighbours") @ Q)
    return float(ev.min()), float(ev.max())


def plot_crosstalk(rows, path: Path, cases_all) -> Path:
    from neurosim.analysis.figures import pyplot

    plt = pyplot()
    cases = by_case(rows)
    fig, ax = plt.subplots(figsize=(8.5, 6.5))
    drawn = False
    for structure, prefix, color, marker in (("uniform", "g-xt", "tab:blue", "o"),
                                             ("neighbours", "g-xtn", "tab:red", "s")):
        names = [c for c in cases if c.startswith(prefix)
                 and (structure == "neighbours" or not c.startswith("g-xtn"))]
        names = ["g-ref"] + names if names else []  # χ = 0: the reference
        xs = {c: _f(cases[c][0]["crosstalk"]) for c in names if c in cases}
        drawn |= _pointset(ax, xs, cases, names, color, marker, f"{structure} crosstalk")
    _band(ax, cases, "g-ideal", "k", "ideal dynamics")
    ax.axhline(90, color="0.5", ls=":", lw=1, label="chance 90%")
    todo = [c for c in cases_all if c.startswith("g-xt") and c not in cases]
    _missing(ax, drawn, todo, where=(0.5, 0.6))
    ax.set_ylim(1, 100)
    _log_error_axis(ax)
    ax.set_xlim(-0.02, 1.0)
    ax.set_xlabel("crosstalk χ")
    # the analytic prediction on a second axis
    tx = ax.twinx()
    chi = np.linspace(0, 1, 201)
    tx.plot(chi, 1 - chi * K / (K - 1), color="tab:blue", lw=1, alpha=0.6,
            label="uniform: error × (1 − χK/(K − 1))")
    band = np.array([neighbours_range(c) for c in chi])
    tx.fill_between(chi, band[:, 0], band[:, 1], color="tab:red", alpha=0.12,
                    label="neighbours: range of the factors on the error")
    tx.axhline(0, color="0.6", lw=0.8)
    tx.axvline(0.9, color="tab:blue", ls="--", lw=1)
    tx.text(0.89, -0.6, "χ = 0.9: uniform update exactly 0;\nχ > 0.9: reversed", fontsize=8,
            color="tab:blue", ha="right", va="bottom")
    tx.set_ylim(-1.2, 1.2)
    tx.set_ylabel("analytic factor on the error (right)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = tx.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.set_title(f"4 · Crosstalk between the K = {K} channels (bars: s.e. over seeds)", fontsize=10)
    return _save(fig, path)


def figures(out: Path, protocol=PROTOCOL) -> list[Path]:
    """All figures, from the CSVs in ``out`` only."""
    rows, curves = read_csv(out / RUNS_CSV), read_csv(out / CURVES_CSV)
    cases_all = protocol_cases(protocol)
    stem = out / "dynamics_study2"
    return [plot_curves(rows, curves, Path(f"{stem}_curves.png"), cases_all),
            plot_spikes(rows, Path(f"{stem}_spikes.png"), cases_all),
            plot_noise(rows, Path(f"{stem}_noise.png"), cases_all),
            plot_temporal(rows, Path(f"{stem}_temporal.png"), cases_all),
            plot_crosstalk(rows, Path(f"{stem}_crosstalk.png"), cases_all)]


# ------------------------------------------------------------------------------ command line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="*", help="sweep stores of protocols/dynamics_study2.yaml")
    ap.add_argument("--out", default=str(HERE), help="folder of the CSVs and figures (default: docs/results)")
    ap.add_argument("--commit", help="the code version to record for the runs read (default: the "
                                     "version the run recorded)")
    ap.add_argument("--protocol", default=str(PROTOCOL), help="the study's sweep protocol")
    ap.add_argument("--missing", action="store_true",
                    help="print the --only patterns of the protocol's runs not in the CSV")
    ap.add_argument("--figures", action="store_true", help="draw the figures from the CSVs")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if not (a.stores or a.missing or a.figures):
        ap.error("give a sweep store, --missing or --figures")
    if not out.is_dir():
        print(f"error: {out} is not a folder", file=sys.stderr)
        return 2
    from neurosim.recording import StoreError

    if a.stores:
        try:
            update(a.stores, out, a.commit)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if a.missing:
        pats = missing_patterns(read_csv(out / RUNS_CSV), a.protocol)
        print(f"# {len(pats)} --only patterns: the runs of {a.protocol} not in {out / RUNS_CSV}")
        for p in pats:
            print(f"--only '{p}'")
    if a.figures:
        for p in figures(out, a.protocol):
            print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
