"""``neurosim plot``: figures of one run store."""

from __future__ import annotations

import click

from .common import fail


@click.group()
def plot():
    """Figures of one run store."""


@plot.command()
@click.argument("store", type=click.Path())
@click.option("--step", type=int, default=None,
              help="The trajectory record taken at this optimizer step (default: the last record).")
@click.option("--record", type=int, default=-1, show_default=True,
              help="The trajectory record by position (0 = the first, -1 = the last); --step wins.")
@click.option("--probe", type=int, default=None,
              help="The probe example, by its index in the test set (default: the first probe).")
@click.option("--populations", default=None, metavar="NAMES",
              help="Comma-separated populations to draw, e.g. input,hidden_1,readout (default: all).")
@click.option("--neurons", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Rate traces drawn per population (the most modulated recorded neurons).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Figure file (PNG/PDF/SVG; default: <store>_trial_step<S>_probe<P>.png here).")
def trial(store, step, record, probe, populations, neurons, out):
    """Draw one trial of a circuit in time recorded in STORE: rates (or spike rasters) per
    population, the gates, the neuromodulator M(t) per channel and the eligibility traces
    E(t) of the sampled synapses, on one ms axis with the trial's phases shaded."""
    from pathlib import Path

    from ..analysis.trial import TrialError, load_trial
    from ..analysis.trial_plot import plot_trial
    from ..recording import StoreError
    from .compare import _check_plot_path

    select = [s.strip() for s in populations.split(",") if s.strip()] if populations else None
    if out:
        _check_plot_path(out, "--out")
    try:
        tr = load_trial(store, step=step, record=record, probe=probe, select=select)
    except (StoreError, TrialError) as exc:
        fail(str(exc))
    if out is None:
        stem = Path(str(store).rstrip("/")).name.removesuffix(".zarr")
        out = f"{stem}_trial_step{tr.step}_probe{tr.probe}.png"
    plot_trial(tr, out, n_neurons=neurons)
    click.echo(f"figure written to {out}")
