"""``neurosim compare`` on tiny synthetic circuit runs and batched runs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from neurosim.cli import main

#: a batched store named like a sweep's run: too long for a tick label or one legend line
LONG = "vectorized=true,rule=gevb,sign=nonnegative,init=on_off,lr=0.01,seed=0"


def _protocol(tmp_path, name, realization, trajectories=True):
    p = {
        "name": name,
        "circuit": {"vectorized": True, "layers": [{"type": "dense", "units": 8}]},
        "realization": realization,
        "rule": {"name": "gevb"},
        "data": {"dataset": "synthetic", "options": {"n_train": 64, "n_test": 32, "shape": [1, 4, 4]}},
        "optimizer": {"name": "adam", "lr": 0.01},
        "training": {"epochs": 1, "batch_size": 16, "eval_every": 1},
        "recording": {"out": str(tmp_path / f"{name}.zarr"),
                      "trajectories": {"every": 2, "samples": 2, "units": 4, "snapshot_every": 4}},
    }
    if not trajectories:
        del p["recording"]["trajectories"]
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A grouped, a temporal and two batched run stores (the batched ones without circuit
    recordings, one with a sweep-like long name)."""
    tmp = tmp_path_factory.mktemp("cmp")
    out = {}
    for key, name, real, traj in (
            ("g", "grouped", {"type": "grouped", "relaxation": {"schedule": "per_epoch"}}, True),
            ("t", "temporal", {"type": "temporal", "gating": "first_bin"}, True),
            ("b", "batched", {"type": "batched"}, False),
            ("long", LONG, {"type": "batched"}, False)):
        res = CliRunner().invoke(main, ["run", str(_protocol(tmp, name, real, traj)), "--quiet"])
        assert res.exit_code == 0, res.output
        out[key] = str(tmp / f"{name}.zarr")
    return out


def test_compare_two_circuit_runs(stores, tmp_path):
    cli = CliRunner()
    stores = [stores["g"], stores["t"]]
    png = tmp_path / "cmp.png"
    res = cli.invoke(main, ["compare", *stores, "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "test_error" in out and "update_cosine" in out and "spatial_fraction" in out
    assert "Columns:" in out and "update agreement = cos" in out and "synapse_spread:" in out
    assert png.exists() and png.stat().st_size > 10_000
    from neurosim.analysis.compare import load_run, summary

    g, t = (summary(load_run(s)) for s in stores)
    assert g["checkpoints"] == 2 and t["checkpoints"] == 2  # initial + 1 epoch
    assert g["spatial_fraction"] > 0.999 and t["spatial_fraction"] < 1e-9
    assert g["synapse_spread_max"] > 0 and t["synapse_spread_max"] == 0
    assert 0 < t["update_cosine"] < 1.0 - 1e-6  # first_bin gating is not the network's gating
    # a store without circuit recordings (batched) summarises to NaN
    from neurosim.analysis.compare import RunData

    empty = RunData("x", "x", "batched", "", np.zeros(1), np.ones(1), np.ones(1))
    row = summary(empty)
    assert row["update_cosine"] != row["update_cosine"] and row["test_error"] == 1.0


def test_compare_needs_two_stores(tmp_path):
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "x.zarr")])
    assert res.exit_code == 2 and "at least two" in res.output
    res = CliRunner().invoke(main, ["compare", str(tmp_path / "x.zarr"), str(tmp_path / "y.zarr")])
    assert res.exit_code == 2 and "not a neurosim store" in res.output


def test_compare_bad_plot_path(stores, tmp_path):
    """A figure file of no known type or in a missing folder is the user's error (exit 2, one
    line), found before anything is read."""
    for path, says in ((tmp_path / "cmp.foo", "unknown figure type"),
                       (tmp_path / "cmp", "unknown figure type"),
                       (tmp_path / "missing" / "cmp.png", "does not exist")):
        res = CliRunner().invoke(main, ["compare", stores["b"], stores["long"], "--plot", str(path)])
        assert res.exit_code == 2 and says in res.output, res.output
        assert "Test/train" not in res.output and not path.exists()


