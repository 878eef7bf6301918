"""The ``neurosim compare --plot`` figure: one panel per quantity some run recorded.

* error per checkpoint (always; log axis, see :mod:`neurosim.analysis.figures`),
* update agreement with batched GEVB (``update_cosine``),
* the neuromodulator's share of variance across channels vs across time bins,
* the spread of the K synapses of a pair (``synapse_spread``).

Batched runs record none of the circuit quantities, so a comparison of batched runs is the
error panel alone.  Below the panels, never over them: a legend with a colour per run (long
names wrapped at their commas; numbered when the bar panel needs short tick labels), a legend
of the line styles and bar fills and, only when the update-agreement panel is drawn, the
caption explaining update agreement.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np

from .compare import AGREEMENT_TEXT, _clean_roundoff, _finite, _layer_max, summary
from .figures import STYLES, ErrorAxis, epoch_axis, pyplot

#: the summary column whose data each circuit panel draws (the error panel is always drawn)
PANEL_COLUMN = {"agreement": "update_cosine", "neuromod": "spatial_fraction",
                "spread": "synapse_spread_max"}
#: characters of a run's name per line of the run legend
LABEL_WIDTH = 48
#: characters of run names that fit under the bars together; with longer names the bars carry
#: the runs' numbers (and the run legend numbers the runs)
TICK_CHARS = 56
#: inches of one panel (with its labels) in a grid of panels, and of the error panel alone
PANEL_SIZE, SINGLE_SIZE = (5.4, 3.7), (6.4, 4.0)
FONT = 8
#: resolution the legends and caption are measured at, and the PNG is written at
DPI = 120
#: characters of the caption per inch of figure width (7.5 pt text is about 19 per inch)
CAPTION_CHARS_PER_INCH = 16
#: inches between the figure's edge, the legends and the caption
PAD = 0.12


def _rows(runs) -> list[dict]:
    return [_clean_roundoff(summary(r)) for r in runs]


def panels(runs, rows=None) -> list[str]:
    """The figure's panels: ``error``, then those of ``agreement``, ``neuromod``, ``spread``
    that some run has data for."""
    rows = _rows(runs) if rows is None else rows
    return ["error"] + [p for p, column in PANEL_COLUMN.items() if _finite(rows, column)]


def wrap_label(text: str, width: int = LABEL_WIDTH) -> str:
    """``text`` in lines of at most ``width`` characters, broken after commas (run names are
    ``key=value,key=value``), then at spaces, then anywhere."""
    lines = [""]
    for part in re.split(r"(?<=,)", text):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    out = []
    for line in lines:
        out += textwrap.wrap(line, width, break_on_hyphens=False) or [""]
    return "\n".join(out)


def _slots(fig, n):
    """Grid cells of ``n`` panels: 1 alone, 2 side by side, 3 with the first on top across the
    width, 4 in 2×2."""
    if n == 1:
        return [fig.add_gridspec(1, 1)[0, 0]]
    gs = fig.add_gridspec((n + 1) // 2, 2)
    if n == 3:
        return [gs[0, :], gs[1, 0], gs[1, 1]]
    return [gs[k // 2, k % 2] for k in range(n)]


def _integer_steps(ax):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _error(ax, runs, colors):
    ea = ErrorAxis(ax)
    for r, c in zip(runs, colors):
        if r.epoch.size:
            ea.plot(r.epoch, r.test_error, c, "test")
            ea.plot(r.epoch, r.train_error, c, "train")
    ea.finish(zero_note=False)
    epoch_axis(ax, [r.epoch for r in runs])
    ax.set_title("error per checkpoint")
    return bool(ea.zeros)


def _agreement(ax, runs, colors):
    for r, c in zip(runs, colors):
        if np.isfinite(r.update_cosine).any():
            ax.plot(r.sim_step, np.nanmean(r.update_cosine, axis=1), "o-", ms=3, color=c)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="optimizer step", ylabel="cos(circuit update,\nbatched GEVB update)",
           title="update agreement with batched GEVB")
    _integer_steps(ax)


def _spread(ax, runs, colors):
    from matplotlib.ticker import FuncFormatter

    for r, c in zip(runs, colors):
        spread = _layer_max(r.spread)
        if np.isfinite(spread).any():
            ax.plot(r.sim_step, spread, "o-", ms=3, color=c)
    ax.set(xlabel="optimizer step", ylabel="std of the K synapses\n/ rms weight",
           title="spread of the K synapses of a pair (grouped)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))  # no 1e-8 over the title
    _integer_steps(ax)


def _bar_runs(rows) -> np.ndarray:
    """Indices of the runs with a neuromodulator bar."""
    return np.flatnonzero(np.isfinite([r["spatial_fraction"] for r in rows]))


def _neuromod(ax, runs, rows, colors, numbered):
    """Bars of the runs with neuromodulator recordings: the share of its variance across
    channels (spatial) and across time bins (temporal)."""
    frac = np.asarray([r["spatial_fraction"] for r in rows], float)
    have = _bar_runs(rows)
    x = np.arange(have.size)
    ax.bar(x, frac[have], 0.6, **BARS["spatial"])
    ax.bar(x, 1 - frac[have], 0.6, bottom=frac[have], **BARS["temporal"])
    ax.set_xticks(x, [str(k + 1) if numbered else runs[k].label for k in have])
    for tick, k in zip(ax.get_xticklabels(), have):
        tick.set_color(colors[k])
    ax.set_xlim(-0.75, have.size - 0.25)
    ax.set(ylim=(0, 1), ylabel="share of the\nneuromodulator's variance",
           title="neuromodulator: spatial vs temporal structure")
    if numbered:
        ax.set_xlabel("run (number in the key below)")


#: the fills of the neuromodulator bars
BARS = {"spatial": dict(facecolor="0.35"),
        "temporal": dict(facecolor="0.8", hatch="//", edgecolor="0.5")}


def _style_key(zeros, bars):
    """Handles and labels of the line styles (and the bar fills when the bars are drawn)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    keys = [(Line2D([], [], color="0.3", **STYLES[w]), w) for w in ("test", "train")]
    if zeros:
        keys.append((Line2D([], [], color="0.3", ls="", marker="v", ms=7), "0 % (on the bottom edge)"))
    if bars:
        keys += [(Patch(**BARS["spatial"]), "variance across channels (spatial)"),
                 (Patch(**BARS["temporal"]), "variance across time bins (temporal)")]
    return [h for h, _ in keys], [lab for _, lab in keys]


