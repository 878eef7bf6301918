"""The figure of one trial (``neurosim plot trial``).

Rows on one ms axis, the phases shaded (presentation, replay, rest; the temporal circuit's
time bins marked):

* one row per population: the rates of its recorded neurons (the most modulated ones, and
  the mean of all recorded ones in black), or a spike raster for spiking neurons;
* the gates: the fraction of the recorded groups (neurons) not inhibited, per population;
* the neuromodulator M(t) per channel (the probe example's label channel thick), with the
  command dashed;
* the eligibility traces E(t) of the sampled synapses, coloured by the population they
  project onto;
* their product M(t)·E(t), whose integral over the trial is each synapse's update.
"""

from __future__ import annotations

import numpy as np

from .figures import pyplot
from .trial import Trial, phase_spans

PHASE_COLORS = {"presentation": "#4c72b0", "replay": "#dd8452", "rest": "#999999"}
#: trials up to this many steps are drawn as stairs (a value holds over its step)
STAIRS_UP_TO = 200
MODEL_NAMES = {"rate": "rate neurons", "poisson": "Poisson neurons", "lif": "LIF neurons"}
POP_COLORS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#937860", "#da8bc3"]


def _shade(ax, tr: Trial, labels: bool = False):
    for name, a, b in phase_spans(tr):
        ax.axvspan(a, b, color=PHASE_COLORS[name], alpha=0.10 if name != "rest" else 0.06, lw=0)
        if labels:
            ax.text((a + b) / 2, 1.02, name, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=9, color=PHASE_COLORS[name])
    if tr.realization == "temporal":  # the time bins of each phase
        edges = np.flatnonzero(np.diff(tr.tbin) != 0)
        for e in edges:
            if tr.tbin[e] >= 0 and tr.tbin[e + 1] >= 0:
                ax.axvline(tr.t[e], color="0.6", lw=0.5, ls=":")


def _stairs(ax, tr: Trial, y, **kw):
    """A recorded value holds over its integration step (t - dt, t]: drawn as stairs; on long
    trials (more than :data:`STAIRS_UP_TO` steps, where a step is a pixel) as a line through
    the step ends."""
    y = np.asarray(y, dtype=float)
    kw.setdefault("lw", 1.0)
    if tr.t.size > STAIRS_UP_TO:
        return ax.plot(tr.t, y, **kw)
    edges = np.concatenate([[tr.t[0] - tr.dt], tr.t])
    return ax.stairs(y, edges, baseline=None, **kw)


def _most_modulated(rate, n):
    """Indices of n neurons among those whose rate varies most over the trial, spread over
    the candidates (neurons that vary alike, e.g. the temporal circuit's K input populations,
    are not all taken from the first component)."""
    sd = np.nanstd(rate, axis=0)
    order = np.argsort(-sd, kind="stable")
    top = order[np.isclose(sd[order], sd[order[0]])]
    if top.size > n:  # ties at the top: take them evenly
        return top[np.linspace(0, top.size - 1, n).round().astype(int)]
    return order[:n]


def _population_row(ax, tr, pop, n_neurons, color):
    if pop.spikes is not None:  # a raster
        sp = pop.spikes
        keep = np.argsort(-np.nansum(sp, axis=0), kind="stable")[:max(n_neurons * 4, 20)]
        for row, j in enumerate(sorted(keep)):
            times = tr.t[np.nan_to_num(sp[:, j]) > 0]
            ax.plot(times, np.full(times.size, row), "|", color=color, ms=4, mew=0.8)
        ax.set_ylim(-1, len(keep))
        ax.set_ylabel(f"{pop.name}\nneuron", fontsize=9)
        if not np.nansum(sp) > 0:  # a silent population says so (not an empty panel)
            shown = tr.phase < 2
            ax.text((tr.t[shown][0] - tr.dt + tr.t[shown][-1]) / 2, len(keep) / 2,
                    f"no spikes in {sp.shape[1]} recorded neurons", ha="center", va="center",
                    fontsize=9, color="#c44e52")
        rest = tr.phase == 2
        if rest.any() and np.isnan(sp[rest]).all():
            a = tr.t[rest][0] - tr.dt
            ax.text((a + tr.t[-1]) / 2, len(keep) / 2, "not simulated\n(at baseline)", ha="center",
                    va="center", fontsize=8, color="0.4")
        return
    r = pop.rate
    for j in _most_modulated(r, n_neurons):
        _stairs(ax, tr, r[:, j], color=color, lw=0.8, alpha=0.6)
    _stairs(ax, tr, r.mean(axis=1), color="k", lw=1.4, label="mean of the recorded neurons")
    ax.set_ylabel(f"{pop.name}\nrate (Hz)", fontsize=9)
    lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
    pad = max(0.05 * (hi - lo), 0.5)
    ax.set_ylim(lo - pad, hi + pad)