def _figure(paths):
    from neurosim.analysis.compare import load_run
    from neurosim.analysis.compare_plot import figure

    fig = figure([load_run(p) for p in paths])
    fig.canvas.draw()
    return fig


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _check_layout(fig):
    """No legend over an axes or its decorations (title, labels, tick labels); legends and
    caption inside the figure."""
    r = fig.canvas.get_renderer()
    page = fig.bbox
    taken = [ax.get_tightbbox(r) for ax in fig.axes]
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for leg in legends:
        box = leg.get_window_extent(r)
        assert not any(_overlaps(box, t) for t in taken), [t.get_text() for t in leg.get_texts()]
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0
    for text in fig.texts:
        box = text.get_window_extent(r)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_compare_batched_runs_shows_errors_only(stores, tmp_path):
    """Batched runs have no circuit recordings: no circuit columns, explanations, panels or
    caption; one error panel with the run legend below it, long names wrapped."""
    png = tmp_path / "cmp.png"
    res = CliRunner().invoke(main, ["compare", stores["b"], stores["long"], "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "test_error" in out and "final_epoch" in out
    # the per-checkpoint table names each run on its first checkpoint only (2 checkpoints
    # each); the last-checkpoint table and the run list name it once more
    per_checkpoint = out.split("Last checkpoint")[0]
    assert per_checkpoint.count(LONG) == 1
    block = [line for line in per_checkpoint.splitlines() if line.startswith(LONG)]
    assert len(block) == 1 and block[0].split()[-3:-2] == ["0"]  # on its epoch-0 row
    assert out.count(LONG) == 3
    for circuit in ("update_cosine", "neuromod", "spatial_fraction", "synapse_spread",
                    "update agreement", "Columns:", "Circuit", "circuit"):
        assert circuit not in out, circuit
    from matplotlib.image import imread

    height, width = imread(png).shape[:2]
    assert width < 1000 and height < width  # one panel, not the 2×2 grid

    fig = _figure([stores["b"], stores["long"]])
    assert _titles(fig) == ["error per checkpoint"]
    assert not fig.texts  # no caption about update agreement
    _check_layout(fig)
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert names[0] == "batched (batched)"
    assert "\n" in names[1] and names[1].replace("\n", "") == f"{LONG} (batched)"
    assert all(len(line) <= 48 for n in names for line in n.splitlines())


def test_compare_figure_circuit_panels(stores):
    """Circuits: all four panels, the caption, legends outside the panels; the bars only for
    the runs with a neuromodulator, named by number when the names are long."""
    fig = _figure([stores["g"], stores["t"]])
    assert _titles(fig) == ["error per checkpoint", "update agreement with batched GEVB",
                            "neuromodulator: spatial vs temporal structure",
                            "spread of the K synapses of a pair (grouped)"]
    assert len(fig.texts) == 1 and fig.texts[0].get_text().startswith("update agreement =")
    _check_layout(fig)
    bars = fig.axes[2]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["grouped", "temporal"]

    fig = _figure([stores["g"], stores["long"], stores["t"]])  # a batched run among circuits
    assert len(fig.axes) == 4
    _check_layout(fig)
    assert [t.get_text() for t in fig.axes[2].get_xticklabels()] == ["grouped", "temporal"]


def test_wrap_label():
    from neurosim.analysis.compare_plot import wrap_label

    lines = wrap_label(LONG, 30).splitlines()
    assert len(lines) > 1 and all(len(x) <= 30 for x in lines) and "".join(lines) == LONG
    assert all(x.endswith(",") for x in lines[:-1])  # broken after commas
    assert wrap_label("short") == "short"


def test_figure_numbers_long_bar_names():
    """Bars of runs with long names carry the runs' numbers; the run legend gives the names."""
    from neurosim.analysis.compare import RunData
    from neurosim.analysis.compare_plot import figure

    runs = [RunData("x", f"{LONG}{k}", "grouped", "", np.arange(2.0), np.ones(2), np.ones(2),
                    spatial_var=np.ones(3), temporal_var=np.zeros(3)) for k in range(2)]
    fig = figure(runs)
    fig.canvas.draw()
    assert _titles(fig) == ["error per checkpoint", "neuromodulator: spatial vs temporal structure"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["1", "2"]
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [n.split(": ")[0] for n in names] == ["1", "2"]
    _check_layout(fig)


def test_agreement_note_names_the_dynamics():
    """A circuit in time is not exact even with complete relaxation; the ideal dynamics are."""
    from neurosim.analysis.compare import RunData, agreement_note

    empty = np.zeros(0)
    ideal = {"neurons": {"model": "rate", "tau_m_ms": 0.0}, "code": {"rectify": False},
             "gating": {"tau_inh_ms": 0.0}, "eligibility": {"tau_e_ms": 0.0},
             "neuromodulator": {"delay_ms": 0.0, "tau_ms": 0.0, "noise": 0.0, "crosstalk": 0.0}}
    plausible = {**ideal, "eligibility": {"tau_e_ms": 500.0}, "code": {"rectify": True}}

    def note(real, dyn, **opts):
        run = RunData("x", "x", real, "", empty, empty, empty,
                      realization_options={"dynamics": dyn, **opts})
        return agreement_note(run)

    every = {"relaxation": {"rate": 1.0, "schedule": "every_step"}}
    assert note("grouped", None, **every).startswith("exact")
    assert note("grouped", ideal, **every).startswith("exact")
    assert "in time" in note("grouped", plausible, **every)
    assert "in time" in note("temporal", plausible, gating="full")
    assert note("temporal", ideal, gating="full").startswith("exact")
