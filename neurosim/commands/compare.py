"""``neurosim compare``: compare run stores (errors, circuit recordings)."""

from __future__ import annotations

import click

from .common import fail


@click.command()
@click.argument("stores", nargs=-1, type=click.Path())
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Also write a figure (PNG/PDF/SVG) to this file.")
def compare(stores, plot_path):
    """Compare two or more run STORES: test/train error per checkpoint, update agreement
    with batched GEVB, neuromodulator spatial vs temporal variance, synapse spread."""
    from ..analysis.compare import load_run, plot, report
    from ..recording import StoreError

    if len(stores) < 2:
        fail("compare needs at least two stores: neurosim compare STORE STORE [...]")
    runs = []
    for s in stores:
        try:
            runs.append(load_run(s))
        except (StoreError, OSError, ValueError, KeyError) as exc:
            fail(f"cannot read store {s}: {exc}")
    click.echo(report(runs))
    if plot_path:
        plot(runs, plot_path)
        click.echo(f"figure written to {plot_path}")