def plot_trial(tr: Trial, path, n_neurons: int = 8) -> None:
    """Write the figure of trial ``tr`` to ``path``."""
    plt = pyplot()
    gated = [p for p in tr.pops if p.gate is not None]
    rows = [("pop", p) for p in tr.pops]
    if gated:
        rows.append(("gate", None))
    if tr.M is not None:
        rows.append(("M", None))
    if tr.eligibility:
        rows += [("E", None), ("ME", None)]
    heights = [1.3 if k == "pop" else 1.1 for k, _ in rows]
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 0.5 + 1.35 * len(rows)), sharex=True,
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    axes = axes[:, 0]
    colors = {p.name: POP_COLORS[k % len(POP_COLORS)] for k, p in enumerate(tr.pops)}
    K = 0 if tr.M is None else tr.M.shape[1]
    cmap = plt.get_cmap("tab10")
    for ax, (kind, pop) in zip(axes, rows):
        _shade(ax, tr, labels=ax is axes[0])
        if kind == "pop":
            _population_row(ax, tr, pop, n_neurons, colors[pop.name])
        elif kind == "gate":
            for p in gated:
                _stairs(ax, tr, p.gate.mean(axis=1), color=colors[p.name], lw=1.3, label=p.name)
            ax.set_ylim(-0.05, 1.05)
            ax.set_ylabel("gate open\n(fraction)", fontsize=9)
            ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False)
        elif kind == "M":
            for c in range(K):
                color = cmap(c % 10) if K > 1 else "k"
                own = K > 1 and c == tr.probe_label
                _stairs(ax, tr, tr.M[:, c], color=color, lw=2.0 if own else 1.0,
                        label=(f"ch {c}" + (" (label)" if own else "")) if K > 1 else "M(t)")
                if tr.command is not None:
                    _stairs(ax, tr, tr.command[:, c], color=color, lw=0.7, ls="--", alpha=0.6)
            ax.axhline(0, color="0.5", lw=0.5)
            ax.set_ylabel("neuromodulator\nM(t)", fontsize=9)
            ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=7, frameon=False,
                      ncol=1 if K <= 5 else 2, title="dashed: command" if tr.command is not None
                      else None, title_fontsize=7)
        elif kind in ("E", "ME"):
            for name, E in tr.eligibility.items():
                ch = tr.synapse_channel[name]
                y = E if kind == "E" else E * tr.M[:, ch]
                for j in range(E.shape[1]):
                    _stairs(ax, tr, y[:, j], color=colors[name], lw=0.8, alpha=0.8,
                            label=f"onto {name}" if j == 0 else None)
            ax.axhline(0, color="0.5", lw=0.5)
            if kind == "E":
                ax.set_ylabel("eligibility E(t)\n(activity)", fontsize=9)
                ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=8, frameon=False,
                          title="sampled synapses", title_fontsize=7)
            else:
                ax.set_ylabel("M(t)·E(t)\n(∫ = update)", fontsize=9)
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("time since the trial's onset (ms)")
    axes[-1].set_xlim(tr.t[0] - tr.dt, tr.t[-1])
    neurons = MODEL_NAMES.get(tr.model, tr.model)
    title = (f"{tr.label}: {tr.realization} circuit, {neurons} — step {tr.step}, test example "
             f"{tr.probe}" + (f" (label {tr.probe_label})" if tr.probe_label >= 0 else ""))
    if not tr.whole_trial:
        title += "\n(recorded before whole trials were: presentation and replay only)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.985))
    fig.savefig(path, dpi=110)
    plt.close(fig)
