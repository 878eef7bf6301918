"""The figure conventions every analysis figure shares.

* Error axes are logarithmic (percent, ticks 0.1 0.2 0.5 1 2 5 10 20 50 100): the
  untrained 90 % at epoch 0 and the 2 % at the end are both readable.  A 0 % value has no
  place on a log axis; it is drawn as a downward triangle on the axis' bottom edge.
* Epoch axes have integer ticks once a run spans an epoch or more.
* Every checkpoint is a marker (two checkpoints are two points, not a line).
* One legend entry per thing: a colour per run (or cell) in one legend, the meaning of
  the line styles (test, train, paper) in a second one.
"""

from __future__ import annotations

import numpy as np

#: line style and marker of each quantity drawn on an error axis
STYLES = {"test": dict(ls="-", marker="o", ms=4),
          "train": dict(ls="--", marker="s", ms=3, alpha=0.75),
          "paper": dict(ls=":", lw=1.2)}


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class ErrorAxis:
    """Error curves in % on a log axis; zeros as ▼ on the bottom edge.

    ``ea = ErrorAxis(ax); ea.plot(epoch, err, color, "test"); ...; ea.finish()``."""

    def __init__(self, ax):
        self.ax = ax
        self.zeros = []  # (epochs, colour) of 0 % values, drawn by finish()

    def plot(self, epoch, error, color, which: str = "test", label=None):
        e = np.asarray(epoch, float)
        v = np.asarray(error, float)
        line, = self.ax.plot(e, np.where(v > 0, v, np.nan), color=color, label=label, **STYLES[which])
        if (v == 0).any():
            self.zeros.append((e[v == 0], color))
        return line

    def hline(self, value, color, label=None):
        """A published value: a dotted horizontal line."""
        return self.ax.axhline(value, color=color, label=label, **STYLES["paper"])

    def finish(self, ylabel="error (%)", zero_note=True):
        """Log axis, ticks, grid and the ▼ of 0 % values; ``zero_note``: write "▼ = 0 %" in
        the axes' corner (off when a legend outside the axes explains the ▼)."""
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax = self.ax
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        ticks = [m * 10.0 ** k for k in range(-3, 3) for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]
        subs = (1.0, 2.0, 5.0) if len(ticks) >= 3 else tuple(float(m) for m in range(1, 10))
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="major")
        if self.zeros:
            lo, hi = ax.get_ylim()
            for x, color in self.zeros:
                ax.plot(x, np.full(len(x), lo), "v", color=color, ms=7, clip_on=False, zorder=5)
            ax.set_ylim(lo, hi)
            if zero_note:
                ax.text(0.99, 0.01, "▼ = 0 %", transform=ax.transAxes, ha="right", va="bottom",
                        fontsize=7)


def epoch_axis(ax, epochs, label="epoch"):
    """Integer epoch ticks when the runs span at least one epoch."""
    from matplotlib.ticker import MaxNLocator

    e = np.concatenate([np.asarray(x, float).ravel() for x in epochs]) if len(epochs) else np.zeros(0)
    e = e[np.isfinite(e)]
    if e.size and e.max() - e.min() >= 1:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(label)


def style_legend(ax, which=("test", "train"), loc="upper right", paper_label="paper (published test)"):
    """A second legend explaining the line styles (added as an artist, so the colour
    legend made with ``ax.legend`` stays)."""
    from matplotlib.lines import Line2D

    names = {"test": "test", "train": "train", "paper": paper_label}
    handles = [Line2D([], [], color="0.3", **STYLES[w]) for w in which]
    leg = ax.legend(handles, [names[w] for w in which], loc=loc, fontsize=7, framealpha=0.8)
    ax.add_artist(leg)
    return leg
