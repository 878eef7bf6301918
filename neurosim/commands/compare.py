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
    from ..analysis.compare import load_run, report
    from ..analysis.compare_plot import plot
    from ..recording import StoreError

    if len(stores) < 2:
        fail("compare needs at least two stores: neurosim compare STORE STORE [...]")
    if plot_path:
        _check_plot_path(plot_path)
    runs = []
    for s in stores:
        try:
            runs.append(load_run(s))
        except StoreError as exc:
            fail(str(exc))  # (as neurosim inspect says it)
        except (OSError, ValueError, KeyError) as exc:
            fail(f"cannot read store {s}: {exc}")
    click.echo(report(runs))
    if plot_path:
        plot(runs, plot_path)
        click.echo(f"figure written to {plot_path}")


def _check_plot_path(path, option: str = "--plot") -> None:
    """``--plot`` (or ``option``) needs a file type matplotlib writes and an existing folder."""
    from pathlib import Path

    from matplotlib.backend_bases import FigureCanvasBase

    p = Path(path)
    kinds = FigureCanvasBase.get_supported_filetypes()
    if p.suffix.lower().lstrip(".") not in kinds:
        others = ", ".join(k for k in sorted(kinds) if k not in ("png", "pdf", "svg"))
        fail(f"{option} {path}: unknown figure type; end the file name in .png, .pdf or .svg "
             f"(matplotlib also writes {others})")
    if not p.parent.is_dir():
        fail(f"{option} {path}: folder {p.parent} does not exist")
