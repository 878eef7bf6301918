"""``neurosim inspect``: what a store holds."""

from __future__ import annotations

import json

import click

from .common import fail


@click.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(store, as_json):
    """Print what a STORE holds: protocol, network, variables, last errors."""
    from ..recording import StoreError, open_store

    try:
        ds = open_store(store)
    except StoreError as exc:
        fail(str(exc))
    layers = json.loads(ds.attrs.get("layers", "[]"))
    info = {
        "store": store,
        "protocol": ds.attrs.get("protocol_name"),
        "rule": ds.attrs.get("rule"),
        "realization": ds.attrs.get("realization"),
        "dataset": ds.attrs.get("dataset"),
        "status": ds.attrs.get("status"),
        "seed": ds.attrs.get("seed"),
        "layers": layers,
        "n_params": sum(r["params"] for r in layers),
        "variables": {k: list(v.dims) for k, v in ds.data_vars.items()},
    }
    if "epoch" in ds.dims and ds.sizes["epoch"]:
        info["epochs"] = [int(e) for e in ds["epoch"].values]
        for k in ("train_error", "test_error"):
            if k in ds:
                info[f"last_{k}"] = float(ds[k].values[-1])
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"store      {store}  ({info['status']})")
    click.echo(f"protocol   {info['protocol']}  rule={info['rule']}  realization={info['realization']}"
               f"  dataset={info['dataset']}  seed={info['seed']}")
    click.echo("layers:")
    for r in layers:
        click.echo(f"  {r['layer']:>2} {r['kind']:<10} in={tuple(r['in'])} units={tuple(r['units'])} "
                   f"nl={r['nonlinearity']} params={r['params']}{' shared' if r['shared'] else ''}"
                   f"{' clamped>=0' if r['clamped'] else ''}")
    click.echo(f"parameters {info['n_params']}")
    click.echo("variables:")
    for k, dims in info["variables"].items():
        click.echo(f"  {k} {tuple(dims)}")
    if "epochs" in info:
        click.echo(f"checkpoints at epochs {info['epochs']}")
        if "last_test_error" in info:
            click.echo(f"last       train error {info['last_train_error']:.2f}%  test error "
                       f"{info['last_test_error']:.2f}%")
