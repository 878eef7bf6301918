"""``neurosim theory``: eq. 15 vs measurement at initialisation over widths."""

from __future__ import annotations

import click

from .common import fail


@click.command()
@click.argument("source", metavar="CIRCUIT_OR_PROTOCOL", type=click.Path(dir_okay=False))
@click.option("--widths", default="64,128,256,512,1024,2048,4096", show_default=True,
              help="Comma-separated widths; every hidden layer's units/channels is set to each.")
@click.option("--out", type=click.Path(file_okay=False), default="theory", show_default=True,
              help="Output directory (theory.csv, theory.md, theory.png).")
@click.option("--init", "init", type=click.Choice(["circuit", "on_off", "iid"]), default="circuit",
              show_default=True, help="circuit: the circuit's own init (the paper's ON/OFF); "
              "iid: i.i.d. half-normal nonnegative weights after layer 1 (eq. 15's assumption).")
@click.option("--examples", default=64, show_default=True, help="Random inputs averaged over.")
@click.option("--dataset", default=None,
              help="Real inputs from this dataset (default: uniform [-1, 1] noise of its shape).")
@click.option("--seed", default=0, show_default=True)
def theory(source, widths, out, init, examples, dataset, seed):
    """Measured r^ℓ = std(δ̂)/mean(δ̂) and GEVB angles θ^ℓ at initialisation of a
    vectorized circuit vs the eq.-15 recurrence, over a range of widths.

    CIRCUIT_OR_PROTOCOL is a circuit YAML (circuits/*.yaml) or a protocol YAML
    (protocols/*.yaml; its circuit, with the protocol's overrides, and its dataset)."""
    from ..analysis.theory_report import IN_SHAPES, run_theory
    from ..core.options import ConfigError
    from ..data import DataError
    from ..protocol import load_protocol, load_yaml, validate_circuit

    proto_dataset = None
    try:
        raw, text = load_yaml(source)
        if "sweep" in raw or "seeds" in raw:
            fail(f"{source} is a sweep protocol (several runs); give a circuit or a one-run protocol")
        if "circuit" in raw:  # a protocol: validated whole, its resolved circuit used
            proto = load_protocol(source)
            spec, proto_dataset = proto.circuit, proto.data.dataset
        else:
            spec = validate_circuit(raw, source, text)
        ws = [int(w) for w in widths.split(",") if w.strip()]
    except ConfigError as exc:
        fail(str(exc))
    except ValueError:
        fail(f"--widths must be comma-separated integers, got {widths!r}")
    if not spec.vectorized:
        fail(f"{source}: eq. 15 is about vectorized networks (vectorized: true)")
    ds_name = dataset or proto_dataset or spec.dataset or "mnist"
    if dataset is None and ds_name not in IN_SHAPES:
        fail(f"no input shape known for dataset {ds_name!r}; pass --dataset")
    try:
        files = run_theory(spec, ws, out, init=init, examples=examples, dataset=dataset or ds_name,
                           real_data=dataset is not None, seed=seed)
    except (DataError, ValueError) as exc:
        fail(str(exc))
    for f in files:
        click.echo(f)
