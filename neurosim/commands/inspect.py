"""``neurosim inspect``: what a store holds, and whether it is intact."""

from __future__ import annotations

import json

import click

from .common import fail


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


@click.command()
@click.argument("store", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(store, as_json):
    """Print what a STORE holds: protocol, network, variables, last errors, sizes.

    The store is checked against its last commit first (the seal of its root
    metadata, every recorded chunk and its hash chain, the checkpoint's content
    hashes; no link or FIFO inside); a damaged store exits with code 2, naming the
    damaged file."""
    from ..recording import StoreError, open_store, store_sizes, verify_store

    try:
        check = verify_store(store)
        ds = open_store(store)
        layers = json.loads(ds.attrs.get("layers", "[]"))
    except StoreError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"{store}: the root attr 'layers' is damaged ({exc})")
    sizes = store_sizes(store)
    info = {
        "store": store,
        "protocol": ds.attrs.get("protocol_name"),
        "rule": ds.attrs.get("rule"),
        "realization": ds.attrs.get("realization"),
        "dataset": ds.attrs.get("dataset"),
        "status": ds.attrs.get("status"),
        "seed": ds.attrs.get("seed"),
        "layers": layers,
        "n_params": sum(r.get("params", 0) for r in layers),
        "variables": {k: list(v.dims) for k, v in ds.data_vars.items()},
        "integrity": check,
        "size_bytes": {"recordings": sizes["recordings"], "checkpoints": sizes["checkpoints"]},
        "checkpoint_slots": sizes["slots"],
        "checkpoint_parts": checkpoint_parts(store, check["slot"]),
    }
    if "epoch" in ds.dims and ds.sizes["epoch"]:
        info["epochs"] = [float(e) for e in ds["epoch"].values]
        for k in ("train_error", "test_error"):
            if k in ds:
                info[f"last_{k}"] = float(ds[k].values[-1])
        if check["slot"] and "n_steps" in ds:
            # the checkpoint's position as recorded: fractional for a run cut short by
            # training.max_steps (its counter of whole epochs says less)
            steps = [int(n) for n in ds["n_steps"].values]
            if check["step"] in steps:
                check["epoch"] = _num(info["epochs"][steps.index(check["step"])])
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
        click.echo(f"checkpoints at epochs {[_num(e) for e in info['epochs']]}")
        if "last_test_error" in info:
            click.echo(f"last       train error {info['last_train_error']:.2f}%  test error "
                       f"{info['last_test_error']:.2f}%")
    recs = ("records match their hash chains, root metadata sealed" if check["records"] == "verified"
            else f"records decode (format {check['format']}: no record hashes)")
    if check["slot"]:
        how = {"verified": "every array matches its content hash",
               "unverified": "it decodes; this store predates content hashes"}[check["checkpoint"]]
        click.echo(f"integrity  intact: {check['arrays']} committed arrays; {recs}; checkpoint "
                   f"{check['slot']} (epoch {check['epoch']}, step {check['step']}): {how}")
    else:
        click.echo(f"integrity  intact: {check['arrays']} committed arrays; {recs}; no checkpoint "
                   f"committed yet")
    slots = len(sizes["slots"])
    click.echo(f"size       recordings {_size(sizes['recordings'])}, checkpoints "
               f"{_size(sizes['checkpoints'])} ({slots} slot{'s' if slots != 1 else ''})")
    parts = info["checkpoint_parts"]
    if parts:
        what = ", ".join(f"{k} {_size(v)}" for k, v in parts.items())
        click.echo(f"checkpoint {what}: the whole state a resume continues from"
                   f"{' (two slots while a run goes on)' if slots > 1 else ''}")


#: what the arrays of a checkpoint slot are, by name prefix (docs/store.md#checkpoints)
PARTS = (("real.syn.", "circuit synapses (K per pair)"), ("real.opt.", "circuit synapses' optimizer state"),
         ("real.", "realization state"), ("net.", "network parameters"),
         ("opt.", "optimizer state"), ("rule.", "rule state"))


def checkpoint_parts(store, slot) -> dict:
    """Bytes on disk of the committed checkpoint slot, by part (largest first)."""
    import os
    from pathlib import Path

    if not slot:
        return {}
    out: dict = {}
    folder = Path(store) / slot
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        if not entry.is_dir():  # the slot's own metadata (its attrs: position, hashes)
            out["metadata"] = out.get("metadata", 0) + entry.lstat().st_size
            continue
        part = next((name for prefix, name in PARTS if entry.name.startswith(prefix)), "other")
        for root, _, files in os.walk(entry):
            for f in files:
                try:
                    out[part] = out.get(part, 0) + os.lstat(os.path.join(root, f)).st_size
                except OSError:
                    pass
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _num(e: float):
    return int(e) if float(e).is_integer() else round(float(e), 3)
