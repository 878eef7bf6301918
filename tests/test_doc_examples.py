"""The examples of docs/api.md and docs/store.md run as written, and their figures are worth
looking at: no flat line, no text cut off at the figure's edge, no legend over the data.

Set NEUROSIM_DOC_FIGURES=DIR to keep the PNGs for a look."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

DOCS = Path(__file__).parents[1] / "docs"


def blocks(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    return [b for b in re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
            if "needs MNIST" not in b]


def check_figure(fig: Figure) -> None:
    """Raise AssertionError naming what makes the figure not worth looking at."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    box = fig.bbox
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if isinstance(ln, Line2D)]
        for ln in lines:
            y = np.asarray(ln.get_ydata(), dtype=float)
            y = y[np.isfinite(y)]
            assert y.size > 1 and np.ptp(y) > 0, f"a flat line in '{ax.get_title()}'"
        leg = ax.get_legend()
        if leg is not None:
            lb = leg.get_window_extent(r)
            for ln in lines:  # no data point under the legend
                xy = ln.get_transform().transform(np.c_[ln.get_xdata(), ln.get_ydata()])
                inside = (xy[:, 0] > lb.x0) & (xy[:, 0] < lb.x1) & (xy[:, 1] > lb.y0) & (xy[:, 1] < lb.y1)
                assert not inside.any(), f"the legend of '{ax.get_title()}' covers data"
        b = ax.get_tightbbox(r)  # everything drawn for the axes: labels, ticks, title, legend
        assert b.x0 >= box.x0 - 1 and b.x1 <= box.x1 + 1 and b.y0 >= box.y0 - 1 and b.y1 <= box.y1 + 1, \
            f"text of '{ax.get_title() or ax.get_ylabel()}' is cut off at the figure's edge"


@pytest.fixture
def figures(monkeypatch, tmp_path):
    """Every figure saved by an example, checked before it is written."""
    saved = []
    real = Figure.savefig

    def savefig(self, fname, *a, **kw):
        check_figure(self)
        saved.append(Path(fname))
        return real(self, fname, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", savefig)
    monkeypatch.chdir(tmp_path)
    yield saved
    keep = os.environ.get("NEUROSIM_DOC_FIGURES")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for f in saved:
            shutil.copy(tmp_path / f, Path(keep) / f.name)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_api_examples_run_and_draw(figures):
    ns: dict = {}
    for code in blocks("api.md"):
        exec(compile(code, "docs/api.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert [f.name for f in figures] == ["own_data.png"]
    ds, net = ns["ds"], ns["net"]
    assert float(ds.test_error[-1]) < float(ds.test_error[0]) / 2  # the example learns
    assert net.error(ns["x_test"], ns["y_test"]) == float(ds.test_error[-1])
    assert ns["early"].error(ns["x_test"], ns["y_test"]) == float(ds.test_error[1])


def test_store_trajectory_example_draws_an_open_unit(figures):
    import neurosim

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20))
    y = rng.integers(0, 3, 400)
    x = centres[y] + 0.8 * rng.normal(size=(400, 20))
    proto = {"name": "grouped_mnist",
             "circuit": {"layers": [{"type": "dense", "units": 16}, {"type": "dense", "units": 16}]},
             "rule": {"name": "gevb"},
             "realization": {"type": "grouped", "relaxation": {"schedule": "every_n", "every": 10}},
             "optimizer": {"name": "adam", "lr": 0.003},
             "training": {"epochs": 1, "batch_size": 16, "eval_every": 1},
             "recording": {"trajectories": {"every": 2, "snapshot_every": 2, "chunk": 5}}}
    neurosim.run(proto, progress=False, data=((x[:300], y[:300]), (x[300:], y[300:])))
    plots = [b for b in blocks("store.md") if "savefig" in b]
    assert plots
    for code in plots:
        exec(compile(code, "docs/store.md", "exec"), {})  # noqa: S102
    assert [f.name for f in figures] == ["grouped_trajectories.png"]


def test_the_figure_check_fails_on_a_flat_line_and_cut_text():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 0, 0])
    with pytest.raises(AssertionError, match="flat line"):
        check_figure(fig)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0, 1, 2])
    ax.set_ylabel("a very long label " * 6)
    with pytest.raises(AssertionError, match="cut off"):
        check_figure(fig)
    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.plot([0, 1, 2], [2, 1, 0], label="data")
    ax.legend(loc="upper right")
    check_figure(fig)
    ax.legend(loc="upper left")
    with pytest.raises(AssertionError, match="covers data"):
        check_figure(fig)
    plt.close("all")