def figure(runs):
    """The comparison figure (a matplotlib Figure; :func:`plot` saves it)."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    rows = _rows(runs)
    kinds = panels(runs, rows)
    ncols = 1 if len(kinds) == 1 else 2
    w, h = SINGLE_SIZE if len(kinds) == 1 else PANEL_SIZE
    width, panels_h = w * ncols, h * ((len(kinds) + 1) // 2)
    fig = plt.figure(figsize=(width, panels_h), dpi=DPI)
    colors = [f"C{k % 10}" for k in range(len(runs))]
    bars = _bar_runs(rows)
    numbered = bool(bars.size) and max(len(runs[k].label) for k in bars) > TICK_CHARS // bars.size
    zeros = False
    for kind, slot in zip(kinds, _slots(fig, len(kinds))):
        ax = fig.add_subplot(slot)
        if kind == "error":
            zeros = _error(ax, runs, colors)
        elif kind == "agreement":
            _agreement(ax, runs, colors)
        elif kind == "neuromod":
            _neuromod(ax, runs, rows, colors, numbered)
        else:
            _spread(ax, runs, colors)

    names = [wrap_label(f"{k + 1}: {r.label} ({r.realization})" if numbered
                        else f"{r.label} ({r.realization})") for k, r in enumerate(runs)]
    handles = [Line2D([], [], color=c, marker="o", ms=4) for c in colors]
    key = dict(loc="upper left", fontsize=FONT, frameon=False, borderaxespad=0, borderpad=0)
    run_legend = fig.legend(handles, names, ncol=2 if ncols == 2 and len(runs) > 2 else 1, **key)
    style_legend = fig.legend(*_style_key(zeros, "neuromod" in kinds), **key)
    caption = None
    if "agreement" in kinds:
        text = textwrap.fill(AGREEMENT_TEXT, int(width * CAPTION_CHARS_PER_INCH))
        caption = fig.text(0, 0, text, fontsize=7.5, ha="left", va="bottom")
    _layout(fig, panels_h, run_legend, style_legend, caption)
    return fig


def _layout(fig, panels_h, run_legend, style_legend, caption):
    """Room under the panels for the legends side by side, and the caption under them."""
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi

    def size(artist):
        if artist is None:
            return 0.0, 0.0
        ext = artist.get_window_extent(renderer)
        return ext.width / dpi, ext.height / dpi

    (rw, rh), (sw, sh), (cw, ch) = size(run_legend), size(style_legend), size(caption)
    width = max(fig.get_figwidth(), rw + sw + 4 * PAD, cw + 2 * PAD)
    caption_h = ch + PAD if caption is not None else 0.0
    bottom = PAD + caption_h + max(rh, sh) + PAD
    height = panels_h + bottom
    fig.set_size_inches(width, height)
    fig.tight_layout(rect=(0, bottom / height, 1, 1))
    top = (bottom - PAD) / height
    run_legend.set_bbox_to_anchor((PAD / width, top), transform=fig.transFigure)
    style_legend.set_bbox_to_anchor(((rw + 3 * PAD) / width, top), transform=fig.transFigure)
    if caption is not None:
        caption.set_position((PAD / width, PAD / height))


def plot(runs, path) -> None:
    """Write :func:`figure` of ``runs`` to ``path`` (PNG, PDF or SVG)."""
    plt = pyplot()
    fig = figure(runs)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
