"""``neurosim report``: tables and figures from run (or sweep) stores."""

from __future__ import annotations

import click

from .common import fail


@click.command()
@click.argument("stores", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default="report", show_default=True,
              help="Output directory.")
@click.option("--cluster", is_flag=True,
              help="Also compute cluster quality (paper §6) before vs after training "
                   "(t-SNE; needs scikit-learn: python -m pip install -e '.[analysis]' in the "
                   "neurosim source directory; --cluster-method pca needs neither).")
@click.option("--cluster-layer", type=int, default=None,
              help="Layer index whose activations are embedded (default: output of the last "
                   "conv/pool stage, else the last hidden layer).")
@click.option("--cluster-examples", type=int, default=500, show_default=True,
              help="Test examples embedded.")
@click.option("--cluster-method", type=click.Choice(["tsne", "pca"]), default="tsne",
              show_default=True, help="2-D embedding after PCA to <= 600 dimensions.")
def report(stores, out, cluster, cluster_layer, cluster_examples, cluster_method):
    """Learning curves, alignment-angle curves and a table of final errors next
    to the paper's published numbers for one or more STORES."""
    from ..analysis.report import report as make_report
    from ..data import DataError
    from ..recording import StoreError

    try:
        files = make_report(list(stores), out, cluster=cluster, cluster_layer=cluster_layer,
                            cluster_examples=cluster_examples, cluster_method=cluster_method)
    except (StoreError, DataError, ValueError, ImportError) as exc:
        fail(str(exc))
    for f in files:
        click.echo(str(f))
